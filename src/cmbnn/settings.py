"""The run settings the sky and patch stages share, as one frozen object.

Each rule passes only the config keys it needs through ``params:`` (so that Snakemake reruns
exactly the stages whose settings changed); its script builds a :class:`RunSettings` from them
once, and the library functions take that object instead of nine to fifteen loose arguments.
A stage that reads a setting its rule did not pass fails with the setting's name.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from types import MappingProxyType
from typing import Any, Mapping


def _frozen(value):
    """Read-only view of a config section (nested dicts too), so the settings cannot drift."""
    if isinstance(value, Mapping):
        return MappingProxyType({k: _frozen(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_frozen(v) for v in value)
    return value


@dataclass(frozen=True)
class RunSettings:
    """nside and seed of the run; the frequencies (GHz), the ``observation`` section (beams,
    noise depths, pixel window, scalar E/B), the label frequency and the ``patches`` section,
    where the stage needs them."""

    nside: int | None = None
    seed: int | None = None
    freqs: tuple = ()
    observation: Mapping[str, Any] | None = None
    label_frequency: float | None = None
    patches: Mapping[str, Any] | None = None

    def __post_init__(self):
        object.__setattr__(self, "freqs", tuple(self.freqs))
        for name in ("observation", "patches"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))

    @classmethod
    def from_params(cls, params) -> RunSettings:
        """From a rule's params (or any mapping): the keys named like the fields; others are ignored."""
        items = dict(params.items())
        return cls(**{f.name: items[f.name] for f in fields(cls) if f.name in items})

    @classmethod
    def from_config(cls, config: Mapping) -> RunSettings:
        """Every setting, from a validated config (tests and notebooks; rules use :meth:`from_params`)."""
        return cls(
            nside=config["nside"],
            seed=config["seed"],
            freqs=config["frequencies"],
            observation=config["observation"],
            label_frequency=config["label_frequency"],
            patches=config["patches"],
        )

    def need(self, *names: str) -> None:
        """Raise naming the settings this stage needs but was not given."""
        missing = [n for n in names if getattr(self, n) in (None, ())]
        if missing:
            raise ValueError(f"run settings {missing} are needed here but were not passed (add them to the rule's params)")

    @property
    def lmax(self) -> int:
        """Band limit of the simulated skies: 3 nside - 1."""
        self.need("nside")
        return 3 * self.nside - 1

    def beam(self, i_freq: int) -> float:
        """Beam FWHM (arcmin) of frequency ``i_freq``."""
        return self.observation["beam_fwhm_arcmin"][i_freq]

    @property
    def i_label(self) -> int:
        """Index of the label frequency among the frequencies."""
        return list(self.freqs).index(self.label_frequency)

"""Config validation with clear errors and schema defaults.

The Snakefile calls :func:`validate_config` before any job is planned. Each
problem is reported as ``config key 'a.b.c': <what is wrong>; allowed: <...>``
so a user can find and fix it without reading the schema.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import yaml

from cmbnn.names import COMPONENTS


class ConfigError(ValueError):
    """The config does not satisfy the schema or a cross-key rule; the message names the problem(s)."""


def _with_defaults(validator_class):
    """Validator that fills ``default:`` values of missing properties before checking them."""
    from jsonschema import validators

    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" in subschema and name not in instance:
                    instance[name] = copy.deepcopy(subschema["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return validators.extend(validator_class, {"properties": set_defaults})


def _allowed(error) -> str:
    schema = error.schema
    if error.validator == "enum":
        return ", ".join(map(str, schema["enum"]))
    if error.validator == "additionalProperties":
        return ", ".join(sorted(schema.get("properties", {})))
    if error.validator in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        bounds = []
        for key, sign in (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="), ("exclusiveMaximum", "<")):
            if key in schema:
                bounds.append(f"{sign} {schema[key]}")
        return " and ".join(bounds)
    if "description" in schema:
        return schema["description"]
    return ""


def _message(error) -> str:
    path = ".".join(str(p) for p in error.absolute_path) or "<top level>"
    if error.validator == "additionalProperties":
        unknown = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        keys = ", ".join(f"{path}.{k}" if error.absolute_path else k for k in unknown)
        return f"unknown config key(s) {keys}; allowed here: {_allowed(error)}"
    allowed = _allowed(error)
    text = f"config key '{path}': {error.message}"
    return f"{text}; allowed: {allowed}" if allowed and error.validator != "required" else text


def load_schema(path) -> dict:
    """The schema, with the foreground component list filled in from :mod:`cmbnn.names` (its one owner)."""
    with open(path) as f:
        schema = yaml.safe_load(f)
    components = schema["properties"]["foregrounds"]["properties"]["components"]
    components["items"]["enum"] = list(COMPONENTS)
    components["default"] = list(COMPONENTS)
    return schema


def validate_config(config: dict, schema_path) -> dict:
    """Fill defaults into ``config`` in place and check it; raise ConfigError listing all problems."""
    from jsonschema import Draft202012Validator

    schema = load_schema(schema_path)
    validator = _with_defaults(Draft202012Validator)(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        lines = "\n  - ".join(_message(e) for e in errors)
        raise ConfigError(f"invalid config ({len(errors)} problem(s)):\n  - {lines}")
    check_consistency(config)
    return config


def check_consistency(config: dict) -> None:
    """Cross-key rules a JSON schema cannot express: their one home (the schema keeps the
    single-key rules). The general rules are reported together; the stages' rules after them."""
    problems = []
    freqs = config["frequencies"]
    obs = config["observation"]
    for key in ("beam_fwhm_arcmin", "noise_T_uK_arcmin", "noise_P_uK_arcmin"):
        if len(obs[key]) != len(freqs):
            problems.append(
                f"config key 'observation.{key}' has {len(obs[key])} entries but 'frequencies' has {len(freqs)}; give one per frequency"
            )
    if len(set(freqs)) != len(freqs):
        problems.append(f"config key 'frequencies': duplicate frequencies in {freqs}")
    if config["label_frequency"] not in freqs:
        problems.append(f"config key 'label_frequency': {config['label_frequency']} is not one of the frequencies {freqs}")
    fields = config["patches"]["fields"]
    if any(f in ("E", "B") for f in fields) and not obs["scalar_eb"] and config["patches"]["method"] == "pixel":
        problems.append("config key 'patches.fields': E/B patches by the pixel method need 'observation.scalar_eb: true'")
    cenn = config["cenn"]
    missing = [f for f in cenn["fields"] if f not in fields]
    if missing:
        problems.append(f"config key 'cenn.fields': {missing} not cut as patches; allowed: fields in 'patches.fields' {fields}")
    if len(cenn["filters"]) != len(cenn["kernels"]):
        problems.append(f"config keys 'cenn.filters' and 'cenn.kernels' need the same length, got {len(cenn['filters'])} and {len(cenn['kernels'])}")
    stride = 2 ** len(cenn["filters"])
    for key in ("height", "width"):
        if config["patches"][key] % stride:
            problems.append(
                f"config key 'patches.{key}': {config['patches'][key]} is not divisible by {stride}, which CENN's {len(cenn['filters'])} stride-2 stages need"
            )
    if problems:
        raise ConfigError("invalid config:\n  - " + "\n  - ".join(problems))
    # The stages' own rules, one problem at a time and in the order the workflow used to meet them
    # (parsing rules/common.smk, theory.smk, cosmovae.smk, planck_sky.smk, then rule all's targets).
    _check_cenn(config)
    _check_theory(config)
    _check_cosmovae(config)
    _check_real_sky(config)
    _check_cosmovae_fullsky(config)
    _check_dustvae(config)


def _check_cenn(config: dict) -> None:
    fields = config["cenn"]["fields"]
    if config["cenn"]["mode"] == "joint" and sorted(fields) != ["Q", "U"]:
        raise ConfigError(f"cenn.mode 'joint' trains one Q/U network: cenn.fields must be [Q, U], got {fields}")
    if config["observation"]["noise_model"] == "planck" and config["patches"]["method"] != "pixel":
        # The exact method draws white noise at the patch pixels; the Planck noise lives in the maps.
        raise ConfigError("observation.noise_model 'planck' puts the noise in the full-sky maps: set patches.method to 'pixel'")


def _check_theory(config: dict) -> None:
    """theory.source planck_pr3: settings the PR3 file cannot honour stop the run before any download."""
    theory = config["theory"]
    if theory.get("source", "camb") != "planck_pr3":
        return
    if theory["r"] != 0:
        raise ConfigError(f"theory.source planck_pr3 has no tensor spectrum: theory.r must be 0, got {theory['r']}")
    if theory["cosmology"]:
        raise ConfigError(f"theory.source planck_pr3 is the fixed Planck 2018 best fit: theory.cosmology must be empty, got {theory['cosmology']}")


def _check_cosmovae(config: dict) -> None:
    if not config["cosmovae"]["enabled"]:
        return
    label_lmax = config["inpainting"]["label_lmax"]
    if label_lmax is not None and config["patches"]["method"] == "exact" and label_lmax <= 3 * config["nside"] - 1:
        raise ConfigError(f"config key 'inpainting.label_lmax': {label_lmax} must exceed the sky's lmax 3 nside - 1 = {3 * config['nside'] - 1} (it adds the multipoles in between); null for none")
    if config["cosmovae"]["model"] == "gated":
        levels = config["cosmovae"]["gated"]["levels"]
        for key in ("height", "width"):
            if config["patches"][key] % 2**levels:
                raise ConfigError(f"config key 'patches.{key}': {config['patches'][key]} is not divisible by {2**levels}, which cosmovae.gated.levels {levels} needs")
    weights = config["cosmovae"].get("perceptual_weights_file")
    if weights and not Path(weights).is_file():
        raise ConfigError(f"config key 'cosmovae.perceptual_weights_file': {weights} does not exist (a local Keras VGG16 weights file; null for none)")
    fields = config["patches"]["fields"]
    if "T" not in fields:
        raise ConfigError(f"cosmovae inpaints T patches: add T to patches.fields {fields} (or set cosmovae.enabled: false)")
    if "dust" not in config["foregrounds"]["components"]:
        raise ConfigError("the inpainting mask thresholds the dust intensity: foregrounds.components needs dust (or set cosmovae.enabled: false)")


def _check_real_sky(config: dict) -> None:
    """planck.real_sky: CENN's Q and U networks against Commander (and the other CMB products)."""
    real_sky = config["planck"]["real_sky"]
    if not real_sky["enabled"]:
        return
    fields = config["cenn"]["fields"]
    if sorted(set(fields) & {"Q", "U"}) != ["Q", "U"]:
        raise ConfigError(f"planck.real_sky compares Q and U: cenn.fields must include both, got {fields}")
    products = list(real_sky["cmb_products"])
    if products[0] != "commander":
        raise ConfigError(f"planck.real_sky.cmb_products must start with commander (the reference), got {products}")


def _check_cosmovae_fullsky(config: dict) -> None:
    fullsky = config["cosmovae"]["fullsky"]
    if config["cosmovae"]["enabled"] and fullsky["enabled"]:
        r = fullsky["realisation"]
        if r >= config["realisations"]:
            raise ConfigError(f"cosmovae.fullsky.realisation {r} is not simulated (realisations: {config['realisations']})")


def _check_dustvae(config: dict) -> None:
    """Model names used elsewhere exist and are unconditional; the interpolation pair and the patch size fit."""
    d = config["dustvae"]
    if not d["enabled"]:
        return
    models = d["models"]
    for key in ("imputation", "interpolation"):
        name = d[key]["model"]
        if name not in models:
            raise ConfigError(f"dustvae.{key}.model {name!r} is not one of dustvae.models {list(models)}")
        if models[name].get("condition"):
            raise ConfigError(f"dustvae.{key}.model {name!r} is conditional: choose an unconditional model of {list(models)}")
    n_test = d["patches"]["counts"]["test"]
    if max(d["interpolation"]["pair"]) >= n_test:
        raise ConfigError(f"dustvae.interpolation.pair {d['interpolation']['pair']} indexes past the {n_test} test patches")
    if d["interpolation"]["pair"][0] == d["interpolation"]["pair"][1]:
        raise ConfigError("dustvae.interpolation.pair must name two different test patches")
    sky = d["sky"]
    if d["source"] == "simulated" and sky["model"] == "filaments":
        fil = sky["filaments"]
        if fil["lmin"] > fil["sharpness"] * sky["lmax"]:
            raise ConfigError(
                f"dustvae.sky.filaments.lmin {fil['lmin']} leaves no ridge scale: ridges at ell_k are about ell_k / sharpness wide in "
                f"multipoles, so ell_k must be <= sharpness * lmax = {fil['sharpness'] * sky['lmax']:g}"
            )
    # The decoder's stride-2 blocks (cmbnn.dust.vae.decoder_grid): a clear error before any job.
    h, w = d["patches"]["height"], d["patches"]["width"]
    n_up = len(d["network"]["decoder_filters"])
    f = 2**n_up
    if h % f or w % f:
        raise ConfigError(f"{n_up} stride-2 decoder blocks need patch sides divisible by {f}, got {h}x{w}")


def digest(obj) -> str:
    """Short stable hash of a JSON-able config slice (provenance attribute)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def load_config(path, schema_path=None) -> dict:
    """Read a config file and validate it (for use outside Snakemake)."""
    with open(path) as f:
        config = yaml.safe_load(f) or {}
    if schema_path is None:
        schema_path = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"
    return validate_config(config, schema_path)

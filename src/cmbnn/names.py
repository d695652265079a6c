"""Names the workflow knows: foreground components, map fields and the spectrum groups they form.

No heavy imports: the Snakefile and the config validation read this (the schema's enum and default
of the components are filled in from here).
"""

# Diffuse Galactic emission: Gaussian power-law skies with a modulation and an SED per pixel.
DIFFUSE = ("dust", "synchrotron")
# Extragalactic point sources: a catalogue, rendered with each frequency's beam profile.
POINT_SOURCES = ("radio_sources", "infrared_sources")
COMPONENTS = DIFFUSE + POINT_SOURCES

FIELDS = ("T", "Q", "U", "E", "B")
# Q and U together are one spin-2 field; T, E and B are spin-0.
GROUP_FIELDS = {"QU": ("Q", "U"), "T": ("T",), "E": ("E",), "B": ("B",)}


def spectra_groups(fields) -> list[str]:
    """Spectrum groups available from a set of predicted fields: QU (spin 2) and scalar T/E/B."""
    groups = ["QU"] if {"Q", "U"} <= set(fields) else []
    return groups + [f for f in fields if f in ("T", "E", "B")]


# Field group -> the harmonic components analysed (scalar E/B patches are spin-0 maps of E and B).
GROUP_HARMONICS = {"QU": ("E", "B"), "T": ("T",), "E": ("E",), "B": ("B",)}

"""The foreground components the workflow knows (no heavy imports: the Snakefile and the
config validation read this; the schema's enum and default are filled in from here)."""

# Diffuse Galactic emission: Gaussian power-law skies with a modulation and an SED per pixel.
DIFFUSE = ("dust", "synchrotron")
# Extragalactic point sources: a catalogue, rendered with each frequency's beam profile.
POINT_SOURCES = ("radio_sources", "infrared_sources")
COMPONENTS = DIFFUSE + POINT_SOURCES

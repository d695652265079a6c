"""Map fields and the spectrum groups they form (no heavy imports: the Snakefile uses this)."""

FIELDS = ("T", "Q", "U", "E", "B")
# Q and U together are one spin-2 field; T, E and B are spin-0.
GROUP_FIELDS = {"QU": ("Q", "U"), "T": ("T",), "E": ("E",), "B": ("B",)}


def spectra_groups(fields) -> list[str]:
    """Spectrum groups available from a set of predicted fields: QU (spin 2) and scalar T/E/B."""
    groups = ["QU"] if {"Q", "U"} <= set(fields) else []
    return groups + [f for f in fields if f in ("T", "E", "B")]

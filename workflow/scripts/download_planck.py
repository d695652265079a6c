"""Download one Planck archive file named in the manifest, verified (rule download_planck)."""

from _helpers import configure

log = configure(snakemake, "download_planck")  # noqa: F821

from cmbnn.planck.download import fetch  # noqa: E402

p = snakemake.params.download  # noqa: F821
log.info(f"{snakemake.wildcards.filename}: {p['used_for']}; from {p['url']}")  # noqa: F821
fetch(
    p["url"],
    snakemake.output[0],  # noqa: F821
    size=p["size"],
    md5=p["md5"],
    sha256=p["sha256"],
    retries=p["retries"],
    backoff=p["backoff_s"],
    timeout=(p["timeout_s"], p["timeout_s"]),
    logger=log,
)

"""Download one Planck archive file named in the manifest, verified (rule download_planck)."""

from _helpers import configure

log = configure(snakemake, "download_planck")  # noqa: F821

from pathlib import Path  # noqa: E402

from cmbnn.planck.download import fetch, find_manifest, load_manifest  # noqa: E402

p = snakemake.params.download  # noqa: F821
# What the file must hold (HDU, columns, NSIDE) is read from the manifest, not passed as a param:
# a new params key would make Snakemake fetch every file already downloaded again.
manifest = find_manifest(snakemake.config["planck"]["manifest"], Path(snakemake.scriptdir).parents[1])  # noqa: F821
content = load_manifest(manifest)[snakemake.wildcards.filename].get("content")  # noqa: F821
log.info(f"{snakemake.wildcards.filename}: {p['used_for']}; from {p['url']}")  # noqa: F821
fetch(
    p["url"],
    snakemake.output[0],  # noqa: F821
    size=p["size"],
    md5=p["md5"],
    sha256=p["sha256"],
    content=content,
    retries=p["retries"],
    backoff=p["backoff_s"],
    timeout=(p["timeout_s"], p["timeout_s"]),
    logger=log,
)

"""Regenerate the README's figures (docs/images/*.png) from a finished run's results/.

    .venv/bin/python docs/make_figures.py                       # ./results of the default run
    .venv/bin/python docs/make_figures.py --results DIR --out DIR

One figure per study, drawn by the library's own figure functions from the run's outputs (never
by hand): CENN and harmonic ILC + Wiener on test patches, CosmoVAE and the Gaussian conditional
mean on masked test patches, the dust generators beside real test patches; and the rule graph
(`snakemake --rulegraph`, rendered by Graphviz's `dot` when it is installed).
"""

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from cmbnn.cenn.figures import plot_prediction_examples  # noqa: E402
from cmbnn.dust.figures import plot_samples  # noqa: E402
from cmbnn.dust.vae import log_standardise  # noqa: E402
from cmbnn.inpainting.figures import plot_inpainting_examples  # noqa: E402
from cmbnn.io import read_h5  # noqa: E402

# The dust generators the README's table compares, as named in results/dust/samples.h5.
DUST_ROWS = {
    "dust VAE, sampler": "dustvae/sampler",
    "Gaussian copula": "gaussian_copula",
    "WPH synthesis": "WPH_synthesis",
    "scattering synthesis": "scattering_synthesis",
}


def cenn_figure(results: Path, path: Path, field: str = "Q", n: int = 2) -> None:
    cenn, _ = read_h5(results / "predictions" / "cenn" / field / "test.h5")
    wiener, _ = read_h5(results / "predictions" / "hilc_wiener" / field / "test.h5")
    panels = {
        "input 143 GHz": cenn["input"][:n],
        "label": cenn["sim"][:n],  # the key the panels take their colour scale from
        "hILC + Wiener": wiener["net"][:n],
        "CENN": cenn["net"][:n],
        "hILC + Wiener - label": (wiener["net"] - wiener["sim"])[:n],
        "CENN - label": (cenn["net"] - cenn["sim"])[:n],
    }
    plot_prediction_examples(panels, path, n=n, title=f"{field} test patches [uK_CMB]")


def cosmovae_figure(results: Path, path: Path, n: int = 2) -> None:
    vae, _ = read_h5(results / "predictions" / "cosmovae" / "T" / "test.h5")
    gauss, _ = read_h5(results / "predictions" / "gaussian" / "T" / "test.h5")
    # Patches with a Galactic hole that leaves most of the patch to see, largest hole first; then the rest.
    fraction = vae["mask"].reshape(len(vae["mask"]), -1).mean(axis=1)
    order = np.argsort(-fraction, kind="stable")
    partly = (fraction[order] > 0.01) & (fraction[order] < 0.5)
    pick = np.concatenate([order[partly], order[~partly]])[:n]
    plot_inpainting_examples(vae["sim"][pick], vae["mask"][pick], vae["net"][pick], vae["std"][pick], gauss["net"][pick], path, n=len(pick), gauss_std=gauss["std"][pick])


def dust_figure(results: Path, path: Path, n: int = 4) -> None:
    with h5py.File(results / "dust" / "samples.h5", "r") as f:  # groups per model: read by path
        stats = {"log_mean": float(f.attrs["log_mean"]), "log_std": float(f.attrs["log_std"])}
        rows = {label: f[key][:n] for label, key in DUST_ROWS.items() if key in f}
    test, _ = read_h5(results / "dust" / "patches" / "test.h5")
    real, _ = log_standardise(test["intensity"][:n], stats)
    plot_samples(real, rows, path, n_show=n, stats=stats)


def shrink(path: Path, colours: int = 256) -> None:
    """A palette PNG: the README's images stay small in the repository (a tenth of the size)."""
    from PIL import Image

    with Image.open(path) as image:
        small = image.convert("RGB").quantize(colours, method=Image.Quantize.MEDIANCUT)
    small.save(path, optimize=True)


def rulegraph_figure(path: Path) -> bool:
    """The DAG's rules as a PNG; False when Graphviz's `dot` is missing (apt-get install graphviz)."""
    if shutil.which("dot") is None:
        return False
    graph = subprocess.run([sys.executable, "-m", "snakemake", "--rulegraph", "--quiet", "all"], cwd=ROOT, capture_output=True, text=True, check=True)
    lines = graph.stdout[graph.stdout.index("digraph"):].splitlines()
    # Without the target rule `all`: its edges from every final rule say nothing about the stages.
    target = next(line.split("[")[0].strip() for line in lines if 'label = "all"' in line)
    dot = "\n".join(line for line in lines if not re.match(rf"\s*{target}\b|.*-> {target}$", line))
    subprocess.run(["dot", "-Tpng", "-Gdpi=60", "-o", str(path)], input=dot, text=True, check=True)
    return True


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=Path("results"), help="a finished run's results/ (default: ./results)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images", help="where the PNGs go (default: docs/images)")
    parser.add_argument("--no-rulegraph", action="store_true", help="skip the rule graph")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, draw in (("cenn", cenn_figure), ("cosmovae", cosmovae_figure), ("dust", dust_figure)):
        draw(args.results, args.out / f"{name}.png")
        shrink(args.out / f"{name}.png")
        print(f"wrote {args.out / f'{name}.png'}")
    if not args.no_rulegraph:
        if rulegraph_figure(args.out / "rulegraph.png"):
            shrink(args.out / "rulegraph.png", colours=32)
            print(f"wrote {args.out / 'rulegraph.png'}")
        else:
            print("skipped rulegraph.png: Graphviz's dot is not installed (apt-get install graphviz)")


if __name__ == "__main__":
    main()

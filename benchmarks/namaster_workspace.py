#!/usr/bin/env python
"""NaMaster bandpowers of many patches: one reused workspace versus a workspace per patch.

The mode-coupling matrix depends only on the mask and the binning, yet the
CENN code recomputed it for every patch. This times both on purified Q/U
patches of the paper's size and prints the ratio.

    .venv/bin/python benchmarks/namaster_workspace.py --size 256 --patches 20 --fresh 2
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from cmbnn.analysis.powspec import ARCMIN, FlatSpectra, linear_bin_edges  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256, help="patch side in pixels")
    parser.add_argument("--reso", type=float, default=1.72, help="pixel size in arcmin")
    parser.add_argument("--patches", type=int, default=20, help="patches measured with the reused workspace")
    parser.add_argument("--fresh", type=int, default=2, help="patches measured with a workspace each (slow)")
    parser.add_argument("--bins", type=int, default=16)
    args = parser.parse_args()
    import pymaster as nmt

    side, reso = args.size, args.reso
    lx = side * reso * ARCMIN
    ell = np.arange(20000.0)
    cl = 1e-3 / (1 + (ell / 500) ** 2)
    patches = [nmt.synfast_flat(side, side, lx, lx, [cl, 0 * cl, 0.3 * cl], [2], seed=i) for i in range(args.patches)]
    edges = linear_bin_edges(side, side, reso, args.bins)
    print(f"{side}x{side} Q/U patches at {reso} arcmin, B-purified, {args.bins} bins", flush=True)

    start = time.perf_counter()
    reused = FlatSpectra(side, side, reso, edges, spin=2, aposize_deg=1.0, border_px=2)
    setup = time.perf_counter() - start
    start = time.perf_counter()
    out_reused = [reused(p) for p in patches]
    per_patch_reused = (time.perf_counter() - start) / len(patches)

    start = time.perf_counter()
    out_fresh = [FlatSpectra(side, side, reso, edges, spin=2, aposize_deg=1.0, border_px=2)(p) for p in patches[: args.fresh]]
    per_patch_fresh = (time.perf_counter() - start) / args.fresh
    assert all(np.allclose(a, b, rtol=1e-10) for a, b in zip(out_reused, out_fresh))

    print(f"workspace set-up (once):          {setup:8.2f} s")
    print(f"per patch, reused workspace:      {per_patch_reused * 1e3:8.1f} ms")
    print(f"per patch, workspace per patch:   {per_patch_fresh * 1e3:8.1f} ms")
    print(f"ratio (per patch):                {per_patch_fresh / per_patch_reused:8.0f}x")
    n = 1000
    print(f"for {n} patches: {setup + n * per_patch_reused:.0f} s reused vs {n * per_patch_fresh:.0f} s recomputed")


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""CENN training throughput (patches per second) on this machine's CPU and, if present, GPUs.

Times steady-state epochs on random patches fed exactly as in training (streamed
normalisation, per-epoch shuffle and, for the joint network, spin-2 augmentation);
the first epoch (graph tracing) is reported apart.

    --mode joint  the default network: Q and U of 3 frequencies in (6 channels), Q and U out,
                  filters 16/32/64/128, kernels 5, full-resolution path, linear 9x9 path, Adam
    --mode paper  Casas et al. 2022: 3 channels in, 1 out, filters 8/16/64/128, kernels 9/9/7/7, Adagrad

Any Keras backend works: KERAS_BACKEND=jax .venv/bin/python benchmarks/training_throughput.py

    .venv/bin/python benchmarks/training_throughput.py --mode joint --size 64 --patches 1024 --epochs 3
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

JOINT = {
    "mode": "joint", "filters": [16, 32, 64, 128], "kernels": [5, 5, 5, 5], "full_res_filters": 16, "linear_kernel": 9,
    "optimizer": "adam", "learning_rate": 0.002, "final_learning_rate": 1e-5, "augment": True, "l2": 0.0,
}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=["joint", "paper"], default="joint")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--patches", type=int, default=1024)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    import keras

    from cmbnn.cenn import network as cenn
    from cmbnn.nn.training import accelerators

    settings = cenn.with_defaults(JOINT if args.mode == "joint" else {})
    settings.update(epochs=args.epochs + 1, patience=args.epochs + 1, batch_size=args.batch)
    fields = ["Q", "U"] if args.mode == "joint" else ["Q"]
    rng = np.random.default_rng(0)
    x = [rng.standard_normal((args.patches, args.size, args.size, 3)).astype(np.float32) for _ in fields]
    y = [rng.standard_normal((args.patches, args.size, args.size, 1)).astype(np.float32) for _ in fields]
    xv, yv = [a[: args.batch] for a in x], [a[: args.batch] for a in y]
    devices = accelerators() or ["CPU"]
    print(f"keras {keras.__version__} on {keras.backend.backend()}, devices: {devices}")
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        _, history = cenn.train(x, y, xv, yv, settings, 0, Path(tmp) / "checkpoint", fields=fields)
        total = time.perf_counter() - start
    seconds = [h["seconds"] for h in history]
    steady = np.median(seconds[1:])
    channels = sum(a.shape[-1] for a in x)
    print(f"{args.mode}: {args.size}x{args.size}x{channels} patches, batch {args.batch}: first epoch {seconds[0]:.1f} s (tracing), "
          f"then {args.patches / steady:.0f} patches/s ({steady:.2f} s per epoch of {args.patches}); {total:.1f} s in all")


if __name__ == "__main__":
    main()

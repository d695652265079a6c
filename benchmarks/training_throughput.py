#!/usr/bin/env python
"""CENN training throughput (patches per second) on this machine's CPU and, if present, GPUs.

Times steady-state epochs of the paper architecture (batch 32, Adagrad) on
random 3-channel patches; the first epoch (graph tracing) is reported apart.
Any Keras backend works: KERAS_BACKEND=jax .venv/bin/python benchmarks/training_throughput.py

    .venv/bin/python benchmarks/training_throughput.py --size 64 --patches 512 --epochs 3
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--patches", type=int, default=512)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    import keras

    from cmbnn import cenn
    from cmbnn.training import accelerators, distribution_scope

    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.patches, args.size, args.size, 3)).astype(np.float32)
    y = rng.standard_normal((args.patches, args.size, args.size, 1)).astype(np.float32)
    devices = accelerators() or ["CPU"]
    print(f"keras {keras.__version__} on {keras.backend.backend()}, devices: {devices}")
    with distribution_scope():
        model = cenn.build_core(args.size, args.size, 3)
        model.compile(optimizer=keras.optimizers.Adagrad(0.005), loss="mse")
    times = []
    for _ in range(args.epochs + 1):
        start = time.perf_counter()
        model.fit(x, y, batch_size=args.batch, epochs=1, verbose=0)
        times.append(time.perf_counter() - start)
    steady = np.median(times[1:])
    print(f"{args.size}x{args.size}x3 patches, batch {args.batch}: first epoch {times[0]:.1f} s (tracing), "
          f"then {args.patches / steady:.0f} patches/s ({steady:.2f} s per epoch of {args.patches})")


if __name__ == "__main__":
    main()

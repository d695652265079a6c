"""Hash-derived random generators: one independent numpy Generator per task.

Every stochastic step asks for ``rng_for(run_seed, stage, *keys)``. The keys
(realisation, split, component, frequency...) are hashed together, so two
tasks never share a stream, forked workers never repeat draws, and the same
config always gives the same numbers regardless of execution order.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np


def _plain(key):
    """A key as the Python value it stands for: numpy integers and floats become int and
    float, so a seed or index that passed through numpy gives the same stream."""
    if isinstance(key, np.integer):
        return int(key)
    if isinstance(key, np.floating):
        return float(key)
    return key


def seed_words(*keys) -> list[int]:
    """Stable 256-bit entropy (as eight 32-bit words) from JSON-able keys (numpy scalars
    hash as the Python numbers they equal)."""
    keys = [_plain(k) for k in keys]
    payload = json.dumps([str(k) if not isinstance(k, (int, str)) else k for k in keys])
    digest = hashlib.sha256(payload.encode()).digest()
    return [int.from_bytes(digest[i : i + 4], "little") for i in range(0, 32, 4)]


def rng_for(run_seed: int, stage: str, *keys) -> np.random.Generator:
    """Generator for one task, independent of every other (seed, stage, keys)."""
    return np.random.default_rng(np.random.SeedSequence(seed_words(int(run_seed), stage, *keys)))

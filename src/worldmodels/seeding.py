"""Seeds derived from what a piece of work is, never from which worker runs it.

`derive_seed(base, "collect", episode, retry)` is the same on every executor and every machine, so
the same run gives the same episodes and the same fitness wherever its tasks land.
"""

from __future__ import annotations

import zlib

import numpy as np


def derive_seed(base: int, *keys: int | str) -> int:
    """A 31-bit seed from a base seed and a path of keys (stage names, indices)."""
    words = [int(base) & 0xFFFFFFFF]
    for key in keys:
        words.append(zlib.crc32(key.encode()) if isinstance(key, str) else int(key) & 0xFFFFFFFF)
    return int(np.random.SeedSequence(words).generate_state(1)[0] & 0x7FFFFFFF)


def derive_rng(base: int, *keys: int | str) -> np.random.Generator:
    return np.random.default_rng(derive_seed(base, *keys))

"""Seeded random streams, one scheme for the whole codebase.

A stream is named by the run's seed and a path of keys: ``stream(seed, "fragments", record_id)``,
``stream(seed, epoch, step)``. Integer keys are used as they are; string keys become a stable 64-bit
number (``name_key``: blake2b, never Python's salted ``hash()``). So a draw depends on what it is for,
not on the order of the calls, the process layout or the Python process, and two streams with
different keys are independent (numpy's ``SeedSequence`` mixes the whole key path).
"""

from __future__ import annotations

import hashlib

import numpy as np


def name_key(name: str) -> int:
    """A stable 64-bit number for a text (equal in every process and on every machine)."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big")


def stream(seed: int, *keys: str | int) -> np.random.Generator:
    """The generator named by (seed, keys...); integer keys must be non-negative."""
    path = [int(seed)] + [name_key(k) if isinstance(k, str) else int(k) for k in keys]
    return np.random.default_rng(path)

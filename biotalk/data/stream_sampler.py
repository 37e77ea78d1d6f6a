"""EC-unique CLIP batches drawn from the class-id column alone (one int32 array, memory-mapped when it comes
from ``biotalk.data.stream``): index arrays in numpy, no per-record Python objects, so an epoch's layout costs
a few bytes per record whatever the split's size. Same contract as ``clip_data.ClipBatchSampler``."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from biotalk.data.clip_data import max_unique_batches
from biotalk.data.errors import InputError
from biotalk.rng import stream


def unique_ec_batches(ec_idx: np.ndarray, m: int, b: int, rng: np.random.Generator) -> np.ndarray:
    """(m, b) record indices, at most one per EC per row: each EC's first min(count, m) records in a random
    order, ECs laid out in random order and dealt round-robin over the m rows, each row cut to b at random."""
    n = len(ec_idx)
    order = rng.permutation(n)
    grouped = order[np.argsort(np.asarray(ec_idx)[order], kind="stable")]  # by EC, random within an EC
    ecs = np.asarray(ec_idx)[grouped]
    counts = np.bincount(ecs)
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.arange(n) - first[ecs]
    keep = rank < m
    grouped, ecs, rank = grouped[keep], ecs[keep], rank[keep]
    ec_order = rng.permutation(len(counts))
    kept = np.minimum(counts, m)[ec_order]
    start = np.empty(len(counts), dtype=np.int64)
    start[ec_order] = np.concatenate([[0], np.cumsum(kept)[:-1]])
    row = (start[ecs] + rank) % m
    by_row = np.lexsort((rng.random(len(row)), row))
    row_start = np.searchsorted(row[by_row], np.arange(m))
    take = (row_start[:, None] + np.arange(b)[None, :]).ravel()
    return grouped[by_row][take].reshape(m, b)[rng.permutation(m)]


class StreamBatchSampler(torch.utils.data.Sampler):
    """``ClipBatchSampler``'s contract (full batches; ``unique``: at most one record per EC per batch, every
    record at most once per epoch; deterministic per seed and epoch) from the class-id column alone: index
    arrays in numpy, no per-record Python objects. Modes ``soft`` and ``unique``."""

    MODES = ("soft", "unique")

    def __init__(self, ec_idx: np.ndarray, batch_size: int, seed: int, mode: str = "unique") -> None:
        if mode not in self.MODES:
            raise ValueError(f"StreamBatchSampler: mode must be one of {self.MODES}, got {mode!r}")
        self.ec_idx, self.batch_size, self.seed, self.mode, self.epoch = ec_idx, batch_size, seed, mode, 0
        n = len(ec_idx)
        self.num_batches = max_unique_batches(np.bincount(ec_idx), batch_size) if mode == "unique" else n // batch_size
        if self.num_batches == 0:
            raise InputError(f"{n} training records cannot fill one batch of {batch_size}: lower the batch size")

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_batches

    def epoch_batches(self) -> np.ndarray:
        """This epoch's batches as one (num_batches, batch_size) array."""
        rng, m, b = stream(self.seed, self.epoch), self.num_batches, self.batch_size
        if self.mode == "soft":
            return rng.permutation(len(self.ec_idx))[: m * b].reshape(m, b)
        return unique_ec_batches(self.ec_idx, m, b, rng)

    def __iter__(self) -> Iterator[list[int]]:
        yield from (batch.tolist() for batch in self.epoch_batches())

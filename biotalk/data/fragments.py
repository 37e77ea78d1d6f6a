"""Read-length fragments of genes and genomes, as LOLBERT saw them in pretraining.

Lengths follow the empirical GTDB read-length distribution that LookingGlass (LOLBERT's
predecessor) used: min 61, 5% 76, 25% 100, median 144, 75% 151, 95% 248, max 299, with point
masses at the common Illumina lengths. Fragments are reverse-complemented with p = 0.5.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Published quantiles of the read lengths; between knots the mass is spread evenly, except that
# part of each bin's mass sits on its most common Illumina length. Bin masses stay as published,
# so the quantiles at the knots hold exactly.
_KNOTS = [(61, 0.0), (76, 0.05), (100, 0.25), (144, 0.50), (151, 0.75), (248, 0.95), (299, 1.0)]
_COMMON_SHARE = {76: 0.4, 100: 0.2, 101: 0.12, 150: 0.25, 151: 0.6}


def _length_pmf() -> tuple[np.ndarray, np.ndarray]:
    values = np.arange(_KNOTS[0][0], _KNOTS[-1][0] + 1)
    pmf = np.zeros(len(values))
    pmf[0] = 1e-4  # the minimum itself is observed
    for (lo, q_lo), (hi, q_hi) in zip(_KNOTS[:-1], _KNOTS[1:], strict=True):
        mass = q_hi - q_lo
        members = np.arange(lo + 1, hi + 1)  # bin (lo, hi]
        weights = np.full(len(members), 1.0)
        for length in _COMMON_SHARE:
            if lo < length <= hi:
                weights[length - lo - 1] = 0.0
        weights *= (1.0 - sum(s for v, s in _COMMON_SHARE.items() if lo < v <= hi)) / weights.sum()
        for length, share in _COMMON_SHARE.items():
            if lo < length <= hi:
                weights[length - lo - 1] = share
        pmf[members - values[0]] += mass * weights
    return values, pmf / pmf.sum()


_VALUES, _PMF = _length_pmf()
_COMPLEMENT = str.maketrans("ACGTNacgtn", "TGCANtgcan")


def reverse_complement(seq: str) -> str:
    return seq.translate(_COMPLEMENT)[::-1]


def sample_read_lengths(n: int, rng: np.random.Generator) -> np.ndarray:
    """Draw ``n`` read lengths (int64) from the empirical distribution."""
    return rng.choice(_VALUES, size=n, p=_PMF)


@dataclass(frozen=True)
class Fragment:
    start: int  # 0-based start on the forward strand of the source sequence
    length: int
    reverse: bool
    sequence: str  # as read: reverse-complemented when ``reverse``


def sample_fragments(
    seq: str, n: int, rng: np.random.Generator, rc_prob: float = 0.5
) -> list[Fragment]:
    """``n`` fragments at random positions of ``seq``; a read longer than ``seq`` covers all of it."""
    lengths = np.minimum(sample_read_lengths(n, rng), len(seq))
    starts = rng.integers(0, len(seq) - lengths + 1)
    flips = rng.random(n) < rc_prob
    out = []
    for start, length, flip in zip(starts.tolist(), lengths.tolist(), flips.tolist(), strict=True):
        piece = seq[start : start + length]
        out.append(Fragment(start, length, flip, reverse_complement(piece) if flip else piece))
    return out


def tile_fragments(seq: str, rng: np.random.Generator, rc_prob: float = 0.5) -> list[Fragment]:
    """Cover ``seq`` end to end with consecutive read-length fragments (read-level evaluation)."""
    out: list[Fragment] = []
    start = 0
    while start < len(seq):
        length = int(min(sample_read_lengths(1, rng)[0], len(seq) - start))
        flip = bool(rng.random() < rc_prob)
        piece = seq[start : start + length]
        out.append(Fragment(start, length, flip, reverse_complement(piece) if flip else piece))
        start += length
    return out

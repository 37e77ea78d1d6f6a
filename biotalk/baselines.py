"""Baselines a biologist would try before a DNA language model, scored like the MLP.

- majority class: the most frequent training EC for every record;
- 1-NN label transfer: the EC of the nearest training embedding;
- homology transfer: the EC of the best MMseqs2 hit of the protein among the training proteins, kept
  only under an e-value threshold; no hit means no prediction (a recall loss, never a guess).
(The k-mer spectrum encoder with the same MLP is ``train_classifier.py encoder=kmer:6``.)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
import polars as pl
from Bio.Seq import Seq

from biotalk import mmseqs
from biotalk.ec import normalize_ec
from biotalk.knn import knn_search


def majority_class(train_ecs: Sequence[str], is_duplicate: Sequence[bool] | None = None) -> str:
    """Most frequent training EC over genuine records (balancing duplicates left out); ties: smallest EC."""
    flags = [False] * len(train_ecs) if is_duplicate is None else list(is_duplicate)
    counts = Counter(normalize_ec(ec) for ec, dup in zip(train_ecs, flags, strict=True) if not dup)
    return min(counts, key=lambda ec: (-counts[ec], ec))


def nearest_neighbour_transfer(
    train_vectors: np.ndarray, train_ecs: Sequence[str], query_vectors: np.ndarray, metric: str = "cosine"
) -> list[str]:
    """The EC of each query's nearest training vector."""
    _, idx = knn_search(train_vectors, query_vectors, k=1, metric=metric)
    return [normalize_ec(train_ecs[i]) for i in idx[:, 0]]


def translate_cds(dna: str, table: int = 11) -> str:
    """Protein of a CDS, up to the first stop (for published splits that carry no ``Protein`` column)."""
    dna = dna[: len(dna) - len(dna) % 3]
    return str(Seq(dna).translate(table=table, to_stop=True))


def best_hits(
    queries: Sequence[str], targets: Sequence[str], max_evalue: float, threads: int = 1, sensitivity: float = 5.7
) -> pl.DataFrame:
    """Best MMseqs2 hit per query protein among the target proteins.

    Columns ``query``, ``target`` (indices into the inputs), ``evalue``, ``bits``, ``pident``; queries
    without a hit at ``max_evalue`` are absent. Best = highest bit score, then lowest e-value, then
    lowest target index, so the answer does not depend on MMseqs2's output order.
    """
    hits = mmseqs.search(queries, targets, ["-e", max_evalue, "-s", sensitivity], ("evalue", "bits", "pident"),
                         threads)
    return (hits.filter(pl.col("evalue") <= max_evalue)
            .sort(["query", "bits", "evalue", "target"], descending=[False, True, False, False])
            .unique("query", keep="first", maintain_order=True))


def homology_transfer(
    query_proteins: Sequence[str],
    train_proteins: Sequence[str],
    train_ecs: Sequence[str],
    max_evalue: float = 1e-5,
    threads: int = 1,
    sensitivity: float = 5.7,
) -> tuple[list[str | None], pl.DataFrame]:
    """Per query, the EC of its best training hit (``None`` without one) and the hit table.

    Each distinct protein is searched once. A training protein recorded under several ECs transfers
    the first of them in string order: one prediction per record, as for the MLP.
    """
    target_ecs: dict[str, set[str]] = {}
    for protein, ec in zip(train_proteins, train_ecs, strict=True):
        if protein:
            target_ecs.setdefault(protein, set()).add(normalize_ec(ec))
    targets = sorted(target_ecs)
    queries = sorted({p for p in query_proteins if p})
    hits = best_hits(queries, targets, max_evalue, threads, sensitivity)
    answer = {queries[q]: min(target_ecs[targets[t]]) for q, t in zip(hits["query"], hits["target"], strict=True)}
    return [answer.get(p) for p in query_proteins], hits


_BASE_CODE = np.full(256, -1, dtype=np.int64)
_BASE_CODE[np.frombuffer(b"ACGT", dtype=np.uint8)] = np.arange(4)


def base_codes(seq: str) -> np.ndarray:
    """A, C, G, T -> 0..3; any other letter -> -1."""
    return _BASE_CODE[np.frombuffer(seq.encode("ascii"), dtype=np.uint8)]


def _context_index(codes: np.ndarray, flank: int) -> tuple[np.ndarray, np.ndarray]:
    """For every position of a (rows, length) code array: the index of its 2*flank neighbours in base 4
    and whether all of them exist and are bases."""
    rows, length = codes.shape
    padded = np.full((rows, length + 2 * flank), -1, dtype=np.int64)
    padded[:, flank : flank + length] = codes
    index, valid = np.zeros((rows, length), dtype=np.int64), np.ones((rows, length), dtype=bool)
    for offset in [*range(-flank, 0), *range(1, flank + 1)]:
        neighbour = padded[:, flank + offset : flank + offset + length]
        index, valid = index * 4 + np.maximum(neighbour, 0), valid & (neighbour >= 0)
    return index, valid


def context_counts(sequences: Sequence[str], flank: int = 3, chunk: int = 1_000_000) -> np.ndarray:
    """Counts (4**(2*flank), 4) of each base given its ``flank`` neighbours on each side, over both strands."""
    counts = np.zeros(4 ** (2 * flank) * 4, dtype=np.int64)
    for seq in sequences:
        for strand in (seq, str(Seq(seq).reverse_complement())):
            codes = base_codes(strand)
            for start in range(0, len(codes), chunk):
                piece = codes[max(0, start - flank) : start + chunk + flank][None, :]
                index, valid = _context_index(piece, flank)
                inner = slice(min(start, flank), min(start, flank) + min(chunk, len(codes) - start))
                keep = valid[0, inner] & (piece[0, inner] >= 0)
                counts += np.bincount(index[0, inner][keep] * 4 + piece[0, inner][keep], minlength=counts.size)
    return counts.reshape(-1, 4)


def context_accuracy(counts: np.ndarray, codes: np.ndarray, targets: np.ndarray, flank: int = 3) -> float:
    """Accuracy of predicting each target base (``targets`` mask over a (rows, length) code array holding the
    TRUE bases) as the most frequent base after its neighbours in ``counts``; a target with a missing
    neighbour (sequence end, N) gets the overall most frequent base."""
    index, valid = _context_index(codes, flank)
    fallback = int(counts.sum(0).argmax())
    predicted = np.where(valid, counts.argmax(1)[index], fallback)
    return float((predicted[targets] == codes[targets]).mean())

"""Proteins near each other by an MMseqs2 search, for the strict split rule.

Greedy clusters do not bound identity between clusters: two proteins in different 50 % clusters can
still be 55 % identical (each is compared with its own representative only). The strict rule holds out
these pairs too, so no test protein is ``identity`` identical over ``coverage`` of both sequences to
a training protein by a search, not only by the cluster columns. The search is sensitive (``-s 7.5``,
up to ``MAX_SEQS`` targets per query, e-value 10) so that it finds at least what a default search finds.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import polars as pl

from biotalk import mmseqs
from biotalk.cache import cache_path, digest_strings
from biotalk.io import atomic_path

SENSITIVITY = 7.5
MAX_SEQS = 2000
MAX_EVALUE = 10.0
CACHE_VERSION = 1
NEAR_SCHEMA = {"Protein": pl.Utf8, "Near": pl.Utf8}


def _options(identity: float, coverage: float) -> list[str | float]:
    return ["--min-seq-id", identity, "-c", coverage, "--cov-mode", "0", "-s", SENSITIVITY, "--max-seqs", MAX_SEQS,
            "-e", MAX_EVALUE]  # fmt: skip


def search_pairs(
    queries: Sequence[str], targets: Sequence[str], identity: float, coverage: float, threads: int = 1
) -> pl.DataFrame:
    """(query index, target index) of every alignment with sequence identity >= ``identity`` covering
    >= ``coverage`` of both sequences (``--cov-mode 0``), sorted."""
    pairs = mmseqs.search(queries, targets, _options(identity, coverage), threads=threads)
    return pairs.unique().sort("query", "target")


def keyed_pairs(queries: Path, targets: Path, identity: float, coverage: float, threads: int,
                workdir: Path) -> pl.DataFrame:  # fmt: skip
    """``search_pairs`` of two FASTA files whose ids are 64-bit protein keys: ``Protein`` (query key) and
    ``Near`` (target key), sorted; nothing of the sequences is held in memory."""
    pairs = mmseqs.search_files(queries, targets, _options(identity, coverage), threads=threads, id_type=pl.UInt64,
                                workdir=workdir)  # fmt: skip
    return pairs.unique().sort("query", "target").rename({"query": "Protein", "target": "Near"})


def near_proteins(
    queries: Sequence[str], targets: Sequence[str], identity: float, coverage: float, threads: int = 1,
    cache_dir: str | Path | None = None,
) -> pl.DataFrame:  # fmt: skip
    """``Protein`` (a query) and ``Near`` (a target protein at least ``identity`` identical to it, itself
    included when present), through a disk cache keyed by both protein sets and the parameters."""
    queries, targets = sorted(set(queries)), sorted(set(targets))
    key = {"version": CACHE_VERSION, "queries": digest_strings(queries), "targets": digest_strings(targets),
           "identity": identity, "coverage": coverage, "sensitivity": SENSITIVITY, "max_seqs": MAX_SEQS}  # fmt: skip
    path = cache_path(cache_dir, "near", key, ".parquet") if cache_dir is not None else None
    if path is not None and path.is_file():
        pairs = pl.read_parquet(path)
    else:
        pairs = search_pairs(queries, targets, identity, coverage, threads)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as tmp:
                pairs.write_parquet(tmp)
    q, t = pl.Series(queries, dtype=pl.Utf8), pl.Series(targets, dtype=pl.Utf8)
    return pl.DataFrame({"Protein": q.gather(pairs["query"]), "Near": t.gather(pairs["target"])}, schema=NEAR_SCHEMA)

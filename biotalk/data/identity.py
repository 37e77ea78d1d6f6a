"""Identity of each test record to its benchmark's training proteins, so every score can be read per
identity bin (``biotalk.metrics``): a test gene 99 % identical to a training gene measures retrieval,
one with no homologue in training measures generalisation.

``MaxIdentity`` is the highest MMseqs2 sequence identity (identical residues over the alignment, the
clusterer's ``--min-seq-id`` definition) of the record's protein to any training protein of the
benchmark, among hits with e-value <= 1e-3 that cover at least 80 % of both sequences (the clusterer's
coverage; MMseqs2's default sensitivity, every target allowed per query); null: no such hit. A
UniRef50-disjoint split does not bound it exactly: a protein joins one cluster (its representative's) and
may still be >= 50 % identical to a member of another.
The builder stores it as ``identity.parquet`` (``RecordId, Benchmark, Split, MaxIdentity``);
for any other folder (the published files) ``identity_to_train`` computes it from the loaded splits.
Genes group records for multi-EC scoring: ``gene_ids``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import polars as pl

from biotalk import mmseqs
from biotalk.baselines import translate_cds
from biotalk.cache import cache_path, digest_strings
from biotalk.data.schema import BENCHMARKS, SHARED_SPLITS, benchmark_name, split_key
from biotalk.io import atomic_path

IDENTITY_FILE = "identity.parquet"
HITS_SCHEMA = {"Query": pl.Utf8, "Target": pl.Utf8, "Identity": pl.Float64}
IDENTITY_SCHEMA = {"RecordId": pl.Utf8, "Benchmark": pl.Utf8, "Split": pl.Utf8, "MaxIdentity": pl.Float64}
COVERAGE = 0.8  # of query and target (MMseqs2 --cov-mode 0), as biotalk.data.cluster
MAX_EVALUE = 1e-3
CACHE_VERSION = 1


def proteins(rows) -> list[str]:
    """Each record's protein: the builder's ``Protein`` column, else (published files) its DNA translated
    in frame with the bacterial code up to the first stop."""
    return [p if p else translate_cds(dna) for p, dna in zip(rows["Protein"], rows["Sequence"], strict=True)]


def gene_ids(rows) -> list[str]:
    """The gene of each record, the unit of multi-EC scoring: its ``EmblCdsId``, else its DNA (the
    published files may lack the id; one CDS is one DNA sequence)."""
    return [g if g else s for g, s in zip(rows["EmblCdsId"], rows["Sequence"], strict=True)]


def _search(queries: list[str], targets: list[str], threads: int) -> pl.DataFrame:
    """Every qualifying hit of one MMseqs2 search; each query may hit every target (``--max-seqs``)."""
    hits = mmseqs.search(queries, targets, ["-e", MAX_EVALUE, "-c", COVERAGE, "--cov-mode", "0",
                                            "--max-seqs", len(targets)], ("fident",), threads)  # fmt: skip
    q, t = pl.Series(queries, dtype=pl.Utf8), pl.Series(targets, dtype=pl.Utf8)
    return pl.DataFrame({"Query": q.gather(hits["query"]), "Target": t.gather(hits["target"]),
                         "Identity": hits["fident"]}, schema=HITS_SCHEMA)


def identity_hits(queries: Sequence[str], targets: Sequence[str], threads: int = 1,
                  cache_dir: str | Path | None = None) -> pl.DataFrame:  # fmt: skip
    """Every hit (``Query``, ``Target`` protein, ``Identity`` 0..1) of the distinct query proteins among the
    distinct target proteins; with ``cache_dir`` cached by content."""
    unique_q = sorted({q.rstrip("*") for q in queries if q})
    unique_t = sorted({t.rstrip("*") for t in targets if t})
    if not unique_q or not unique_t:
        return pl.DataFrame(schema=HITS_SCHEMA)
    if cache_dir is None:
        return _search(unique_q, unique_t, threads)
    key = {"version": CACHE_VERSION, "queries": digest_strings(unique_q), "targets": digest_strings(unique_t),
           "coverage": COVERAGE, "evalue": MAX_EVALUE}
    path = cache_path(cache_dir, "identity", key, ".parquet")
    if path.is_file():
        return pl.read_parquet(path)
    hits = _search(unique_q, unique_t, threads)
    with atomic_path(path) as tmp:
        hits.write_parquet(tmp)
    return hits


def max_identity(hits: pl.DataFrame, queries: Sequence[str], targets: Sequence[str]) -> list[float | None]:
    """Per query protein, its highest identity among ``hits`` to the proteins of ``targets`` (None: no hit)."""
    keep = hits.filter(pl.col("Target").is_in(sorted({t.rstrip("*") for t in targets if t})))
    best = dict(keep.group_by("Query").agg(pl.col("Identity").max()).iter_rows())
    return [best.get(q.rstrip("*")) if q else None for q in queries]


def _query_proteins(tests: Mapping[str, object]) -> list[str]:
    return [p for rows in tests.values() for p in proteins(rows)]


def identity_rows(benchmark: str, train, tests: Mapping[str, object], hits: pl.DataFrame) -> pl.DataFrame:
    """The identity table of one benchmark: every record of each ``tests`` split against ``train``'s proteins,
    from ``hits`` of the tests' proteins (``identity_hits``, against these training proteins or more)."""
    names = [name for name, rows in tests.items() for _ in rows["RecordId"]]
    ids = [rid for rows in tests.values() for rid in rows["RecordId"]]
    found = max_identity(hits, _query_proteins(tests), proteins(train))
    short = benchmark_name(benchmark).removeprefix("Benchmark-")
    return pl.DataFrame({"RecordId": ids, "Benchmark": [short] * len(ids), "Split": names, "MaxIdentity": found},
                        schema=IDENTITY_SCHEMA)


def write_identity(out: Path, splits: Mapping[str, pl.DataFrame], threads: int = 1,
                   cache_dir: str | Path | None = None) -> pl.DataFrame:  # fmt: skip
    """Write ``out/identity.parquet`` for a build's split tables (``{"Benchmark-I/Train": df, ...}``):
    every held-out split (``SHARED_SPLITS``: test1, test2, valid2 where built) against each benchmark's
    Train, from one search of the held-out proteins against the training proteins of all benchmarks. The
    in-memory reference: a build writes the same table from its record store (``outofcore.store_identity``)."""
    keys = {s: split_key(BENCHMARKS[0], s) for s in SHARED_SPLITS}
    tests = {s: splits[k].filter(~pl.col("IsDuplicate")) for s, k in keys.items() if k in splits}
    trains = {b: splits[split_key(b, "train")] for b in BENCHMARKS}
    every_train = [p for df in trains.values() for p in proteins(df)]
    hits = identity_hits(_query_proteins(tests), every_train, threads, cache_dir)
    table = pl.concat([identity_rows(b, train, tests, hits) for b, train in trains.items()])
    table.write_parquet(out / IDENTITY_FILE)
    return table


def identity_to_train(data_dir: str | Path, benchmark: str, splits: Mapping[str, object], threads: int = 1,
                      cache_dir: str | Path | None = None) -> dict[str, list[float | None]]:  # fmt: skip
    """Per held-out split of ``splits`` (a loaded ``DatasetDict``), each record's identity to the benchmark's
    Train, in record order: from the build's ``identity.parquet`` when it covers them, else searched."""
    tests = {name: splits[name] for name in SHARED_SPLITS if name in splits}
    stored = Path(data_dir) / IDENTITY_FILE
    short = benchmark_name(benchmark).removeprefix("Benchmark-")
    if stored.is_file():
        table = pl.read_parquet(stored).filter(pl.col("Benchmark") == short)
        known = dict(zip(table["RecordId"], table["MaxIdentity"], strict=True))
        if all(rid in known for rows in tests.values() for rid in rows["RecordId"]):
            return {name: [known[rid] for rid in rows["RecordId"]] for name, rows in tests.items()}
    hits = identity_hits(_query_proteins(tests), proteins(splits["train"]), threads, cache_dir)
    table = identity_rows(benchmark, splits["train"], tests, hits)
    return {name: table.filter(pl.col("Split") == name)["MaxIdentity"].to_list() for name in tests}

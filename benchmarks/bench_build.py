"""Time and peak memory of the builder's split + balance + describe on synthetic records.

Records get real ENZYME ECs with a heavy-tailed (Zipf) class size, heavy-tailed UniRef50 cluster
sizes inside each EC, nested UniRef90/100, ~5 % curated rows and ~3 % multi-EC CDS. DNA is a short
unique string (its length does not enter split or balance). Each size runs in a fresh process, so
the peak RSS (``ru_maxrss``) belongs to that size; it is the process peak after each stage.
The baseline is a straightforward per-EC Python loop of the same split rule (Benchmark I).

    python benchmarks/bench_build.py [sizes=[100000,1000000]] [baseline=true] [seed=0]
"""

from __future__ import annotations

import json
import math
import resource
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from biotalk.cli import run
from biotalk.data.balance import balance, median_target
from biotalk.data.build import BuildConfig, enzyme_inputs
from biotalk.data.describe import describe_records
from biotalk.data.enzyme import load_enzyme
from biotalk.data.split import CLUSTER_LEVELS, assign_splits, split_benchmarks, with_dna_key
from biotalk.rng import stream

RAW_DIR = Path(__file__).resolve().parents[1] / "data" / "raw"


@dataclass
class BenchConfig:
    sizes: list[int] = field(default_factory=lambda: [100_000, 1_000_000])
    seed: int = 0
    baseline: bool = True  # also time the per-EC Python loop (at every size)
    one: int = 0  # internal: run one size in this process and print JSON


def synthetic_records(n: int, ecs: list[str], seed: int) -> pl.DataFrame:
    rng = stream(seed)
    ec_idx = (rng.zipf(1.3, n) - 1) % len(ecs)
    # Cluster sizes heavy-tailed: cluster id within the EC also Zipf-distributed.
    c50 = (rng.zipf(1.5, n) - 1) % 5000
    c90 = c50 * 4 + rng.integers(0, 4, n) * (rng.random(n) < 0.5)
    c100 = c90 * 8 + rng.integers(0, 8, n)
    ids = np.arange(n)
    df = pl.DataFrame({
        "EC": np.asarray(ecs)[ec_idx], "c50": c50, "c90": c90, "c100": c100, "i": ids,
        "DBtype": np.where(rng.random(n) < 0.05, "SwissProt", "Unreviewed"),
    }).with_columns(
        ("UniRef50_" + pl.col("EC") + "_" + pl.col("c50").cast(pl.Utf8)).alias("UniRef50"),
        ("UniRef90_" + pl.col("EC") + "_" + pl.col("c90").cast(pl.Utf8)).alias("UniRef90"),
        ("UniRef100_" + pl.col("EC") + "_" + pl.col("c100").cast(pl.Utf8)).alias("UniRef100"),
        ("cds" + pl.col("i").cast(pl.Utf8)).alias("EmblCdsId"),
        ("ATG" + pl.col("i").cast(pl.Utf8)).alias("Sequence"),
        pl.lit("putative enzyme").alias("Product"),
    )  # fmt: skip
    multi = df.sample(fraction=0.03, seed=seed).with_columns(pl.col("EC").shuffle(seed=seed))
    df = pl.concat([df, multi]).with_columns((pl.col("EmblCdsId") + "|" + pl.col("EC")).alias("RecordId"))
    return df.unique("RecordId", keep="first").drop("c50", "c90", "c100", "i")


def loop_split(df: pl.DataFrame, rng: np.random.Generator) -> dict[str, str]:
    """Baseline: Benchmark-I split with a Python loop per EC (the reference code's shape, seeded)."""
    by_ec: dict[str, list[tuple]] = {}
    for row in df.select("EC", "RecordId", "Sequence", *CLUSTER_LEVELS).iter_rows():
        by_ec.setdefault(row[0], []).append(row)
    labels = {}
    for ec in sorted(by_ec):
        rows = by_ec[ec]
        for col in (3, 4, 5, 2):  # UniRef50, 90, 100, then DNA
            units = sorted({r[col] for r in rows})
            if len(units) >= 3 or col == 2:
                break
        order = [units[i] for i in rng.permutation(len(units))]
        n = len(order)
        n_valid = math.ceil(n / 10) if n >= 10 else 2 if n >= 6 else 1 if n >= 2 else 0
        valid = set(order[:n_valid])
        for r in rows:
            labels[r[1]] = "valid" if r[col] in valid else "train"
    return labels


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_one(n: int, seed: int, baseline: bool) -> dict:
    db = load_enzyme(*enzyme_inputs(BuildConfig(raw_dir=str(RAW_DIR))))  # the release of the default build
    df = synthetic_records(n, db.active_ecs(), seed)
    out = {"records": df.height, "ecs": df["EC"].n_unique(), "peak_mb_data": _peak_mb()}
    t = time.perf_counter()
    result = split_benchmarks(df, seed)
    out["split_s"], out["peak_mb_split"] = time.perf_counter() - t, _peak_mb()
    t = time.perf_counter()
    rng = stream(seed)
    train_i = result.full.filter(pl.col("Split") == "train")
    train_iii = result.curated.filter(pl.col("Split") == "train")
    balanced = [balance(train_i, median_target(train_i), rng), balance(train_iii, 10, rng)]
    out["balance_s"], out["peak_mb_balance"] = time.perf_counter() - t, _peak_mb()
    out["balanced_rows"] = sum(b.height for b in balanced)
    t = time.perf_counter()
    described = describe_records(df, db, seed)
    out["describe_s"], out["peak_mb_describe"] = time.perf_counter() - t, _peak_mb()
    assert described.height == df.height
    if baseline:
        pool = with_dna_key(result.full)
        t = time.perf_counter()
        loop_split(pool, stream(seed))
        out["loop_split_i_s"] = time.perf_counter() - t
        t = time.perf_counter()
        assign_splits(pool.drop("Split", "SplitLevel"), stream(seed), with_test=False)
        out["vector_split_i_s"] = time.perf_counter() - t
    return out


def main(cfg: BenchConfig) -> None:
    if cfg.one:
        print(json.dumps(run_one(cfg.one, cfg.seed, cfg.baseline)))
        return
    for n in cfg.sizes:
        cmd = [sys.executable, __file__, f"one={n}", f"seed={cfg.seed}", f"baseline={str(cfg.baseline).lower()}"]
        res = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1])
        print(json.dumps({"n": n, **{k: round(v, 2) if isinstance(v, float) else v for k, v in res.items()}}), flush=True)


if __name__ == "__main__":
    run(main, BenchConfig, __doc__)

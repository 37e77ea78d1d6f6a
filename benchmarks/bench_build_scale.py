"""Build stages at Benchmark-I scale on synthetic records: records/s and peak RSS per stage, projected to 33 M.

Records: ECs long-tailed (Zipf) over the active ENZYME ECs, UniRef50 > 90 > 100 clusters nested inside each
EC, 4 % SwissProt, 3 % of CDS with a second EC, random 999-nt DNA and 333-aa proteins, a product name per
UniRef90 cluster (descriptions come from the real templates). ``gen`` writes them as Parquet parts (the
front end's output); every stage then runs in a fresh process, so ``ru_maxrss`` is that stage's peak:
``stage`` (record store), ``split`` (strict rules without search pairs, then the paper's for the card, and
balancing, on the slim table), ``write`` (streaming joins + descriptions + Parquet), and ``inmemory``
(the old path: describe, split, balance and write on the whole table). The MMseqs2 searches (the strict
rule's pairs, identity.parquet) are not part of it (docs/benchmarks.md).

    nice -n 10 python benchmarks/bench_build_scale.py sizes=[1000000] [inmemory=true] [work=/tmp/bench-scale]
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import polars as pl

from biotalk.cli import run
from biotalk.data.build import BuildConfig, assign, enzyme_inputs, split_stats
from biotalk.data.describe import describe_records
from biotalk.data.enzyme import load_enzyme
from biotalk.data.outofcore import RecordStore, stage_records, write_splits
from biotalk.data.schema import COLUMNS
from biotalk.data.split import PAPER, SplitRules
from biotalk.rng import stream

RAW_DIR = Path(__file__).resolve().parents[1] / "data" / "raw"
FULL_SCALE = 33_000_000
CHUNK = 250_000


@dataclass
class ScaleConfig:
    sizes: list[int] = field(default_factory=lambda: [1_000_000])
    inmemory: bool = True  # also run the old in-memory path (at the smallest size)
    baseline: str = ""  # a checkout of earlier code: its stage/split/write beside ours (at the smallest size)
    work: str = "/tmp/bench-build-scale"
    part_rows: int = 250_000
    seed: int = 0
    stage: str = ""  # internal: run one stage in this process and print JSON
    n: int = 0


def _letters(rng: np.random.Generator, alphabet: bytes, n: int, length: int) -> pl.Series:
    codes = np.frombuffer(alphabet, dtype=np.uint8)[rng.integers(0, len(alphabet), (n, length), dtype=np.uint8)]
    return pl.Series(np.ascontiguousarray(codes).view(f"S{length}").ravel()).cast(pl.Utf8)


def synthetic_chunk(start: int, n: int, ecs: list[str], seed: int) -> pl.DataFrame:
    """Rows ``start .. start + n`` of the synthetic record table (each chunk from its own stream)."""
    rng = stream(seed, start)
    ec = np.asarray(ecs)[(rng.zipf(1.3, n) - 1) % len(ecs)]
    c50 = (rng.zipf(1.5, n) - 1) % 5000
    c90 = c50 * 4 + rng.integers(0, 4, n) * (rng.random(n) < 0.5)
    c100 = c90 * 8 + rng.integers(0, 8, n)
    cds = pl.Series(np.arange(start, start + n)).cast(pl.Utf8)
    df = pl.DataFrame({"EC": ec, "c50": c50, "c90": c90, "c100": c100, "EmblCdsId": "CDS" + cds,
                       "DBtype": np.where(rng.random(n) < 0.04, "SwissProt", "Unreviewed")}).with_columns(
        *(("UniRef" + str(lvl) + "_" + pl.col("EC") + "_" + pl.col(f"c{lvl}").cast(pl.Utf8)).alias(f"UniRef{lvl}")
          for lvl in (50, 90, 100)),
        ("A" + cds).alias("AC"), pl.lit("Bacteria").alias("OC"), pl.lit("Synthetic bacterium").alias("Organism"),
        _letters(rng, b"ACGT", n, 999).alias("Sequence"), _letters(rng, b"ACDEFGHIKLMNPQRSTVWY", n, 333).alias("Protein"),
        ("enzyme family " + pl.col("c90").cast(pl.Utf8)).alias("Product"), pl.lit("").alias("Function"),
        pl.lit("").alias("Note"),
    )  # fmt: skip
    second = df.filter(pl.Series(rng.random(n) < 0.03)).with_columns(pl.col("EC").shuffle(seed=start))
    df = pl.concat([df, second]).with_columns((pl.col("EmblCdsId") + "|" + pl.col("EC")).alias("RecordId"))
    return df.unique("RecordId", keep="first", maintain_order=True).drop("c50", "c90", "c100")


def _config(work: Path) -> BuildConfig:
    return BuildConfig(raw_dir=str(RAW_DIR), out=str(work / "out"), target_ii=250, target_iv=10, valid2_share=0.2)


def _rules(cfg: BuildConfig) -> SplitRules:
    return SplitRules(level="UniRef50", near=None, valid2_share=cfg.valid2_share)


def _store(work: Path) -> RecordStore:
    return RecordStore(work / "store", pl.read_parquet(work / "slim.parquet"), pl.read_parquet(work / "ec_parts.parquet"))


def run_stage(stage: str, n: int, work: Path, part_rows: int, seed: int) -> dict:
    """One stage in this process; returns records, seconds and peak RSS."""
    cfg = _config(work)
    db = load_enzyme(*enzyme_inputs(cfg))
    base_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # interpreter, libraries, ENZYME
    t = time.perf_counter()
    if stage == "gen":
        (work / "source").mkdir(parents=True)
        for i, start in enumerate(range(0, n, CHUNK)):
            synthetic_chunk(start, min(CHUNK, n - start), db.active_ecs(), seed).write_parquet(work / "source" / f"{i:05d}.parquet")
    elif stage == "stage":
        store = stage_records(pl.scan_parquet(work / "source" / "*.parquet"), work / "store", part_rows)
        store.slim.write_parquet(work / "slim.parquet")
        store.ec_parts.write_parquet(work / "ec_parts.parquet")
    elif stage == "split":
        slim = _store(work).slim
        splits, _, _ = assign(slim, cfg, _rules(cfg))
        split_stats(assign(slim, replace(cfg, split_rules="paper"), PAPER)[0])
        (work / "splits").mkdir()
        for i, df in enumerate(splits.values()):
            df.write_parquet(work / "splits" / f"{i:02d}.parquet")
    elif stage == "write":
        splits = {f"S/{p.stem}": pl.read_parquet(p) for p in sorted((work / "splits").glob("*.parquet"))}
        write_splits(work / "out", _store(work), splits, db, seed, work / "parts")
    elif stage == "inmemory":
        records = describe_records(pl.read_parquet(work / "source" / "*.parquet"), db, seed)
        splits, _, _ = assign(records, cfg, _rules(cfg))
        (work / "old").mkdir()
        for i, df in enumerate(splits.values()):
            df.select(COLUMNS).sort("EC", "RecordId", "IsDuplicate").write_parquet(work / "old" / f"{i:02d}.parquet")
    seconds = time.perf_counter() - t
    records = pl.scan_parquet(work / "source" / "*.parquet").select(pl.len()).collect().item()
    return {"stage": stage, "records": records, "s": seconds, "base_gb": base_gb,
            "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}  # fmt: skip


def _project(row: dict) -> dict:
    """Time scales with the records; so does memory above the process's base where the whole table is
    held (split, inmemory; stage and write hold a batch or a partition)."""
    scale = FULL_SCALE / row["records"]
    held = row["peak_gb"] - row["base_gb"]
    memory = row["peak_gb"] + held * (scale - 1) if row["stage"] in ("split", "inmemory") else row["peak_gb"]
    return row | {"rec_per_s": row["records"] / row["s"], "s_at_33M": row["s"] * scale, "gb_at_33M": memory}


def _run(script: Path, stage: str, n: int, work: Path, cfg: ScaleConfig) -> dict:
    """One stage of ``script`` (ours or the baseline's) in a fresh process, from that checkout."""
    cmd = [sys.executable, str(script), f"stage={stage}", f"n={n}", f"work={work}", f"part_rows={cfg.part_rows}",
           f"seed={cfg.seed}"]  # fmt: skip
    env = os.environ | {"PYTHONPATH": str(script.parents[1])}
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=script.parents[1], env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _show(row: dict) -> None:
    print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in row.items()}), flush=True)


def main(cfg: ScaleConfig) -> None:
    if cfg.stage:
        print(json.dumps(run_stage(cfg.stage, cfg.n, Path(cfg.work), cfg.part_rows, cfg.seed)))
        return
    ours = Path(__file__).resolve()
    for n in cfg.sizes:
        work = Path(cfg.work) / str(n)
        shutil.rmtree(work, ignore_errors=True)
        smallest = n == min(cfg.sizes)
        baseline = Path(cfg.baseline) / "benchmarks" / ours.name if cfg.baseline and smallest else None
        if baseline:
            (work / "baseline").mkdir(parents=True)
            (work / "baseline" / "source").symlink_to(work / "source")
        stages = ["gen", "stage", "split", "write"] + (["inmemory"] if cfg.inmemory and smallest else [])
        for stage in stages:
            row = _project({"n": n, "code": "ours"} | _run(ours, stage, n, work, cfg))
            _show(row)
            if baseline and stage in ("stage", "split", "write"):  # its script does not report a base: ours
                old = _project({"n": n, "code": "baseline", "base_gb": row["base_gb"]} | _run(baseline, stage, n, work / "baseline", cfg))
                _show(old | {"baseline_over_ours": old["s"] / row["s"]})
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    run(main, ScaleConfig, __doc__)

"""Time and peak memory of ``load_benchmark`` on a published-layout Train: in memory against ``cache_dir=``.

Synthetic Benchmark-I Train in the published layout (``ROOT/Benchmark-I/Train.parquet``, the nine published
columns and ``DBtype``, every value a string): ``rows`` rows of ~1 kB DNA (900-1,100 nt cut from a random pool)
and a ~1 kB description naming the EC (10 templates per EC, ``ecs`` ECs: the published texts repeat per EC);
a ``repeats`` share of the rows copies an earlier row at random (unmarked balancing copies, most of them in
another batch). Written once, in chunks. Each configuration runs in a fresh process; its peak RSS is the
kernel's ``VmHWM`` (anonymous and mapped file pages together), and the parent kills it past ``guard_mb``:

- ``memory``: ``load_benchmark(root, "I", ["train"])``, the split in memory (``Dataset.from_polars``);
- ``stream``: ``load_benchmark(..., cache_dir=DIR)`` with an empty ``DIR``: converted batch by batch, mapped;
- ``reuse``: the same call again: the copy in ``DIR`` found and mapped.

After loading, each child reads the IsDuplicate column and hashes every RecordId (chunk by chunk), so the
three can be compared; ``load_hwm_mb`` is the peak before that read.

    python benchmarks/bench_load_stream.py [rows=1000000] [roles=[memory,stream,reuse]]
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from biotalk.cli import run
from biotalk.io import write_json
from biotalk.rng import stream

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = ["AC", "EC", "OC", "UniRef100", "UniRef90", "UniRef50", "EmblCdsId", "Sequence", "Description", "DBtype"]
SENTENCE = ("This enzyme catalyses the transfer of a group from a donor substrate to an acceptor in the presence "
            "of a divalent metal cofactor, and its activity is regulated by the cellular energy charge. ")


@dataclass
class BenchConfig:
    rows: int = 1_000_000
    ecs: int = 5000
    repeats: float = 0.1
    chunk: int = 100_000  # rows generated and written at once
    work: Path = Path("/tmp/bench_load_stream")
    seed: int = 0
    roles: list[str] = field(default_factory=lambda: ["memory", "stream", "reuse"])
    guard_mb: int = 14000  # a child is killed when its RSS passes this (the machine is shared)
    role: str = ""  # internal: the configuration a child runs
    out: str = ""  # optional JSON of every number


def _ec(i: int) -> str:
    return f"{1 + i % 7}.{1 + (i // 7) % 10}.{1 + (i // 70) % 10}.{1 + i // 700}"


def _texts(ecs: int) -> list[str]:
    """~1 kB per (EC, template): the EC named in the text, as in the published descriptions."""
    return [f"Template {t}. Gene product with EC number {_ec(e)} (EC {_ec(e)}). " + SENTENCE * 5
            for e in range(ecs) for t in range(10)]


def write_train(cfg: BenchConfig) -> Path:
    """``cfg.rows`` rows of gene ``g`` (row i: gene i, or with probability ``repeats`` an earlier row's gene)."""
    path = cfg.work / "published" / "Benchmark-I" / "Train.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = stream(cfg.seed, "genes")
    genes = np.arange(cfg.rows)
    copies = np.flatnonzero(rng.random(cfg.rows) < cfg.repeats)
    copies = copies[copies > 0]
    genes[copies] = (rng.random(len(copies)) * copies).astype(np.int64)  # an earlier row
    while not np.array_equal(genes[genes], genes):  # a copy of a copy is a copy of the first
        genes = genes[genes]
    pool = "".join(stream(cfg.seed, "pool").choice(list("ACGT"), 4_000_000))
    texts, ecs = _texts(cfg.ecs), [_ec(e) for e in range(cfg.ecs)]
    ec_of = stream(cfg.seed, "ecs").integers(0, cfg.ecs, cfg.rows)  # gene g's EC: ec_of[g]
    with pq.ParquetWriter(path, pa.schema([(c, pa.string()) for c in COLUMNS])) as writer:
        for start in range(0, cfg.rows, cfg.chunk):
            g = genes[start:start + cfg.chunk].tolist()
            offsets = [(x * 7919) % (len(pool) - 1100) for x in g]
            frame = pl.DataFrame({
                "AC": [f"P{x:07d}" for x in g], "EC": [ecs[ec_of[x]] for x in g], "OC": "Bacteria",
                "UniRef100": [f"UniRef100_P{x:07d}" for x in g], "UniRef90": [f"UniRef90_P{x // 3:07d}" for x in g],
                "UniRef50": [f"UniRef50_P{x // 9:07d}" for x in g], "EmblCdsId": [f"CDS{x:07d}.1" for x in g],
                "Sequence": [pool[o:o + 900 + x % 200] for o, x in zip(offsets, g, strict=True)],
                "Description": [texts[ec_of[x] * 10 + x % 10] for x in g],
                "DBtype": ["Swissprot" if x % 20 == 0 else "Uniprot" for x in g],
            })
            writer.write_table(frame.to_arrow().cast(writer.schema))
    return path


def _status() -> dict:
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return {k: int(status[k].split()[0]) / 1024 for k in ("VmHWM", "RssAnon", "RssFile")}


def child(cfg: BenchConfig) -> dict:
    """One configuration in this process: load Train, then read what the three are compared on."""
    import datasets  # noqa: F401  (imported before the clock starts, as a program using it would have)

    from biotalk.data import load_benchmark

    start = time.perf_counter()
    cache = {} if cfg.role == "memory" else {"cache_dir": cfg.work / "cache"}
    train = load_benchmark(cfg.work / "published", "I", ["train"], **cache)["train"]
    load_s, after_load = time.perf_counter() - start, _status()
    digest = sum(int(pl.Series(chunk).hash(seed=0).sum()) for chunk in train.data.column("RecordId").chunks)
    return {"role": cfg.role, "rows": train.num_rows, "load_s": load_s, "load_hwm_mb": after_load["VmHWM"],
            "after_load_mb": after_load, "end_mb": _status(), "mapped": bool(train.cache_files),
            "duplicates": pc.sum(train.data.column("IsDuplicate")).as_py(), "digest": digest % 2**64}


def _spawn(cfg: BenchConfig, role: str) -> dict:
    """A child for one configuration, killed (and its peak RSS and time so far reported) past ``guard_mb``."""
    cmd = [sys.executable, str(Path(__file__).resolve()), f"role={role}", f"rows={cfg.rows}", f"work={cfg.work}"]
    start, peak = time.perf_counter(), 0.0
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while proc.poll() is None:
        try:
            status = Path(f"/proc/{proc.pid}/status").read_text().splitlines()
            peak = max(peak, int(next(line for line in status if line.startswith("VmRSS")).split()[1]) / 1024)
        except (FileNotFoundError, StopIteration):
            break
        if peak > cfg.guard_mb:
            proc.kill()
            proc.communicate()
            return {"role": role, "rows": cfg.rows, "killed_by_guard_mb": cfg.guard_mb, "peak_rss_mb": peak,
                    "killed_after_s": time.perf_counter() - start}
        time.sleep(0.05)
    stdout, stderr = proc.communicate()
    if proc.returncode:
        raise RuntimeError(f"{role} failed:\n{stderr[-3000:]}")
    return json.loads(stdout.strip().splitlines()[-1])


def main(cfg: BenchConfig) -> None:
    if cfg.role:
        print(json.dumps(child(cfg)))
        return
    train = cfg.work / "published" / "Benchmark-I" / "Train.parquet"
    if not train.is_file():
        start = time.perf_counter()
        write_train(cfg)
        print(f"{cfg.rows:,} rows written in {time.perf_counter() - start:.0f} s ({train.stat().st_size / 2**20:.0f} MB)",
              flush=True)
    if "stream" in cfg.roles:
        shutil.rmtree(cfg.work / "cache", ignore_errors=True)
    print(f"load average {os.getloadavg()[0]:.1f} at start", flush=True)
    results = []
    for role in cfg.roles:
        results.append(_spawn(cfg, role))
        print(json.dumps(results[-1]), flush=True)
    print(f"load average {os.getloadavg()[0]:.1f} at the end", flush=True)
    if cfg.out:
        write_json(cfg.out, {"config": {k: str(v) for k, v in vars(cfg).items()}, "results": results})


if __name__ == "__main__":
    run(main, BenchConfig, __doc__)

"""Peak memory and steps/s of EC-classifier training: Train's features in memory against the memory-mapped store.

Synthetic Train of ``rows`` x ``dim`` float32 features (a centre per EC plus noise; ``ecs`` ECs with
heavy-tailed sizes, as in bench_stream.py), written once per size as what ``train_classifier.py stream_dir=``
writes: the rows copy (``write_rows`` of a parquet with EC and a 3-nt Sequence) and the sharded embedding store
(``write_store``). Valid: ``valid`` rows in memory for both. Each configuration trains one epoch in a fresh
process (``mlp`` settings of configs/classifier/mini.yaml: hidden 256, batch 64, Adam, standardised features):

- ``memory``: what ``train_classifier.py`` does without ``stream_dir``: the features as one array (the cache's
  ``.npy`` loaded whole; here the store read into memory), the ECs as Python strings, ``fit_classifier``;
- ``stream``: ``open_store`` + ``MappedRows`` (label map and class ids from the mapped column), ``fit_encoded``
  gathering each minibatch from the mapped shards.

Before training, each child also times the part that differs, 1,000 gathers of a minibatch of random rows
(``gather_ms``; for the store on pages not yet mapped, its worst case).

The parent samples the child's ``/proc/PID/status`` every 50 ms: peak anonymous memory (the process's own) and
peak mapped file pages (page cache: a shard page read for a minibatch stays mapped until the kernel drops it),
and kills the child when both together pass ``guard_mb`` (the machine is shared).

    python benchmarks/bench_classifier_stream.py [sizes=[100000,1000000]] [dim=256] [roles=[stream,memory]]
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from biotalk.cli import run
from biotalk.io import write_json
from biotalk.rng import stream

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class BenchConfig:
    sizes: list[int] = field(default_factory=lambda: [100_000, 1_000_000])
    dim: int = 256
    ecs: int = 5000
    valid: int = 2000
    shard_size: int = 65_536
    batch_size: int = 64
    epochs: int = 1
    work: Path = Path("/tmp/bench_classifier_stream")
    seed: int = 0
    roles: list[str] = field(default_factory=lambda: ["stream", "memory"])
    threads: int = 1  # torch threads in the child: 2 threads on the shared 2 cores ran 4x slower a step
    guard_mb: int = 8000  # the child is killed when its anonymous + file-backed RSS passes this
    role: str = ""  # internal: memory | stream (one configuration, run in a child process)
    rows: int = 0  # internal: the size a child runs
    out: str = ""  # optional JSON of every number


def _ec(i: int) -> str:
    return f"{1 + i % 7}.{1 + (i // 7) % 10}.{1 + (i // 70) % 10}.{1 + i // 700}"


def _labels(n: int, cfg: BenchConfig, part: str) -> np.ndarray:
    weights = 1.0 / (np.arange(cfg.ecs) + 10.0) ** 1.1
    return stream(cfg.seed, "labels", part, n).choice(cfg.ecs, n, p=weights / weights.sum())


def _features(labels: np.ndarray, first_row: int, cfg: BenchConfig) -> np.ndarray:
    """Rows of one shard (seeded by its first row): the EC's centre plus unit noise."""
    centres = stream(cfg.seed, "centres").standard_normal((cfg.ecs, cfg.dim), dtype=np.float32)
    noise = stream(cfg.seed, "noise", first_row).standard_normal((len(labels), cfg.dim), dtype=np.float32)
    return centres[labels] * np.float32(0.5) + noise


def write_data(cfg: BenchConfig, n: int) -> None:
    """The rows copy and the feature store of ``n`` synthetic Train rows, and the Valid arrays."""
    from biotalk.data.stream_features import write_rows
    from biotalk.embed_store import write_store

    folder = cfg.work / str(n)
    folder.mkdir(parents=True, exist_ok=True)
    labels = _labels(n, cfg, "train")
    names = np.array([_ec(i) for i in range(cfg.ecs)], dtype=object)
    pl.DataFrame({"EC": names[labels], "Sequence": "ATG"}).write_parquet(folder / "train.parquet")
    write_rows(folder / "train.parquet", folder / "rows", "bench")
    write_store(folder / "store", np.arange(n), lambda rows: _features(labels[rows], int(rows[0]), cfg), "bench",
                cfg.shard_size, progress=False)
    valid = _labels(cfg.valid, cfg, "valid")
    np.save(folder / "valid_x.npy", _features(valid, n, cfg))  # seeded past the last Train row
    (folder / "valid_ecs.json").write_text(json.dumps(names[valid].tolist()))


def _status() -> dict:
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return {k: int(status[k].split()[0]) / 1024 for k in ("RssAnon", "RssFile")}


def _gather_ms(x, cfg: BenchConfig, batches: int = 1000) -> float:
    """Milliseconds to gather one minibatch of random rows, as ``fit`` does (before it: cold pages for a store)."""
    probe = stream(cfg.seed, "probe").integers(0, cfg.rows, (batches, cfg.batch_size))
    start = time.perf_counter()
    for rows in probe:
        np.asarray(x[rows])
    return (time.perf_counter() - start) / batches * 1000


def child(cfg: BenchConfig) -> dict:
    """One configuration in this process: load, then ``fit`` for ``epochs``."""
    import torch

    from biotalk.data.stream_features import MappedRows
    from biotalk.embed_store import open_store
    from biotalk.models.classifier import MLPConfig, fit_classifier, fit_encoded

    torch.set_num_threads(cfg.threads)
    folder = cfg.work / str(cfg.rows)
    mlp = MLPConfig(batch_size=cfg.batch_size, epochs=cfg.epochs, standardize=True)
    valid_x, valid_ecs = np.load(folder / "valid_x.npy"), json.loads((folder / "valid_ecs.json").read_text())
    out = {"role": cfg.role, "rows": cfg.rows, "imports_mb": _status()}
    start = time.perf_counter()
    rows, store = MappedRows(folder / "rows"), open_store(folder / "store", "bench")
    if cfg.role == "memory":
        x, ecs = store.to_array(), rows.ecs.to_pylist()
        del rows, store
        out["setup_s"], out["setup_mb"] = time.perf_counter() - start, _status()
        out["gather_ms"] = _gather_ms(x, cfg)
        start = time.perf_counter()
        model, _ = fit_classifier(x, ecs, valid_x, valid_ecs, mlp)
    else:
        labels = rows.labels()
        y, y_valid = rows.class_ids(labels), labels.encode(valid_ecs)
        out["setup_s"], out["setup_mb"] = time.perf_counter() - start, _status()
        out["gather_ms"] = _gather_ms(store, cfg)
        start = time.perf_counter()
        model, _ = fit_encoded(store, y, labels, valid_x, y_valid, mlp)
    fit_s = time.perf_counter() - start
    steps = cfg.epochs * -(-cfg.rows // cfg.batch_size)
    weights = np.concatenate([p.detach().numpy().ravel() for p in model.parameters()])
    return {**out, "fit_s": fit_s, "steps": steps, "steps_per_s": steps / fit_s, "end_mb": _status(),
            "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "weights_checksum": float(np.abs(weights).sum())}


def _spawn(cfg: BenchConfig, role: str, n: int) -> dict:
    """A child for one configuration, its anonymous and file-backed RSS sampled (and guarded) from here."""
    cmd = [sys.executable, str(Path(__file__).resolve()), f"role={role}", f"rows={n}", f"work={cfg.work}",
           f"dim={cfg.dim}", f"ecs={cfg.ecs}", f"valid={cfg.valid}", f"batch_size={cfg.batch_size}",
           f"epochs={cfg.epochs}", f"seed={cfg.seed}", f"threads={cfg.threads}"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = {"RssAnon": 0.0, "RssFile": 0.0, "sum": 0.0}
    killed = False
    while proc.poll() is None:
        try:
            text = Path(f"/proc/{proc.pid}/status").read_text()
        except FileNotFoundError:
            break
        status = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
        now = {k: int(status[k].split()[0]) / 1024 for k in ("RssAnon", "RssFile") if k in status}
        now["sum"] = sum(now.values())
        peak = {k: max(peak[k], now.get(k, 0.0)) for k in peak}
        if now["sum"] > cfg.guard_mb:
            proc.kill()
            killed = True
        time.sleep(0.05)
    stdout, stderr = proc.communicate()
    sampled = {"peak_anon_mb": peak["RssAnon"], "peak_file_mb": peak["RssFile"], "peak_rss_mb": peak["sum"]}
    if killed:
        return {"role": role, "rows": n, "killed_by_guard_mb": cfg.guard_mb, **sampled}
    if proc.returncode:
        raise RuntimeError(f"{role} at {n:,} rows failed:\n{stderr[-3000:]}")
    return {**json.loads(stdout.strip().splitlines()[-1]), **sampled}


def main(cfg: BenchConfig) -> None:
    if cfg.role:
        print(json.dumps(child(cfg)))
        return
    results = []
    print(f"load average {os.getloadavg()[0]:.1f} at start", flush=True)
    for n in cfg.sizes:
        if not (cfg.work / str(n) / "store" / "store.json").is_file():
            start = time.perf_counter()
            write_data(cfg, n)
            print(f"{n:,} rows x {cfg.dim} written in {time.perf_counter() - start:.0f} s", flush=True)
        for role in cfg.roles:
            res = _spawn(cfg, role, n)
            results.append(res)
            print(json.dumps(res), flush=True)
    print(f"load average {os.getloadavg()[0]:.1f} at the end", flush=True)
    if cfg.out:
        write_json(cfg.out, {"config": {k: str(v) for k, v in vars(cfg).items()}, "results": results})


if __name__ == "__main__":
    run(main, BenchConfig, __doc__)

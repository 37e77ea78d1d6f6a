"""Peak memory and batches/s of the CLIP data pipeline: in-memory ``clip_split`` against memory-mapped Arrow.

Synthetic rows shaped like Benchmark-I: CDS-length DNA (normal around 1 kb, a multiple of 3), ~1 kB
masked descriptions (one ~950-byte text per EC plus an organism and a locus: almost every record's text
is its own, as in the real files), ~5,000 ECs with heavy-tailed sizes. Rows are written to parquet in
chunks, once per size. Each configuration runs in a fresh process, so its peak RSS (``ru_maxrss``) is its own:

- ``memory``: what ``train_clip.py`` does today: ``load_benchmark``'s ``Dataset.from_polars`` of the
  parquet, ``clip_split``, ``ClipDataset``, ``ClipBatchSampler(mode="unique")``;
- ``convert``: the one-off ``write_clip_arrow`` of the parquet;
- ``stream``: ``ClipArrowSplit`` + ``ArrowClipDataset`` + ``StreamBatchSampler(mode="unique")``.

Both read paths go through the same ``ClipCollator`` with on-the-fly tokenisation (LOLBERT-mini DNA
tokenizer on ``window_nt`` crops, the MiniLM text tokenizer) in a DataLoader (no model).

    python benchmarks/bench_stream.py [sizes=[100000,1000000]] [steps=100] [roles=[convert,stream,memory]]
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from biotalk.cli import run
from biotalk.io import write_json
from biotalk.rng import stream

ROOT = Path(__file__).resolve().parents[1]
WORDS = ("enzyme catalyses the reaction of substrate with cofactor forming product and water in the "
         "cytoplasm; it belongs to the family of oxidoreductases acting on donors with metal ions bound").split()


@dataclass
class BenchConfig:
    sizes: list[int] = field(default_factory=lambda: [100_000, 1_000_000])
    ecs: int = 5000
    mean_nt: int = 1000
    batch_size: int = 64
    steps: int = 100  # timed batches per configuration
    window_nt: int = 510
    dna_tokenizer: str = "models/lolbert-mini"
    work: Path = Path("/tmp/bench_stream")
    seed: int = 0
    roles: list[str] = field(default_factory=lambda: ["convert", "stream", "memory"])
    role: str = ""  # internal: memory | convert | stream (one configuration, run in a child process)
    rows: int = 0  # internal: the size a child runs
    out: str = ""  # optional JSON of every number


def _ec(i: int) -> str:
    return f"{1 + i % 7}.{1 + (i // 7) % 10}.{1 + (i // 70) % 10}.{1 + i // 700}"


def write_rows(path: Path, n: int, cfg: BenchConfig, chunk: int = 100_000) -> None:
    """``n`` synthetic rows in parquet (RecordId, EC, Sequence, DescriptionMasked), written chunk by chunk."""
    rng = stream(cfg.seed, "rows", n)
    weights = 1.0 / (np.arange(cfg.ecs) + 10.0) ** 1.1
    ecs = [_ec(i) for i in range(cfg.ecs)]
    base = [" ".join(rng.choice(WORDS, 140)).capitalize()[:950] for _ in range(cfg.ecs)]
    with pq.ParquetWriter(path, pa.schema([("RecordId", pa.large_string()), ("EC", pa.large_string()),
                                           ("Sequence", pa.large_string()),
                                           ("DescriptionMasked", pa.large_string())])) as writer:
        for start in range(0, n, chunk):
            m = min(chunk, n - start)
            ec = rng.choice(cfg.ecs, m, p=weights / weights.sum())
            lengths = 3 * np.clip(rng.normal(cfg.mean_nt / 3, cfg.mean_nt / 10, m), 50, None).astype(np.int64)
            offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
            dna = np.frombuffer(b"ACGT", np.uint8)[rng.integers(0, 4, int(offsets[-1]), dtype=np.uint8)]
            seqs = pa.LargeStringArray.from_buffers(m, pa.py_buffer(offsets), pa.py_buffer(dna))
            df = pl.DataFrame({"Row": np.arange(start, start + m), "E": ec, "Org": rng.integers(0, 2000, m)})
            df = df.select(
                pl.concat_str(pl.lit("SYN"), pl.col("Row"), pl.lit("|"), pl.col("E").replace_strict(
                    dict(enumerate(ecs)), return_dtype=pl.String)).alias("RecordId"),
                pl.col("E").replace_strict(dict(enumerate(ecs)), return_dtype=pl.String).alias("EC"),
                pl.concat_str(pl.col("E").replace_strict(dict(enumerate(base)), return_dtype=pl.String),
                              pl.lit(". Found in organism ORG"), pl.col("Org"), pl.lit(" (locus SYN_"),
                              pl.col("Row"), pl.lit(").")).alias("DescriptionMasked"))
            table = df.to_arrow().cast(pa.schema([("RecordId", pa.large_string()), ("EC", pa.large_string()),
                                                  ("DescriptionMasked", pa.large_string())]))
            writer.write_table(table.add_column(2, "Sequence", seqs))


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _memory(tag: str) -> dict:
    """Peak RSS so far, and the RSS now split into anonymous memory (the process's own heap) and mapped file
    pages (page cache shared with the system: a read of a mapped record maps its neighbourhood too, the
    kernel's fault-around, so file pages grow with the records read but can be dropped at any time)."""
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    kb = {k: int(status[k].split()[0]) for k in ("RssAnon", "RssFile") if k in status}
    return {f"{tag}_peak_mb": _peak_mb(), **{f"{tag}_{k.lower()}_mb": v / 1024 for k, v in kb.items()}}


def _collator(cfg: BenchConfig, texts):
    from transformers import AutoTokenizer

    from biotalk.data.clip_data import ClipCollator
    from biotalk.models.clip import default_text_encoder
    from biotalk.models.encoders import load_dna_encoder

    dna = load_dna_encoder(str(ROOT / cfg.dna_tokenizer))
    text = AutoTokenizer.from_pretrained(default_text_encoder())
    return ClipCollator(dna.tokenize, texts, text_tokenize=lambda t: text(t, padding=True, truncation=True,
                                                                           max_length=256, return_tensors="pt"))


def child(cfg: BenchConfig) -> dict:
    """One configuration in this process: setup, ``steps`` batches of items alone, then through the collator
    in a DataLoader (first batch, then ``steps`` more); memory after each stage."""
    import torch

    from biotalk.data.clip_data import ClipBatchSampler, ClipDataset, clip_split
    from biotalk.data.stream import ArrowClipDataset, ClipArrowSplit, write_clip_arrow
    from biotalk.data.stream_sampler import StreamBatchSampler

    rows, arrow = cfg.work / f"rows-{cfg.rows}.parquet", cfg.work / f"arrow-{cfg.rows}"
    out = {"role": cfg.role, "rows": cfg.rows, **_memory("imports")}
    start = time.perf_counter()
    if cfg.role == "convert":
        write_clip_arrow(rows, arrow, "train")
        return {**out, "convert_s": time.perf_counter() - start, **_memory("end")}
    if cfg.role == "memory":
        from datasets import Dataset

        split = clip_split(Dataset.from_polars(pl.read_parquet(rows)), "train")
        data = ClipDataset(split, cfg.window_nt, random_crop=True, seed=cfg.seed)
        sampler = ClipBatchSampler(split.ec_idx, cfg.batch_size, cfg.seed, "unique")
    else:
        split = ClipArrowSplit(arrow)
        data = ArrowClipDataset(split, cfg.window_nt, random_crop=True, seed=cfg.seed)
        sampler = StreamBatchSampler(split.ec_idx, cfg.batch_size, cfg.seed, "unique")
    out.update(setup_s=time.perf_counter() - start, **_memory("setup"), texts=len(split.texts),
               batches_per_epoch=len(sampler))
    start = time.perf_counter()
    for batch in islice(iter(sampler), cfg.steps):  # the items alone: crops and indices, no tokenising
        [data[i] for i in batch]
    out["item_batches_per_s"] = cfg.steps / (time.perf_counter() - start)
    loader = torch.utils.data.DataLoader(data, batch_sampler=sampler, collate_fn=_collator(cfg, split.texts))
    start = time.perf_counter()
    batches = iter(loader)
    next(batches)
    out["first_batch_s"] = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(cfg.steps):
        next(batches)
    elapsed = time.perf_counter() - start
    return {**out, "batches_per_s": cfg.steps / elapsed, **_memory("end")}


def _spawn(cfg: BenchConfig, role: str, n: int) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), f"role={role}", f"rows={n}", f"work={cfg.work}",
           f"steps={cfg.steps}", f"batch_size={cfg.batch_size}", f"window_nt={cfg.window_nt}", f"seed={cfg.seed}"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if done.returncode:
        raise RuntimeError(f"{role} at {n:,} rows failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(cfg: BenchConfig) -> None:
    if cfg.role:
        print(json.dumps(child(cfg)))
        return
    cfg.work.mkdir(parents=True, exist_ok=True)
    results = []
    for n in cfg.sizes:
        rows = cfg.work / f"rows-{n}.parquet"
        if not rows.is_file():
            start = time.perf_counter()
            write_rows(rows, n, cfg)
            print(f"{n:,} rows written in {time.perf_counter() - start:.0f} s ({rows.stat().st_size / 2**20:,.0f} MiB)")
        for role in cfg.roles:
            res = _spawn(cfg, role, n)
            results.append(res)
            print(json.dumps(res))
    if cfg.out:
        write_json(cfg.out, {"config": {k: str(v) for k, v in vars(cfg).items()}, "results": results})


if __name__ == "__main__":
    run(main, BenchConfig, __doc__)

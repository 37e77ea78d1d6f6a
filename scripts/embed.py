"""Embed one benchmark split with one DNA encoder, through the embedding cache.

    python scripts/embed.py encoder=models/lolbert-mini data=out/mini-benchmark benchmark=III split=test1 \\
        poolings=cls,min,max,mean out=runs/embeddings/lolbert-III-test1

Writes ``out/{pooling}.npy`` (float32, one row per record of the split, in split order),
``out/record_ids.txt`` (the matching RecordId per line) and ``out/meta.json``, all at once
(a temporary directory renamed into place). The k-mer spectrum (``encoder=kmer:6``) has a single
pooling, ``spectrum``, used whatever ``poolings`` asks.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from biotalk.cli import UsageError, run
from biotalk.config import to_dict
from biotalk.data import load_benchmark
from biotalk.data.schema import Benchmark, Split
from biotalk.embeddings import embed_cached, usable_poolings
from biotalk.io import atomic_dir, write_json, write_text
from biotalk.models.encoders import load_dna_encoder
from biotalk.training import resolve_device


@dataclass
class EmbedConfig:
    encoder: str = "kmer:6"
    data: Path = Path("out/mini-benchmark")
    benchmark: Benchmark = "III"
    split: Split = "test1"
    poolings: list[str] = field(default_factory=lambda: ["cls", "min", "max", "mean"])
    batch_size: int = 32
    window: int | None = None  # sequence tokens per window (default: the model's limit)
    stride: int | None = None  # default: window // 2
    truncate: bool = False
    trust_remote_code: bool = False
    device: str = "auto"
    cache_dir: Path = Path("cache/embeddings")
    out: Path = Path("runs/embeddings/out")


def main(cfg: EmbedConfig) -> None:
    device = resolve_device(cfg.device)
    try:
        encoder = load_dna_encoder(cfg.encoder, trust_remote_code=cfg.trust_remote_code).to(device)
        poolings = usable_poolings(encoder, cfg.poolings)
    except (OSError, ValueError) as err:
        raise UsageError(f"encoder: {err}") from None
    ds = load_benchmark(cfg.data, cfg.benchmark)[cfg.split]
    vectors = embed_cached(encoder, list(ds["Sequence"]), poolings, cfg.cache_dir, tag=f"{cfg.benchmark}-{cfg.split}",
                           batch_size=cfg.batch_size, window=cfg.window, stride=cfg.stride, truncate=cfg.truncate)
    with atomic_dir(cfg.out) as tmp:
        for pooling, values in vectors.items():
            np.save(tmp / f"{pooling}.npy", values)
        write_text(tmp / "record_ids.txt", "".join(f"{r}\n" for r in ds["RecordId"]))
        write_json(tmp / "meta.json", {"config": to_dict(cfg), "encoder": encoder.name,
                                       "fingerprint": encoder.fingerprint, "max_tokens": encoder.max_tokens,
                                       "hidden_size": encoder.hidden_size, "rows": len(ds), "poolings": poolings})
    print(f"wrote {len(ds)} x {encoder.hidden_size} embeddings ({', '.join(poolings)}) to {cfg.out}")


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    run(main, EmbedConfig, __doc__)

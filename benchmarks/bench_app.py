"""Web app speed and the IVF path's accuracy.

    python benchmarks/bench_app.py [model=runs/demo/clip/final index=runs/demo/gene_index]
    python benchmarks/bench_app.py skip_app=true synthetic_n=1000000 data=[clustered,uniform]

1. Warm latency of the app on a real model and index (skipped with a note when either is missing): each
   request through the ASGI app in-process (FastAPI TestClient: routing, JSON, the query, no network), after
   ``warmup`` untimed requests. Text queries are ENZYME descriptions of the index's candidate ECs (seeded
   draw); DNA queries are indexed genes. The text query's two parts (text tower + head, faiss) are timed too.
2. IVF against exact search on ``synthetic_n`` unit vectors of ``dim``: ``clustered`` (a mixture of
   ``clusters`` Gaussian clusters, each point at cosine ~0.8 from its centre, like genes around their
   function) and/or ``uniform`` (isotropic: the worst case for IVF). The IVF index is built by
   ``biotalk.app.index.build_faiss`` (the app's), queries are held-out draws; recall@k = the share of the
   exact top k found, per ``nprobe``; latency = one query at a time, and the whole query batch at once
   (``batch_s``; exact: ``exact_batch_s``, the search alone).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import faiss
import numpy as np
import torch

from biotalk.cli import run
from biotalk.io import write_json
from biotalk.rng import stream


@dataclass
class BenchConfig:
    model: Path = Path("runs/demo/clip/final")
    index: Path = Path("runs/demo/gene_index")
    skip_app: bool = False
    queries: int = 200  # timed text queries
    dna_queries: int = 50  # timed DNA queries (one gene each)
    warmup: int = 10
    skip_synthetic: bool = False
    synthetic_n: int = 1_000_000
    dim: int = 128  # the mini model's projection_dim
    data: list[str] = field(default_factory=lambda: ["clustered", "uniform"])
    clusters: int = 10_000
    spread: float = 0.75  # noise norm around a cluster centre (cosine to it ~ 1 / sqrt(1 + spread^2))
    nlist: int = 0  # 0: the app's default, 4 sqrt(n)
    nprobe: list[int] = field(default_factory=lambda: [8, 16, 32, 64, 128])
    eval_queries: int = 1000
    latency_queries: int = 200
    k: int = 10
    threads: int = 1  # faiss threads; OpenMP spin-waiting makes timings erratic on a busy machine
    torch_threads: int = 0  # 0: torch's default (one per core)
    seed: int = 0
    out: str = ""  # optional JSON of every number


def _stats(seconds: list[float]) -> dict:
    ms = np.asarray(seconds) * 1000
    return {"n": len(ms), "p50_ms": float(np.median(ms)), "p95_ms": float(np.percentile(ms, 95)),
            "mean_ms": float(ms.mean()), "max_ms": float(ms.max())}


def _timed(fn, items, warmup: int) -> dict:
    return _interleaved({"f": fn}, items, warmup)["f"]


def _interleaved(fns: dict, items: list, warmup: int) -> dict:
    """Per-call latency of each function, taking turns on every item, so a burst of load from other jobs
    on a shared machine hits all of them alike."""
    for item in items[:warmup]:
        for fn in fns.values():
            fn(item)
    seconds: dict[str, list[float]] = {name: [] for name in fns}
    for item in items:
        for name, fn in fns.items():
            start = time.perf_counter()
            fn(item)
            seconds[name].append(time.perf_counter() - start)
    return {name: _stats(s) for name, s in seconds.items()}


def bench_app(cfg: BenchConfig) -> dict:
    """Warm per-request latency of /api/search and /api/predict, and the parts of a text query."""
    from fastapi.testclient import TestClient

    from biotalk.app.index import open_index
    from biotalk.app.web import AppSettings, create_app
    from biotalk.models.clip import BioTalkClipModel

    start = time.perf_counter()
    index = open_index(cfg.index, cfg.model)
    reload_s = time.perf_counter() - start
    model = BioTalkClipModel.from_pretrained(cfg.model)
    client = TestClient(create_app(model, AppSettings(cfg.model, cfg.index)))
    rng = stream(cfg.seed, "app")
    texts = index.candidates["Text"].gather(rng.choice(len(index.candidates), cfg.queries, replace=False)).to_list()
    genes = index.genes["Sequence"].gather(rng.choice(len(index.genes), cfg.dna_queries, replace=False)).to_list()

    def post(path: str, body: dict) -> None:
        resp = client.post(path, json=body)
        assert resp.status_code == 200, resp.text

    vector = model.get_text_features(texts[:1]).numpy()
    on_model_thread = client.app.state.model_executor  # the parts run where the app runs the model

    parts = {"search": lambda q: post("/api/search", {"query": q, "k": 10}),
             "text_tower": lambda q: on_model_thread.submit(model.get_text_features, [q]).result(),
             "faiss": lambda _: on_model_thread.submit(index.search, vector, 10).result()}
    out = {"genes": index.meta["n"], "candidates": index.meta["candidates"], "kind": index.meta["kind"],
           "open_index_s": reload_s, **_interleaved(parts, texts, cfg.warmup),
           "predict": _interleaved({"p": lambda s: post("/api/predict", {"sequence": s, "k": 5})}, genes, cfg.warmup)["p"],
           "mean_gene_nt": float(np.mean([len(s) for s in genes])), "torch_threads": torch.get_num_threads()}  # fmt: skip
    print(f"app: {out['genes']:,} genes ({out['kind']}), {out['candidates']:,} candidate ECs; index opened in "
          f"{reload_s:.2f} s")
    for name in ("search", "text_tower", "faiss", "predict"):
        s = out[name]
        print(f"  {name:<10} p50 {s['p50_ms']:7.1f} ms  p95 {s['p95_ms']:7.1f} ms  mean {s['mean_ms']:7.1f} ms  (n={s['n']})")
    return out


def synthetic(kind: str, n: int, dim: int, clusters: int, spread: float, rng: np.random.Generator) -> np.ndarray:
    """Unit vectors: a Gaussian mixture around ``clusters`` random centres, or isotropic."""
    out = np.empty((n, dim), dtype=np.float32)
    centres = rng.standard_normal((clusters, dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        x = rng.standard_normal((m, dim), dtype=np.float32)
        if kind == "clustered":
            x = centres[rng.integers(0, clusters, m)] + x * np.float32(spread / np.sqrt(dim))
        out[start : start + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def bench_ivf(cfg: BenchConfig, kind: str) -> dict:
    """Recall@k of the app's IVF index against exact search, and per-query latency of both."""
    from biotalk.app.index import build_faiss

    rng = stream(cfg.seed, "synthetic", kind)
    data = synthetic(kind, cfg.synthetic_n + cfg.eval_queries, cfg.dim, cfg.clusters, cfg.spread, rng)
    vectors, queries = data[: cfg.synthetic_n], data[cfg.synthetic_n :]
    flat = build_faiss(vectors, ivf_min=cfg.synthetic_n + 1)
    start = time.perf_counter()
    _, truth = flat.search(queries, cfg.k)
    exact_s = time.perf_counter() - start
    start = time.perf_counter()
    ivf = build_faiss(vectors, ivf_min=1, nlist=cfg.nlist, seed=cfg.seed)
    build_s = time.perf_counter() - start
    one = [queries[i : i + 1] for i in range(min(cfg.latency_queries, len(queries)))]
    row = {"data": kind, "n": cfg.synthetic_n, "dim": cfg.dim, "nlist": ivf.nlist, "ivf_build_s": build_s,
           "exact_batch_s": exact_s, "exact_query": _timed(lambda q: flat.search(q, cfg.k), one, 5), "ivf": []}
    print(f"{kind}: n={cfg.synthetic_n:,} dim={cfg.dim} nlist={ivf.nlist}: IVF built in {build_s:.1f} s; exact "
          f"p50 {row['exact_query']['p50_ms']:.1f} ms/query")
    for nprobe in cfg.nprobe:
        ivf.nprobe = nprobe
        start = time.perf_counter()
        _, found = ivf.search(queries, cfg.k)
        batch_s = time.perf_counter() - start
        recall = float(np.mean([len(set(f) & set(t)) / cfg.k for f, t in zip(found, truth, strict=True)]))
        lat = _timed(lambda q: ivf.search(q, cfg.k), one, 5)
        row["ivf"].append({"nprobe": nprobe, f"recall@{cfg.k}": recall, "query": lat, "batch_s": batch_s,
                           "batch_speedup": exact_s / batch_s})
        print(f"  nprobe {nprobe:>4}: recall@{cfg.k} {recall:.4f}  p50 {lat['p50_ms']:.2f} ms/query  "
              f"({row['exact_query']['p50_ms'] / lat['p50_ms']:.0f}x faster than exact); batch of "
              f"{len(queries)}: {batch_s:.2f} s ({exact_s / batch_s:.0f}x faster than exact's {exact_s:.2f} s)")
    return row


def main(cfg: BenchConfig) -> None:
    faiss.omp_set_num_threads(cfg.threads)
    if cfg.torch_threads:
        torch.set_num_threads(cfg.torch_threads)
    result: dict = {"config": {k: str(v) for k, v in vars(cfg).items()}}
    if not cfg.skip_app:
        if (cfg.model / "config.json").is_file() and (cfg.index / "index.json").is_file():
            result["app"] = bench_app(cfg)
        else:
            print(f"app: skipped (no model in {cfg.model} or no index in {cfg.index}: make demo, then "
                  "scripts/index_genes.py)")
    if not cfg.skip_synthetic:
        result["ivf"] = [bench_ivf(cfg, kind) for kind in cfg.data]
    if cfg.out:
        write_json(cfg.out, result)


if __name__ == "__main__":
    run(main, BenchConfig, __doc__)

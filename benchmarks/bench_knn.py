"""kNN evaluation time: biotalk.knn (faiss IndexFlatIP) against a numpy brute force on the same data.

    python benchmarks/bench_knn.py [cases=[[100000,256],[100000,768],[1000000,256],[1000000,768]] queries=2000]
    python benchmarks/bench_knn.py cases=[] ann_n=1000000 ann_dim=256 pq_m=[32,64]

One evaluation = exact cosine top-5 search of the queries against the index (index built or
normalised inside the timing), neighbour ECs, then kNN hierarchical precision at k = 1, 3, 5.
The baseline normalises a float32 copy and ranks query batches with a BLAS matmul plus
argpartition. Both sides run on ``threads`` threads (1 by default). Memory at 10^6 x 768: the data (3.1 GB) plus the index or the normalised copy (3.1 GB).

``ann_n`` > 0: IVF-PQ against exact search, recall@``ann_k`` on ``bench_app.py``'s clustered unit vectors (same
seed, so the same data as its IVF rows). The index is ``biotalk.knn.ann_index(pq_m=...)``, the library's rule;
for each ``pq_m`` and ``nprobe``: recall of the exact top k, the batch of queries and one query at a time
against exact search, for the PQ scores alone and for ``biotalk.embed_store.search_store`` (the top ``rerank``
x k PQ candidates re-scored with their full vectors, as read from a memory-mapped store; here in memory).
"""

from __future__ import annotations

import gc
import resource
import time
from dataclasses import dataclass, field
from functools import partial

import faiss
import numpy as np
from threadpoolctl import threadpool_limits

from biotalk.cli import run
from biotalk.embed_store import search_store
from biotalk.io import write_json
from biotalk.knn import ann_index, knn_predict_ecs, knn_search
from biotalk.metrics import knn_hierarchical_precision
from biotalk.rng import stream


@dataclass
class BenchConfig:
    cases: list[list[int]] = field(
        default_factory=lambda: [[100_000, 256], [100_000, 768], [1_000_000, 256], [1_000_000, 768]]
    )
    queries: int = 2000
    k: int = 5
    batch_size: int = 256
    seed: int = 0
    threads: int = 1  # for both sides; OpenMP spin-waiting makes faiss erratic on an oversubscribed machine
    ann_n: int = 0  # > 0: the IVF-PQ measurement at ann_n x ann_dim
    ann_dim: int = 256
    ann_queries: int = 1000
    ann_k: int = 10
    pq_m: list[int] = field(default_factory=lambda: [32, 64])
    nprobe: list[int] = field(default_factory=lambda: [8, 16, 32, 64])
    rerank: int = 10
    latency_queries: int = 200
    out: str = ""  # optional JSON with the timings


def _numpy_knn(index: np.ndarray, queries: np.ndarray, k: int, batch_size: int) -> np.ndarray:
    """Brute-force cosine top-k: normalised float32 copy, matmul per query batch, argpartition, sort."""
    unit = index / np.linalg.norm(index, axis=1, keepdims=True)
    out = np.empty((len(queries), k), dtype=np.int64)
    for start in range(0, len(queries), batch_size):
        q = queries[start : start + batch_size]
        sims = (q / np.linalg.norm(q, axis=1, keepdims=True)) @ unit.T
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(sims, top, 1), axis=1, kind="stable")
        out[start : start + len(q)] = np.take_along_axis(top, order, 1)
    return out


def _faiss_knn(index: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """The library call as the evaluation makes it (its default query batch: faiss's BLAS path is far
    slower on batches of a few hundred queries, 13 s against 0.9 s at 10^5 x 256 here)."""
    return knn_search(index, queries, k)[1]


def evaluate(
    search, index, queries, labels, query_labels, k: int
) -> tuple[list[float], float, float, np.ndarray]:
    """(hP at k = 1, 3, k; search seconds; evaluation seconds; neighbour indices)."""
    start = time.perf_counter()
    indices = search(index, queries)
    t_search = time.perf_counter() - start
    neighbours = np.asarray(knn_predict_ecs(labels, indices), dtype=object)
    scores = [knn_hierarchical_precision(query_labels, neighbours[:, :kk]) for kk in (1, 3, k)]
    return scores, t_search, time.perf_counter() - start, indices


def _p50_ms(search, queries: np.ndarray) -> float:
    """Median latency of one query at a time (after 5 untimed)."""
    times = []
    for i, q in enumerate(queries):
        start = time.perf_counter()
        search(q[None])
        if i >= 5:
            times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def _recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / truth.shape[1] for f, t in zip(found, truth, strict=True)]))


def bench_ivfpq(cfg: BenchConfig) -> list[dict]:
    """Recall@k and speed-up of ``ann_index`` IVF-PQ against exact search, per ``pq_m`` and ``nprobe``."""
    from bench_app import synthetic  # the same clustered vectors as bench_app's IVF rows

    k, n = cfg.ann_k, cfg.ann_n
    data = synthetic("clustered", n + cfg.ann_queries, cfg.ann_dim, 10_000, 0.75, stream(cfg.seed, "synthetic", "clustered"))
    vectors, queries = data[:n], data[n:]
    flat = ann_index(vectors, ivf_min=n + 1)
    start = time.perf_counter()
    _, truth = flat.search(queries, k)
    exact_s = time.perf_counter() - start
    exact_p50 = _p50_ms(partial(flat.search, k=k), queries[: cfg.latency_queries])
    print(f"exact: batch of {len(queries)} {exact_s:.2f} s, p50 {exact_p50:.2f} ms/query", flush=True)
    del flat
    rows = []
    for m in cfg.pq_m:
        start = time.perf_counter()
        index = ann_index(vectors, ivf_min=1, pq_m=m, seed=cfg.seed)
        build_s = time.perf_counter() - start
        print(f"IVF-PQ pq_m={m} nlist={index.nlist}: built in {build_s:.0f} s", flush=True)
        for nprobe in cfg.nprobe:
            index.nprobe = nprobe
            start = time.perf_counter()
            _, found = index.search(queries, k)
            batch_s = time.perf_counter() - start
            start = time.perf_counter()
            _, reranked = search_store(vectors, index, queries, k, cfg.rerank)
            rerank_s = time.perf_counter() - start
            row = {"n": n, "dim": cfg.ann_dim, "pq_m": m, "nlist": index.nlist, "nprobe": nprobe, "build_s": build_s,
                   "exact_batch_s": exact_s, "exact_p50_ms": exact_p50, "recall": _recall(found, truth),
                   "batch_s": batch_s, "p50_ms": _p50_ms(partial(index.search, k=k), queries[: cfg.latency_queries]),
                   "rerank": cfg.rerank, "recall_reranked": _recall(reranked, truth), "rerank_batch_s": rerank_s,
                   "rerank_p50_ms": _p50_ms(partial(search_store, vectors, index, k=k, rerank=cfg.rerank),
                                            queries[: cfg.latency_queries])}
            rows.append(row)
            print(f"  nprobe {nprobe:>3}: PQ recall@{k} {row['recall']:.4f}, batch {batch_s:.2f} s "
                  f"({exact_s / batch_s:.0f}x), p50 {row['p50_ms']:.2f} ms ({exact_p50 / row['p50_ms']:.0f}x) | "
                  f"re-ranked top {k * cfg.rerank}: recall {row['recall_reranked']:.4f}, batch {rerank_s:.2f} s "
                  f"({exact_s / rerank_s:.0f}x), p50 {row['rerank_p50_ms']:.2f} ms "
                  f"({exact_p50 / row['rerank_p50_ms']:.0f}x)", flush=True)
        del index
    return rows


def main(cfg: BenchConfig) -> None:
    faiss.omp_set_num_threads(cfg.threads)
    threadpool_limits(cfg.threads)
    rng = stream(cfg.seed)
    pool = np.array(
        [".".join(map(str, row)) for row in rng.integers(1, [8, 12, 20, 200], size=(3000, 4))], dtype=object
    )
    faiss_knn = partial(_faiss_knn, k=cfg.k)
    numpy_knn = partial(_numpy_knn, k=cfg.k, batch_size=cfg.batch_size)
    results = []
    for n, dim in cfg.cases:
        index = rng.standard_normal((n, dim), dtype=np.float32)
        queries = rng.standard_normal((cfg.queries, dim), dtype=np.float32)
        labels, query_labels = (
            pool[rng.integers(0, len(pool), n)],
            pool[rng.integers(0, len(pool), cfg.queries)],
        )
        ours, t_search, t_eval, idx_ours = evaluate(faiss_knn, index, queries, labels, query_labels, cfg.k)
        gc.collect()
        base, b_search, b_eval, idx_base = evaluate(numpy_knn, index, queries, labels, query_labels, cfg.k)
        top1 = float(np.mean(idx_ours[:, 0] == idx_base[:, 0]))
        row = {
            "n": n,
            "dim": dim,
            "queries": cfg.queries,
            "faiss_search_s": t_search,
            "faiss_eval_s": t_eval,
            "numpy_search_s": b_search,
            "numpy_eval_s": b_eval,
            "ratio_eval": b_eval / t_eval,
            "top1_agreement": top1,
            "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
            "hP@1,3,5": ours,
        }
        results.append(row)
        print(
            f"n={n:>9,} dim={dim}: faiss {t_eval:7.2f} s (search {t_search:.2f})  numpy {b_eval:7.2f} s "
            f"(search {b_search:.2f})  x{b_eval / t_eval:.2f}  top-1 agreement {top1:.4f}  "
            f"hP@1,3,5 {[round(s, 4) for s in ours]} vs {[round(s, 4) for s in base]}  peak RSS {row['peak_rss_gb']:.1f} GB",
            flush=True,
        )
        del index, queries
        gc.collect()
    if cfg.ann_n:
        results.append({"ivfpq": bench_ivfpq(cfg)})
    if cfg.out:
        write_json(cfg.out, results)


if __name__ == "__main__":
    run(main, BenchConfig, __doc__)

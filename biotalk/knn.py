"""Exact k-nearest-neighbour search with faiss, for the kNN evaluation of embeddings (Table 2).

Cosine (default) is inner product on L2-normalised float32 copies (IndexFlatIP); "l2" is the
reference code's IndexFlatL2 on raw vectors, which it mislabelled as cosine. Both are exact.
The caller's arrays are never modified: the index is filled chunk by chunk from normalised
copies, so peak memory is the caller's array plus the index, not three copies of it.
``ann_index`` is the one rule for large collections: exact below ``ivf_min`` vectors, IVF (or IVF-PQ) above.
"""

from __future__ import annotations

from collections.abc import Sequence

import faiss
import numpy as np
from tqdm.auto import tqdm

from biotalk.rng import stream

METRICS = ("cosine", "l2")


def _float32_chunk(x: np.ndarray, normalise: bool) -> np.ndarray:
    chunk = np.array(x, dtype=np.float32, order="C", copy=True)
    if normalise:
        faiss.normalize_L2(chunk)  # zero vectors stay zero
    return chunk


def _check_vectors(x, name: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty 2-D array, got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.number):
        raise TypeError(f"{name} must be numeric, got dtype {x.dtype}")
    return x


def build_index(vectors: np.ndarray, metric: str = "cosine", batch_size: int = 65536) -> faiss.Index:
    """A flat (exact) faiss index over ``vectors``; normalised chunk by chunk for cosine."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    vectors = _check_vectors(vectors, "index_vectors")
    index = faiss.IndexFlatIP(vectors.shape[1]) if metric == "cosine" else faiss.IndexFlatL2(vectors.shape[1])
    for start in range(0, len(vectors), batch_size):
        index.add(_float32_chunk(vectors[start : start + batch_size], metric == "cosine"))
    return index


def _drop_self(
    scores: np.ndarray, indices: np.ndarray, first_row: int, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Remove each query's own row from its k + 1 results (or the last result when ties pushed it out)."""
    own = indices == np.arange(first_row, first_row + len(indices))[:, None]
    own[~own.any(axis=1), -1] = True
    keep = ~own
    return scores[keep].reshape(-1, k), indices[keep].reshape(-1, k)


def knn_search(
    index_vectors: np.ndarray,
    query_vectors: np.ndarray,
    k: int,
    metric: str = "cosine",
    exclude_self: bool = False,
    batch_size: int = 4096,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k search; returns (scores, indices), each (n_queries, k), best first.

    Scores are cosine similarities (higher is closer) or squared L2 distances (lower is closer).
    ``exclude_self``: query i is index row i (leave-one-out on one set); it never counts as its own neighbour.
    """
    query_vectors = _check_vectors(query_vectors, "query_vectors")
    index = build_index(index_vectors, metric)
    if query_vectors.shape[1] != index.d:
        raise ValueError(f"query dim {query_vectors.shape[1]} != index dim {index.d}")
    if exclude_self and len(query_vectors) != index.ntotal:
        raise ValueError(
            "exclude_self needs query i to be index row i: the two sets must have the same length"
        )
    width = k + int(exclude_self)
    if not 1 <= width <= index.ntotal:
        raise ValueError(f"k={k} needs at least {width} index vectors, got {index.ntotal}")
    scores = np.empty((len(query_vectors), k), dtype=np.float32)
    indices = np.empty((len(query_vectors), k), dtype=np.int64)
    starts = range(0, len(query_vectors), batch_size)
    for start in tqdm(starts, desc=f"kNN {metric}", unit="batch", disable=not progress):
        chunk = _float32_chunk(query_vectors[start : start + batch_size], metric == "cosine")
        d, i = index.search(chunk, width)
        if exclude_self:
            d, i = _drop_self(d, i, start, k)
        scores[start : start + len(chunk)], indices[start : start + len(chunk)] = d, i
    return scores, indices


def knn_predict_ecs(index_labels: Sequence[str], indices: np.ndarray) -> list[list[str]]:
    """The EC labels of each query's neighbours, in the order knn_search returned them."""
    labels = np.asarray(index_labels, dtype=object)
    indices = np.asarray(indices)
    if indices.ndim != 2:
        raise ValueError(f"indices must be 2-D (n_queries, k), got shape {indices.shape}")
    if indices.size and (indices.min() < 0 or indices.max() >= len(labels)):
        raise IndexError(f"neighbour indices out of range for {len(labels)} index labels")
    return labels[indices].tolist()


def ann_index(vectors, metric: str = "cosine", ivf_min: int = 1_000_000, nlist: int = 0, nprobe: int = 32,
              pq_m: int = 0, seed: int = 0, batch_size: int = 65536) -> faiss.Index:
    """THE rule for large searches: exact (flat) below ``ivf_min`` rows; at and above it an inverted file
    with ``nlist`` lists (0: 4 sqrt(n)), trained on a seeded sample of 64 rows per list and searched with
    ``nprobe`` lists; ``pq_m`` > 0 stores product-quantised codes (``pq_m`` bytes a vector) instead of the
    vectors. ``vectors``: an array or anything with ``shape`` and numpy-style row indexing (a sharded
    store), added chunk by chunk (normalised copies for cosine)."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    n, dim = vectors.shape
    cosine = metric == "cosine"
    quantizer = faiss.IndexFlatIP(dim) if cosine else faiss.IndexFlatL2(dim)
    if n < ivf_min:
        index = quantizer
    else:
        if pq_m and dim % pq_m:
            raise ValueError(f"pq_m={pq_m} must divide the dimension {dim}")
        nlist = min(nlist or int(4 * np.sqrt(n)), n)
        kind = faiss.METRIC_INNER_PRODUCT if cosine else faiss.METRIC_L2
        index = (faiss.IndexIVFPQ(quantizer, dim, nlist, pq_m, 8, kind) if pq_m
                 else faiss.IndexIVFFlat(quantizer, dim, nlist, kind))
        sample = np.sort(stream(seed, "ivf").choice(n, min(n, 64 * nlist), replace=False))
        index.train(_float32_chunk(vectors[sample], cosine))
        index.nprobe = min(nprobe, nlist)
    for start in range(0, n, batch_size):
        index.add(_float32_chunk(vectors[start : start + batch_size], cosine))
    return index

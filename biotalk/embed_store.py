"""A sharded on-disk embedding store: vectors of a large split written shard by shard, read memory-mapped.

    ROOT/store.json            n, shard size, dtype, key (what the vectors depend on); written first
    ROOT/shard-00000.npy       rows [0, shard_size), float32 or float16
    ROOT/shard-00000.json      that shard's manifest, written after its array: a shard without one is redone

A killed run resumes: ``write_store`` skips shards whose manifest is there and matches, and embeds the rest.
Shards are split across processes (rank r takes shards r, r + world, ...; under torch.distributed, which
Accelerate starts, rank and world come from it and ranks wait for each other at the end). ``open_store``
concatenates the shards lazily (``StoredVectors``), and ``store_index`` builds the search index by
``biotalk.knn.ann_index``'s rule (exact below ``ivf_min`` vectors, IVF or IVF-PQ above) shard by shard.
``search_store`` re-scores an IVF-PQ index's candidates exactly with the vectors read from the store: PQ codes
alone rank near neighbours poorly (recall@10 0.35-0.55 at 10^6 x 256, docs/benchmarks.md).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import faiss
import numpy as np
import torch
from tqdm.auto import tqdm

from biotalk.io import atomic_path, write_json
from biotalk.knn import ann_index

STORE_VERSION = 1
STORE = "store.json"
DTYPES = ("float32", "float16")


def shard_name(shard: int) -> str:
    return f"shard-{shard:05d}"


def shard_ranges(n: int, shard_size: int) -> list[tuple[int, int]]:
    """(start, stop) of each shard: ``shard_size`` rows each, the last one shorter."""
    return [(start, min(start + shard_size, n)) for start in range(0, n, shard_size)]


def rank_and_world() -> tuple[int, int]:
    """This process's rank and the number of processes under torch.distributed; (0, 1) otherwise."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _spec(n: int, shard_size: int, dtype: str, key: str) -> dict:
    return {"version": STORE_VERSION, "n": n, "shard_size": shard_size, "dtype": dtype, "key": key,
            "shards": len(shard_ranges(n, shard_size))}


def _claim(root: Path, spec: dict) -> None:
    """Write ``store.json``, or check that the one there describes the same store."""
    path = root / STORE
    if path.is_file():
        have = json.loads(path.read_text())
        if have != spec:
            diff = ", ".join(f"{k}: {have.get(k)!r} there, {v!r} now" for k, v in spec.items() if have.get(k) != v)
            raise ValueError(f"{root} holds another embedding store ({diff}): use a new folder or delete it")
        return
    write_json(path, spec)


def _done(root: Path, shard: int, spec: dict, rows: int) -> bool:
    """Whether the shard's manifest is there and describes this store's shard."""
    manifest = root / f"{shard_name(shard)}.json"
    if not manifest.is_file() or not (root / f"{shard_name(shard)}.npy").is_file():
        return False
    meta = json.loads(manifest.read_text())
    return meta.get("key") == spec["key"] and meta.get("rows") == rows and meta.get("dtype") == spec["dtype"]


def write_store(root: str | Path, items: Sequence, embed: Callable[[list], np.ndarray], key: str,
                shard_size: int = 65_536, dtype: str = "float32", rank: int | None = None,
                world: int | None = None, progress: bool = True) -> list[int]:
    """Embed ``items`` into the store at ``root`` (``embed``: a list of items -> (len, dim) array); this
    process takes shards ``rank::world``. Returns the shards it embedded (finished ones are skipped)."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    if shard_size < 1 or not len(items):
        raise ValueError(f"need items and shard_size >= 1 (got {len(items)} items, shard_size {shard_size})")
    default_rank, default_world = rank_and_world()
    rank, world = default_rank if rank is None else rank, default_world if world is None else world
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    spec = _spec(len(items), shard_size, dtype, key)
    _claim(root, spec)
    ranges = shard_ranges(len(items), shard_size)
    todo = [s for s in range(rank, len(ranges), world) if not _done(root, s, spec, ranges[s][1] - ranges[s][0])]
    for shard in tqdm(todo, desc=f"embed shards (rank {rank}/{world})", unit="shard", disable=not progress):
        start, stop = ranges[shard]
        vectors = np.asarray(embed(list(items[start:stop])), dtype=dtype)
        if vectors.ndim != 2 or len(vectors) != stop - start:
            raise ValueError(f"embed returned shape {vectors.shape} for {stop - start} items (shard {shard})")
        with atomic_path(root / f"{shard_name(shard)}.npy") as tmp, tmp.open("wb") as handle:
            np.save(handle, vectors)
        write_json(root / f"{shard_name(shard)}.json", {"shard": shard, "start": start, "stop": stop,
                                                         "rows": stop - start, "dim": vectors.shape[1],
                                                         "dtype": dtype, "key": key})
    if world > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()  # every shard written before any rank reads the store
    return todo


class StoredVectors:
    """The shards of a store as one (n, dim) array, memory-mapped and concatenated lazily: ``x[i]``,
    ``x[a:b]`` and ``x[index_array]`` read only the rows asked for."""

    def __init__(self, shards: list[np.ndarray]) -> None:
        self.shards = shards
        self.starts = np.cumsum([0] + [len(s) for s in shards])
        self.shape = (int(self.starts[-1]), shards[0].shape[1])
        self.dtype = shards[0].dtype

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows) -> np.ndarray:
        if isinstance(rows, slice):
            start, stop, step = rows.indices(len(self))
            if step == 1:
                return self._range(start, stop)
            rows = np.arange(start, stop, step)
        if np.isscalar(rows):
            return self[np.array([rows])][0]
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size and (rows.min() < -len(self) or rows.max() >= len(self)):
            raise IndexError(f"rows outside a store of {len(self)}")
        rows = rows % len(self)
        out = np.empty((len(rows), self.shape[1]), dtype=self.dtype)
        shard = np.searchsorted(self.starts, rows, side="right") - 1
        for s in np.unique(shard).tolist():
            mask = shard == s
            out[mask] = self.shards[s][rows[mask] - self.starts[s]]
        return out

    def _range(self, start: int, stop: int) -> np.ndarray:
        """Rows [start, stop): a view within one shard, a copy across shards."""
        first, last = (int(np.searchsorted(self.starts, x, side="right")) - 1 for x in (start, max(start, stop - 1)))
        if first == last:
            return self.shards[first][start - self.starts[first] : stop - self.starts[first]]
        return np.concatenate([self.shards[s][max(start - self.starts[s], 0) : stop - self.starts[s]]
                               for s in range(first, last + 1)])

    def chunks(self) -> Iterator[np.ndarray]:
        """The shards in order (memory-mapped views)."""
        yield from self.shards

    def to_array(self) -> np.ndarray:
        """Everything in memory, concatenated (small stores)."""
        return np.concatenate(self.shards)


def missing_shards(root: str | Path) -> list[int]:
    """Shards of the store at ``root`` without a matching manifest: what a resumed run still embeds."""
    root = Path(root)
    spec = json.loads((root / STORE).read_text())
    ranges = shard_ranges(spec["n"], spec["shard_size"])
    return [s for s, (a, b) in enumerate(ranges) if not _done(root, s, spec, b - a)]


def open_store(root: str | Path, key: str | None = None) -> StoredVectors:
    """The complete store at ``root`` (``key``: refuse one built from other inputs), shards memory-mapped."""
    root = Path(root)
    if not (root / STORE).is_file():
        raise FileNotFoundError(f"{root}: no {STORE}: not an embedding store")
    spec = json.loads((root / STORE).read_text())
    if key is not None and spec.get("key") != key:
        raise ValueError(f"{root} holds embeddings of other inputs (key {spec.get('key')!r}, wanted {key!r})")
    missing = missing_shards(root)
    if missing:
        raise ValueError(f"{root}: {len(missing)} of {spec['shards']} shards unfinished (first: {missing[0]}); "
                         "run the embedding again to finish them")
    shards = [np.load(root / f"{shard_name(s)}.npy", mmap_mode="r") for s in range(spec["shards"])]
    return StoredVectors(shards)


def store_index(store: StoredVectors, metric: str = "cosine", ivf_min: int = 1_000_000, nlist: int = 0,
                nprobe: int = 32, pq_m: int = 0, seed: int = 0) -> faiss.Index:
    """The search index of a store, filled shard-sized chunk by chunk (``biotalk.knn.ann_index``)."""
    return ann_index(store, metric, ivf_min, nlist, nprobe, pq_m, seed, batch_size=int(store.shards[0].shape[0]))


def _unit(x: np.ndarray, cosine: bool) -> np.ndarray:
    x = np.array(x, dtype=np.float32, order="C")
    if cosine:
        faiss.normalize_L2(x)
    return x


def search_store(store, index: faiss.Index, queries: np.ndarray, k: int, rerank: int = 10, metric: str = "cosine",
                 batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """(scores, rows) of the top ``k`` of each query: ``index`` proposes ``rerank * k`` candidates, whose
    vectors are read from ``store`` (an array or ``StoredVectors``) and scored exactly (cosine similarity,
    descending, or squared L2 distance, ascending); rows -1 where the index found fewer than ``k``."""
    cosine = metric == "cosine"
    queries = _unit(queries, cosine)
    _, candidates = index.search(queries, k * rerank)
    scores = np.full((len(queries), k), -np.inf if cosine else np.inf, dtype=np.float32)
    rows = np.full((len(queries), k), -1, dtype=np.int64)
    for start in range(0, len(queries), batch_size):
        cand = candidates[start : start + batch_size]
        vectors = _unit(store[np.maximum(cand, 0).ravel()], cosine).reshape(*cand.shape, -1)
        q = queries[start : start + batch_size, :, None]
        exact = np.matmul(vectors, q)[..., 0] if cosine else ((vectors - q[..., 0][:, None]) ** 2).sum(-1)
        exact = np.where(cand >= 0, exact if cosine else -exact, -np.inf)  # larger is better from here
        order = np.argsort(-exact, axis=1, kind="stable")[:, :k]
        best = np.take_along_axis(exact, order, 1)
        found = np.isfinite(best)
        rows[start : start + len(cand)] = np.where(found, np.take_along_axis(cand, order, 1), -1)
        scores[start : start + len(cand)] = np.where(found, best if cosine else -best, scores[start : start + len(cand)])
    return scores, rows

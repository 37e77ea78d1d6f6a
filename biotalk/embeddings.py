"""Gene embeddings from any DNAEncoder: windows over long genes, length-sorted batches, a disk cache.

A gene longer than the encoder's window is cut into windows of ``window`` sequence tokens that
start every ``stride`` tokens, the last one flush with the gene's end (so every window is full
and every token is covered). Each window is wrapped in the tokenizer's own special tokens and
pooled alone; windows then combine per gene:
``mean`` = mean of window means, ``max`` = max of window maxes, ``min`` = min of window mins,
``cls`` = mean of window CLS vectors. ``truncate=True`` keeps only the first window instead.

Windows of all genes are sorted by length before batching (less padding), then results go back
to input order; identical sequences are embedded once. Padding never enters a pooled vector,
so an embedding does not depend on the other sequences of its batch.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from biotalk.cache import cache_path, digest_strings, load_array, save_array
from biotalk.data import load_benchmark
from biotalk.models.encoders import DNAEncoder

log = logging.getLogger(__name__)
CACHE_VERSION = 2


def usable_poolings(encoder: DNAEncoder, requested: list[str]) -> list[str]:
    """The requested poolings the encoder offers; an encoder with one fixed pooling (the spectrum) gets it."""
    chosen = [p for p in requested if p in encoder.poolings]
    if chosen:
        return chosen
    if len(encoder.poolings) == 1:
        return list(encoder.poolings)
    raise ValueError(f"{encoder.name}: none of {requested} available; it offers {list(encoder.poolings)}")


def window_starts(n_tokens: int, window: int, stride: int) -> list[int]:
    """Starts of windows covering ``n_tokens``: every ``stride``, the last one ending at the end."""
    if n_tokens <= window:
        return [0]
    last = n_tokens - window
    return sorted(set(range(0, last, stride)) | {last})


def _window_settings(encoder: DNAEncoder, window: int | None, stride: int | None) -> tuple[int | None, int | None]:
    """Resolve defaults: the largest window the model takes, half-overlapping strides."""
    if encoder.max_tokens is None:
        return None, None
    room = encoder.max_tokens - len(encoder.prefix_ids) - len(encoder.suffix_ids)
    window = room if window is None else window
    if not 1 <= window <= room:
        raise ValueError(f"{encoder.name}: window {window} must lie in [1, {room}] (max_tokens minus special tokens)")
    stride = max(1, window // 2) if stride is None else stride
    if not 1 <= stride <= window:
        raise ValueError(f"{encoder.name}: stride {stride} must lie in [1, window={window}]")
    return window, stride


def _pieces(encoder: DNAEncoder, seqs: list[str], window: int | None, stride: int | None,
            truncate: bool) -> tuple[list[list[int]], list[int]]:
    """Token windows (special tokens added) and, for each, the index of its gene."""
    pieces, owner = [], []
    for i, ids in enumerate(encoder.sequence_ids(seqs)):
        if window is None:
            starts = [0]
        else:
            starts = [0] if truncate else window_starts(len(ids), window, stride)
        for start in starts:
            body = ids if window is None else ids[start : start + window]
            pieces.append(encoder.prefix_ids + body + encoder.suffix_ids)
            owner.append(i)
    return pieces, owner


def _batch(encoder: DNAEncoder, pieces: list[list[int]]) -> tuple[torch.Tensor, ...]:
    width = max(len(p) for p in pieces)
    ids = torch.full((len(pieces), width), encoder.pad_id, dtype=torch.long)
    attention = torch.zeros((len(pieces), width), dtype=torch.long)
    special = torch.zeros((len(pieces), width), dtype=torch.bool)
    n_pre, n_suf = len(encoder.prefix_ids), len(encoder.suffix_ids)
    for row, piece in enumerate(pieces):
        ids[row, : len(piece)] = torch.tensor(piece)
        attention[row, : len(piece)] = 1
        special[row, :n_pre] = True
        special[row, len(piece) - n_suf : len(piece)] = True
    device = encoder.device
    return ids.to(device), attention.to(device), special.to(device)


@torch.inference_mode()
def embed_sequences(encoder: DNAEncoder, seqs: list[str], poolings: list[str] | tuple[str, ...] = ("cls", "mean"),
                    batch_size: int = 32, window: int | None = None, stride: int | None = None,
                    truncate: bool = False, progress: bool = True) -> dict[str, np.ndarray]:
    """``{pooling: float32 array (len(seqs), hidden)}``; ``window``/``stride`` count sequence tokens."""
    poolings = list(poolings)
    unknown = [p for p in poolings if p not in encoder.poolings]
    if unknown:
        raise ValueError(f"{encoder.name}: poolings {unknown} not available; it offers {list(encoder.poolings)}")
    empty = [i for i, s in enumerate(seqs) if not s or not s.strip()]
    if empty:
        raise ValueError(f"empty sequence at index {empty[0]} ({len(empty)} in all)")
    unique = list(dict.fromkeys(seqs))
    where = {s: i for i, s in enumerate(unique)}
    window, stride = _window_settings(encoder, window, stride)
    pieces, owner = _pieces(encoder, unique, window, stride, truncate)
    owner_arr = np.asarray(owner)
    order = sorted(range(len(pieces)), key=lambda j: -len(pieces[j]))
    n_windows = np.bincount(owner_arr, minlength=len(unique)).astype(np.float32)[:, None]
    dim = encoder.hidden_size
    init = {"max": -np.inf, "min": np.inf}
    sums = {p: np.full((len(unique), dim), init.get(p, 0.0), dtype=np.float32) for p in poolings}
    device = encoder.device
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    was_training = encoder.training
    encoder.eval()
    try:
        for start in tqdm(range(0, len(order), batch_size), desc=f"embed {encoder.name}", unit="batch",
                          disable=not progress):
            rows = order[start : start + batch_size]
            ids, attention, special = _batch(encoder, [pieces[j] for j in rows])
            with autocast:
                pooled = encoder.embed_batch(ids, attention, special, poolings)
            genes = owner_arr[rows]
            for p, vectors in pooled.items():
                vectors = vectors.float().cpu().numpy()
                if p == "max":
                    np.maximum.at(sums[p], genes, vectors)
                elif p == "min":
                    np.minimum.at(sums[p], genes, vectors)
                else:
                    np.add.at(sums[p], genes, vectors)
    finally:
        encoder.train(was_training)
    back = np.asarray([where[s] for s in seqs], dtype=np.int64)
    out = {}
    for p in poolings:
        values = sums[p] / n_windows if p not in init else sums[p]
        out[p] = np.ascontiguousarray(values[back])
    return out


def embed_cached(encoder: DNAEncoder, seqs: list[str], poolings: list[str], cache_dir: str | Path,
                 tag: str = "seqs", batch_size: int = 32, window: int | None = None, stride: int | None = None,
                 truncate: bool = False, progress: bool = True) -> dict[str, np.ndarray]:
    """``embed_sequences`` through the cache (``biotalk.cache``): one array per pooling, keyed by (encoder
    fingerprint, sequence content, window settings, pooling); the missing poolings are computed in one pass."""
    window, stride = _window_settings(encoder, window, stride)
    key = {
        "version": CACHE_VERSION, "encoder": encoder.fingerprint, "max_tokens": encoder.max_tokens,
        "data": digest_strings(seqs), "n": len(seqs), "window": window, "stride": stride,
        "truncate": bool(truncate) and window is not None,
    }  # fmt: skip
    keys = {p: {**key, "pooling": p} for p in poolings}
    paths = {p: cache_path(cache_dir, f"{encoder.name}-{tag}-{p}", keys[p]) for p in poolings}
    shape = (len(seqs), encoder.hidden_size)
    out = {p: array for p in poolings if (array := load_array(paths[p], shape)) is not None}
    missing = [p for p in poolings if p not in out]
    if missing:
        fresh = embed_sequences(encoder, seqs, missing, batch_size=batch_size, window=window, stride=stride,
                                truncate=truncate, progress=progress)
        for p, values in fresh.items():
            save_array(paths[p], values, {**keys[p], "name": encoder.name, "tag": tag})
            out[p] = values
    else:
        log.info("cache hit %s (%s)", cache_dir, ",".join(poolings))
    return {p: out[p] for p in poolings}


def cached_embeddings(encoder: DNAEncoder, data_dir: str | Path, benchmark: str, split: str,
                      poolings: list[str], cache_dir: str | Path, **kwargs) -> dict[str, np.ndarray]:
    """Embeddings of one benchmark split, row-aligned with ``load_benchmark(data_dir, benchmark)[split]``."""
    seqs = load_benchmark(data_dir, benchmark)[split]["Sequence"]
    return embed_cached(encoder, list(seqs), poolings, cache_dir, tag=f"{benchmark}-{split}", **kwargs)

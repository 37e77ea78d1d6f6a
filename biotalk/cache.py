"""Content-keyed disk caches: a cached file is named by a hash of everything its content depends on
(model fingerprint, exact input data, settings, a version), so a stale entry is never found, only missed.

    path = cache_path(cache_dir, "gene_index", {"model": fp, "data": digest_strings(seqs)})
    vectors = cached_array(cache_dir, "gene_index", {...}, lambda: embed(seqs), shape=(len(seqs),))

Files are written atomically (``biotalk.io``), with the key parts beside them in ``<name>.json`` for
people. A cached array whose leading dimensions differ from the expected ones is stale: recomputed.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from biotalk.io import atomic_path, write_json

log = logging.getLogger(__name__)
KEY_CHARS = 24  # hex digits of a cache file name's key: 96 bits


def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cache key part of type {type(value).__name__} is not JSON: {value!r}")


def cache_key(**parts: Any) -> str:
    """sha256 (hex) of the parts as canonical JSON: equal parts give equal keys in any process."""
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=_plain)
    return hashlib.sha256(blob.encode()).hexdigest()


def digest_strings(items: Iterable[str]) -> str:
    """sha256 (hex) of strings in order, each prefixed by its length (so no two lists share a digest):
    the content key of a collection of sequences or texts."""
    digest = hashlib.sha256()
    for item in items:
        data = item.encode()
        digest.update(b"%d:" % len(data) + data)
    return digest.hexdigest()


def file_digest(path: str | Path) -> str:
    """sha256 (hex) of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 24), b""):
            digest.update(chunk)
    return digest.hexdigest()


def cache_path(cache_dir: str | Path, namespace: str, key_parts: dict[str, Any], suffix: str = ".npy") -> Path:
    """``cache_dir/<namespace>-<key>.<suffix>``; ``namespace`` is made file-name safe."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in namespace)
    return Path(cache_dir) / f"{safe}-{cache_key(**key_parts)[:KEY_CHARS]}{suffix}"


def load_array(path: Path, shape: tuple[int, ...] | None = None) -> np.ndarray | None:
    """The array cached at ``path``; None when absent or stale (leading dimensions other than ``shape``)."""
    if not path.is_file():
        return None
    array = np.load(path)
    if shape is not None and array.shape[: len(shape)] != tuple(shape):
        log.warning("%s: cached shape %s, expected %s...: stale, recomputing", path, array.shape, tuple(shape))
        return None
    return array


def save_array(path: Path, array: np.ndarray, key_parts: dict[str, Any]) -> None:
    """Write ``array`` atomically, and its key parts beside it."""
    with atomic_path(path) as tmp, tmp.open("wb") as handle:
        np.save(handle, array)
    write_json(path.with_suffix(".json"), key_parts)


def cached_array(
    cache_dir: str | Path | None, namespace: str, key_parts: dict[str, Any], compute: Callable[[], np.ndarray],
    shape: tuple[int, ...] | None = None,
) -> np.ndarray:  # fmt: skip
    """``compute()`` through the cache (``cache_dir=None``: no cache); ``shape``: expected leading dimensions."""
    if cache_dir is None:
        return compute()
    path = cache_path(cache_dir, namespace, key_parts)
    array = load_array(path, shape)
    if array is None:
        array = compute()
        save_array(path, array, key_parts)
    return array

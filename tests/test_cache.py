"""The content-keyed disk cache: canonical keys, hit, miss, stale shape."""

import hashlib
from pathlib import Path

import numpy as np
import pytest

from biotalk.cache import cache_key, cache_path, cached_array, digest_strings, file_digest


def test_keys_are_canonical():
    assert cache_key(a=1, b=[1.0, "x"]) == cache_key(b=[1.0, "x"], a=1)  # argument order does not count
    assert cache_key(a=1) != cache_key(a=2) != cache_key(b=2)
    assert cache_key(p=Path("x/y")) == cache_key(p="x/y")
    with pytest.raises(TypeError, match="not JSON"):
        cache_key(p=object())
    assert digest_strings(["ab", "c"]) != digest_strings(["a", "bc"]) != digest_strings(["a\nb"])
    assert digest_strings(["ab", "c"]) != digest_strings(["c", "ab"])


def test_file_digest(tmp_path):
    (tmp_path / "f").write_bytes(b"\x00abc" * 1000)
    assert file_digest(tmp_path / "f") == hashlib.sha256(b"\x00abc" * 1000).hexdigest()


def test_hit_miss_and_stale_shape(tmp_path):
    calls = []

    def compute(rows=3):
        calls.append(rows)
        return np.arange(rows * 2, dtype=np.float32).reshape(rows, 2)

    key = {"data": digest_strings(["a", "b", "c"]), "version": 1}
    first = cached_array(tmp_path, "emb/x", key, compute, shape=(3,))
    assert calls == [3]
    path = cache_path(tmp_path, "emb/x", key)
    assert path.parent == tmp_path and path.name.startswith("emb_x-") and path.with_suffix(".json").is_file()
    again = cached_array(tmp_path, "emb/x", key, compute, shape=(3, 2))  # hit: nothing computed
    assert calls == [3] and np.array_equal(first, again)
    cached_array(tmp_path, "emb/x", {**key, "version": 2}, compute)  # other key: a miss
    assert calls == [3, 3]
    np.save(path, np.zeros((2, 2)))  # a stale entry (wrong rows) is recomputed and replaced
    fixed = cached_array(tmp_path, "emb/x", key, compute, shape=(3,))
    assert calls == [3, 3, 3] and np.array_equal(fixed, first) and np.load(path).shape == (3, 2)
    assert cached_array(None, "emb/x", key, compute).shape == (3, 2) and len(calls) == 4  # no cache dir
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temporary files

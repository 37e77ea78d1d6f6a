"""Issue 11: the sharded embedding store resumes after a kill, splits shards across ranks (also under a real
two-process torch.distributed run), equals embedding in one go, and searches exactly or by IVF."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import faiss
import numpy as np
import pytest

from biotalk.data import load_benchmark
from biotalk.embed_store import missing_shards, open_store, shard_name, store_index, write_store
from biotalk.embeddings import embed_sequences
from biotalk.knn import knn_search
from biotalk.models.encoders import load_dna_encoder

ROOT = Path(__file__).resolve().parents[1]
SHARD = 80


@pytest.fixture(scope="module")
def genes(mini_benchmark) -> list[str]:
    return list(load_benchmark(mini_benchmark, "I")["train"]["Sequence"])[:6 * SHARD - 20]


@pytest.fixture(scope="module")
def encoder():
    return load_dna_encoder("kmer:3")


@pytest.fixture(scope="module")
def whole(genes, encoder) -> np.ndarray:
    """Embedding in one go: what every store must hold."""
    return embed_sequences(encoder, genes, ["spectrum"], progress=False)["spectrum"]


class Embedder:
    """The real k-mer spectrum, remembering which items it was asked for."""

    def __init__(self, encoder) -> None:
        self.encoder, self.calls = encoder, []

    def __call__(self, seqs: list[str]) -> np.ndarray:
        self.calls.append(seqs)
        return embed_sequences(self.encoder, seqs, ["spectrum"], progress=False)["spectrum"]


def test_store_equals_one_go_and_reads_lazily(genes, encoder, whole, tmp_path):
    write_store(tmp_path, genes, Embedder(encoder), key="k", shard_size=SHARD, progress=False)
    store = open_store(tmp_path, key="k")
    assert store.shape == whole.shape and len(store.shards) == -(-len(genes) // SHARD)
    assert all(isinstance(s, np.memmap) for s in store.shards)
    np.testing.assert_array_equal(store.to_array(), whole)
    rows = np.array([5, SHARD * 2 + 1, 0, len(genes) - 1, SHARD - 1, SHARD])
    np.testing.assert_array_equal(store[rows], whole[rows])
    np.testing.assert_array_equal(store[SHARD - 10 : 2 * SHARD + 10], whole[SHARD - 10 : 2 * SHARD + 10])
    np.testing.assert_array_equal(store[-1], whole[-1])
    with pytest.raises(ValueError, match="other inputs"):
        open_store(tmp_path, key="other")
    with pytest.raises(ValueError, match="another embedding store"):
        write_store(tmp_path, genes, Embedder(encoder), key="other", shard_size=SHARD, progress=False)


def test_resume_redoes_only_unfinished_shards(genes, encoder, whole, tmp_path):
    write_store(tmp_path, genes, Embedder(encoder), key="k", shard_size=SHARD, progress=False)
    (tmp_path / f"{shard_name(1)}.json").unlink()  # killed after the array, before its manifest
    (tmp_path / f"{shard_name(4)}.json").unlink()  # killed before anything of shard 4 was written
    (tmp_path / f"{shard_name(4)}.npy").unlink()
    (tmp_path / f"{shard_name(2)}.npy").write_bytes(b"half")  # a partial array is never renamed in, but
    (tmp_path / f"{shard_name(2)}.json").unlink()  # if one were, its missing manifest marks it unfinished
    assert missing_shards(tmp_path) == [1, 2, 4]
    with pytest.raises(ValueError, match="3 of 6 shards unfinished"):
        open_store(tmp_path)
    again = Embedder(encoder)
    assert write_store(tmp_path, genes, again, key="k", shard_size=SHARD, progress=False) == [1, 2, 4]
    assert again.calls == [genes[SHARD : 2 * SHARD], genes[2 * SHARD : 3 * SHARD], genes[4 * SHARD : 5 * SHARD]]
    np.testing.assert_array_equal(open_store(tmp_path).to_array(), whole)


def test_two_ranks_cover_every_shard_once(genes, encoder, whole, tmp_path):
    done = [write_store(tmp_path, genes, Embedder(encoder), key="k", shard_size=SHARD, dtype="float16",
                        rank=r, world=2, progress=False) for r in (1, 0)]
    assert done == [[1, 3, 5], [0, 2, 4]]
    store = open_store(tmp_path)
    assert store.dtype == np.float16
    np.testing.assert_array_equal(store.to_array(), whole.astype(np.float16))


WORKER = """
import sys, numpy as np, torch.distributed as dist
from biotalk.embed_store import open_store, write_store
dist.init_process_group("gloo", rank=int(sys.argv[1]), world_size=2)
items = [f"item {i}" for i in range(1000)]
mine = write_store(sys.argv[2], items, lambda xs: np.array([[float(x.split()[1])] * 4 for x in xs]),
                   key="k", shard_size=128, progress=False)
store = open_store(sys.argv[2])  # after the barrier: every shard is there
assert np.array_equal(store.to_array()[:, 0], np.arange(1000))
print("shards", *mine)
dist.destroy_process_group()
"""


def test_torch_distributed_ranks_split_the_shards(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(r), str(tmp_path)], env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for r in (0, 1)]
    try:
        outs = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert [p.returncode for p in procs] == [0, 0], [err[-2000:] for _, err in outs]
    shards = [[int(x) for x in out.split()[1:]] for out, _ in outs]
    assert shards == [[0, 2, 4, 6], [1, 3, 5, 7]]


def test_index_rule_exact_below_ivf_above(genes, encoder, tmp_path):
    write_store(tmp_path, genes, Embedder(encoder), key="k", shard_size=SHARD, progress=False)
    store = open_store(tmp_path)
    queries = store[np.arange(0, len(genes), 17)]
    _, truth = knn_search(store.to_array(), queries, k=10)
    flat = store_index(store, ivf_min=len(genes) + 1)
    assert isinstance(flat, faiss.IndexFlatIP)
    ivf = store_index(store, ivf_min=len(genes), nlist=16, nprobe=16)  # every list probed: exact again
    assert isinstance(ivf, faiss.IndexIVFFlat) and ivf.ntotal == len(genes)
    normed = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    for index in (flat, ivf):
        scores, found = index.search(normed.astype(np.float32), 10)
        recall = np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth, strict=True)])
        assert recall > 0.99
    pq = store_index(store, ivf_min=1, nlist=8, nprobe=8, pq_m=16)
    assert isinstance(pq, faiss.IndexIVFPQ) and pq.code_size == 16
    _, found = pq.search(normed.astype(np.float32), 10)
    assert np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth, strict=True)]) > 0.3
    with pytest.raises(ValueError, match="must divide"):
        store_index(store, ivf_min=1, pq_m=7)

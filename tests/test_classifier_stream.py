"""Issue 11: the classifier trained from Train on disk (rows memory-mapped from Arrow, features from the sharded
embedding store, minibatches gathered by index) is the model trained in memory, on the real mini benchmark; an
IVF-PQ index's candidates re-scored from the store come back in exact order."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from fixtures.scripts import load_script

from biotalk.config import load_config
from biotalk.data import load_benchmark
from biotalk.data.loader import UnusableRowsWarning, read_tables, split_file
from biotalk.data.stream_features import MappedRows, ensure_rows, write_rows
from biotalk.ec import LabelMap
from biotalk.embed_store import open_store, search_store, shard_name, write_store
from biotalk.knn import ann_index
from biotalk.models.classifier import ECClassifier, MLPConfig, feature_stats, fit_classifier, fit_encoded

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs/classifier/mini.yaml"
SETTINGS = ["encoder=kmer:4", "mlp.epochs=3", "mlp.standardize=true", "mlp.batch_size=16"]


def faiss_ready(queries: np.ndarray, metric: str) -> np.ndarray:
    """Queries as the index holds its vectors: unit length for cosine."""
    return queries / np.linalg.norm(queries, axis=1, keepdims=True) if metric == "cosine" else queries


def _run(data: Path, out: Path, cache: Path, *overrides: str) -> Path:
    script = load_script("train_classifier.py")
    script.main(load_config(script.ClassifierConfig, CONFIG, [f"data={data}", f"out={out}", f"cache_dir={cache}",
                                                              *SETTINGS, *overrides]))
    return out


def _same_run(a: Path, b: Path) -> None:
    for name in ("predictions.tsv", "metrics.json", "history.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    ma, mb = ECClassifier.from_pretrained(a / "model"), ECClassifier.from_pretrained(b / "model")
    assert ma.labels == mb.labels
    assert all(torch.equal(p, q) for p, q in zip(ma.state_dict().values(), mb.state_dict().values(), strict=True))


@pytest.fixture(scope="module")
def in_memory(mini_benchmark, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("memory")
    return _run(mini_benchmark, root / "out", root / "cache")


def test_streamed_train_gives_the_in_memory_model_and_resumes_its_store(mini_benchmark, in_memory, tmp_path):
    stream = tmp_path / "stream"
    streamed = _run(mini_benchmark, tmp_path / "a", tmp_path / "cache", f"stream_dir={stream}", "shard_size=40")
    _same_run(in_memory, streamed)
    (root,) = stream.glob("features-*")
    train = load_benchmark(mini_benchmark, "III")["train"]
    store = open_store(root)
    assert len(store.shards) == -(-len(train) // 40) > 2  # the features really came from several shards
    rows = MappedRows(stream / "train")
    assert rows.ecs.to_pylist() == list(train["EC"]) and rows.sequences[:] == list(train["Sequence"])

    # a run killed while embedding: one shard lost its manifest, one its array too; the rest is reused
    kept = {p: p.stat().st_mtime_ns for p in root.glob("shard-*.npy") if p.stem not in (shard_name(1), shard_name(3))}
    (root / f"{shard_name(1)}.json").unlink()
    (root / f"{shard_name(3)}.json").unlink()
    (root / f"{shard_name(3)}.npy").unlink()
    resumed = _run(mini_benchmark, tmp_path / "b", tmp_path / "cache", f"stream_dir={stream}", "shard_size=40")
    _same_run(in_memory, resumed)
    assert {p: p.stat().st_mtime_ns for p in kept} == kept
    assert (root / f"{shard_name(3)}.npy").is_file()


@pytest.mark.slow
def test_two_processes_embed_the_store_and_the_main_one_trains_the_same_model(mini_benchmark, in_memory, tmp_path):
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
                str(ROOT / "configs/accelerate/cpu_two_process.yaml"), "--main_process_port", "29547"]
    args = [f"data={mini_benchmark}", f"out={tmp_path / 'two'}", f"cache_dir={tmp_path / 'cache'}",
            f"stream_dir={tmp_path / 'stream'}", "shard_size=30", *SETTINGS]
    done = subprocess.run([*launcher, str(ROOT / "train_classifier.py"), "--config", str(CONFIG), *args], cwd=ROOT,
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "rank 0/2" in done.stderr and "rank 1/2" in done.stderr  # each process embedded shards of its own
    assert done.stdout.count("wrote ") == 1  # and the main process alone trained and wrote the outputs
    _same_run(in_memory, tmp_path / "two")


def test_the_copied_rows_are_the_loaders_rows_and_labels_come_from_the_mapped_column(mini_benchmark, tmp_path):
    train = load_benchmark(mini_benchmark, "I")["train"]
    rows = MappedRows(write_rows(split_file(mini_benchmark, "I", "train"), tmp_path / "rows", "k", batch_rows=100))
    assert rows.ecs.num_chunks == -(-len(train) // 100)
    assert rows.ecs.to_pylist() == list(train["EC"]) and rows.sequences[:] == list(train["Sequence"])
    labels = rows.labels()
    assert labels == LabelMap.from_ecs(train["EC"])
    np.testing.assert_array_equal(rows.class_ids(labels), labels.encode(train["EC"]))
    other = LabelMap.from_ecs(list(train["EC"])[:300])  # a map without some of these ECs: they are -1
    np.testing.assert_array_equal(rows.class_ids(other), other.encode(train["EC"]))
    assert (rows.class_ids(other) == -1).any()
    written = (rows.path / "rows.arrow").stat().st_mtime_ns
    assert ensure_rows(split_file(mini_benchmark, "I", "train"), rows.path, "k") == rows.path  # same source: kept
    assert (rows.path / "rows.arrow").stat().st_mtime_ns == written
    ensure_rows(split_file(mini_benchmark, "I", "train"), rows.path, "changed", batch_rows=100)  # another: rewritten
    assert MappedRows(rows.path).meta["source"] == "changed"


def test_a_published_style_csv_is_cleaned_batch_by_batch_like_the_loader(mini_benchmark, tmp_path):
    """Unusable rows, a multi-EC field, lower-case DNA and padded column names, in csv, across batch edges."""
    src = pl.read_parquet(mini_benchmark / "Benchmark-III" / "Train.parquet").select("AC", "EC", "Sequence").head(60)
    messy = src.with_columns(
        pl.when(pl.int_range(pl.len()) % 7 == 0).then(pl.lit("")).when(pl.int_range(pl.len()) % 11 == 0)
        .then(pl.lit("1.2.-.-")).when(pl.int_range(pl.len()) % 13 == 0).then(pl.col("EC") + "; 2.7.7.7")
        .otherwise(pl.col("EC")).alias("EC"),
        pl.when(pl.int_range(pl.len()) % 5 == 0).then(pl.col("Sequence").str.to_lowercase())
        .otherwise(pl.col("Sequence")).alias("Sequence"),
    ).rename({"EC": " EC ", "Sequence": "Sequence "})
    folder = tmp_path / "published" / "Benchmark-III"
    folder.mkdir(parents=True)
    messy.write_csv(folder / "Train.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnusableRowsWarning)
        expected, report = read_tables(tmp_path / "published", "III", splits=["train"])
    with pytest.warns(UnusableRowsWarning, match="unusable rows left out"):
        rows = MappedRows(write_rows(folder / "Train.csv", tmp_path / "rows", batch_rows=16))
    assert rows.ecs.to_pylist() == expected["train"]["EC"].to_list()
    assert rows.sequences[:] == expected["train"]["Sequence"].to_list()
    assert rows.meta["unusable"] == report.splits["train"].unusable and sum(rows.meta["unusable"].values()) > 5
    assert "2.7.7.7" in rows.ecs.to_pylist()  # the multi-EC rows were expanded


def test_bad_inputs_fail_with_a_message_naming_them(mini_benchmark, tmp_path):
    bad = tmp_path / "Train.parquet"
    pl.DataFrame({"EC": ["1.1.1.1"], "Seq": ["ATG"]}).write_parquet(bad)
    with pytest.raises(ValueError, match="Train.parquet: needs at least the columns EC and Sequence"):
        write_rows(bad, tmp_path / "rows")
    pl.DataFrame({"EC": ["", "1.2.-.-"], "Sequence": ["ATG", "ATG"]}).write_parquet(bad)
    with pytest.raises(ValueError, match="Train.parquet: no usable rows"):
        write_rows(bad, tmp_path / "rows")
    assert not (tmp_path / "rows").exists()  # nothing half-written
    with pytest.raises(FileNotFoundError, match="not a complete copy"):
        MappedRows(tmp_path)
    with pytest.raises(FileNotFoundError, match="benchmark folder not found"):
        split_file(tmp_path / "nowhere", "III", "train")


def test_minibatches_gathered_from_a_store_train_the_array_model(tmp_path):
    rng = np.random.default_rng(0)
    ecs = ["1.1.1.1", "2.7.7.7", "3.5.1.n3", "1.2.3.4"]
    y = [ecs[i] for i in rng.integers(0, 4, 300)]
    x = (rng.normal(size=(300, 12)) * 5 + 100).astype(np.float32)  # offset: float32 sums would drift
    write_store(tmp_path, list(range(300)), lambda rows: x[rows], key="k", shard_size=70, progress=False)
    store = open_store(tmp_path, "k")
    mean, std = feature_stats(store, chunk_rows=64)
    np.testing.assert_array_equal((mean, std), feature_stats(x, chunk_rows=64))
    np.testing.assert_allclose(mean, x.astype(np.float64).mean(0), rtol=1e-7)
    np.testing.assert_allclose(std, x.astype(np.float64).std(0), rtol=1e-6)
    cfg = MLPConfig(epochs=2, batch_size=32, standardize=True, hidden_size=8)
    labels = LabelMap.from_ecs(y)
    a, hist_a = fit_classifier(x, y, x[:50], y[:50], cfg)
    b, hist_b = fit_encoded(store, labels.encode(y), labels, store[:50], labels.encode(y[:50]), cfg)
    assert hist_a == hist_b
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_store_search_rescores_ivfpq_candidates_exactly(metric, tmp_path):
    """PQ codes alone misrank near neighbours; re-scored with the stored vectors, enough candidates give the
    exact answer (all of them: brute force), and any number of candidates comes back in exact order."""
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(20, 32)).astype(np.float32)
    x = (centres[rng.integers(0, 20, 3000)] + 0.3 * rng.normal(size=(3000, 32))).astype(np.float32)
    queries = x[:40] + 0.05 * rng.normal(size=(40, 32)).astype(np.float32)
    write_store(tmp_path, list(range(3000)), lambda rows: x[rows], key="k", shard_size=700, progress=False)
    store = open_store(tmp_path, "k")
    index = ann_index(store, metric, ivf_min=1, nlist=16, nprobe=16, pq_m=4)
    exact = ann_index(x, metric, ivf_min=len(x) + 1)
    truth_scores, truth = exact.search(faiss_ready(queries, metric), 5)
    _, pq_only = index.search(faiss_ready(queries, metric), 5)
    scores, rows = search_store(store, index, queries, 5, rerank=600, metric=metric)  # 3,000 candidates: all
    np.testing.assert_array_equal(rows, truth)
    np.testing.assert_allclose(scores, truth_scores, rtol=1e-4, atol=1e-4)
    assert (pq_only != truth).any()  # the codes alone do not get there
    scores, rows = search_store(store, index, queries, 5, rerank=3, metric=metric)
    assert (rows >= 0).all() and (np.diff(scores, axis=1) <= 0 if metric == "cosine" else np.diff(scores, axis=1) >= 0).all()
    assert np.mean([len(set(r) & set(t)) for r, t in zip(rows, truth, strict=True)]) > np.mean(
        [len(set(r) & set(t)) for r, t in zip(pq_only, truth, strict=True)])

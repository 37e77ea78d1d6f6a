"""Issue 11: CLIP data streamed from memory-mapped Arrow gives the in-memory path's items, errors and class
ids; the streaming sampler keeps ``ClipBatchSampler``'s contract from the class-id column alone."""

import pickle

import numpy as np
import polars as pl
import pytest

from biotalk.data import load_benchmark
from biotalk.data import stream as stream_mod
from biotalk.data.clip_data import ClipBatchSampler, ClipDataset, clip_split, max_unique_batches
from biotalk.data.errors import InputError
from biotalk.data.stream import (
    ArrowClipDataset,
    ClipArrowSplit,
    ensure_clip_arrow,
    folder_key,
    write_clip_arrow,
)
from biotalk.data.stream_sampler import StreamBatchSampler


@pytest.fixture(scope="module")
def train(mini_benchmark):
    return load_benchmark(mini_benchmark, "I")["train"]


def test_items_equal_in_memory_path(train, tmp_path, monkeypatch):
    monkeypatch.setattr(stream_mod, "BATCH_ROWS", 100)  # many record batches: the chunk lookup is exercised
    ref = clip_split(train, "train")
    split = ClipArrowSplit(write_clip_arrow(train, tmp_path / "train", "train"))
    assert len(split.sequences.chunks) > 10
    assert split.texts[:] == ref.texts and split.text_ecs[:] == ref.text_ecs
    assert split.class_ecs == ref.class_ecs and split.record_ids[:] == ref.record_ids
    assert isinstance(split.ec_idx, np.memmap) and split.ec_idx.dtype == np.int32
    assert np.array_equal(split.ec_idx, ref.ec_idx)
    for random_crop in (True, False):
        ours, theirs = ArrowClipDataset(split, 300, random_crop, seed=5), ClipDataset(ref, 300, random_crop, seed=5)
        for epoch in (0, 1):
            ours.set_epoch(epoch), theirs.set_epoch(epoch)
            assert [ours[i] for i in range(len(ours))] == [theirs[i] for i in range(len(theirs))]
    keep = np.array([3, 0, 900, len(ref) - 1])  # what evaluation takes from the training split
    small, theirs_small = split.subset(keep), ref.subset(keep)
    assert (small.sequences, small.ecs, small.record_ids) == (theirs_small.sequences, theirs_small.ecs,
                                                              theirs_small.record_ids)
    assert np.array_equal(small.ec_idx, theirs_small.ec_idx) and len(small.texts) == len(set(small.texts))
    assert [small.texts[t] for t in small.text_idx] == [ref.texts[t] for t in theirs_small.text_idx]
    assert list(split.ecs) == ref.ecs
    worker = pickle.loads(pickle.dumps(ours))  # what a DataLoader worker gets: the path, reopened there
    assert worker.split._columns is None and worker[7] == theirs[7]


@pytest.mark.parametrize("field, value, where", [("Sequence", "", 3), ("EC", "1.1.1.-", 5), ("EC", "x.1", 2),
                                                 ("DescriptionMasked", "  ", 4), ("DescriptionMasked", None, 6)])
def test_bad_record_errors_match_clip_split(train, tmp_path, field, value, where):
    df = pl.from_arrow(train.data.table).head(20)
    df = df.with_columns(pl.when(pl.int_range(pl.len()) == where).then(pl.lit(value)).otherwise(pl.col(field))
                         .alias(field))
    with pytest.raises(InputError) as expected:
        clip_split({c: df[c].to_list() for c in df.columns}, "s")
    with pytest.raises(InputError) as got:
        write_clip_arrow(df, tmp_path / "s", "s")
    assert str(got.value) == str(expected.value)
    assert not (tmp_path / "s").exists()


def test_text_shared_by_two_ecs_named_like_clip_split(train, tmp_path):
    df = pl.from_arrow(train.data.table).head(30)
    other = df.filter(pl.col("EC") != df["EC"][0])["DescriptionMasked"][0]
    df = df.with_columns(pl.when(pl.int_range(pl.len()) == 0).then(pl.lit(other))
                         .otherwise(pl.col("DescriptionMasked")).alias("DescriptionMasked"))
    with pytest.raises(InputError) as expected:
        clip_split({c: df[c].to_list() for c in df.columns}, "s")
    with pytest.raises(InputError, match="text shared by ECs") as got:
        write_clip_arrow(df, tmp_path / "s", "s")
    assert str(got.value) == str(expected.value)


def test_folder_key_follows_the_files(tmp_path):
    (tmp_path / "a.parquet").write_bytes(b"1")
    key = folder_key(tmp_path, "I", "train")
    assert folder_key(tmp_path, "I", "train") == key != folder_key(tmp_path, "II", "train")
    (tmp_path / "a.parquet").write_bytes(b"12")
    assert folder_key(tmp_path, "I", "train") != key


def test_ensure_writes_once_per_source(train, tmp_path):
    out = ensure_clip_arrow(train, tmp_path / "t", "train", source_key="a")
    stamp = (out / "meta.json").stat().st_mtime_ns
    assert ensure_clip_arrow(train, out, "train", source_key="a") == out
    assert (out / "meta.json").stat().st_mtime_ns == stamp
    ensure_clip_arrow(train, out, "train", source_key="b")
    assert ClipArrowSplit(out).meta["source"] == "b"


def _check_epoch(batches: np.ndarray, ec_idx: np.ndarray, b: int) -> None:
    flat = batches.ravel()
    assert batches.shape[1] == b and len(np.unique(flat)) == len(flat)  # full batches, each record once at most
    assert all(len(np.unique(ec_idx[row])) == b for row in batches)  # EC-unique


@pytest.mark.parametrize("source", ["mini", "skewed"])
def test_unique_sampler_contract(train, tmp_path, source):
    if source == "mini":
        ec_idx = ClipArrowSplit(write_clip_arrow(train, tmp_path / "t", "train")).ec_idx
    else:  # one EC holding half the records, many rare ones
        ec_idx = np.concatenate([np.zeros(500), np.arange(1, 501).repeat(np.arange(1, 501) % 4 + 1)]).astype(np.int32)
    b = 16
    sampler = StreamBatchSampler(ec_idx, b, seed=3, mode="unique")
    counts = np.bincount(ec_idx)
    assert len(sampler) == max_unique_batches(counts, b) == len(ClipBatchSampler(np.asarray(ec_idx), b, 3, "unique"))
    epochs = []
    for epoch in (0, 1):
        sampler.set_epoch(epoch)
        batches = np.asarray(list(sampler))
        _check_epoch(batches, np.asarray(ec_idx), b)
        per_ec = np.bincount(ec_idx[batches.ravel()], minlength=len(counts))
        assert (per_ec <= np.minimum(counts, len(sampler))).all()
        assert np.array_equal(batches, sampler.epoch_batches())  # deterministic per (seed, epoch)
        epochs.append(batches)
    assert not np.array_equal(epochs[0], epochs[1])
    assert not np.array_equal(StreamBatchSampler(ec_idx, b, seed=4, mode="unique").epoch_batches(), epochs[0])


def test_soft_sampler_is_a_permutation():
    ec_idx = np.arange(1000, dtype=np.int32) % 7
    sampler = StreamBatchSampler(ec_idx, 64, seed=0, mode="soft")
    batches = sampler.epoch_batches()
    assert batches.shape == (15, 64) and len(np.unique(batches)) == 960
    with pytest.raises(InputError, match="cannot fill one batch"):
        StreamBatchSampler(np.zeros(10, dtype=np.int32), 4, seed=0, mode="unique")
    with pytest.raises(ValueError, match="mode"):
        StreamBatchSampler(ec_idx, 4, seed=0, mode="siblings")

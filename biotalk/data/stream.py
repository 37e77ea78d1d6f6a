"""CLIP training data streamed from memory-mapped Arrow: no split held in Python objects.

A split is written once (``write_clip_arrow``) into a folder:

    records.arrow  RecordId, Sequence (large_string), TextIdx, EcIdx (int32); IPC file, uncompressed
    texts.arrow    Text, EC: each unique text once, in first-occurrence order
    ec_idx.npy     the EcIdx column again as one contiguous int32 array, for the batch sampler
    meta.json      name, sizes, class ECs (``LabelMap`` order) and the source key; written last

The checks, text table and class ids are those of ``clip_data.clip_split``, so ``ArrowClipDataset`` yields
the very items of ``ClipDataset`` (same crops per seed, epoch and record). Reading maps the files
(``pa.memory_map``): strings are sliced out of the mapped buffers per item, so a process touches only the
pages of the records it reads, and DataLoader workers reopen the files instead of receiving copies.
``biotalk.data.stream_sampler.StreamBatchSampler`` draws EC-unique batches from ``ec_idx.npy`` alone.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from biotalk.cache import cache_key
from biotalk.data.clip_data import ClipDataset, ClipSplit, crop
from biotalk.data.errors import InputError
from biotalk.ec import InvalidEC, LabelMap, parse_ec
from biotalk.io import atomic_dir
from biotalk.rng import stream

FORMAT_VERSION = 1
RECORDS, TEXTS, EC_IDX, META = "records.arrow", "texts.arrow", "ec_idx.npy", "meta.json"
RECORD_SCHEMA = pa.schema([("RecordId", pa.large_string()), ("Sequence", pa.large_string()),
                           ("TextIdx", pa.int32()), ("EcIdx", pa.int32())])
TEXT_SCHEMA = pa.schema([("Text", pa.large_string()), ("EC", pa.large_string())])
BATCH_ROWS = 65_536  # rows per Arrow record batch


def _frame(rows: Any) -> pl.DataFrame:
    """A polars frame over a ``datasets.Dataset`` (its Arrow table, not Python rows), a frame or a parquet path."""
    if isinstance(rows, pl.DataFrame):
        return rows
    if isinstance(rows, str | Path):
        return pl.read_parquet(rows)
    table = getattr(getattr(rows, "data", None), "table", None)
    if isinstance(table, pa.Table) and getattr(rows, "_indices", None) is None:  # a Dataset with no row selection
        return pl.from_arrow(table)
    return pl.DataFrame({c: list(rows[c]) for c in rows.column_names})


def _normalised_ecs(df: pl.DataFrame, name: str) -> dict[str, str]:
    """Each raw EC string -> its normalised full EC; the first record of a bad one is named."""
    out = {}
    for raw in df["EC"].unique(maintain_order=True).to_list():
        try:
            parsed = parse_ec(raw)
            problem = None if parsed.is_full else f"partial EC {raw!r}"
        except InvalidEC as err:
            problem = str(err)
        if problem:
            rid = df.filter(pl.col("EC") == raw)["RecordId"][0]
            raise InputError(f"{name}: record {rid}: {problem}")
        out[raw] = str(parsed)
    return out


def _first_bad(df: pl.DataFrame, bad: pl.Expr) -> str | None:
    hit = df.filter(bad)
    return None if hit.is_empty() else str(hit["RecordId"][0])


def index_split(rows: Any, name: str, text_column: str = "DescriptionMasked") -> tuple[pl.DataFrame, pl.DataFrame, list[str]]:
    """(records, texts, class ECs) of a split, checked as ``clip_split`` checks it, in columnar form."""
    df = _frame(rows).select(pl.col("RecordId").cast(pl.String), pl.col("Sequence").cast(pl.String),
                             pl.col("EC").cast(pl.String), pl.col(text_column).cast(pl.String).alias("Text"))
    df = df.with_row_index("Row")
    checks = [(pl.col("Sequence").is_null() | (pl.col("Sequence").str.len_bytes() == 0), "empty Sequence"),
              (pl.col("Text").is_null() | (pl.col("Text").str.strip_chars() == ""), f"empty {text_column}")]
    for bad, what in checks:
        if (rid := _first_bad(df, bad)) is not None:
            raise InputError(f"{name}: record {rid}: {what}")
    ecs = _normalised_ecs(df, name)
    df = df.with_columns(pl.col("EC").replace_strict(ecs, return_dtype=pl.String))
    first_ec = pl.col("EC").sort_by("Row").first().over("Text")
    clash = df.filter(pl.col("EC") != first_ec).sort("Row")
    if not clash.is_empty():
        row = clash.row(0, named=True)
        other = df.filter(pl.col("Text") == row["Text"]).sort("Row")["EC"][0]
        raise InputError(f"{name}: record {row['RecordId']}: text shared by ECs {other} and {row['EC']}")
    texts = df.unique("Text", keep="first", maintain_order=True).select("Text", "EC")
    texts = texts.with_row_index("TextIdx")
    labels = LabelMap.from_ecs(ecs.values())
    records = df.join(texts.select("Text", "TextIdx"), on="Text", how="left").sort("Row").select(
        "RecordId", "Sequence", pl.col("TextIdx").cast(pl.Int32),
        pl.col("EC").replace_strict(labels.label2id, return_dtype=pl.Int32).alias("EcIdx"))
    return records, texts.select("Text", "EC"), list(labels.labels)


def _write_ipc(path: Path, frame: pl.DataFrame, schema: pa.Schema) -> None:
    table = frame.to_arrow().cast(schema)
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
        for batch in table.to_batches(max_chunksize=BATCH_ROWS):
            writer.write_batch(batch)


def write_clip_arrow(rows: Any, out: str | Path, name: str, text_column: str = "DescriptionMasked",
                     source_key: str = "") -> Path:
    """Check and index a split (as ``clip_split``) and write it to the folder ``out`` (replaced atomically)."""
    records, texts, class_ecs = index_split(rows, name, text_column)
    with atomic_dir(out) as tmp:
        _write_ipc(tmp / RECORDS, records, RECORD_SCHEMA)
        _write_ipc(tmp / TEXTS, texts, TEXT_SCHEMA)
        np.save(tmp / EC_IDX, records["EcIdx"].to_numpy().astype(np.int32))
        meta = {"version": FORMAT_VERSION, "name": name, "n": len(records), "n_texts": len(texts),
                "text_column": text_column, "class_ecs": class_ecs, "source": source_key}
        (tmp / META).write_text(json.dumps(meta, indent=1))
    return Path(out)


def folder_key(path: str | Path, *parts: str) -> str:
    """A cheap key of a benchmark folder's data (path, size and mtime of each parquet/csv file) and ``parts``:
    reading 30 GB to hash them on every run would cost more than the copy it guards."""
    files = sorted(p for p in Path(path).rglob("*") if p.suffix in (".parquet", ".csv"))
    return cache_key(parts=list(parts), files=[(str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in files])


def ensure_clip_arrow(rows: Any, out: str | Path, name: str, text_column: str = "DescriptionMasked",
                      source_key: str = "") -> Path:
    """``write_clip_arrow`` unless ``out`` already holds this source (same ``source_key`` and text column)."""
    meta_file = Path(out) / META
    if source_key and meta_file.is_file():
        meta = json.loads(meta_file.read_text())
        if (meta.get("version"), meta.get("source"), meta.get("text_column")) == (FORMAT_VERSION, source_key, text_column):
            return Path(out)
    return write_clip_arrow(rows, out, name, text_column, source_key)


class ArrowColumn(Sequence):
    """One column of a memory-mapped Arrow table: ``col[i]`` reads a value from the mapped buffers (strings
    decoded per item); ``col[a:b]`` gives a list. Works on chunked (multi-batch) columns."""

    def __init__(self, column: pa.ChunkedArray) -> None:
        self.is_string = pa.types.is_large_string(column.type)
        self.chunks = [self._views(c) for c in column.chunks]
        self.starts = np.cumsum([0] + [len(c) for c in column.chunks])

    def _views(self, chunk: pa.Array) -> tuple[np.ndarray, ...]:
        if chunk.null_count:
            raise ValueError("ArrowColumn reads columns without nulls")
        buffers = chunk.buffers()
        if not self.is_string:
            return (chunk.to_numpy(zero_copy_only=True),)
        offsets = np.frombuffer(buffers[1], dtype=np.int64)[chunk.offset : chunk.offset + len(chunk) + 1]
        data = np.frombuffer(buffers[2], dtype=np.uint8) if buffers[2] is not None else np.zeros(0, np.uint8)
        return offsets, data

    def __len__(self) -> int:
        return int(self.starts[-1])

    def _get(self, i: int) -> Any:
        if not -len(self) <= i < len(self):
            raise IndexError(f"row {i} outside a column of {len(self)}")
        i %= len(self)
        c = int(np.searchsorted(self.starts, i, side="right")) - 1
        views, j = self.chunks[c], i - int(self.starts[c])
        if not self.is_string:
            return views[0][j].item()
        offsets, data = views
        return data[offsets[j] : offsets[j + 1]].tobytes().decode()

    def __getitem__(self, i: int | slice) -> Any:
        if isinstance(i, slice):
            return [self._get(j) for j in range(*i.indices(len(self)))]
        return self._get(int(i))


class ClipArrowSplit:
    """A split written by ``write_clip_arrow``, opened lazily and memory-mapped; pickles as its path (a
    DataLoader worker maps the files itself)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        meta_file = self.path / META
        if not meta_file.is_file():
            raise FileNotFoundError(f"{self.path}: no {META}: not a complete split written by write_clip_arrow")
        self.meta = json.loads(meta_file.read_text())
        if self.meta.get("version") != FORMAT_VERSION:
            raise InputError(f"{self.path}: format version {self.meta.get('version')}, this code reads {FORMAT_VERSION}")
        self.name, self._columns = self.meta["name"], None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_columns": None}

    def _open(self) -> dict[str, ArrowColumn]:
        if self._columns is None:
            cols = {}
            for file in (RECORDS, TEXTS):
                table = pa.ipc.open_file(pa.memory_map(str(self.path / file))).read_all()
                cols.update({c: ArrowColumn(table.column(c)) for c in table.column_names})
            self._columns = cols
        return self._columns

    def __len__(self) -> int:
        return int(self.meta["n"])

    @property
    def sequences(self) -> ArrowColumn:
        return self._open()["Sequence"]

    @property
    def record_ids(self) -> ArrowColumn:
        return self._open()["RecordId"]

    @property
    def texts(self) -> ArrowColumn:
        """Each unique text once: what the collator tokenises and the frozen text tower embeds."""
        return self._open()["Text"]

    @property
    def text_ecs(self) -> ArrowColumn:
        return self._open()["EC"]

    @property
    def text_idx(self) -> ArrowColumn:
        return self._open()["TextIdx"]

    @property
    def ec_column(self) -> ArrowColumn:
        return self._open()["EcIdx"]

    @property
    def ec_idx(self) -> np.ndarray:
        """Class id per record: one int32 array mapped from ``ec_idx.npy`` (what the sampler reads)."""
        return np.load(self.path / EC_IDX, mmap_mode="r")

    @property
    def class_ecs(self) -> list[str]:
        return list(self.meta["class_ecs"])

    @property
    def ecs(self) -> Sequence[str]:
        """Each record's EC, read through its class id (what evaluation's ``set(train.ecs)`` iterates)."""
        return _Mapped(self.ec_idx, self.class_ecs)

    def subset(self, keep: np.ndarray) -> ClipSplit:
        """The records ``keep`` in memory (a kNN index sample), with the texts they use re-indexed."""
        keep = np.asarray(keep, dtype=np.int64)
        text_idx = np.array([self.text_idx[i] for i in keep.tolist()], dtype=np.int64)
        used, local = np.unique(text_idx, return_inverse=True)
        return ClipSplit(name=self.name, record_ids=[self.record_ids[i] for i in keep.tolist()],
                         sequences=[self.sequences[i] for i in keep.tolist()],
                         ecs=[self.class_ecs[i] for i in self.ec_idx[keep].tolist()],
                         texts=[self.texts[i] for i in used.tolist()], text_idx=local.astype(np.int64),
                         ec_idx=np.asarray(self.ec_idx[keep], dtype=np.int64))


class _Mapped(Sequence):
    """``labels[ids[i]]`` for each i, computed on access."""

    def __init__(self, ids: np.ndarray, labels: list[str]) -> None:
        self.ids, self.labels = ids, labels

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i):
        return [self.labels[j] for j in self.ids[i].tolist()] if isinstance(i, slice) else self.labels[int(self.ids[i])]


class ArrowClipDataset(ClipDataset):
    """``ClipDataset``'s items (``sequence`` crop, ``text_idx``, ``ec_idx``) read from a ``ClipArrowSplit``: the
    class id comes from the Arrow column, so a worker never maps the ``.npy`` per item."""

    def __getitem__(self, i: int) -> dict:
        rng = stream(self.seed, self.epoch, i) if self.random_crop else None
        return {"sequence": crop(self.split.sequences[i], self.window_nt, rng),
                "text_idx": self.split.text_idx[i], "ec_idx": self.split.ec_column[i]}

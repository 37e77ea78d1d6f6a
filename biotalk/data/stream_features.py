"""Classifier training data streamed from disk: a split's ECs and DNA in a memory-mapped Arrow file.

``load_benchmark`` holds a whole split in memory; Benchmark-I's Train (~27.9 M rows) does not fit. Here the
split file is read in record batches, each batch goes through the loader's own ``normalise`` (so the rows,
their order and their ECs are those ``load_benchmark`` returns: every rule is row by row), and only the two
columns the classifier reads are kept, in a folder replaced atomically:

    rows.arrow   EC (normalised full EC), Sequence (upper-case DNA); Arrow IPC file, uncompressed
    meta.json    n, the source file and key, unusable rows per reason; written last

``MappedRows(folder)`` maps the file: ``sequences`` reads a row's DNA from the mapped buffers (what the
sharded embedding store embeds, shard by shard), ``ecs`` is the EC column as Arrow, and ``labels`` and
``class_ids`` give the label map and one int64 class id per row without a Python string per row.
"""

from __future__ import annotations

import json
import warnings
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from biotalk.data.loader import SplitReport, UnusableRowsWarning, normalise
from biotalk.data.stream import ArrowColumn
from biotalk.ec import LabelMap
from biotalk.io import atomic_dir

FORMAT_VERSION = 1
ROWS, META = "rows.arrow", "meta.json"
SCHEMA = pa.schema([("EC", pa.large_string()), ("Sequence", pa.large_string())])
KEEP = ("EC", "Sequence")
BATCH_ROWS = 65_536


def _batches(path: Path, batch_rows: int) -> Iterator[pl.DataFrame]:
    """The columns EC and Sequence of a split file (parquet, or csv read as text like the loader), in batches."""
    if path.suffix == ".csv":
        names = pacsv.open_csv(path).schema.names
        wanted = {name: name.strip() for name in names if name.strip() in KEEP}
        reader = pacsv.open_csv(path, convert_options=pacsv.ConvertOptions(
            include_columns=list(wanted), column_types=dict.fromkeys(wanted, pa.string()),
            strings_can_be_null=True, null_values=[""]))
    else:
        file = pq.ParquetFile(path, pre_buffer=False, buffer_size=1 << 20)  # pre-buffered reads pile up (loader.py)
        wanted = {name: name.strip() for name in file.schema_arrow.names if name.strip() in KEEP}
        reader = file.iter_batches(batch_size=batch_rows, columns=list(wanted))
    if sorted(wanted.values()) != sorted(KEEP):
        raise ValueError(f"{path}: needs at least the columns EC and Sequence, has {sorted(wanted.values())}")
    for batch in reader:
        frame = pl.from_arrow(batch).rename(wanted)
        for start in range(0, frame.height, batch_rows):
            yield frame.slice(start, batch_rows)


def write_rows(path: str | Path, out: str | Path, source_key: str = "", batch_rows: int = BATCH_ROWS) -> Path:
    """Copy a split file's usable rows (``load_benchmark``'s, in its order) to ``out`` batch by batch."""
    path, unusable, n, rows_read = Path(path), Counter(), 0, 0
    with atomic_dir(out) as tmp:
        with pa.OSFile(str(tmp / ROWS), "wb") as sink, pa.ipc.new_file(sink, SCHEMA) as writer:
            for frame in _batches(path, batch_rows):
                report = SplitReport(str(path))
                rows = normalise(frame, curated=True, report=report).select(KEEP)
                unusable.update(report.unusable)
                rows_read, n = rows_read + report.rows, n + rows.height
                writer.write_table(rows.to_arrow().cast(SCHEMA), max_chunksize=batch_rows)
        if not n:
            raise ValueError(f"{path}: no usable rows ({rows_read} read; {dict(unusable)})")
        meta = {"version": FORMAT_VERSION, "n": n, "rows_read": rows_read, "unusable": dict(sorted(unusable.items())),
                "file": str(path), "source": source_key}
        (tmp / META).write_text(json.dumps(meta, indent=1))
    if unusable:
        warnings.warn(f"{path}: {sum(unusable.values())} unusable rows left out ({dict(unusable)})",
                      UnusableRowsWarning, stacklevel=2)
    return Path(out)


def ensure_rows(path: str | Path, out: str | Path, source_key: str, batch_rows: int = BATCH_ROWS) -> Path:
    """``write_rows`` unless ``out`` already holds a complete copy of this source (same ``source_key``)."""
    meta_file = Path(out) / META
    if meta_file.is_file():
        meta = json.loads(meta_file.read_text())
        if (meta.get("version"), meta.get("source"), meta.get("file")) == (FORMAT_VERSION, source_key, str(path)):
            return Path(out)
    return write_rows(path, out, source_key, batch_rows)


class MappedRows:
    """A folder written by ``write_rows``, memory-mapped: nothing of the split is copied into the process."""

    def __init__(self, folder: str | Path) -> None:
        self.path = Path(folder)
        if not (self.path / META).is_file():
            raise FileNotFoundError(f"{self.path}: no {META}: not a complete copy written by write_rows")
        self.meta = json.loads((self.path / META).read_text())
        if self.meta.get("version") != FORMAT_VERSION:
            raise ValueError(f"{self.path}: format version {self.meta.get('version')}, this code reads {FORMAT_VERSION}")
        table = pa.ipc.open_file(pa.memory_map(str(self.path / ROWS))).read_all()
        self.ecs: pa.ChunkedArray = table["EC"]
        self.sequences = ArrowColumn(table["Sequence"])

    def __len__(self) -> int:
        return len(self.ecs)

    def labels(self) -> LabelMap:
        """The label map of these rows (``LabelMap.from_ecs`` of the distinct ECs: the same classes and order)."""
        return LabelMap.from_ecs(pc.unique(self.ecs).to_pylist())

    def class_ids(self, labels: LabelMap) -> np.ndarray:
        """int64 class id of every row (-1: not in ``labels``), one Arrow chunk at a time."""
        values = pc.unique(self.ecs)
        ids = labels.encode(values.to_pylist())
        return np.concatenate([ids[pc.index_in(chunk, value_set=values).to_numpy(zero_copy_only=False)]
                               for chunk in self.ecs.chunks]) if self.ecs.num_chunks else np.zeros(0, np.int64)

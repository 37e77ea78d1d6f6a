"""``load_benchmark(..., cache_dir=)``: a split file converted batch by batch through the loader's own
``normalise`` into a memory-mapped Arrow file (``cached_split``), so no split is ever held in memory.

    rows.arrow   every column of our schema, rows in the file's order (Arrow IPC stream, as ``datasets`` maps)
    meta.json    the source (path, size, mtime) and the split's ``SplitReport``; written last

Two rules cross batches: the row numbers in the report's examples, and ``IsDuplicate`` (a later copy of a
RecordId), found on 64-bit hashes of the RecordIds seen so far and re-checked on the RecordIds themselves
where a hash repeats. The rows, values and report equal the in-memory ones.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from biotalk.data.loader import EXAMPLES, SplitReport, _stripped, normalise
from biotalk.data.schema import SCHEMA
from biotalk.io import atomic_dir, write_json

CACHE_VERSION = 1
ROWS_FILE, META_FILE = "rows.arrow", "meta.json"
CSV_BLOCK = 64 << 20  # bytes of CSV parsed at once (~30,000 published rows)
HASH_BITS = 64  # of the RecordId hashes that find repeats across batches; fewer only to test collisions
ARROW_SCHEMA = pl.DataFrame(schema=SCHEMA).to_arrow().schema  # the types Dataset.from_polars gets


def _batches(path: Path, batch_rows: int) -> Iterator[pl.DataFrame]:
    """A split file in frames of at most ``batch_rows`` rows with the values ``_read`` gives (CSV: all text,
    an empty field null, a quoted empty one the empty string, line breaks inside quotes kept)."""
    if path.suffix == ".csv":
        parse = pacsv.ParseOptions(newlines_in_values=True)
        names = pacsv.open_csv(path, parse_options=parse).schema.names
        reader = pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=CSV_BLOCK), parse_options=parse,
                                convert_options=pacsv.ConvertOptions(
                                    column_types=dict.fromkeys(names, pa.string()), strings_can_be_null=True,
                                    quoted_strings_can_be_null=False, null_values=[""]))
    else:
        file = pq.ParquetFile(path, pre_buffer=False, buffer_size=1 << 20)  # pre-buffered reads pile up: 0.5 GB / 1 M rows
        names, reader = file.schema_arrow.names, file.iter_batches(batch_size=batch_rows)
    rename = _stripped(names, path)
    for batch in reader:
        frame = pl.from_arrow(batch).rename(rename)
        for start in range(0, frame.height, batch_rows):
            yield frame.slice(start, batch_rows)


def _hash(keys: pl.Series) -> np.ndarray:
    hashes = keys.hash(seed=0).to_numpy()
    return hashes if HASH_BITS == 64 else hashes & np.uint64((1 << HASH_BITS) - 1)


class _SeenHashes:
    """The distinct hashes seen so far as sorted runs, a run merged into the one before while that is at most
    twice its size: 8 bytes a distinct key, O(log n) runs to search."""

    def __init__(self) -> None:
        self.runs: list[np.ndarray] = []

    def repeats(self, hashes: np.ndarray) -> np.ndarray:
        """Whether each hash equals an earlier one (in an earlier call, or earlier in ``hashes``); remembers them."""
        seen = np.zeros(len(hashes), bool)
        for run in self.runs:
            seen |= run[np.minimum(np.searchsorted(run, hashes), len(run) - 1)] == hashes
        distinct, first = np.unique(hashes, return_index=True)
        repeat = np.ones(len(hashes), bool)
        repeat[first] = seen[first]
        run = distinct[~seen[first]]
        while self.runs and len(self.runs[-1]) <= 2 * len(run):
            run = np.sort(np.concatenate([self.runs.pop(), run]))
        if len(run):
            self.runs.append(run)
        return repeat


def _recheck_repeats(rows_file: Path, repeated: np.ndarray) -> None:
    """Compare the RecordIds of every row whose hash repeats (``repeated``: the hashes of the rows flagged
    ``IsDuplicate``); where a hash collision flagged a first copy, rewrite the column with the exact flags."""
    table = pa.ipc.open_stream(pa.memory_map(str(rows_file))).read_all()
    repeated, rows, offset = np.unique(repeated), [], 0
    for chunk in table["RecordId"].chunks:
        hashes = _hash(pl.Series(chunk))
        rows.append(np.flatnonzero(repeated[np.minimum(np.searchsorted(repeated, hashes), len(repeated) - 1)] == hashes)
                    + offset)
        offset += len(chunk)
    rows = np.concatenate(rows)
    exact = (~pl.Series(table["RecordId"].take(rows)).is_first_distinct()).to_numpy()
    if np.array_equal(exact, table["IsDuplicate"].take(rows).to_numpy()):
        return
    flags = table["IsDuplicate"].to_numpy()
    flags[rows] = exact
    column, offset = table.schema.get_field_index("IsDuplicate"), 0
    rewritten = rows_file.with_name(f".{rows_file.name}.flags")
    with pa.OSFile(str(rewritten), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
        for batch in table.to_batches():
            writer.write_batch(batch.set_column(column, "IsDuplicate", pa.array(flags[offset:offset + batch.num_rows])))
            offset += batch.num_rows
    os.replace(rewritten, rows_file)


def _merge(total: SplitReport, part: SplitReport) -> None:
    """Add a batch's report to its file's: the first ``EXAMPLES`` examples of the file, counts summed."""
    total.rows += part.rows
    total.returned += part.returned
    total.unusable = dict(sorted((Counter(total.unusable) + Counter(part.unusable)).items()))
    total.examples = (total.examples + part.examples)[:EXAMPLES]
    total.notes = dict(Counter(total.notes) + Counter(part.notes))


def _write_split(file: Path, out: Path, curated: bool, source: dict, batch_rows: int) -> SplitReport:
    """``normalise`` of ``file`` written batch by batch into the folder ``out`` (replaced atomically)."""
    report, masked, seen, repeated = SplitReport(str(file)), {}, _SeenHashes(), []
    with atomic_dir(out) as tmp:
        with pa.OSFile(str(tmp / ROWS_FILE), "wb") as sink, pa.ipc.new_stream(sink, ARROW_SCHEMA) as writer:
            for frame in _batches(file, batch_rows):
                part = SplitReport(str(file))
                rows = normalise(frame, curated, part, first_row=report.rows + 1, masked=masked)
                if "IsDuplicate" not in frame.columns:  # repeats across batches too (ours carry the flag)
                    hashes = _hash(rows["RecordId"])
                    later = seen.repeats(hashes)
                    repeated.append(hashes[later])
                    rows = rows.with_columns(pl.Series("IsDuplicate", later))
                writer.write_table(rows.to_arrow().cast(ARROW_SCHEMA), max_chunksize=batch_rows)
                _merge(report, part)
        if sum(len(r) for r in repeated):
            _recheck_repeats(tmp / ROWS_FILE, np.concatenate(repeated))
        write_json(tmp / META_FILE, {"source": source, "report": asdict(report)})
    return report


def cached_split(file: Path, out: Path, curated: bool, batch_rows: int) -> SplitReport:
    """The report of ``file``, its rows in ``out``: written unless ``out`` holds this very file's (same path,
    size and mtime, same format)."""
    stat = file.stat()  # before reading: a file changed while it is read is read again next time
    source = {"version": CACHE_VERSION, "file": str(file.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    if (out / META_FILE).is_file() and (out / ROWS_FILE).is_file():
        meta = json.loads((out / META_FILE).read_text())
        if meta.get("source") == source:
            return SplitReport(**{**meta["report"], "file": str(file)})
    return _write_split(file, out, curated, source, batch_rows)

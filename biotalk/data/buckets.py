"""Out-of-core building blocks of the UniProt front end (``biotalk.data.sources``) and of ``resolve_ecs``.

- ``Buckets``: a table written as Parquet parts split by a hash of one key column into a fixed number of
  buckets. Two tables bucketed on the same key join one bucket at a time (a grace hash join), so memory
  holds a bucket of each, never a whole table: Polars' streaming join keeps its whole build side.
- ``later_copies``: the rows whose key an earlier row already has ("the first copy wins"), found on 64-bit
  hashes of the key (one integer a row in memory); only the few rows whose hash repeats are read with the
  key itself, so a hash collision costs a look, never a wrong answer.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

ROW = "_row"  # row index of a lazy frame, as ``with_row_index`` numbers it


def bucket_of(key: str, buckets: int) -> pl.Expr:
    """A row's bucket: the same for the same key in every table."""
    return (pl.col(key).hash(seed=0) % buckets).alias("_bucket")


class Buckets:
    """Frames buffered up to ``batch_rows`` rows and written as one Parquet part per bucket
    (``folder/<bucket>/part-<n>.parquet``, ``n`` counting flushes), so a bucket's parts in name order are
    its rows in the order they were added."""

    def __init__(self, folder: Path, key: str, buckets: int, batch_rows: int, schema: dict | None = None) -> None:
        self.folder, self.key, self.buckets, self.batch_rows, self.schema = folder, key, buckets, batch_rows, schema
        self.frames: list[pl.DataFrame] = []
        self.pending = 0
        self.flushes = 0
        folder.mkdir(parents=True)

    def add_frame(self, frame: pl.DataFrame) -> None:
        self.frames.append(frame)
        self.pending += frame.height
        if self.pending >= self.batch_rows:
            self.flush()

    def flush(self) -> None:
        frames = [f for f in self.frames if f.height]
        self.frames, self.pending = [], 0
        if not frames:
            return
        frame = pl.concat(frames)
        self.schema = self.schema or dict(frame.schema)
        parts = frame.with_columns(bucket_of(self.key, self.buckets)).partition_by("_bucket", as_dict=True, include_key=False)
        for (bucket,), rows in parts.items():
            (self.folder / str(bucket)).mkdir(exist_ok=True)
            rows.write_parquet(self.folder / str(bucket) / f"part-{self.flushes:06d}.parquet")
        self.flushes += 1

    def files(self, bucket: int | None = None) -> list[Path]:
        return sorted(self.folder.glob("*/*.parquet" if bucket is None else f"{bucket}/*.parquet"))

    def scan(self, bucket: int | None = None) -> pl.LazyFrame:
        """One bucket's rows in the order they were added (None: every bucket); empty without parts."""
        files = self.files(bucket)
        return pl.scan_parquet(files) if files else pl.LazyFrame(schema=self.schema)


def later_copies(frame: pl.LazyFrame, key: str, order: list[str], columns: list[str]) -> pl.DataFrame:
    """The rows of ``frame`` that are not the first with their ``key`` (first by ``order``, then by row),
    with their row index ``ROW``, ``key``, ``order`` and ``columns``, in that order."""
    rows = frame.with_row_index(ROW)
    hashes = rows.select(ROW, pl.col(key).hash(seed=0).alias("_hash")).collect(engine="streaming")
    candidates = hashes.filter(pl.col("_hash").is_duplicated())[ROW]
    if candidates.is_empty():
        return pl.DataFrame(schema={ROW: pl.UInt32, **frame.select(key, *order, *columns).collect_schema()})
    found = rows.filter(pl.col(ROW).is_in(candidates.implode())).select(ROW, key, *order, *columns)
    found = found.collect(engine="streaming").sort(*order, ROW)
    return found.filter(~pl.col(key).is_first_distinct())


def drop_rows(frame: pl.LazyFrame, rows: pl.Series) -> pl.LazyFrame:
    """``frame`` without the rows of index ``rows`` (``ROW`` numbers of ``later_copies``)."""
    if rows.is_empty():
        return frame
    return frame.with_row_index(ROW).filter(~pl.col(ROW).is_in(rows.implode())).drop(ROW)

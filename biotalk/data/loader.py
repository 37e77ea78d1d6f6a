"""Load a BioTalk benchmark, ours or the published one, as a ``datasets.DatasetDict``.

Our builder writes ``Benchmark-X/{Train,Valid}.parquet`` and ``Test/{test1,test2}.parquet`` (and, under
strict split rules, ``Test/valid2.parquet``: zero-shot validation, returned when present); the
published BioTalk data has the same benchmark folders and ``test1.csv``/``test2.csv``, with fewer
columns (no ``Protein``, ``DescriptionMasked``, ...) and ``DBtype`` spelled ``Swissprot``/``Uniprot``.
Both come back with one schema; missing columns are filled (see ``normalise``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from biotalk.data.schema import (
    COLUMNS,
    CURATED_BENCHMARKS,
    OPTIONAL_SPLITS,
    SCHEMA,
    SHARED_SPLITS,
    SPLITS,
    benchmark_name,
    build_command,
    split_key,
)

if TYPE_CHECKING:
    from datasets import DatasetDict

_DBTYPE = {"swissprot": "SwissProt", "uniprot": "Unreviewed", "trembl": "Unreviewed", "unreviewed": "Unreviewed"}


def _find(root: Path, candidates: list[str]) -> Path:
    for name in candidates:
        if (root / name).is_file():
            return root / name
    raise FileNotFoundError(f"benchmark file not found: none of {candidates} in {root}; build one with: "
                            f"{build_command(root)}")


def _read(path: Path) -> pl.DataFrame:
    if path.suffix == ".csv":
        df = pl.read_csv(path, infer_schema=False)  # every column as text: ECs and IDs stay strings
    else:
        df = pl.read_parquet(path)
    if "EC" not in df.columns or "Sequence" not in df.columns:
        raise ValueError(f"{path}: needs at least the columns EC and Sequence, has {df.columns}")
    return df


def normalise(df: pl.DataFrame, curated: bool) -> pl.DataFrame:
    """Our schema for any benchmark table. Missing columns: ``DBtype`` is ``SwissProt`` for curated
    splits (III, IV, tests), ``DescriptionMasked`` is ``Description`` with ECs masked, ``RecordId`` is
    ``EmblCdsId|EC`` (or ``AC|EC``), ``IsDuplicate`` marks repeats of a RecordId (published balanced
    sets hold unmarked copies), ``TemplateId`` is -1; the rest is null."""
    from biotalk.data.text_clean import mask_ec

    df = df.with_columns(pl.col("EC").cast(pl.Utf8).str.strip_chars())
    missing = {c: pl.lit(None, SCHEMA[c]).alias(c) for c in COLUMNS if c not in df.columns}
    for name in ("DBtype", "DescriptionMasked", "RecordId", "IsDuplicate", "TemplateId"):
        missing.pop(name, None)
    df = df.with_columns(list(missing.values()))
    if "DBtype" in df.columns:
        norm = pl.col("DBtype").cast(pl.Utf8).str.strip_chars()
        df = df.with_columns(norm.str.to_lowercase().replace_strict(_DBTYPE, default=norm).alias("DBtype"))
    else:
        df = df.with_columns(pl.lit("SwissProt" if curated else None, pl.Utf8).alias("DBtype"))
    if "DescriptionMasked" not in df.columns:
        masked = pl.col("Description").map_elements(mask_ec, return_dtype=pl.Utf8)
        df = df.with_columns(masked.alias("DescriptionMasked"))
    if "RecordId" not in df.columns:
        df = df.with_columns((pl.coalesce("EmblCdsId", "AC", pl.lit("")) + "|" + pl.col("EC")).alias("RecordId"))
    if "IsDuplicate" not in df.columns:
        df = df.with_columns((~pl.col("RecordId").is_first_distinct()).alias("IsDuplicate"))
    if "TemplateId" not in df.columns:
        df = df.with_columns(pl.lit(-1, pl.Int32).alias("TemplateId"))
    if df["IsDuplicate"].dtype == pl.Utf8:
        df = df.with_columns(pl.col("IsDuplicate").str.to_lowercase().is_in(["true", "1"]))
    return df.select([pl.col(c).cast(t) for c, t in SCHEMA.items()])


def load_tables(path: str | Path, benchmark: str | int = "III", splits: Sequence[str] = SPLITS) -> dict[str, pl.DataFrame]:
    """``{"train", "valid", "test1", "test2"}`` (and ``"valid2"`` when built) polars tables in our schema;
    ``splits`` reads only those (validation-only tools never open a test file)."""
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"benchmark folder not found: {root}; build it with: {build_command(root)}")
    name = benchmark_name(benchmark)
    curated = name.removeprefix("Benchmark-") in CURATED_BENCHMARKS
    tables = {}
    for split in splits:
        key = split_key(name, split)
        if split in SHARED_SPLITS:  # ours in Test/, the published files at the root, csv or parquet
            candidates = [f"{key}.parquet", f"{split}.csv", f"{key}.csv", f"{split}.parquet"]
        else:
            candidates = [f"{key}.parquet", f"{key}.csv"]
        if split in OPTIONAL_SPLITS and not any((root / c).is_file() for c in candidates):
            continue
        tables[split] = normalise(_read(_find(root, candidates)), curated or split in SHARED_SPLITS)
    return tables


def load_benchmark(path: str | Path, benchmark: str | int = "III", splits: Sequence[str] = SPLITS) -> DatasetDict:
    """A benchmark as ``DatasetDict(train, valid, test1, test2[, valid2])``, every split with the same columns."""
    from datasets import Dataset, DatasetDict

    return DatasetDict({split: Dataset.from_polars(df) for split, df in load_tables(path, benchmark, splits).items()})

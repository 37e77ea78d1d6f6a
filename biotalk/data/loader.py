"""Load a BioTalk benchmark, ours or the published one, as a ``datasets.DatasetDict``.

Our builder writes ``Benchmark-X/{Train,Valid}.parquet`` and ``Test/{test1,test2}.parquet``; the
published BioTalk data has the same benchmark folders and ``test1.csv``/``test2.csv``, with fewer
columns (no ``Protein``, ``DescriptionMasked``, ...) and ``DBtype`` spelled ``Swissprot``/``Uniprot``.
Both come back with one schema; missing columns are filled (see ``normalise``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

if TYPE_CHECKING:
    from datasets import DatasetDict

SCHEMA = {
    "AC": pl.Utf8, "EC": pl.Utf8, "OC": pl.Utf8, "UniRef100": pl.Utf8, "UniRef90": pl.Utf8, "UniRef50": pl.Utf8,
    "EmblCdsId": pl.Utf8, "Sequence": pl.Utf8, "Description": pl.Utf8, "DBtype": pl.Utf8, "Protein": pl.Utf8,
    "Organism": pl.Utf8, "DescriptionMasked": pl.Utf8, "TemplateId": pl.Int32, "SplitLevel": pl.Utf8,
    "IsDuplicate": pl.Boolean, "RecordId": pl.Utf8,
}  # fmt: skip
COLUMNS = list(SCHEMA)
BENCHMARKS = ("I", "II", "III", "IV")
_DBTYPE = {"swissprot": "SwissProt", "uniprot": "Unreviewed", "trembl": "Unreviewed", "unreviewed": "Unreviewed"}


def benchmark_name(benchmark: str | int) -> str:
    """'III', 'Benchmark-III', 'iii' or 3 -> 'Benchmark-III'."""
    text = str(benchmark).strip()
    text = text.removeprefix("Benchmark-").removeprefix("benchmark-").upper()
    if text.isdigit() and 1 <= int(text) <= len(BENCHMARKS):
        text = BENCHMARKS[int(text) - 1]
    if text not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {benchmark!r}; expected one of {BENCHMARKS}")
    return f"Benchmark-{text}"


def _find(root: Path, candidates: list[str]) -> Path:
    for name in candidates:
        if (root / name).is_file():
            return root / name
    raise FileNotFoundError(f"benchmark file not found: none of {candidates} in {root}")


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
    from biotalk.data.describe import mask_ec

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


def load_tables(path: str | Path, benchmark: str | int = "III") -> dict[str, pl.DataFrame]:
    """``{"train", "valid", "test1", "test2"}`` polars tables in our schema."""
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"benchmark folder not found: {root}")
    name = benchmark_name(benchmark)
    curated = name in ("Benchmark-III", "Benchmark-IV")
    tables = {}
    for split, file in (("train", "Train"), ("valid", "Valid")):
        tables[split] = normalise(_read(_find(root / name, [f"{file}.parquet", f"{file}.csv"])), curated)
    for test in ("test1", "test2"):
        candidates = [f"Test/{test}.parquet", f"{test}.csv", f"Test/{test}.csv", f"{test}.parquet"]
        tables[test] = normalise(_read(_find(root, candidates)), curated=True)
    return tables


def load_benchmark(path: str | Path, benchmark: str | int = "III") -> DatasetDict:
    """A benchmark as ``DatasetDict(train, valid, test1, test2)``, every split with the same columns."""
    from datasets import Dataset, DatasetDict

    return DatasetDict({split: Dataset.from_polars(df) for split, df in load_tables(path, benchmark).items()})

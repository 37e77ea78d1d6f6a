"""Load a BioTalk benchmark, ours or the published one, as a ``datasets.DatasetDict``.

Our builder writes ``Benchmark-X/{Train,Valid}.parquet`` and ``Test/{test1,test2}.parquet`` (and, under
strict split rules, ``Test/valid2.parquet``: zero-shot validation, returned when present). The published
BioTalk download has ``Benchmark-Datasets-Train+Valid/Benchmark-X/{Train,Valid}.parquet`` and
``Benchmark-Datasets-Test/{test1,test2}.csv`` (the two folders may also be merged into one root), with
nine string columns in either of two orders (plus ``DBtype`` in Benchmarks I and II, ``Swissprot``/
``Uniprot``). Both come back with one schema (see ``normalise``); rows that cannot be used (no or
no full EC, no DNA) are left out, counted per reason in a ``LoadReport`` and announced by a warning.

``load_benchmark(..., cache_dir=DIR)`` never holds a split (Benchmark-I Train has ~27.9 M rows of ~2 kB): each
file goes batch by batch through the same ``normalise`` into ``DIR/Benchmark-X/<split>/``, which ``datasets``
memory-maps, reused while the source file keeps its path, size and mtime (``biotalk.data.split_cache``).
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from biotalk.data.schema import (
    BENCHMARKS,
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
from biotalk.ec import full_ecs, split_ec_field

if TYPE_CHECKING:
    from datasets import DatasetDict

_DBTYPE = {"swissprot": "SwissProt", "uniprot": "Unreviewed", "trembl": "Unreviewed", "unreviewed": "Unreviewed"}
TRAIN_VALID_DIR, TEST_DIR = "Benchmark-Datasets-Train+Valid", "Benchmark-Datasets-Test"  # the published download
NOT_DNA = r"[^ACGTRYSWKMBDHVN]"  # IUPAC nucleotide codes; N (and the other ambiguity codes) are kept
EXAMPLES = 3
BATCH_ROWS = 16_384  # rows a batch (~32 MB of published rows): the peak memory follows it, not the split
MASK_CACHE = 65_536  # masked texts kept from batch to batch (published texts repeat per EC); no more added past it


class UnusableRowsWarning(UserWarning):
    """Rows of a benchmark file were left out; ``LoadReport`` says which and why."""


@dataclass
class SplitReport:
    """What loading one split file did: rows read and returned, rows left out per reason, and notes
    (rows changed but kept: rewritten or multi-EC fields, upper-cased DNA, unknown DBtype values)."""

    file: str
    rows: int = 0
    returned: int = 0
    unusable: dict[str, int] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)
    notes: dict[str, int] = field(default_factory=dict)


@dataclass
class LoadReport:
    path: str
    benchmark: str
    splits: dict[str, SplitReport] = field(default_factory=dict)

    @property
    def unusable(self) -> int:
        return sum(sum(s.unusable.values()) for s in self.splits.values())

    def summary(self) -> str:
        """One line: rows left out per split and reason, with an example each."""
        parts = [f"{name} {sum(s.unusable.values())}/{s.rows} ({', '.join(f'{r} {n}' for r, n in s.unusable.items())};"
                 f" e.g. {Path(s.file).name} {s.examples[0]})" for name, s in self.splits.items() if s.unusable]
        return f"{self.path} {self.benchmark}: {self.unusable} unusable rows left out: " + "; ".join(parts)


def _roots(root: Path) -> tuple[Path, Path]:
    """Folders of the benchmark splits and of the shared test files: the download's two, or ``root``."""
    train = root / TRAIN_VALID_DIR
    test = root / TEST_DIR
    return (train if train.is_dir() else root), (test if test.is_dir() else root)


def available_benchmarks(path: str | Path) -> list[str]:
    """The benchmarks (``I`` ... ``IV``) with a folder in ``path``, in either layout."""
    bench_root = _roots(Path(path))[0]
    return [b for b in BENCHMARKS if (bench_root / benchmark_name(b)).is_dir()]


def _root(path: str | Path) -> Path:
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"benchmark folder not found: {root}; build it with: {build_command(root)}")
    return root


def _find(root: Path, candidates: list[Path]) -> Path:
    for path in candidates:
        if path.is_file():
            return path
    names = [str(p.relative_to(root)) for p in candidates]
    raise FileNotFoundError(f"benchmark file not found: none of {names} in {root}; build one with: "
                            f"{build_command(root)}")


def _candidates(root: Path, name: str, split: str) -> list[Path]:
    bench_root, test_root = _roots(root)
    key = split_key(name, split)
    if split in SHARED_SPLITS:  # ours in Test/, the published files at the (test) root, csv or parquet
        return [root / f"{key}.parquet", test_root / f"{split}.csv", root / f"{key}.csv", test_root / f"{split}.parquet"]
    return [bench_root / f"{key}.parquet", bench_root / f"{key}.csv"]


def split_file(root: str | Path, benchmark: str | int, split: str) -> Path:
    """The file ``load_benchmark(root, benchmark)`` reads for ``split`` (our layout or the published one)."""
    root = _root(root)
    return _find(root, _candidates(root, benchmark_name(benchmark), split))


def _split_files(path: str | Path, benchmark: str | int, splits: Sequence[str]) -> tuple[LoadReport, dict[str, Path]]:
    """An empty report and the file of each split, all found before any is read; optional splits the build
    lacks are left out."""
    root, name = _root(path), benchmark_name(benchmark)
    files = {}
    for split in splits:
        candidates = _candidates(root, name, split)
        if split not in OPTIONAL_SPLITS or any(c.is_file() for c in candidates):
            files[split] = _find(root, candidates)
    return LoadReport(str(root), name), files


def _curated(name: str, split: str) -> bool:
    """SwissProt records only: Benchmarks III and IV, and the shared test splits."""
    return name.removeprefix("Benchmark-") in CURATED_BENCHMARKS or split in SHARED_SPLITS


def _stripped(names: list[str], path: Path) -> dict[str, str]:
    """Column names without surrounding spaces; a file without EC or Sequence is refused."""
    rename = {name: name.strip() for name in names}
    if not {"EC", "Sequence"} <= set(rename.values()):
        raise ValueError(f"{path}: needs at least the columns EC and Sequence, has {list(rename.values())}")
    return rename


def _read(path: Path) -> pl.DataFrame:
    """A split file, any column order; CSV columns all as text (ECs and ids stay strings)."""
    df = pl.read_csv(path, infer_schema=False) if path.suffix == ".csv" else pl.read_parquet(path)
    return df.rename(_stripped(df.columns, path))


def _ec_lookup(values: list[str]) -> dict[str, tuple[list[str], str | None]]:
    """Each distinct EC field -> (its full ECs, normalised; the reason the row is unusable, or None)."""
    lookup = {}
    for value in values:
        kept, rejected = full_ecs(split_ec_field(value))
        reason = None if kept else "no EC" if not rejected else (
            "partial EC only" if all(why == "partial EC" for _, why in rejected) else "invalid EC")
        lookup[value] = (kept, reason)
    return lookup


def _clean(df: pl.DataFrame, report: SplitReport, first_row: int) -> pl.DataFrame:
    """Normalised ECs (one row per full EC of a multi-EC field) and upper-case DNA; rows without a
    full EC or DNA go to ``report``, never silently."""
    raw_ec = pl.col("EC").cast(pl.Utf8).fill_null("").str.strip_chars()
    df = df.with_columns(raw_ec.alias("EC"), pl.int_range(first_row, pl.len() + first_row).alias("_row"))
    lookup = _ec_lookup(df["EC"].unique().to_list())
    ecs = {k: v[0] for k, v in lookup.items()}
    reasons = {k: v[1] for k, v in lookup.items()}
    dna = pl.col("Sequence").cast(pl.Utf8).fill_null("").str.strip_chars()
    df = df.with_columns(
        pl.col("EC").replace_strict(ecs, return_dtype=pl.List(pl.Utf8)).alias("_ecs"),
        pl.when(dna == "").then(pl.lit("no sequence"))
        .when(dna.str.to_uppercase().str.contains(NOT_DNA)).then(pl.lit("not DNA"))
        .otherwise(pl.col("EC").replace_strict(reasons, return_dtype=pl.Utf8)).alias("_reason"),
        dna.str.to_uppercase().alias("_dna"),
    )
    bad = df.filter(pl.col("_reason").is_not_null())
    report.unusable = dict(sorted(Counter(bad["_reason"].to_list()).items()))
    report.examples = [f"row {r}: {why} (EC {ec!r})" for r, why, ec in bad.head(EXAMPLES).select("_row", "_reason", "EC").iter_rows()]
    good = df.filter(pl.col("_reason").is_null())
    notes = {
        "EC rewritten": good.filter((pl.col("_ecs").list.len() == 1) & (pl.col("_ecs").list.first() != pl.col("EC"))).height,
        "multi-EC rows expanded": good.filter(pl.col("_ecs").list.len() > 1).height,
        "DNA upper-cased": good.filter(pl.col("_dna") != pl.col("Sequence")).height,
    }
    report.notes.update({k: n for k, n in notes.items() if n})
    good = good.with_columns(pl.col("_dna").alias("Sequence")).explode("_ecs")
    return good.with_columns(pl.col("_ecs").alias("EC")).drop("_ecs", "_reason", "_dna", "_row")


def _dbtype(df: pl.DataFrame, curated: bool, report: SplitReport) -> pl.DataFrame:
    """``SwissProt``/``Unreviewed`` whatever the spelling; absent: ``SwissProt`` for curated splits."""
    if "DBtype" not in df.columns:
        return df.with_columns(pl.lit("SwissProt" if curated else None, pl.Utf8).alias("DBtype"))
    norm = pl.col("DBtype").cast(pl.Utf8).str.strip_chars()
    df = df.with_columns(norm.str.to_lowercase().replace_strict(_DBTYPE, default=norm).alias("DBtype"))
    for value, n in df.filter(~pl.col("DBtype").is_in(list(_DBTYPE.values()))).group_by("DBtype").len().iter_rows():
        report.notes[f"unknown DBtype {value!r}"] = n
    return df


def normalise(df: pl.DataFrame, curated: bool, report: SplitReport | None = None, first_row: int = 1,
              masked: dict[str, str] | None = None) -> pl.DataFrame:
    """Our schema for any benchmark table, unusable rows counted in ``report``. Missing columns:
    ``DBtype`` is ``SwissProt`` for curated splits (III, IV, tests), ``DescriptionMasked`` is
    ``Description`` with ECs masked, ``RecordId`` is ``EmblCdsId|EC`` (or ``AC|EC``), ``IsDuplicate``
    marks repeats of a RecordId (published balanced sets hold unmarked copies), ``TemplateId`` is -1;
    the rest is null. For a batch of a file: ``first_row`` numbers its first row in the report's examples,
    and ``masked`` (text -> masked text) carries the masked texts from batch to batch."""
    from biotalk.data.text_clean import mask_ec

    report = report or SplitReport(file="")
    report.rows = df.height
    df = _dbtype(_clean(df, report, first_row), curated, report)
    missing = [pl.lit(None, SCHEMA[c]).alias(c) for c in COLUMNS if c not in df.columns
               and c not in ("DBtype", "DescriptionMasked", "RecordId", "IsDuplicate", "TemplateId")]
    df = df.with_columns(missing)
    if "DescriptionMasked" not in df.columns:  # mask each distinct text once: published texts repeat per EC
        masked = {} if masked is None else masked
        texts = df["Description"].drop_nulls().unique().to_list()
        mapping = {t: masked[t] if t in masked else mask_ec(t) for t in texts}
        if len(masked) < MASK_CACHE:  # kept for the next batches while there is room
            masked.update(mapping)
        df = df.with_columns(pl.col("Description").replace_strict(mapping, default=None, return_dtype=pl.Utf8)
                             .alias("DescriptionMasked"))
    if "RecordId" not in df.columns:
        df = df.with_columns((pl.coalesce("EmblCdsId", "AC", pl.lit("")) + "|" + pl.col("EC")).alias("RecordId"))
    if "IsDuplicate" not in df.columns:
        df = df.with_columns((~pl.col("RecordId").is_first_distinct()).alias("IsDuplicate"))
    if "TemplateId" not in df.columns:
        df = df.with_columns(pl.lit(-1, pl.Int32).alias("TemplateId"))
    if df["IsDuplicate"].dtype == pl.Utf8:
        df = df.with_columns(pl.col("IsDuplicate").str.to_lowercase().is_in(["true", "1"]))
    report.returned = df.height
    return df.select([pl.col(c).cast(t) for c, t in SCHEMA.items()])


def read_tables(path: str | Path, benchmark: str | int = "III",
                splits: Sequence[str] = SPLITS) -> tuple[dict[str, pl.DataFrame], LoadReport]:
    """``load_tables`` and its ``LoadReport`` (rows per split, unusable rows per reason, notes)."""
    report, files = _split_files(path, benchmark, splits)
    tables = {}
    for split, file in files.items():
        report.splits[split] = SplitReport(str(file))
        tables[split] = normalise(_read(file), _curated(report.benchmark, split), report.splits[split])
    _warn(report, stacklevel=4)
    return tables, report


def _warn(report: LoadReport, stacklevel: int) -> None:
    if report.unusable:
        warnings.warn(report.summary(), UnusableRowsWarning, stacklevel=stacklevel)


def load_tables(path: str | Path, benchmark: str | int = "III", splits: Sequence[str] = SPLITS) -> dict[str, pl.DataFrame]:
    """``{"train", "valid", "test1", "test2"}`` (and ``"valid2"`` when built) polars tables in our schema;
    ``splits`` reads only those (validation-only tools never open a test file). Unusable rows are left
    out with an ``UnusableRowsWarning``; ``read_tables`` also returns the counts."""
    return read_tables(path, benchmark, splits)[0]


def load_benchmark(path: str | Path, benchmark: str | int = "III", splits: Sequence[str] = SPLITS,
                   cache_dir: str | Path | None = None, batch_rows: int = BATCH_ROWS) -> DatasetDict:
    """A benchmark as ``DatasetDict(train, valid, test1, test2[, valid2])``, every split with the same columns;
    its ``load_report`` attribute is the ``LoadReport``. With ``cache_dir`` no split is held in memory: each
    is converted ``batch_rows`` rows at a time into ``cache_dir/Benchmark-X/<split>/`` (or found there) and
    memory-mapped, with the same rows, columns, types and report."""
    from datasets import Dataset, DatasetDict

    from biotalk.data.split_cache import ROWS_FILE, cached_split

    if cache_dir is None:
        tables, report = read_tables(path, benchmark, splits)
        data = DatasetDict({split: Dataset.from_polars(df) for split, df in tables.items()})
    else:
        report, files = _split_files(path, benchmark, splits)
        data = DatasetDict()
        for split, file in files.items():
            out = Path(cache_dir) / report.benchmark / split
            report.splits[split] = cached_split(file, out, _curated(report.benchmark, split), batch_rows)
            data[split] = Dataset.from_file(str(out / ROWS_FILE))
        _warn(report, stacklevel=3)
    data.load_report = report
    return data

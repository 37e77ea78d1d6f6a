"""The shape of a built BioTalk benchmark: names, splits, columns, folder layout, and the ENZYME release
it was built with. The builder writes this shape and every reader expects it, from here.

    OUT/Benchmark-{I,II,III,IV}/{Train,Valid}.parquet   OUT/Test/{test1,test2,valid2}.parquet   OUT/build.json

``valid2`` (zero-shot validation: ECs in no training set and not in Test-II) exists in strict builds only;
the paper's rules and the published data have no such split.

``build.json`` records the ENZYME files of the build (paths relative to the repository root, absolute
outside it, with their sha256), so evaluation describes ECs with the release the labels were resolved
against and no script hard-codes a release path (``benchmark_enzyme``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Literal, get_args

import polars as pl

from biotalk.cache import file_digest
from biotalk.data.errors import InputError

if TYPE_CHECKING:
    from biotalk.data.enzyme import EnzymeDB

Benchmark = Literal["I", "II", "III", "IV"]  # the type of every config's benchmark field: checked on load
Split = Literal["train", "valid", "test1", "test2", "valid2"]
BENCHMARKS: tuple[str, ...] = get_args(Benchmark)
CURATED_BENCHMARKS = ("III", "IV")  # SwissProt records only
SPLITS: tuple[str, ...] = get_args(Split)
TEST_SPLITS = ("test1", "test2")
ZERO_SHOT_VALID = "valid2"  # chooses zero-shot settings without Test-II; strict builds only
OPTIONAL_SPLITS = (ZERO_SHOT_VALID,)  # a loader returns these only when the build has them
SHARED_SPLITS = (*TEST_SPLITS, ZERO_SHOT_VALID)  # stored once, in Test/, for every benchmark
SCHEMA = {
    "AC": pl.Utf8, "EC": pl.Utf8, "OC": pl.Utf8, "UniRef100": pl.Utf8, "UniRef90": pl.Utf8, "UniRef50": pl.Utf8,
    "EmblCdsId": pl.Utf8, "Sequence": pl.Utf8, "Description": pl.Utf8, "DBtype": pl.Utf8, "Protein": pl.Utf8,
    "Organism": pl.Utf8, "DescriptionMasked": pl.Utf8, "TemplateId": pl.Int32, "SplitLevel": pl.Utf8,
    "IsDuplicate": pl.Boolean, "RecordId": pl.Utf8,
}  # fmt: skip
COLUMNS = list(SCHEMA)
BUILD_JSON = "build.json"
BUILD_COMMAND = "python scripts/build_benchmarks.py --config configs/data/mini.yaml"
ROOT = Path(__file__).resolve().parents[2]  # the repository root: recorded input paths are relative to it
ENZYME_FIX = "pass enzyme_dat=FILE and enzclass=[FILE, ...] (the ENZYME release the benchmark was built with)"


def benchmark_name(benchmark: str | int) -> str:
    """'III', 'Benchmark-III', 'iii' or 3 -> 'Benchmark-III'."""
    text = str(benchmark).strip()
    text = text.removeprefix("Benchmark-").removeprefix("benchmark-").upper()
    if text.isdigit() and 1 <= int(text) <= len(BENCHMARKS):
        text = BENCHMARKS[int(text) - 1]
    if text not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {benchmark!r}; expected one of {BENCHMARKS}")
    return f"Benchmark-{text}"


def split_key(benchmark: str | int, split: str) -> str:
    """Where a split lives in a build, without the suffix: ('III', 'train') -> 'Benchmark-III/Train';
    the test sets and valid2 are shared by every benchmark: ('III', 'test1') -> 'Test/test1'."""
    if split in SHARED_SPLITS:
        return f"Test/{split}"
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    return f"{benchmark_name(benchmark)}/{split.capitalize()}"


# Every split file of a build, in writing order (Test/valid2 in strict builds only).
SPLIT_KEYS = tuple(split_key(b, s) for b in BENCHMARKS for s in ("train", "valid")) + tuple(
    split_key(BENCHMARKS[0], t) for t in SHARED_SPLITS
)


def build_command(out: str | Path) -> str:
    """The command that builds the mini benchmark into ``out`` (for 'not found' messages)."""
    return f"{BUILD_COMMAND} out={out}"


def portable_path(path: str | Path) -> str:
    """``path`` as recorded in build.json: relative to the repository root when inside it (so the record
    is the same on every machine and from any working directory), else absolute."""
    path = Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _recorded_path(text: str) -> Path:
    path = Path(text)
    return path if path.is_absolute() else ROOT / path


def enzyme_record(enzyme_dat: Path, enzclass: list[Path]) -> dict:
    """The ``enzyme`` entry of build.json: the release's files and their sha256."""
    files = [enzyme_dat, *enzclass]
    return {
        "enzyme_dat": portable_path(enzyme_dat),
        "enzclass": [portable_path(p) for p in enzclass],
        "sha256": {portable_path(p): file_digest(p) for p in files},
    }


def _recorded_enzyme(data_dir: Path) -> tuple[str, list[str], dict[str, str]]:
    """(enzyme.dat, enzclass files, sha256 by file) as recorded in ``data_dir/build.json``."""
    build = data_dir / BUILD_JSON
    if not build.is_file():
        raise FileNotFoundError(f"{build} not found, so the ENZYME release of {data_dir} is unknown: {ENZYME_FIX}")
    record = json.loads(build.read_text()).get("enzyme")
    if record is None:
        raise FileNotFoundError(f"{build} names no ENZYME files (an older build): rebuild it, or {ENZYME_FIX}")
    return record["enzyme_dat"], record["enzclass"], record["sha256"]


def _checked(recorded: str, sha256: dict[str, str], data_dir: Path) -> Path:
    path = _recorded_path(recorded)
    if not path.is_file():
        raise FileNotFoundError(f"ENZYME file {path} (named in {data_dir / BUILD_JSON}) not found: {ENZYME_FIX}")
    if file_digest(path) != sha256[recorded]:
        raise InputError(f"ENZYME file {path} changed since {data_dir} was built (sha256 differs from "
                         f"{data_dir / BUILD_JSON}): rebuild the benchmark, or {ENZYME_FIX}")
    return path


def benchmark_enzyme(
    data_dir: str | Path, enzyme_dat: str | Path | None = None, enzclass: list[str | Path] | None = None
) -> EnzymeDB:
    """The ENZYME release the benchmark in ``data_dir`` was built with, from its build.json (each file
    checked against its recorded sha256); explicit ``enzyme_dat`` / ``enzclass`` replace the recorded files."""
    from biotalk.data.enzyme import load_enzyme

    if enzyme_dat is None or enzclass is None:
        data_dir = Path(data_dir)
        dat, classes, sha256 = _recorded_enzyme(data_dir)
        if enzyme_dat is None:
            enzyme_dat = _checked(dat, sha256, data_dir)
        if enzclass is None:
            enzclass = [_checked(p, sha256, data_dir) for p in classes]
    return load_enzyme(enzyme_dat, enzclass)

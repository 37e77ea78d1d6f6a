"""load_benchmark on our build and on a copy in the published BioTalk layout (parquet + csv)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import polars as pl
import pytest

from biotalk.data import load_benchmark, split_cache
from biotalk.data.loader import (
    TEST_DIR,
    TRAIN_VALID_DIR,
    SplitReport,
    UnusableRowsWarning,
    normalise,
    read_tables,
    split_file,
)
from biotalk.data.schema import COLUMNS, benchmark_name
from biotalk.ec import EC_IN_TEXT_RE, is_full_ec

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests/fixtures/published"  # the download's layout; its README lists what is planted
PUBLISHED = ["AC", "EC", "OC", "UniRef100", "UniRef90", "UniRef50", "EmblCdsId", "Sequence", "Description"]


def test_round_trip_of_our_build(mini_benchmark: Path) -> None:
    stats = json.loads((mini_benchmark / "stats.json").read_text())
    for bench in ("I", "II", "III", "IV"):
        with warnings.catch_warnings():
            warnings.simplefilter("error", UnusableRowsWarning)  # every row of our build is usable
            data = load_benchmark(mini_benchmark, bench)
        assert data.load_report.unusable == 0 and not any(s.notes for s in data.load_report.splits.values())
        assert list(data) == ["train", "valid", "test1", "test2", "valid2"]  # valid2: a strict build
        assert all(data[s].column_names == COLUMNS for s in data)
        assert len({repr(data[s].features) for s in data}) == 1  # one schema for every split
        assert data["train"].num_rows == stats[f"Benchmark-{bench}"]["Train"]["records"]
        assert data["test2"].num_rows == stats["Test"]["test2"]["records"]
        assert data["valid2"].num_rows == stats["Test"]["valid2"]["records"]
    data = load_benchmark(mini_benchmark, "Benchmark-IV")
    parquet = pl.read_parquet(mini_benchmark / "Benchmark-IV" / "Train.parquet")
    assert data["train"].to_polars().equals(parquet)
    assert parquet["IsDuplicate"].sum() > 0  # the flag survives the round trip


def _published_copy(mini_benchmark: Path, root: Path) -> None:
    """Our files cut to the published columns: parquet benchmarks, test1.csv/test2.csv at the root,
    leading spaces in EC (as in the reference data), Swissprot/Uniprot in Benchmark I, balanced copies unmarked."""
    for bench in ("Benchmark-I", "Benchmark-III", "Benchmark-IV"):
        (root / bench).mkdir(parents=True)
        for split in ("Train", "Valid"):
            df = pl.read_parquet(mini_benchmark / bench / f"{split}.parquet")
            cols = PUBLISHED + (["DBtype"] if bench == "Benchmark-I" else [])
            df = df.with_columns(
                (" " + pl.col("EC")).alias("EC"), pl.col("DBtype").replace({"SwissProt": "Swissprot", "Unreviewed": "Uniprot"})
            )
            df.select(cols).write_parquet(root / bench / f"{split}.parquet")
    for test in ("test1", "test2"):
        pl.read_parquet(mini_benchmark / "Test" / f"{test}.parquet").select(PUBLISHED).write_csv(root / f"{test}.csv")


def test_published_layout(mini_benchmark: Path, tmp_path: Path) -> None:
    _published_copy(mini_benchmark, tmp_path)
    ours = load_benchmark(mini_benchmark, "III")
    theirs = load_benchmark(tmp_path, "III")
    for split in ("train", "valid", "test1", "test2"):
        a, b = ours[split].to_polars(), theirs[split].to_polars()
        assert b.columns == COLUMNS
        assert a.select(PUBLISHED).equals(b.select(PUBLISHED)), split  # values round-trip (EC stripped)
        assert (b["DBtype"] == "SwissProt").all()
        assert b["RecordId"].equals(a["RecordId"])
        assert (b["TemplateId"] == -1).all() and b["Protein"].is_null().all()
        assert not b["DescriptionMasked"].str.contains(r"\d+\.\d+\.\d+\.n?\d+").any()
    assert list(theirs) == ["train", "valid", "test1", "test2"]  # no valid2 in the published layout
    bench_i = load_benchmark(tmp_path, "I")["train"].to_polars()
    assert set(bench_i["DBtype"]) == {"SwissProt", "Unreviewed"}
    # Published balanced sets repeat rows without a flag: repeats are marked on load.
    four = load_benchmark(tmp_path, "IV")["train"].to_polars()
    ours_iv = load_benchmark(mini_benchmark, "IV")["train"].to_polars()
    assert four["IsDuplicate"].sum() == ours_iv["IsDuplicate"].sum() > 0


def test_missing_files_and_names(tmp_path: Path, mini_benchmark: Path) -> None:
    with pytest.raises(FileNotFoundError, match="Benchmark-II"):
        _published_copy(mini_benchmark, tmp_path)
        load_benchmark(tmp_path, "II")  # the copy has no Benchmark-II folder
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_benchmark(tmp_path / "nowhere")
    assert benchmark_name(3) == benchmark_name("iii") == benchmark_name("Benchmark-III") == "Benchmark-III"
    with pytest.raises(ValueError, match="unknown benchmark"):
        benchmark_name("V")


def _published(bench: str) -> tuple[dict[str, pl.DataFrame], object]:
    with pytest.warns(UnusableRowsWarning) if bench in ("I", "IV") else warnings.catch_warnings():
        return read_tables(FIXTURE, bench)


def _source(report: object, split: str) -> pl.DataFrame:
    file = Path(report.splits[split].file)
    return pl.read_csv(file, infer_schema=False) if file.suffix == ".csv" else pl.read_parquet(file)


def test_published_fixture_any_column_order():
    """Every file, README or code column order, CSV or parquet, comes back by column name."""
    for bench in ("I", "II", "III", "IV"):
        tables, report = _published(bench)
        assert list(tables) == ["train", "valid", "test1", "test2"]
        for split, df in tables.items():
            src = _source(report, split)
            assert df.columns == COLUMNS and report.splits[split].rows == src.height
            assert all(is_full_ec(ec) for ec in df["EC"])
            kept = df.join(src.select("EmblCdsId", "AC", "UniRef100", "UniRef90"), on="EmblCdsId", how="left",
                           suffix="_src").unique("RecordId")
            for col in ("AC", "UniRef100", "UniRef90"):  # columns the files hold in different places
                assert kept[col].equals(kept[f"{col}_src"], check_names=False), (bench, split, col)
            assert not any(EC_IN_TEXT_RE.search(t) for t in df["DescriptionMasked"])
            assert all(EC_IN_TEXT_RE.search(t) for t in df["Description"])  # the published text names its EC
            assert set(df["DBtype"]) <= {"SwissProt", "Unreviewed"}


def test_published_fixture_rows_it_cannot_use_and_fixes():
    with pytest.warns(UnusableRowsWarning, match=r"Train.csv row 7: invalid EC \(EC '1.2.3'\)"):
        data = load_benchmark(FIXTURE, "I")
    train, report = data["train"].to_polars(), data.load_report.splits["train"]
    assert report.unusable == {"invalid EC": 1, "partial EC only": 1}
    assert (report.rows, report.returned) == (10, 9)  # two rows out, one multi-EC row in two
    assert report.notes == {"EC rewritten": 1, "multi-EC rows expanded": 1}
    multi = train.filter(pl.col("EmblCdsId") == "NP_416356.1")
    assert multi["RecordId"].to_list() == ["NP_416356.1|2.7.7.7", "NP_416356.1|1.17.4.1"]
    assert train.filter(pl.col("EmblCdsId") == "NP_418193.1")["EC"].to_list() == ["3.6.3.14"]  # "EC 3.6.3.14."
    assert set(train["DBtype"]) == {"SwissProt", "Unreviewed"}
    tables, report = _published("IV")
    assert report.splits["valid"].unusable == {"no sequence": 1} and tables["valid"].height == 2
    three = _published("III")
    assert three[1].splits["train"].notes == {"DNA upper-cased": 1}
    assert three[0]["train"]["EC"].str.starts_with(" ").sum() == 0
    assert (three[0]["train"]["Sequence"].str.contains("[^ACGTN]") == False).all()  # noqa: E712
    assert three[0]["test1"]["Sequence"].str.contains("NNNNNN").sum() == 1  # N kept: a model reads it as N


def test_published_fixture_repeated_rows_marked():
    for bench, repeats in (("II", 2), ("IV", 2), ("III", 0)):
        train = _published(bench)[0]["train"]
        assert train["IsDuplicate"].sum() == repeats == train.height - train["RecordId"].n_unique()
        assert not train.filter(~pl.col("IsDuplicate"))["RecordId"].is_duplicated().any()


def test_normalise_spellings_and_unusable_rows():
    df = pl.DataFrame({"Sequence": ["atgaaa", "ATG", "MKVLPE", "ATG", "ATGRYN"], "EmblCdsId": list("abcde"),
                       "EC": ["ec:1.1.1.1 | EC 2.7.7.7", "3.5.1.n3.", "1.1.1.1", None, "1.1.1.1/1.1.1.-"],
                       "DBtype": ["SwissProt", " trembl", "Uniprot", "Uniprot", "other"], "Description": list("vwxyz")})
    report = SplitReport("memory")
    out = normalise(df, curated=False, report=report)
    assert out["RecordId"].to_list() == ["a|1.1.1.1", "a|2.7.7.7", "b|3.5.1.n3", "e|1.1.1.1"]
    assert out["DBtype"].to_list() == ["SwissProt", "SwissProt", "Unreviewed", "other"]
    assert report.unusable == {"no EC": 1, "not DNA": 1}
    assert report.notes == {"EC rewritten": 2, "multi-EC rows expanded": 1, "DNA upper-cased": 1,
                            "unknown DBtype 'other'": 1}


def _audit(folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "scripts/audit_benchmark.py", str(folder)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_audit_reads_the_published_layout(tmp_path):
    done = _audit(FIXTURE)
    assert done.returncode == 0 and done.stdout.splitlines()[-1] == "CLEAN: no leak", done.stdout + done.stderr
    assert "unusable rows left out" in done.stderr
    copy = Path(shutil.copytree(FIXTURE, tmp_path / "published"))
    test1 = copy / "Benchmark-Datasets-Test/test1.csv"
    train = copy / "Benchmark-Datasets-Train+Valid/Benchmark-III/Train.parquet"
    row = pl.read_csv(test1, infer_schema=False).head(1)
    pl.concat([pl.read_parquet(train), row.select(pl.read_parquet(train).columns)]).write_parquet(train)
    done = _audit(copy)
    assert done.returncode == 1 and "FAIL  identical DNA" in done.stdout, done.stdout + done.stderr


def _planted(df: pl.DataFrame, column: str, values: dict[int, str | None]) -> pl.DataFrame:
    """``df`` with ``column`` set to ``value`` at 0-based row ``row`` for each pair of ``values``."""
    expr = pl.col(column)
    for row, value in values.items():
        expr = pl.when(pl.int_range(pl.len()) == row).then(pl.lit(value, pl.Utf8)).otherwise(expr)
    return df.with_columns(expr.alias(column))


def _published_batches_copy(mini_benchmark: Path, root: Path) -> None:
    """Benchmark-II and the tests in the download's layout, with what crosses batches of 50 rows planted in
    Train: unmarked balancing copies (and the first 60 rows again at the end), a multi-EC field, lower-case DNA,
    an invalid EC, a row without DNA and a protein in three different batches; Valid and the tests are CSV,
    Valid with a line break inside a quoted description and an empty one."""
    bench, tests = root / TRAIN_VALID_DIR / "Benchmark-II", root / TEST_DIR
    bench.mkdir(parents=True)
    tests.mkdir()
    cols = [*PUBLISHED, "DBtype"]
    train = pl.read_parquet(mini_benchmark / "Benchmark-II" / "Train.parquet").select(cols)
    train = pl.concat([train, train.head(60)])
    train = _planted(train, "EC", {4: "2.7.7.7; 1.17.4.1", 119: "1.2.3"})
    train = _planted(train, "Sequence", {9: train["Sequence"][9].lower(), 199: None, 299: "MKVLPE"})
    train.write_parquet(bench / "Train.parquet", row_group_size=128)
    valid = pl.read_parquet(mini_benchmark / "Benchmark-II" / "Valid.parquet").select(cols)
    _planted(valid, "Description", {0: "line one\nline two", 1: ""}).write_csv(bench / "Valid.csv")
    for test in ("test1", "test2"):
        pl.read_parquet(mini_benchmark / "Test" / f"{test}.parquet").select(PUBLISHED).write_csv(tests / f"{test}.csv")



def _assert_same(memory, streamed, cache: Path) -> None:
    """Every split: the same rows, values, types and order; the same report; memory-mapped from ``cache``."""
    assert list(streamed) == list(memory)
    for split in memory:
        assert streamed[split].features == memory[split].features, split
        assert streamed[split].to_polars().equals(memory[split].to_polars()), split
        files = [Path(f["filename"]) for f in streamed[split].cache_files]
        assert len(files) == 1 and files[0].is_relative_to(cache), files  # mapped, not copied into the process
    assert streamed.load_report == memory.load_report


def test_streamed_equals_in_memory(mini_benchmark: Path, tmp_path: Path) -> None:
    _published_batches_copy(mini_benchmark, tmp_path / "published")
    with pytest.warns(UnusableRowsWarning):
        memory = load_benchmark(tmp_path / "published", "II")
    with pytest.warns(UnusableRowsWarning, match=r"Train.parquet row 120: invalid EC"):
        streamed = load_benchmark(tmp_path / "published", "II", cache_dir=tmp_path / "cache", batch_rows=50)
    _assert_same(memory, streamed, tmp_path / "cache")
    report = streamed.load_report.splits["train"]
    assert report.unusable == {"invalid EC": 1, "no sequence": 1, "not DNA": 1}
    assert [e.split(":")[0] for e in report.examples] == ["row 120", "row 200", "row 300"]  # numbered in the file
    assert report.notes == {"multi-EC rows expanded": 1, "DNA upper-cased": 1}
    train = streamed["train"].to_polars()
    assert train["IsDuplicate"].sum() >= 60 and not train.filter(~pl.col("IsDuplicate"))["RecordId"].is_duplicated().any()
    assert "line one\nline two" in streamed["valid"]["Description"] and "" in streamed["valid"]["Description"]
    for bench in ("I", "IV"):  # the small fixture two rows a batch; our own layout (IsDuplicate in the file)
        with pytest.warns(UnusableRowsWarning):
            memory = load_benchmark(FIXTURE, bench)
        with pytest.warns(UnusableRowsWarning):
            _assert_same(memory, load_benchmark(FIXTURE, bench, cache_dir=tmp_path / "fixture", batch_rows=2),
                         tmp_path / "fixture")
        _assert_same(load_benchmark(mini_benchmark, bench),
                     load_benchmark(mini_benchmark, bench, cache_dir=tmp_path / "ours", batch_rows=100), tmp_path / "ours")


def test_streamed_repeats_exact_under_hash_collisions(mini_benchmark: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Two-bit hashes: nearly every row's hash repeats, so IsDuplicate rests on the re-check of the RecordIds."""
    _published_batches_copy(mini_benchmark, tmp_path / "published")
    with pytest.warns(UnusableRowsWarning):
        memory = load_benchmark(tmp_path / "published", "II", splits=["train"])
    monkeypatch.setattr(split_cache, "HASH_BITS", 2)
    with pytest.warns(UnusableRowsWarning):
        streamed = load_benchmark(tmp_path / "published", "II", ["train"], cache_dir=tmp_path / "cache", batch_rows=50)
    _assert_same(memory, streamed, tmp_path / "cache")


def test_streamed_cache_reused_until_the_source_changes(mini_benchmark: Path, tmp_path: Path) -> None:
    root, cache = tmp_path / "published", tmp_path / "cache"
    _published_batches_copy(mini_benchmark, root)
    source = split_file(root, "II", "train")

    def load():
        with pytest.warns(UnusableRowsWarning):
            return load_benchmark(root, "II", ["train"], cache_dir=cache, batch_rows=500)

    first = load()
    rows = cache / "Benchmark-II" / "train" / split_cache.ROWS_FILE
    written = rows.stat()
    again = load()
    assert (rows.stat().st_ino, rows.stat().st_mtime_ns) == (written.st_ino, written.st_mtime_ns)  # not rewritten
    assert again.load_report == first.load_report and again["train"].to_polars().equals(first["train"].to_polars())
    os.utime(source, ns=(written.st_mtime_ns, source.stat().st_mtime_ns + 10**9))  # touched: rebuilt
    load()
    assert rows.stat().st_ino != written.st_ino
    table = pl.read_parquet(source)
    pl.concat([table, table.head(3)]).write_parquet(source)  # changed: rebuilt with the new rows
    changed = load()
    with pytest.warns(UnusableRowsWarning):
        memory = load_benchmark(root, "II", ["train"])
    _assert_same(memory, changed, cache)
    assert changed["train"].num_rows == first["train"].num_rows + 3

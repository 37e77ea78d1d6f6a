"""The benchmark audit: clean on our mini build, and each planted leak kind caught on a copy of it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from fixtures.scripts import load_script

from biotalk.data.audit import Audit, Check, audit, leak_identity, report_card
from biotalk.data.errors import InputError
from biotalk.data.loader import load_tables

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = "scripts/audit_benchmark.py"
PUBLISHED_COLUMNS = ["AC", "EC", "OC", "UniRef100", "UniRef90", "UniRef50", "EmblCdsId", "Sequence", "Description",
                     "DBtype"]


def check(result: Audit, name: str) -> Check:
    return next(c for c in result.checks if c.name == name)


def edit(bench: Path, key: str, change: Callable[[pl.DataFrame], pl.DataFrame]) -> None:
    """Rewrite one split file of a build (``key`` like ``Benchmark-III/Train``)."""
    path = bench / f"{key}.parquet"
    change(pl.read_parquet(path)).write_parquet(path)


def set_cell(df: pl.DataFrame, row: int, column: str, value: str) -> pl.DataFrame:
    return df.with_columns(pl.when(pl.int_range(pl.len()) == row).then(pl.lit(value)).otherwise(pl.col(column))
                           .alias(column))


def run_script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, SCRIPT, *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


@pytest.fixture
def bench(mini_benchmark: Path, tmp_path: Path) -> Path:
    """A writable copy of the mini build (without its fragments)."""
    return Path(shutil.copytree(mini_benchmark, tmp_path / "bench", ignore=shutil.ignore_patterns("Fragments")))


def test_mini_build_is_clean(mini_benchmark):
    result = audit(mini_benchmark)
    assert result.leak_identity == 0.5 and "test_identity" in result.basis
    names = [c.name for c in result.checks]
    assert names == ["identical DNA", "identical protein", "shared UniRef100 cluster", "shared UniRef90 cluster",
                     "shared UniRef50 cluster", "zero-shot EC in training", "EC text in DescriptionMasked",
                     "duplicates"]
    assert not result.leaks, report_card(result)
    tables = load_tables(mini_benchmark, "III")
    assert result.totals["test1"] == tables["test1"]["RecordId"].n_unique()
    assert result.totals["Benchmark-III/Train"] == tables["train"]["RecordId"].n_unique()


def test_copied_test_row_in_train_fails_the_script(bench, tmp_path):
    row = pl.read_parquet(bench / "Test/test1.parquet").head(1)
    edit(bench, "Benchmark-III/Train", lambda df: pl.concat([df, row]))
    done = run_script(str(bench), f"out={tmp_path / 'report.json'}")
    assert done.returncode == 1, done.stderr
    assert "FAIL  identical DNA" in done.stdout and done.stdout.splitlines()[-1].startswith("LEAKS:")
    report = json.loads((tmp_path / "report.json").read_text())
    found = {c["name"]: c for c in report["checks"]}
    assert found["identical DNA"]["by_source"] == {"Benchmark-III/Train": 1}
    assert row["RecordId"][0] in found["identical DNA"]["examples"][0]
    assert report["leaks"] >= 2 and found["identical protein"]["status"] == "FAIL"


def test_train_row_in_a_test_records_uniref50_cluster(bench):
    before = audit(bench, identity=0.5)
    target = pl.read_parquet(bench / "Test/test1.parquet")["UniRef50"][0]
    edit(bench, "Benchmark-I/Train", lambda df: set_cell(df, 0, "UniRef50", target))
    result = audit(bench, identity=0.5)
    was, now = check(before, "shared UniRef50 cluster"), check(result, "shared UniRef50 cluster")
    assert now.status == "FAIL" and now.records > was.records
    assert now.by_source.get("Benchmark-I/Train", 0) > was.by_source.get("Benchmark-I/Train", 0)
    assert check(result, "shared UniRef90 cluster") == check(before, "shared UniRef90 cluster")  # only the 50 % level
    assert check(audit(bench, identity=1.0), "shared UniRef50 cluster").status == "INFO"  # below the leak level


def test_ec_number_in_a_masked_description(bench):
    valid = pl.read_parquet(bench / "Benchmark-III/Valid.parquet")
    texts = valid["DescriptionMasked"]
    edit(bench, "Benchmark-III/Valid", lambda df: set_cell(
        set_cell(df, 0, "DescriptionMasked", texts[0] + " (EC 1.1.1.1)"), 1, "DescriptionMasked",
        texts[1] + " Like other EC 2.7.1 kinases."))
    found = check(audit(bench), "EC text in DescriptionMasked")
    assert found.status == "FAIL" and found.records == len(set(valid["RecordId"][:2]))
    assert found.by_split == {"Benchmark-III/Valid": found.records}
    assert "EC 1.1.1.1" in " ".join(found.examples) or "EC 2.7.1" in " ".join(found.examples)


def test_test2_ec_moved_into_training(bench):
    ec = pl.read_parquet(bench / "Test/test2.parquet")["EC"][0]
    edit(bench, "Benchmark-III/Train", lambda df: set_cell(df, 0, "EC", ec))
    found = check(audit(bench), "zero-shot EC in training")
    assert found.status == "FAIL" and found.by_source["Benchmark-III/Train"] >= 1
    assert found.by_split["test2"] >= 1


def test_valid2_ec_moved_into_training(bench):
    if not (bench / "Test/valid2.parquet").is_file():
        pytest.skip("this build has no valid2 split")
    ec = pl.read_parquet(bench / "Test/valid2.parquet")["EC"][0]
    edit(bench, "Benchmark-I/Train", lambda df: set_cell(df, 0, "EC", ec))
    found = check(audit(bench), "zero-shot EC in training")
    assert found.status == "FAIL" and found.by_split["valid2"] >= 1


def test_unmarked_duplicates(bench):
    edit(bench, "Test/test1", lambda df: pl.concat([df, df.head(1)]))
    edit(bench, "Benchmark-IV/Train", lambda df: pl.concat([df, df.filter(~pl.col("IsDuplicate")).head(2)]))
    found = check(audit(bench), "duplicates")
    assert found.status == "FAIL" and found.by_split == {"Benchmark-IV/Train": 2, "test1": 1}


def test_leak_level_comes_from_build_json(tmp_path):
    build = tmp_path / "build.json"
    assert leak_identity(tmp_path)[0] == 1.0  # nothing declared: UniRef100 only
    build.write_text(json.dumps({"config": {"test_identity": 0.9, "split_rules": "strict"}}))
    assert leak_identity(tmp_path)[0] == 0.9
    build.write_text(json.dumps({"config": {"test_identity": 0.5, "split_rules": "paper"}}))
    assert leak_identity(tmp_path) == (1.0, leak_identity(tmp_path)[1]) and "paper" in leak_identity(tmp_path)[1]
    build.write_text(json.dumps({"config": {"test_identity": 0.7}}))
    with pytest.raises(InputError, match="test_identity 0.7"):
        leak_identity(tmp_path)


def test_issue_spelling_of_the_command_line():
    spell = load_script(SCRIPT).issue_spelling
    assert spell(["out/b", "--search"]) == ["data=out/b", "search=true"]
    assert spell(["--config", "a.yaml", "identity=0.9"]) == ["--config", "a.yaml", "identity=0.9"]


@pytest.mark.slow
def test_published_layout_with_search(mini_benchmark, tmp_path):
    """The published layout (fewer columns, test csvs at the root, no Protein: translated in frame) gives
    the same findings as ours, and our own MMseqs2 search finds no test protein >= 50 % identical to
    a Train/Valid protein over 80 % of both."""
    pub = tmp_path / "published"
    for train in mini_benchmark.glob("Benchmark-*/*.parquet"):
        (pub / train.parent.name).mkdir(parents=True, exist_ok=True)
        pl.read_parquet(train).select(PUBLISHED_COLUMNS).write_parquet(pub / train.parent.name / train.name)
    for test in ("test1", "test2"):
        pl.read_parquet(mini_benchmark / f"Test/{test}.parquet").select(PUBLISHED_COLUMNS).write_csv(pub / f"{test}.csv")
    ours, theirs = audit(mini_benchmark, identity=0.5), audit(pub, identity=0.5, search=True)
    for name in ("identical DNA", "shared UniRef100 cluster", "shared UniRef90 cluster", "shared UniRef50 cluster"):
        assert (check(theirs, name).records, check(theirs, name).by_split) == (
            check(ours, name).records, check(ours, name).by_split)
    search = check(theirs, "search >= 50% identity")
    assert search.status == "PASS", report_card(theirs)
    done = run_script(str(mini_benchmark), "--search")
    assert done.returncode == 0 and "PASS  search >= 50% identity" in done.stdout, done.stdout + done.stderr

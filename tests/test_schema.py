"""The benchmark schema: split layout, the ENZYME release recorded in build.json, the 'not built' messages."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from fixtures.data import ROOT

from biotalk.data import load_benchmark
from biotalk.data.errors import InputError
from biotalk.data.schema import BUILD_COMMAND, SPLIT_KEYS, benchmark_enzyme, portable_path, split_key

ENZ = ROOT / "data" / "raw" / "expasy_enzyme"


def test_split_keys_are_the_built_files(mini_benchmark: Path) -> None:
    assert split_key("iii", "train") == "Benchmark-III/Train" and split_key(2, "valid") == "Benchmark-II/Valid"
    assert split_key("IV", "test2") == "Test/test2"  # the tests are shared by every benchmark
    with pytest.raises(ValueError, match="unknown split"):
        split_key("I", "test")
    files = mini_benchmark.glob("[BT]*/*.parquet")
    built = sorted(str(p.relative_to(mini_benchmark).with_suffix("")) for p in files)
    assert built == sorted(SPLIT_KEYS) and len(SPLIT_KEYS) == 11  # Test/valid2: strict builds


def test_build_json_records_the_enzyme_release(mini_benchmark: Path) -> None:
    enzyme = json.loads((mini_benchmark / "build.json").read_text())["enzyme"]
    # Relative to the repository root although the test build got absolute paths: the same on every machine.
    assert enzyme["enzyme_dat"] == "data/raw/expasy_enzyme/enzyme_2018-09-12.dat.gz"
    assert enzyme["enzclass"] == ["data/raw/expasy_enzyme/enzclass_2018-09-12.txt.gz",
                                  "data/raw/expasy_enzyme/enzclass_2021-02-10.txt"]
    assert set(enzyme["sha256"]) == {enzyme["enzyme_dat"], *enzyme["enzclass"]}
    assert portable_path(Path("/elsewhere/x.dat")) == "/elsewhere/x.dat"


def test_benchmark_enzyme_reads_the_recorded_release(mini_benchmark: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # recorded paths do not depend on the working directory
    db = benchmark_enzyme(mini_benchmark)
    assert len(db.active_ecs()) == 6239
    assert db.class_name("7") == "Translocases"  # the 2021 enzclass of the mini config is part of it
    only_2018 = benchmark_enzyme(mini_benchmark, enzclass=[ENZ / "enzclass_2018-09-12.txt.gz"])
    assert only_2018.class_name("7") is None and len(only_2018.active_ecs()) == 6239


def test_benchmark_enzyme_without_a_record_says_what_to_pass(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="pass enzyme_dat=FILE and enzclass"):
        benchmark_enzyme(tmp_path)
    (tmp_path / "build.json").write_text(json.dumps({"config": {}}))
    with pytest.raises(FileNotFoundError, match="an older build"):
        benchmark_enzyme(tmp_path)
    db = benchmark_enzyme(tmp_path, ENZ / "enzyme_2018-09-12.dat.gz", [ENZ / "enzclass_2018-09-12.txt.gz"])
    assert len(db.active_ecs()) == 6239


def test_a_changed_or_missing_enzyme_file_is_caught(mini_benchmark: Path, tmp_path: Path) -> None:
    build = json.loads((mini_benchmark / "build.json").read_text())
    changed = tmp_path / "enzclass.txt"
    shutil.copyfile(ENZ / "enzclass_2021-02-10.txt", changed)
    with changed.open("a") as handle:
        handle.write("\n")
    record = build["enzyme"]
    record["sha256"][str(changed)] = record["sha256"].pop(record["enzclass"][1])
    record["enzclass"][1] = str(changed)
    (tmp_path / "build.json").write_text(json.dumps(build))
    with pytest.raises(InputError, match="changed since"):
        benchmark_enzyme(tmp_path)
    changed.unlink()
    with pytest.raises(FileNotFoundError, match="enzclass.txt"):
        benchmark_enzyme(tmp_path)


def test_a_missing_benchmark_names_the_build_command(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=f"{BUILD_COMMAND} out={tmp_path / 'nowhere'}"):
        load_benchmark(tmp_path / "nowhere")
    (tmp_path / "Benchmark-III").mkdir()
    with pytest.raises(FileNotFoundError, match="Benchmark-III/Train.parquet.*build_benchmarks.py"):
        load_benchmark(tmp_path, "III")

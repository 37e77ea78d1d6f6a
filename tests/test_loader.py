"""load_benchmark on our build and on a copy in the published BioTalk layout (parquet + csv)."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from biotalk.data import load_benchmark
from biotalk.data.schema import COLUMNS, benchmark_name

PUBLISHED = ["AC", "EC", "OC", "UniRef100", "UniRef90", "UniRef50", "EmblCdsId", "Sequence", "Description"]


def test_round_trip_of_our_build(mini_benchmark: Path) -> None:
    stats = json.loads((mini_benchmark / "stats.json").read_text())
    for bench in ("I", "II", "III", "IV"):
        data = load_benchmark(mini_benchmark, bench)
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

"""The mini benchmark built from the real genomes in data/raw: layout, guarantees, determinism, errors."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import polars as pl
import pytest
from fixtures.data import ROOT, mini_build_config

from biotalk import mmseqs
from biotalk.data import schema
from biotalk.data.build import build_benchmarks
from biotalk.data.fragments import reverse_complement
from biotalk.data.schema import COLUMNS, benchmark_enzyme

BENCHMARKS = [schema.benchmark_name(b) for b in schema.BENCHMARKS]
SPLITS = list(schema.SPLIT_KEYS)
LEVELS = ("UniRef50", "UniRef90", "UniRef100")


@pytest.fixture(scope="module")
def tables(mini_benchmark: Path) -> dict[str, pl.DataFrame]:
    return {name: pl.read_parquet(mini_benchmark / f"{name}.parquet") for name in SPLITS}


def _training(tables: dict[str, pl.DataFrame]) -> dict[str, pl.DataFrame]:
    return {name: df for name, df in tables.items() if not name.startswith("Test/")}


def _held_out(tables: dict[str, pl.DataFrame]) -> pl.DataFrame:
    return pl.concat([tables["Test/test1"], tables["Test/test2"], tables["Test/valid2"]])


def test_layout_columns_and_stats(mini_benchmark: Path, tables: dict[str, pl.DataFrame]) -> None:
    stats = json.loads((mini_benchmark / "stats.json").read_text())
    assert set(stats) == {*BENCHMARKS, "Test"}
    for name, df in tables.items():
        assert df.columns == COLUMNS, name
        assert df.height > 0, name
        group, split = name.split("/")
        assert stats[group][split] == {"records": df.height, "classes": df["EC"].n_unique()}
        assert df.filter(~pl.col("IsDuplicate"))["RecordId"].is_unique().all(), name
        assert set(df["OC"]) <= {"Bacteria", "Archaea"}
        assert (df["RecordId"] == df["EmblCdsId"] + "|" + df["EC"]).all()
    for name in ("Benchmark-III/Train", "Benchmark-III/Valid", "Benchmark-IV/Train", "Test/test1", "Test/test2"):
        assert set(tables[name]["DBtype"]) == {"SwissProt"}, name
    assert set(tables["Benchmark-I/Train"]["DBtype"]) == {"SwissProt", "Unreviewed"}
    card = (mini_benchmark / "README.md").read_text()
    assert "computed, not UniProt's" in card and "MMseqs2" in card and "| Benchmark-III |" in card
    assert "licence" in card.lower() and (mini_benchmark / "SOURCES.md").is_file()
    rejects = pl.read_csv(mini_benchmark / "rejects.tsv", separator="\t")
    assert rejects.columns == ["source", "record", "reason"] and rejects.height > 0
    assert rejects["reason"].str.starts_with("partial EC").any()


def test_one_dna_sequence_one_split(tables: dict[str, pl.DataFrame]) -> None:
    tests = pl.concat([tables["Test/test1"], tables["Test/test2"]]).select("Sequence", pl.col("RecordId").alias("t"))
    for bench in BENCHMARKS:
        parts = [tables[f"{bench}/{s}"].with_columns(pl.lit(s).alias("Split")) for s in ("Train", "Valid")]
        parts += [tables[f"Test/{t}"].with_columns(pl.lit(t).alias("Split")) for t in ("test1", "test2")]
        everything = pl.concat(parts)
        assert everything.group_by("Sequence").agg(pl.col("Split").n_unique())["Split"].max() == 1, bench
    for name, df in _training(tables).items():
        assert df.join(tests, on="Sequence").is_empty(), name  # no test gene in any training set
    # The multi-EC CDS exist on the real data, so the rule is exercised.
    all_rows = pl.concat(list(tables.values()))
    assert all_rows.group_by("EmblCdsId").agg(pl.col("EC").n_unique())["EC"].max() > 1


def test_no_test_record_or_split_cluster_in_training(tables: dict[str, pl.DataFrame]) -> None:
    test1, test2 = tables["Test/test1"], tables["Test/test2"]
    held = {lvl: set(test1.filter(pl.col("SplitLevel") == lvl)[lvl]) for lvl in LEVELS}
    held["UniRef50"] |= set(test2["UniRef50"])
    # A record-level split keeps identical proteins (the record's UniRef100 cluster) out of training.
    held["UniRef100"] |= set(test1.filter(pl.col("SplitLevel") == "record")["UniRef100"])
    assert held["UniRef50"]
    test_ids = set(test1["RecordId"]) | set(test2["RecordId"])
    for name, df in _training(tables).items():
        assert not test_ids & set(df["RecordId"]), name
        for lvl in LEVELS:
            assert not held[lvl] & set(df[lvl]), (name, lvl)


def test_strict_rule_holds_by_clusters(mini_benchmark: Path, tables: dict[str, pl.DataFrame]) -> None:
    build = json.loads((mini_benchmark / "build.json").read_text())
    assert build["split_rules"] == "strict" and build["test_identity"] == 0.5 and build["untested_ecs"] > 0
    held = _held_out(tables)
    assert set(tables["Test/test1"]["SplitLevel"]) == {"UniRef50"}  # no fallback to finer units
    for name, df in _training(tables).items():
        assert not set(held["UniRef50"]) & set(df["UniRef50"]), name  # hence none at 90 or 100 either
    for bench in BENCHMARKS:  # Valid is disjoint from Train at the same level
        assert not set(tables[f"{bench}/Valid"]["UniRef50"]) & set(tables[f"{bench}/Train"]["UniRef50"]), bench
    card = (mini_benchmark / "README.md").read_text()
    assert "Split rules: strict" in card and "valid2" in card and "split by the paper's rules" in card
    removed = pl.read_csv(mini_benchmark / "removed.tsv", separator="\t")
    cluster_mates = removed.filter(pl.col("Reason").str.starts_with("in the UniRef50 split cluster"))
    assert cluster_mates.filter(pl.col("Scope") == "Benchmark-I").height > 0  # non-curated members left training


def test_strict_rule_holds_by_an_independent_search(tables: dict[str, pl.DataFrame]) -> None:
    """No test or valid2 protein is >= 50 % identical over 80 % of both sequences (the clusterer's coverage,
    ``-c 0.8 --cov-mode 0``) to any Train/Valid protein, by a default-sensitivity MMseqs2 search of its own."""
    queries = sorted(set(_held_out(tables)["Protein"]))
    targets = sorted(set(pl.concat(list(_training(tables).values()))["Protein"]))
    with tempfile.TemporaryDirectory() as tmp:
        mmseqs.write_fasta(Path(tmp) / "q.faa", [f"q{i}" for i in range(len(queries))], queries)
        mmseqs.write_fasta(Path(tmp) / "t.faa", [f"t{i}" for i in range(len(targets))], targets)
        mmseqs.run(["easy-search", "q.faa", "t.faa", "hits.m8", "tmp", "--min-seq-id", "0.5", "-c", "0.8",
                    "--cov-mode", "0", "--format-output", "query,target,fident,qcov,tcov"], tmp, threads=2)
        hits = (Path(tmp) / "hits.m8").read_text().splitlines()
    assert len(queries) > 500 and len(targets) > 1000
    assert hits == []


def test_valid2_is_zero_shot(tables: dict[str, pl.DataFrame]) -> None:
    valid2 = tables["Test/valid2"]
    test2_ecs = set(tables["Test/test2"]["EC"])
    assert valid2.height > 50 and set(valid2["DBtype"]) == {"SwissProt"}
    assert not set(valid2["EC"]) & test2_ecs and not set(valid2["EC"]) & set(tables["Test/test1"]["EC"])
    for name, df in _training(tables).items():
        assert not set(valid2["EC"]) & set(df["EC"]), name
    tests = pl.concat([tables["Test/test1"], tables["Test/test2"]])
    assert not set(valid2["UniRef50"]) & set(tests["UniRef50"])  # no cluster shared with a test record


def test_test_ec_rules(tables: dict[str, pl.DataFrame]) -> None:
    test1_ecs, test2_ecs = set(tables["Test/test1"]["EC"]), set(tables["Test/test2"]["EC"])
    assert test1_ecs <= set(tables["Benchmark-III/Train"]["EC"])
    assert test1_ecs <= set(tables["Benchmark-IV/Train"]["EC"])
    assert not test1_ecs & test2_ecs
    for name, df in _training(tables).items():
        assert not test2_ecs & set(df["EC"]), name


def test_split_units_stay_together_per_ec(tables: dict[str, pl.DataFrame]) -> None:
    for bench, with_tests in (("Benchmark-I", False), ("Benchmark-III", True)):
        parts = [tables[f"{bench}/{s}"].with_columns(pl.lit(s).alias("Split")) for s in ("Train", "Valid")]
        if with_tests:
            parts.append(tables["Test/test1"].with_columns(pl.lit("test1").alias("Split")))
        df = pl.concat(parts)
        unit = pl.when(pl.col("SplitLevel") == "record").then(pl.col("Sequence"))
        for lvl in LEVELS:
            unit = unit.when(pl.col("SplitLevel") == lvl).then(pl.col(lvl))
        per_unit = df.with_columns(unit.alias("unit")).group_by("EC", "unit").agg(pl.col("Split").n_unique())
        assert per_unit["Split"].max() == 1, bench
        assert df.group_by("EC").agg(pl.col("SplitLevel").n_unique())["SplitLevel"].max() == 1


def test_balanced_benchmarks(mini_benchmark: Path, tables: dict[str, pl.DataFrame]) -> None:
    targets = json.loads((mini_benchmark / "build.json").read_text())["balance_targets"]
    for source, balanced in (("Benchmark-I", "Benchmark-II"), ("Benchmark-III", "Benchmark-IV")):
        for split in ("Train", "Valid"):
            src, out = tables[f"{source}/{split}"], tables[f"{balanced}/{split}"]
            assert set(out.group_by("EC").len()["len"]) == {targets[balanced]}
            assert set(out["EC"]) == set(src["EC"])
            assert set(out["RecordId"]) <= set(src["RecordId"])
            originals = out.filter(~pl.col("IsDuplicate"))
            copies = out.filter(pl.col("IsDuplicate"))
            assert copies.height > 0 and set(copies["RecordId"]) <= set(originals["RecordId"])
            source_rows = set(src.drop("IsDuplicate").iter_rows())
            assert all(row in source_rows for row in copies.drop("IsDuplicate").iter_rows())  # exact copies
            sizes = src.group_by("EC").agg(pl.len().alias("n"), pl.col("UniRef50").n_unique().alias("c"))
            kept = out.group_by("EC").agg(pl.col("UniRef50").n_unique().alias("k"))
            check = sizes.join(kept, on="EC").filter(pl.col("n") > targets[balanced])
            assert check.select((pl.col("k") == pl.min_horizontal("c", pl.lit(targets[balanced]))).all()).item()


def test_labels_are_current_enzyme_ecs(mini_benchmark: Path, tables: dict[str, pl.DataFrame]) -> None:
    db = benchmark_enzyme(mini_benchmark)  # the release recorded in build.json
    ecs = set(pl.concat(list(tables.values()))["EC"])
    assert ecs <= set(db.active_ecs())  # one label space: every label is a zero-shot candidate
    rejects = pl.read_csv(mini_benchmark / "rejects.tsv", separator="\t")
    unknown = rejects.filter(pl.col("reason").str.starts_with("EC unknown to the ENZYME release"))
    assert unknown["reason"].str.contains("7.1.2.2").any()  # ATP synthase's class-7 EC, newer than 2018
    descriptions = pl.concat(list(tables.values()))
    assert not descriptions["DescriptionMasked"].str.contains(r"\d+\.\d+\.\d+\.n?\d+").any()
    assert descriptions["TemplateId"].n_unique() == 10


def test_fragments_tile_every_gene(mini_benchmark: Path, tables: dict[str, pl.DataFrame]) -> None:
    for name in ("Benchmark-III/Train", "Test/test2", "Benchmark-II/Valid"):
        frags = pl.read_parquet(mini_benchmark / "Fragments" / f"{name}.parquet")
        genes = tables[name].filter(~pl.col("IsDuplicate"))
        assert set(frags["RecordId"]) == set(genes["RecordId"])
        seqs = dict(genes.select("RecordId", "Sequence").iter_rows())
        for rid, group in frags.sort("RecordId", "FragmentIndex").group_by("RecordId", maintain_order=True):
            gene = seqs[rid[0]]
            starts, lengths = group["Start"].to_list(), group["Length"].to_list()
            assert starts[0] == 0 and sum(lengths) == len(gene)
            assert all(a + n == b for a, n, b in zip(starts, lengths, starts[1:], strict=False))
            assert max(lengths) <= 299
            for start, n, rev, piece in group.select("Start", "Length", "Reverse", "Sequence").iter_rows():
                assert piece == (reverse_complement(gene[start : start + n]) if rev else gene[start : start + n])
        assert 0.4 < frags["Reverse"].mean() < 0.6


@pytest.mark.slow
def test_paper_rules(mini_benchmark: Path, tmp_path: Path) -> None:
    """``split_rules=paper``: the paper's fallback rules (Table 1 of the paper-rule build, which equals the build
    before the strict rule once ECs unknown to the release are rejected), labelled so; no valid2."""
    paper = build_benchmarks(mini_build_config(tmp_path / "paper", "split_rules=paper"))
    build = json.loads((paper / "build.json").read_text())
    assert build["split_rules"] == "paper" and build["test_identity"] is None
    assert not (paper / "Test" / "valid2.parquet").exists()
    assert "Split rules: paper" in (paper / "README.md").read_text()
    stats = json.loads((paper / "stats.json").read_text())
    counts = {f"{g}/{s}": (v["records"], v["classes"]) for g, splits in stats.items() for s, v in splits.items()}
    assert counts == {
        "Benchmark-I/Train": (1724, 470), "Benchmark-I/Valid": (533, 282), "Benchmark-II/Train": (2350, 470),
        "Benchmark-II/Valid": (1410, 282), "Benchmark-III/Train": (163, 124), "Benchmark-III/Valid": (36, 30),
        "Benchmark-IV/Train": (372, 124), "Benchmark-IV/Valid": (90, 30), "Test/test1": (125, 120),
        "Test/test2": (549, 548),
    }  # fmt: skip
    test1 = pl.read_parquet(paper / "Test" / "test1.parquet")
    train = pl.read_parquet(paper / "Benchmark-I" / "Train.parquet")
    assert set(test1["UniRef50"]) & set(train["UniRef50"])  # what the strict rule removes


@pytest.mark.slow
def test_same_seed_gives_byte_identical_files(mini_benchmark: Path, tmp_path: Path) -> None:
    again = build_benchmarks(mini_build_config(tmp_path / "again", "fragments=true"))
    ours = sorted(p.relative_to(mini_benchmark) for p in mini_benchmark.rglob("*") if p.is_file())
    theirs = sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    assert ours == theirs
    assert all((mini_benchmark / p).read_bytes() == (again / p).read_bytes() for p in ours)


def _run_script(*overrides: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(ROOT / "scripts" / "build_benchmarks.py"), "--config", str(ROOT / "configs/data/mini.yaml"), *overrides]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)


def test_missing_input_is_one_line_error_and_no_output(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = _run_script(f"raw_dir={tmp_path / 'nowhere'}", f"out={out}")
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("error:") and "nowhere" in lines[-1]
    assert "Traceback" not in proc.stderr and not out.exists()


def test_empty_result_is_one_line_error_and_no_output(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    (raw / "genbank").mkdir(parents=True)
    (raw / "expasy_enzyme").symlink_to(ROOT / "data" / "raw" / "expasy_enzyme")
    (raw / "genbank" / "broken.gbk.gz").write_bytes(b"\x1f\x8b not really gzip")  # rejected, no records
    out = tmp_path / "out"
    proc = _run_script(f"raw_dir={raw}", f"out={out}")
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: empty result") and str(raw / "genbank") in last
    assert "Traceback" not in proc.stderr and not out.exists()
    assert not list(tmp_path.glob(".out.*"))  # no temporary output left behind either

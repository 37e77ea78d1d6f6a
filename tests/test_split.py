"""Split, balance and cluster rules on small tables built here (the real-data guarantees: test_build.py)."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from fixtures.data import ROOT

from biotalk.data.balance import balance, median_target
from biotalk.data.cluster import cluster_proteins
from biotalk.data.genbank import read_genbank_dir
from biotalk.data.split import PAPER, SplitRules, assign_splits, split_benchmarks, with_dna_key
from biotalk.data.valid2 import choose_valid2


def _rows(ec: str, n50: int, per50: int = 1, n90: int = 1, prefix: str = "") -> list[dict]:
    """Records of one EC spread over ``n50`` UniRef50 clusters, each with ``n90`` UniRef90 clusters."""
    rows = []
    for c in range(n50):
        for s in range(n90):
            for r in range(per50):
                key = f"{prefix}{ec}-{c}-{s}-{r}"
                rows.append({"EC": ec, "RecordId": key, "Sequence": f"ATG{key}", "UniRef50": f"{ec}-50-{c}",
                             "UniRef90": f"{ec}-90-{c}-{s}", "UniRef100": f"{ec}-100-{c}-{s}-{r}"})  # fmt: skip
    return rows


def _split(rows: list[dict], seed: int = 0, with_test: bool = True, rules: SplitRules = PAPER) -> pl.DataFrame:
    return assign_splits(with_dna_key(pl.DataFrame(rows)), np.random.default_rng(seed), with_test, rules)


def _units_per_split(df: pl.DataFrame, level: str) -> dict[str, int]:
    return dict(df.group_by("Split").agg(pl.col(level).n_unique()).iter_rows())


@pytest.mark.parametrize(("n", "test", "valid"), [(20, 2, 2), (10, 1, 1), (11, 2, 2), (7, 2, 2), (6, 2, 2), (5, 1, 1), (3, 1, 1)])
def test_cluster_shares_follow_the_paper(n: int, test: int, valid: int) -> None:
    df = _split(_rows("1.1.1.1", n, per50=2))
    assert set(df["SplitLevel"]) == {"UniRef50"}
    assert _units_per_split(df, "UniRef50") == {"test": test, "valid": valid, "train": n - test - valid}
    assert test == (math.ceil(n / 10) if n >= 10 else test)


def test_no_cluster_in_two_splits_and_seeded_random_order() -> None:
    rows = _rows("1.1.1.1", 30, per50=3)
    draws = set()
    for seed in range(8):
        df = _split(rows, seed)
        assert df.group_by("UniRef50").agg(pl.col("Split").n_unique())["Split"].max() == 1
        assert df.equals(_split(rows, seed))  # same seed, same split
        draws.add(tuple(sorted(df.filter(pl.col("Split") == "test")["UniRef50"].unique())))
    assert len(draws) > 4  # clusters are drawn at random, not taken in sorted order


def test_fallback_levels() -> None:
    rows = _rows("2.1.1.1", 1, n90=4) + _rows("2.2.2.2", 2, n90=1, per50=1)
    rows += _rows("3.3.3.3", 1, per50=4)  # one UniRef90 cluster, 4 UniRef100 clusters
    rows += _rows("4.4.4.4", 1, per50=2) + _rows("5.5.5.5", 1)
    for r in rows:
        if r["EC"] in ("4.4.4.4", "5.5.5.5"):
            r["UniRef100"] = f"{r['EC']}-same"
    df = _split(rows)
    level = dict(df.select("EC", "SplitLevel").unique().iter_rows())
    assert level == {"2.1.1.1": "UniRef90", "2.2.2.2": "record", "3.3.3.3": "UniRef100", "4.4.4.4": "record", "5.5.5.5": "record"}
    counts = df.group_by("EC", "Split").len()
    two = dict(counts.filter(pl.col("EC") == "4.4.4.4").select("Split", "len").iter_rows())
    assert two == {"test": 1, "train": 1}  # 2 sequences: one train, one test
    assert df.filter(pl.col("EC") == "5.5.5.5")["Split"].to_list() == ["orphan"]
    # Benchmark I (no test set): nothing is an orphan, 2 sequences give train + valid.
    no_test = _split(rows, with_test=False)
    assert set(no_test["Split"]) == {"train", "valid"}
    assert no_test.filter(pl.col("EC") == "5.5.5.5")["Split"].to_list() == ["train"]


def test_identical_dna_is_one_unit_at_record_level() -> None:
    rows = _rows("6.1.1.1", 1, per50=3)
    rows.append({**rows[0], "RecordId": "copy"})  # same gene in another genome
    df = _split(rows)
    assert df.filter(pl.col("Sequence") == rows[0]["Sequence"])["Split"].n_unique() == 1


def _random_table(seed: int, n: int = 400) -> pl.DataFrame:
    """Records with skewed ECs and clusters, multi-EC CDS, genes shared between genomes, two DB types."""
    rng = np.random.default_rng(seed)
    ec = rng.zipf(1.6, n) % 40
    c50 = rng.integers(0, 60, n)
    c90 = c50 * 10 + rng.integers(0, 3, n)
    c100 = c90 * 10 + rng.integers(0, 3, n)
    dna = [f"ATG{c}{i % 150}" for i, c in enumerate(c100)]
    df = pl.DataFrame({
        "EC": [f"1.1.1.{e}" for e in ec], "UniRef50": [f"U50_{c}" for c in c50], "UniRef90": [f"U90_{c}" for c in c90],
        "UniRef100": [f"U100_{c}" for c in c100], "Sequence": dna, "EmblCdsId": [f"cds{i}" for i in range(n)],
        "DBtype": np.where(rng.random(n) < 0.4, "SwissProt", "Unreviewed").tolist(),
    })  # fmt: skip
    second = df.sample(40, seed=seed).with_columns((pl.col("EC") + "0").alias("EC"))  # multi-EC CDS
    df = pl.concat([df, second])
    return df.with_columns((pl.col("EmblCdsId") + "|" + pl.col("EC")).alias("RecordId")).unique("RecordId")


def check_guarantees(curated: pl.DataFrame, full: pl.DataFrame) -> None:
    """The builder's guarantees on split tables labelled by ``Split``."""
    tests = curated.filter(pl.col("Split").is_in(["test1", "test2"]))
    trains = {"III": curated.filter(pl.col("Split").is_in(["train", "valid"])), "I": full}
    for name, train in trains.items():
        table = pl.concat([train.select("Sequence", "Split"), tests.select("Sequence", "Split")])
        assert table.group_by("Sequence").agg(pl.col("Split").n_unique())["Split"].max() == 1, name
        assert not set(train["RecordId"]) & set(tests["RecordId"])
        for level in ("UniRef50", "UniRef90", "UniRef100"):
            held = tests.filter(((pl.col("SplitLevel") == level) & (pl.col("Split") == "test1"))
                                | ((pl.col("Split") == "test2") & pl.lit(level == "UniRef50")))  # fmt: skip
            assert not set(held[level]) & set(train[level]), (name, level)
        assert not set(tests.filter(pl.col("Split") == "test2")["EC"]) & set(train["EC"]), name
    test1_ecs = set(tests.filter(pl.col("Split") == "test1")["EC"])
    assert test1_ecs <= set(curated.filter(pl.col("Split") == "train")["EC"])
    assert set(curated["DBtype"]) <= {"SwissProt"}


@pytest.mark.parametrize("rules", [SplitRules(), PAPER], ids=["strict", "paper"])
@pytest.mark.parametrize("seed", range(6))
def test_split_benchmarks_guarantees_on_random_tables(seed: int, rules: SplitRules) -> None:
    df = _random_table(seed)
    result = split_benchmarks(df, seed, rules)
    check_guarantees(result.curated, result.full)
    # Nothing vanishes: every record is placed or listed as removed (a row can be removed from
    # Benchmark III and still sit in Benchmark I).
    placed = set(result.curated["RecordId"]) | set(result.full["RecordId"]) | set(result.removed["RecordId"])
    assert placed == set(df["RecordId"])
    assert set(result.removed["Scope"]) <= {"Benchmark-I", "Benchmark-III"}
    assert result.removed["Reason"].null_count() == 0


def test_curated_only_and_multi_ec_rules() -> None:
    rows = [
        # 3.1.1.1 exists only in curated records: held out whole in Test-II.
        {"EC": "3.1.1.1", "EmblCdsId": "a", "Sequence": "ATGA", "DBtype": "SwissProt", "c": "x"},
        {"EC": "3.1.1.1", "EmblCdsId": "b", "Sequence": "ATGB", "DBtype": "SwissProt", "c": "y"},
        # 3.2.2.2: one curated gene (an orphan) that also carries 3.3.3.3 (a multi-EC CDS).
        {"EC": "3.2.2.2", "EmblCdsId": "c", "Sequence": "ATGC", "DBtype": "SwissProt", "c": "z"},
        {"EC": "3.3.3.3", "EmblCdsId": "c", "Sequence": "ATGC", "DBtype": "SwissProt", "c": "z"},
        {"EC": "3.2.2.2", "EmblCdsId": "d", "Sequence": "ATGD", "DBtype": "Unreviewed", "c": "w"},
    ]
    rows += [{"EC": "3.3.3.3", "EmblCdsId": f"e{i}", "Sequence": f"ATGE{i}", "DBtype": t, "c": f"v{i}"}
             for i, t in enumerate(["SwissProt"] * 4 + ["Unreviewed"] * 4)]  # fmt: skip
    df = pl.DataFrame(rows).with_columns(
        *(pl.col("c").alias(lvl) for lvl in ("UniRef50", "UniRef90", "UniRef100")),
        (pl.col("EmblCdsId") + "|" + pl.col("EC")).alias("RecordId"),
    ).drop("c")
    result = split_benchmarks(df, 0)
    cur = {r: (s, lvl) for r, s, lvl in result.curated.select("RecordId", "Split", "SplitLevel").iter_rows()}
    assert cur["a|3.1.1.1"] == ("test2", "EC") and cur["b|3.1.1.1"] == ("test2", "EC")
    assert cur["c|3.2.2.2"][0] == "test2"
    # The same CDS under 3.3.3.3 cannot be trained on while its other row is a test record.
    assert "c|3.3.3.3" not in cur and "c|3.3.3.3" in set(result.removed["RecordId"])
    assert "d|3.2.2.2" not in set(result.full["RecordId"])  # a Test-II EC is in no training set
    check_guarantees(result.curated, result.full)


def test_strict_never_falls_back_below_its_level() -> None:
    rows = _rows("7.1.1.1", 1, n90=3) + _rows("7.2.2.2", 2)  # one UniRef50 cluster; two
    paper, strict = _split(rows), _split(rows, rules=SplitRules())
    assert sorted(paper.filter(pl.col("EC") == "7.1.1.1")["Split"]) == ["test", "train", "valid"]  # by UniRef90
    assert strict.filter(pl.col("EC") == "7.1.1.1")["Split"].to_list() == ["train"] * 3  # cannot be tested
    assert sorted(strict.filter(pl.col("EC") == "7.2.2.2")["Split"]) == ["test", "train"]
    assert set(strict["SplitLevel"]) == {"UniRef50"}
    at_90 = _split(rows, rules=SplitRules(level="UniRef90"))
    assert sorted(at_90.filter(pl.col("EC") == "7.1.1.1")["Split"]) == ["test", "train", "valid"]


def _curated_and_copies(rows: list[dict]) -> pl.DataFrame:
    """Curated rows plus a non-curated copy of each in the same clusters (another genome's gene)."""
    df = pl.DataFrame(rows).with_columns(pl.lit("SwissProt").alias("DBtype"))
    copies = df.with_columns(("u" + pl.col(c)).alias(c) for c in ("RecordId", "Sequence")).with_columns(
        pl.lit("Unreviewed").alias("DBtype"))
    df = pl.concat([df, copies])
    return df.with_columns(pl.col("RecordId").alias("EmblCdsId"), ("P" + pl.col("RecordId")).alias("Protein"))


def test_strict_split_benchmarks_holds_out_clusters_and_search_pairs() -> None:
    df = _curated_and_copies(_rows("7.1.1.1", 1, n90=3) + _rows("7.2.2.2", 6) + _rows("7.3.3.3", 4))
    far = _curated_and_copies(_rows("7.4.4.4", 1)).filter(pl.col("DBtype") == "Unreviewed")  # its own cluster
    df = pl.concat([df, far])
    near = pl.DataFrame({"Protein": df.filter(pl.col("EC") == "7.2.2.2")["Protein"], "Near": far["Protein"][0]})
    result = split_benchmarks(df, 0, SplitRules(near=near))
    assert result.untested == ["7.1.1.1"]
    tests = result.curated.filter(pl.col("Split").is_in(["test1", "test2"]))
    assert set(tests["EC"]) == {"7.2.2.2", "7.3.3.3"}
    training = pl.concat([result.curated.filter(pl.col("Split").is_in(["train", "valid"])), result.full])
    assert not set(tests["UniRef50"]) & set(training["UniRef50"])  # the non-curated copies left too
    assert far["Protein"][0] not in set(training["Protein"])  # near a test protein by the search
    reasons = dict(result.removed.select("RecordId", "Reason").iter_rows())
    assert reasons[far["RecordId"][0]] == "near a test protein (MMseqs2 search)"
    assert any(r.startswith("in the UniRef50 split cluster") for r in reasons.values())
    for table in (result.curated, result.full):
        valid = set(table.filter(pl.col("Split") == "valid")["UniRef50"])
        assert not valid & set(table.filter(pl.col("Split") == "train")["UniRef50"])


def test_valid2_takes_whole_groups_of_test2_ecs() -> None:
    rows = []
    for i, (ec, c50) in enumerate([("8.1.1.1", "a"), ("8.1.1.2", "a"), ("8.2.2.2", "b"), ("8.3.3.3", "c"),
                                   ("8.4.4.4", "d"), ("8.5.5.5", "t"), ("8.6.6.6", "t")]):  # fmt: skip
        rows.append({"EC": ec, "UniRef50": c50, "DnaKey": i, "Protein": f"P{i}", "Split": "test2"})
    rows.append({"EC": "9.9.9.9", "UniRef50": "t", "DnaKey": 99, "Protein": "P99", "Split": "test1"})
    curated = pl.DataFrame(rows)
    near = pl.DataFrame({"Protein": ["P3"], "Near": ["P4"]})  # 8.3.3.3 and 8.4.4.4: one group by the search
    for seed in range(10):
        out = choose_valid2(curated, 0.5, near, np.random.default_rng(seed))
        valid2 = set(out.filter(pl.col("Split") == "valid2")["EC"])
        assert 1 <= len(valid2) <= 4
        assert not valid2 & {"8.5.5.5", "8.6.6.6"}  # linked to a Test-I record
        for group in ({"8.1.1.1", "8.1.1.2"}, {"8.3.3.3", "8.4.4.4"}):
            assert group <= valid2 or not group & valid2
    assert choose_valid2(curated, 0.0, near, np.random.default_rng(0)).equals(curated)


def test_balance_exact_targets_and_cluster_diversity() -> None:
    rows = _rows("1.1.1.1", 30, per50=4) + _rows("2.2.2.2", 4, per50=5) + _rows("3.3.3.3", 3)
    df = pl.DataFrame(rows)
    out = balance(df, 10, np.random.default_rng(0))
    sizes = dict(out.group_by("EC").len().iter_rows())
    assert sizes == {"1.1.1.1": 10, "2.2.2.2": 10, "3.3.3.3": 10}
    big = out.filter(pl.col("EC") == "1.1.1.1")
    assert big["UniRef50"].n_unique() == 10 and not big["IsDuplicate"].any()  # one per drawn cluster
    mid = out.filter(pl.col("EC") == "2.2.2.2")
    assert mid["UniRef50"].n_unique() == 4 and mid["RecordId"].n_unique() == 10  # every cluster, then fill
    small = out.filter(pl.col("EC") == "3.3.3.3")
    assert small.filter(~pl.col("IsDuplicate"))["RecordId"].sort().to_list() == sorted(r["RecordId"] for r in rows if r["EC"] == "3.3.3.3")
    assert small["IsDuplicate"].sum() == 7
    assert set(small.filter(pl.col("IsDuplicate"))["RecordId"]) <= set(small["RecordId"])
    assert out.equals(balance(df, 10, np.random.default_rng(0)))
    assert not out.equals(balance(df, 10, np.random.default_rng(1)))
    assert median_target(df) == 20  # class sizes 120, 20 and 3
    with pytest.raises(ValueError):
        balance(df, 0, np.random.default_rng(0))


@pytest.fixture(scope="module")
def small_genome() -> pl.DataFrame:
    raw = ROOT / "data" / "raw"
    df, _ = read_genbank_dir(raw, files=["Hepatoplasma_crinochetorum_Av_NZ_CP006932.1.gb.gz"])
    return df


@pytest.mark.slow
def test_cluster_proteins_nested_and_cached(small_genome: pl.DataFrame, tmp_path) -> None:
    base = small_genome.unique("Protein").sort("RecordId").head(60)
    seq = base["Protein"][0]
    mutant = "".join("A" if i % 20 == 5 and c != "A" else c for i, c in enumerate(seq))  # ~95 % identity
    extra = pl.DataFrame({"AC": ["zz_copy", "zz_frag", "zz_mut"], "Protein": [seq, seq[: int(len(seq) * 0.9)], mutant]})
    df = pl.concat([base.select("AC", "Protein"), extra])
    out = cluster_proteins(df, threads=1, workdir=tmp_path / "work", cache_dir=tmp_path / "cache")
    by_ac = {r["AC"]: r for r in out.iter_rows(named=True)}
    first = by_ac[base["AC"][0]]
    assert by_ac["zz_copy"]["UniRef100"] == first["UniRef100"]
    assert by_ac["zz_frag"]["UniRef100"] == first["UniRef100"]  # 100 % identical over 90 % of it
    assert by_ac["zz_mut"]["UniRef100"] != first["UniRef100"]
    assert by_ac["zz_mut"]["UniRef90"] == first["UniRef90"]
    for fine, coarse in (("UniRef100", "UniRef90"), ("UniRef90", "UniRef50")):
        assert out.group_by(fine).agg(pl.col(coarse).n_unique())[coarse].max() == 1  # nested like UniRef
    for level in ("UniRef100", "UniRef90", "UniRef50"):
        names = out[level].str.strip_prefix(level + "_")
        assert set(names) <= set(df["AC"])  # named after a member's accession
    assert out["UniRef50"].n_unique() < out["UniRef100"].n_unique() <= df["Protein"].n_unique()
    assert len(list((tmp_path / "cache").iterdir())) == 1
    again = cluster_proteins(df.reverse(), threads=1, cache_dir=tmp_path / "cache")  # from the cache
    assert again.sort("AC").equals(out.sort("AC"))

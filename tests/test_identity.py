"""Identity of test records to training (biotalk.data.identity) and the per-bin metric blocks it feeds:
real MMseqs2 searches on the real mini build and on a published-layout copy of it."""

import math
import shutil

import polars as pl
import pytest

from biotalk.baselines import translate_cds
from biotalk.data import load_benchmark
from biotalk.data.identity import (
    IDENTITY_FILE,
    gene_ids,
    identity_hits,
    identity_to_train,
    max_identity,
    proteins,
)
from biotalk.data.schema import BENCHMARKS, SHARED_SPLITS, split_key
from biotalk.metrics import IDENTITY_BINS, identity_bins, score_genes, score_predictions

# a and b differ in one residue of 210; c is another protein
A = ("MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQAPILSRVGDGTQDNLSGAEKAVQVKVKALPDAQFEVVHSLAKWKRQTLGQHDFSAGEGLYTHMKALRPDEDRLS"
     "PLHSVYVDQWDWERVMGDGERQFSTLKSTVEAIWAGIKATEAAVSEEFGLAPFLPDQIHFVHSQELLSRYPDLDAKGRERAIAKDLGAVFLVGIGGKLSDGHRHDVRAPDYDDWKAHS")
B = A[:-4] + "S" + A[-3:]
C = ("MSDNGPQNQRNAPRITFGGPSDSTGSNQNGERSGARSKQRRPQGLPNNTASWFTALTQHGKEDLKFPRGQGVPINTNSSPDDQIGYYRRATRRIRGGDGKMKDLSPRWY"
     "FYYLGTGPEAGLPYGANKDGIIWVATEGALNTPKDHIGTRNPANNAAIVLQLPQGTTLPKGFYAEGSRGGSQASSRSSSRSRNSSRNSTPGSSRGTSPARMAGNGGD")


def test_max_identity_of_a_near_copy_an_identical_and_an_unrelated_protein(tmp_path):
    queries = [A, C, "", A + "*"]
    hits = identity_hits(queries, [B, A[:120]], cache_dir=tmp_path)
    # A[:120] covers < 80 % of A: not a hit, though identical where it aligns
    assert max_identity(hits, queries, [B, A[:120]]) == [pytest.approx((len(A) - 1) / len(A), abs=1e-3), None, None,
                                                          pytest.approx((len(A) - 1) / len(A), abs=1e-3)]
    assert max_identity(hits, queries, [A[:120]]) == [None] * 4  # hits restricted to other targets
    assert max_identity(identity_hits([B], [B, C]), [B], [B, C]) == [1.0]
    cached = list(tmp_path.glob("identity-*.parquet"))
    assert len(cached) == 1 and identity_hits(queries, [B, A[:120]], cache_dir=tmp_path).equals(hits)


def test_the_build_stores_each_held_out_records_identity_per_benchmark(mini_benchmark):
    table = pl.read_parquet(mini_benchmark / IDENTITY_FILE)
    held_out = {s: pl.read_parquet(mini_benchmark / f"{split_key('I', s)}.parquet") for s in SHARED_SPLITS
                if (mini_benchmark / f"{split_key('I', s)}.parquet").is_file()}
    assert {"test1", "test2"} <= set(held_out)
    assert table.columns == ["RecordId", "Benchmark", "Split", "MaxIdentity"]
    assert table.height == len(BENCHMARKS) * sum(df.height for df in held_out.values())
    for bench in BENCHMARKS:
        rows = table.filter(pl.col("Benchmark") == bench)
        for split, df in held_out.items():
            assert rows.filter(pl.col("Split") == split)["RecordId"].to_list() == df["RecordId"].to_list()
    values = table["MaxIdentity"].drop_nulls()
    assert values.min() >= 0 and values.max() <= 1 and table["MaxIdentity"].null_count() > 0
    # Test-II ECs occur in no training set, yet their genes have homologues there: report, don't assume 0
    print(table.group_by("Benchmark", "Split").agg(pl.len(), pl.col("MaxIdentity").null_count().alias("no hit"),
                                                   (pl.col("MaxIdentity") >= 0.5).sum().alias(">=50%")).sort("Benchmark", "Split"))


def test_published_layout_gets_the_same_identity_by_translating_dna(mini_benchmark, tmp_path):
    """A copy of Benchmark-III in the published layout (csv, no Protein column, no identity table): the
    identities come from a fresh search of translated DNA and equal the stored ones where the translation
    is the builder's protein."""
    published = tmp_path / "published"
    (published / "Benchmark-III").mkdir(parents=True)
    drop = ["Protein", "DescriptionMasked", "RecordId", "IsDuplicate", "TemplateId"]
    pl.read_parquet(mini_benchmark / "Benchmark-III/Train.parquet").drop(drop).write_csv(published / "Benchmark-III/Train.csv")
    shutil.copyfile(mini_benchmark / "Benchmark-III/Valid.parquet", published / "Benchmark-III/Valid.parquet")
    for split in ("test1", "test2"):
        pl.read_parquet(mini_benchmark / f"Test/{split}.parquet").drop(drop).write_csv(published / f"{split}.csv")
    bench = load_benchmark(published, "III")
    assert all(p is None for p in bench["test1"]["Protein"])
    found = identity_to_train(published, "III", bench)
    stored = identity_to_train(mini_benchmark, "III", load_benchmark(mini_benchmark, "III"))
    for split in ("test1", "test2"):
        ours = load_benchmark(mini_benchmark, "III")[split]
        same = [translate_cds(d) == p for d, p in zip(ours["Sequence"], ours["Protein"], strict=True)]
        assert sum(same) > 0.9 * len(same)
        assert len(found[split]) == len(bench[split])
        agree = [f == s for f, s, ok in zip(found[split], stored[split], same, strict=True) if ok]
        assert sum(agree) >= 0.98 * len(agree)  # a different translated train protein may shift a few


def test_genes_are_cds_ids_else_dna_and_proteins_fall_back_to_translation():
    rows = {"EmblCdsId": ["X1", None, ""], "Sequence": ["ATGAAATAA", "ATGTTTTAA", "ATGCCCTAA"],
            "Protein": ["MK", None, ""]}
    assert gene_ids(rows) == ["X1", "ATGTTTTAA", "ATGCCCTAA"]
    assert proteins(rows) == ["MK", "MF", "MP"]


def test_identity_bins_edges_and_errors():
    assert identity_bins([0.0, 0.2999, 0.3, 0.5, 0.8999, 0.9, 1.0, None, math.nan]) == [
        "<30", "<30", "30-50", "50-90", "50-90", ">=90", ">=90", "no hit", "no hit"]
    assert IDENTITY_BINS == ("<30", "30-50", "50-90", ">=90", "no hit")
    with pytest.raises(ValueError, match=r"identity\[0\] = 95"):
        identity_bins([95])  # a percentage where a fraction is expected


def test_by_identity_holds_the_block_of_each_bin():
    y_true = ["1.2.3.4", "2.7.7.7", "1.2.3.4", "3.1.1.1", "3.1.1.2"]
    y_pred = ["1.2.3.4", "2.7.-.-", None, "3.1.1.1", "3.1.1.1"]
    identity = [0.95, None, 0.4, 0.1, 0.41]
    block = score_predictions(y_true, y_pred, identity)
    assert list(block["by_identity"]) == list(IDENTITY_BINS)
    assert block["by_identity"]["30-50"] == score_predictions([y_true[2], y_true[4]], [y_pred[2], y_pred[4]])
    assert block["by_identity"]["no hit"] == score_predictions([y_true[1]], [y_pred[1]])
    assert block["by_identity"]["50-90"] == {"n": 0}
    assert {k: v for k, v in block.items() if k != "by_identity"} == score_predictions(y_true, y_pred)
    with pytest.raises(ValueError, match="identity has 2 values"):
        score_predictions(y_true, y_pred, identity[:2])


def test_a_gene_takes_the_highest_identity_of_its_records():
    block = score_genes(["a", "a", "b"], ["1.1.1.1", "1.1.1.2", "2.2.2.2"], ["1.1.1.1", "1.1.1.1", None],
                        identity=[0.92, None, None])
    by = block["by_identity"]
    assert (by[">=90"]["n"], by[">=90"]["n_genes"], by[">=90"]["accuracy"]) == (2, 1, 1.0)
    assert (by["no hit"]["n"], by["no hit"]["n_genes"], by["no hit"]["coverage"]) == (1, 1, 0.0)
    assert by["<30"] == {"n": 0, "n_genes": 0}

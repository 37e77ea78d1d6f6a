"""Baselines on the real mini benchmark: majority class, 1-NN label transfer, homology transfer (MMseqs2)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from fixtures.scripts import load_script

from biotalk.baselines import (
    base_codes,
    best_hits,
    context_accuracy,
    context_counts,
    homology_transfer,
    majority_class,
    nearest_neighbour_transfer,
    translate_cds,
)
from biotalk.config import load_config
from biotalk.data import load_benchmark
from biotalk.data.fragments import reverse_complement
from biotalk.reports import PAPER_LABEL

ROOT = Path(__file__).resolve().parents[1]


def test_majority_class_ignores_balancing_duplicates_and_breaks_ties_by_ec():
    ecs = ["2.7.7.7", "1.1.1.1", "1.1.1.1", "2.7.7.7", "2.7.7.7"]
    assert majority_class(ecs) == "2.7.7.7"
    assert majority_class(ecs, [False, False, False, True, True]) == "1.1.1.1"
    assert majority_class(["3.1.1.1", "1.2.3.4"]) == "1.2.3.4"


def test_nearest_neighbour_transfers_the_closest_training_label():
    train = np.eye(4, dtype=np.float32)
    queries = np.array([[0.1, 0.0, 2.0, 0.2], [5.0, 0.1, 0.0, 0.0]], dtype=np.float32)
    assert nearest_neighbour_transfer(train, ["1.1.1.1", "2.2.2.2", "3.3.3.3", "4.4.4.4"], queries) == [
        "3.3.3.3", "1.1.1.1"]


def test_translation_matches_the_builder_protein_column(mini_benchmark):
    """The fallback for published splits without proteins (Test-I is E. coli K-12: genetic code 11)."""
    test1 = load_benchmark(mini_benchmark, "III")["test1"]
    checked = 0
    for dna, protein in zip(test1["Sequence"], test1["Protein"], strict=True):
        if "U" in protein:  # selenoproteins: the builder honours /transl_except, a plain translation stops
            assert translate_cds(dna)[1:] == protein[1 : protein.index("U")]
            continue
        assert translate_cds(dna)[1:] == protein.rstrip("*")[1:]  # the start codon may read as M or not
        checked += 1
    assert checked > 100


def test_homology_finds_the_orthologs_that_training_holds(mini_benchmark):
    """Benchmark-I training genes whose UniRef90 cluster holds another training protein of the same EC
    (orthologs from the other E. coli genomes), queried against the rest of training, must be found by
    MMseqs2 and get that EC. (Test-I has no such genes: the strict split holds their clusters out.)"""
    train = load_benchmark(mini_benchmark, "I")["train"].to_polars().filter(~pl.col("IsDuplicate"))
    groups = train.group_by("UniRef90", "EC").agg(pl.col("RecordId").sort().first(), pl.len()).filter(pl.col("len") >= 2)
    chosen = train.filter(pl.col("RecordId").is_in(groups["RecordId"].sort().head(30).implode()))
    assert chosen.height >= 5, "the mini benchmark should offer training genes with orthologs in training"
    rest = train.filter(~pl.col("RecordId").is_in(chosen["RecordId"].implode()))
    queries, truth = chosen["Protein"].to_list(), chosen["EC"].to_list()
    train = {"Protein": rest["Protein"].to_list(), "EC": rest["EC"].to_list()}
    # negative control: a seeded shuffle of a real protein has the same composition and no homolog
    shuffled = "".join(np.random.default_rng(0).permutation(list(queries[0])))
    preds, hits = homology_transfer(queries + [shuffled], list(train["Protein"]), list(train["EC"]), threads=2)
    assert preds[-1] is None
    assert all(p is not None for p in preds[:-1])
    assert np.mean([p == t for p, t in zip(preds, truth, strict=False)]) >= 0.9
    assert (hits["evalue"] <= 1e-5).all() and hits["query"].is_unique().all()


def test_best_hit_is_independent_of_target_order_and_respects_the_evalue(mini_benchmark):
    train = load_benchmark(mini_benchmark, "III")["train"]
    targets = sorted(set(train["Protein"]))[:60]
    queries = [targets[3][5:], targets[40][: len(targets[40]) // 2]]
    hits = best_hits(queries, targets, max_evalue=1e-5, threads=1)
    assert dict(zip(hits["query"], hits["target"], strict=True)) == {0: 3, 1: 40}
    reversed_hits = best_hits(queries, targets[::-1], max_evalue=1e-5, threads=1)
    assert [targets[::-1][t] for t in reversed_hits["target"]] == [targets[3], targets[40]]
    assert best_hits([], targets, max_evalue=1e-5).height == 0


@pytest.mark.parametrize("table", [11, 4])
def test_translate_cds_stops_at_the_first_stop(table):
    assert translate_cds("ATGAAATTTTAAGGG", table=table) == "MKF"
    assert translate_cds("ATGTGGTGAAAATAA", table=table) == ("MW" if table == 11 else "MWWK")


@pytest.mark.slow
def test_table4_scores_every_method_and_skips_missing_encoders(mini_benchmark, tmp_path):
    table4 = load_script("scripts/table4.py")
    cfg = load_config(table4.Table4Config, ROOT / "configs/classifier/table4_mini.yaml", [
        f"data={mini_benchmark}", "benchmarks=[III]", f"encoders=[kmer:6,{tmp_path / 'no-such-model'}]",
        f"cache_dir={tmp_path / 'cache'}", f"out={tmp_path / 'table4'}", "mlp.epochs=2"])
    result = table4.main(cfg)
    assert [s["encoder"] for s in result["skipped_encoders"]] == [str(tmp_path / "no-such-model")]
    methods = [(r["split"], r["method"].split(" (")[0], r["encoder"]) for r in result["rows"]]
    for split in ("test1", "test2"):
        assert (split, "majority class", None) in methods and (split, "homology transfer", None) in methods
        assert (split, "MLP", "kmer:6 (spectrum)") in methods
        assert (split, "1-NN label transfer", "kmer:6 (spectrum)") in methods
    assert len(methods) == 8
    # score_genes with identity: genes as samples, binned by identity to the benchmark's training proteins
    block = {"hP", "hR", "hF", "macro", "accuracy", "level_accuracy", "coverage", "n", "n_genes", "by_identity"}
    assert all(set(r) == {"benchmark", "split", "method", "encoder", *block} for r in result["rows"])
    assert all(sum(b["n"] for b in r["by_identity"].values()) == r["n"] for r in result["rows"])  # records per bin
    text = (tmp_path / "table4" / "table4.md").read_text()
    assert "hF per bin of identity" in text
    assert PAPER_LABEL in text and "0.3097 / 0.0774 / 0.1239" in text
    saved = json.loads((tmp_path / "table4" / "table4.json").read_text())
    assert saved["rows"] == result["rows"]


def test_context_counts_cover_both_strands_and_do_not_depend_on_chunking():
    seq = "".join(np.random.default_rng(0).choice(list("ACGT"), 3000)) + "NNACGT"
    counts = context_counts([seq], flank=2, chunk=10**6)
    assert (context_counts([seq], flank=2, chunk=97) == counts).all()
    assert (context_counts([reverse_complement(seq)], flank=2) == counts).all()
    assert counts.sum() == 2 * (3000 - 4)  # positions with 2 real bases each side; the N run breaks contexts


def test_context_accuracy_reads_a_base_from_its_neighbours():
    counts = context_counts(["ACGTTGCA" * 500], flank=3)
    codes = base_codes("ACGTTGCA" * 50)[None, :]
    targets = np.zeros_like(codes, dtype=bool)
    targets[0, 3:-3] = True
    assert context_accuracy(counts, codes, targets) == 1.0  # a periodic sequence is fixed by its neighbours
    shuffled = np.random.default_rng(1).permutation(codes[0])[None, :]
    assert context_accuracy(counts, shuffled, targets) < 0.6

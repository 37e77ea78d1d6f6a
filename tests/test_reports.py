"""Every markdown table comes from biotalk.reports, fed with the payloads the entry points save."""

from biotalk.metrics import score_genes, score_predictions
from biotalk.reports import PAPER_LABEL, block_line, clip_summary, table1, table4, tables23


def test_clip_summary_shows_every_reported_metric():
    metrics = {
        "zero_shot": {"test1": {"hF": 0.5}, "test2": {"hF": 0.125}},
        "zero_shot_hierarchical": {"test1": {"hF": 0.55}, "test2": {"hF": 0.2}},
        "knn": {"test1": {"k=1": 0.4}, "test2": {"k=1": 0.1}},
        "retrieval": {"dna_to_text": {"R@1": 0.1, "R@5": 0.2, "R@10": 0.3}},
    }
    table = clip_summary(metrics)
    assert "| zero-shot hF (nearest EC) | 0.5000 | 0.1250 |" in table
    assert "| zero-shot hF (hierarchical) | 0.5500 | 0.2000 |" in table
    assert "| shared-space DNA kNN hP, k=1 | 0.4000 | 0.1000 |" in table
    assert "0.100 / 0.200 / 0.300" in table
    assert "text to dna" not in table  # absent results are not invented


BLOCK = score_predictions(["1.2.3.4", "2.7.7.7", "1.2.3.4", "3.1.1.1"], ["1.2.3.4", "2.7.-.-", None, "3.1.1.1"])


def test_block_line_and_table_4_print_the_metric_block():
    assert block_line(BLOCK) == "hP 1.0000 hR 0.6250 hF 0.7692 accuracy 0.5000 coverage 0.750 (n=4)"
    rows = [{"benchmark": "III", "split": s, "method": m, "encoder": e, **BLOCK}
            for s in ("test1", "test2") for m, e in (("majority class (2.7.7.7)", None), ("MLP", "kmer:6 (spectrum)"))]
    text = table4(rows).splitlines()
    assert PAPER_LABEL in text[0] and len(text) == 2 + len(rows)
    assert text[2] == ("| III | Test-I | majority class (2.7.7.7) |  | 1.0000 | 0.6250 | 0.7692 | 0.5000 | 0.750 | 4 "
                       "| 0.3097 / 0.0774 / 0.1239 |")
    assert text[3].endswith("| 4 |  |")  # the paper's numbers once per benchmark and test split
    assert "| III | Test-II | MLP | kmer:6 (spectrum) |" in text[5]


def test_table1_lists_every_benchmark_and_the_tests_once():
    split = {"records": 1234, "classes": 56}
    stats = {f"Benchmark-{b}": {"Train": split, "Valid": split} for b in ("I", "II", "III", "IV")}
    stats["Test"] = {"test1": {"records": 10, "classes": 5}, "test2": {"records": 20, "classes": 7}}
    lines = table1(stats).splitlines()
    assert len(lines) == 6 and lines[2] == "| Benchmark-I | 1,234 | 56 | 1,234 | 56 |  |  |  |  |"
    assert lines[4] == "| Benchmark-III | 1,234 | 56 | 1,234 | 56 | 10 | 5 | 20 | 7 |"


def test_tables23_show_ours_then_the_papers_for_the_chosen_benchmarks():
    settings = {"data": "out/mini", "index_split": "train", "query_split": "test1", "metric": "cosine",
                "silhouette_split": "train", "silhouette_metric": "cosine", "silhouette_per_class": 20, "seed": 0,
                "ks": [1, 3], "benchmarks": ["III"]}
    row = {"benchmark": "III", "encoder": "kmer:6", "pooling": "spectrum", "hP": {"1": 0.25, "3": 0.5},
           "silhouette": None, "silhouette_samples": 3, "silhouette_classes": 1, "silhouette_note": "1 class(es)",
           "n_queries": 9, "n_index": 30}
    text = tables23([row], [{"encoder": "x", "reason": "missing"}], settings)
    assert "| III | kmer:6 | spectrum | 0.2500 | 0.5000 | 9 | 30 |" in text
    assert "| III | kmer:6 | spectrum | n/a | 3 | 1 | 1 class(es) |" in text
    assert "- `x`: missing" in text
    assert "| III | 1 | 0.1332 | 0.1168 | 0.1553 | 0.3329 |" in text and "| III | 0.2623 |" in text
    assert "| I | 1 |" not in text  # only the benchmarks evaluated


GENES = score_genes(["a", "a", "b", "c"], ["1.2.3.4", "1.2.3.5", "2.7.7.7", "3.1.1.1"],
                    ["1.2.3.4", "1.2.3.4", None, "3.1.1.2"], identity=[0.95, 0.95, None, 0.4])


def test_by_identity_bins_are_shown_by_every_table_and_the_console_line():
    assert block_line(GENES) == (
        "hP 0.8750 hR 0.5385 hF 0.6667 accuracy 0.3333 coverage 0.667 (n=4, genes=3); hF by identity to train: "
        "<30 % n/a (0), 30-50 % 0.7500 (1), 50-90 % n/a (0), >=90 % 0.8889 (2), no hit 0.0000 (1)")
    rows = [{"benchmark": "III", "split": "test1", "method": "MLP", "encoder": "kmer:6", **GENES},
            {"benchmark": "III", "split": "test1", "method": "majority", "encoder": None, **BLOCK}]
    text = table4(rows).splitlines()
    assert text[2].endswith("| 0.667 | 4 (3 genes) | 0.3097 / 0.0774 / 0.1239 |")
    assert text[7] == "| benchmark | test | method | encoder | hF <30 % | hF 30-50 % | hF 50-90 % | hF >=90 % | hF no hit |"
    assert text[9] == "| III | Test-I | MLP | kmer:6 | n/a (0) | 0.7500 (1) | n/a (0) | 0.8889 (2) | 0.0000 (1) |"
    assert len(text) == 10  # the block without by_identity has no identity row
    baselines = [{"split": t, "method": "majority class (1.1.1.1)", **GENES} for t in ("test1", "test2")]
    summary = clip_summary({"zero_shot_hierarchical": {"test1": GENES, "test2": GENES}}, baselines).splitlines()
    assert "| majority class (1.1.1.1), same split | 0.6667 | 0.6667 |" in summary
    assert "| zero-shot hF (hierarchical) | Test-II | n/a (0) | 0.7500 (1) | n/a (0) | 0.8889 (2) | 0.0000 (1) |" in summary
    assert summary[-1] == "| majority class (1.1.1.1), same split | Test-II | n/a (0) | 0.7500 (1) | n/a (0) | 0.8889 (2) | 0.0000 (1) |"
    assert "identity" not in table4(rows[1:]) and "identity" not in clip_summary({"zero_shot": {"test1": BLOCK,
                                                                                                 "test2": BLOCK}})


def test_tables23_put_the_baselines_after_each_benchmarks_encoders_and_bin_hp_by_identity():
    settings = {"data": "out/mini", "index_split": "train", "query_split": "test1", "metric": "cosine",
                "silhouette_split": "train", "silhouette_metric": "cosine", "silhouette_per_class": 20, "seed": 0,
                "ks": [1, 3], "benchmarks": ["III", "IV"]}
    bins = {"<30": {"hP": 0.5, "n": 2}, "30-50": {"hP": None, "n": 0}, "50-90": {"hP": 1.0, "n": 1},
            ">=90": {"hP": 0.75, "n": 4}, "no hit": {"hP": 0.0, "n": 2}}
    row = {"encoder": "kmer:6", "pooling": "spectrum", "hP": {"1": 0.25, "3": 0.5}, "silhouette": 0.1,
           "silhouette_samples": 3, "silhouette_classes": 2, "silhouette_note": "", "n_queries": 9, "n_index": 30}
    rows = [{"benchmark": b, **row, "hP_by_identity": bins} for b in ("III", "IV")]
    base = {"encoder": None, "pooling": None, "neighbours": 1, "hP": {"1": 0.125, "3": 0.125}, "n_queries": 9,
            "n_index": 30, "hP_by_identity": bins}
    baselines = [{"benchmark": "III", "method": "majority class (EC)", "ec": "2.7.7.7", "coverage": 1.0, **base},
                 {"benchmark": "III", "method": "homology transfer (MMseqs2 best hit)", "max_evalue": 1e-5,
                  "coverage": 0.5, **{**base, "hP_by_identity": None}}]
    lines = tables23(rows, [], settings, baselines).splitlines()
    table2 = [line for line in lines[: lines.index("## Table 3: silhouette")] if line.startswith("| III") or
              line.startswith("| IV")]
    assert table2[:4] == [
        "| III | kmer:6 | spectrum | 0.2500 | 0.5000 | 9 | 30 |",
        "| III | majority class (EC) = 2.7.7.7 | single neighbour | 0.1250 | 0.1250 | 9 | 30 |",
        "| III | homology transfer (MMseqs2 best hit), e <= 1e-05, 50% with a hit | single neighbour | 0.1250 | 0.1250 "
        "| 9 | 30 |",
        "| IV | kmer:6 | spectrum | 0.2500 | 0.5000 | 9 | 30 |",
    ]
    head = lines.index("| benchmark | encoder | pooling | hP@1 <30 % | hP@1 30-50 % | hP@1 50-90 % | hP@1 >=90 % "
                       "| hP@1 no hit |")
    cells = "| 0.5000 (2) | n/a (0) | 1.0000 (1) | 0.7500 (4) | 0.0000 (2) |"
    assert lines[head + 2 : head + 5] == [  # the homology row without identity bins has no line
        f"| III | kmer:6 | spectrum {cells}", f"| III | majority class (EC) = 2.7.7.7 | single neighbour {cells}",
        f"| IV | kmer:6 | spectrum {cells}"]
    table3 = lines[lines.index("## Table 3: silhouette") :]
    assert not any("majority" in line or "homology" in line for line in table3)
    assert sum(line.startswith("| III | kmer:6 | spectrum | 0.1000") for line in table3) == 1

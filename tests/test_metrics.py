import math
import warnings

import numpy as np
import pytest
from hiclass import metrics as hm
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from sklearn.exceptions import UndefinedMetricWarning

from biotalk.ec import InvalidEC, ec_prefixes
from biotalk.metrics import (
    IDENTITY_BINS,
    hierarchical_prf,
    knn_hierarchical_precision,
    knn_precision_per_query,
    level_accuracy,
    level_accuracy_at_k,
    mean_by_identity,
    score_genes,
    score_predictions,
)

# A small alphabet per level so that random pairs share prefixes often.
LEVEL = st.sampled_from(["1", "2", "3"])


@st.composite
def ecs(draw, min_depth=1):
    depth = draw(st.integers(min_depth, 4))
    levels = [draw(LEVEL) for _ in range(depth)]
    return ".".join(levels + ["-"] * (4 - depth))


MISSING = st.sampled_from([None, "", "  "])
PREDICTION = st.one_of(ecs(), ecs(min_depth=4), MISSING)
TRUTH = st.one_of(ecs(min_depth=4), ecs())


def hiclass_rows(values):
    """hiclass input: one row per sample of prefix nodes, padded with '' (hiclass discards '')."""
    return [list(ec_prefixes(v)) + [""] * (4 - len(ec_prefixes(v))) for v in values]


def hiclass_scores(y_true, y_pred, average):
    t, p = hiclass_rows(y_true), hiclass_rows(y_pred)
    # The default zero_division="warn" scores an undefined F as 0 (zero_division=0 breaks hiclass macro).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        f1 = hm.f1(t, p, average)
    return {"hP": hm.precision(t, p, average), "hR": hm.recall(t, p, average), "hF": f1}


def is_missing(v):
    return not ec_prefixes(v)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(TRUTH, PREDICTION), min_size=1, max_size=30))
def test_micro_equals_hiclass(pairs):
    y_true, y_pred = map(list, zip(*pairs, strict=True))
    assume(not all(map(is_missing, y_pred)))  # hiclass divides by zero there
    assert hierarchical_prf(y_true, y_pred, "micro") == hiclass_scores(y_true, y_pred, "micro")


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(TRUTH, st.one_of(ecs(), ecs(min_depth=4))), min_size=1, max_size=30))
def test_macro_equals_hiclass(pairs):
    y_true, y_pred = map(list, zip(*pairs, strict=True))
    assert hierarchical_prf(y_true, y_pred, "macro") == hiclass_scores(y_true, y_pred, "macro")


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(TRUTH, PREDICTION), min_size=1, max_size=30))
def test_macro_with_missing_scores_them_zero(pairs):
    """hiclass cannot score a missing prediction per sample (0/0); ours counts it 0 in all three means."""
    y_true, y_pred = map(list, zip(*pairs, strict=True))
    expected = {}
    for key in ("hP", "hR", "hF"):
        per_sample = [
            0.0 if is_missing(p) else hiclass_scores([t], [p], "micro")[key]
            for t, p in zip(y_true, y_pred, strict=True)
        ]
        expected[key] = sum(per_sample) / len(per_sample)
    got = hierarchical_prf(y_true, y_pred, "macro")
    assert got == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_all_missing_predictions_score_zero_where_hiclass_raises():
    y_true, y_pred = ["1.2.3.4", "2.1.1.1"], [None, ""]
    with pytest.raises(ZeroDivisionError):
        hm.precision(hiclass_rows(y_true), hiclass_rows(y_pred))
    for average in ("micro", "macro"):
        assert hierarchical_prf(y_true, y_pred, average) == {"hP": 0.0, "hR": 0.0, "hF": 0.0}


def test_partial_prediction_costs_recall_not_precision():
    assert hierarchical_prf(["1.2.3.4"], ["1.2.-.-"]) == {"hP": 1.0, "hR": 0.5, "hF": pytest.approx(2 / 3)}
    # A missing prediction adds nothing to the precision denominator.
    assert hierarchical_prf(["1.2.3.4", "5.1.1.1"], ["1.2.3.4", None]) == {
        "hP": 1.0,
        "hR": 0.5,
        "hF": pytest.approx(2 / 3),
    }


def test_levels_are_prefixes_not_digits():
    """Raw digits would let 1.1.1.1 and 1.2.1.1 share three of four nodes; as prefixes they share one."""
    assert hierarchical_prf(["1.1.1.1"], ["1.2.1.1"])["hP"] == 0.25
    assert level_accuracy(["1.1.1.1"], ["1.2.1.1"]) == [1.0, 0.0, 0.0, 0.0]


def test_same_ec_written_differently_is_the_same_node():
    assert hierarchical_prf(["1.2.3.4"], [" EC 01.2.3.4"])["hF"] == 1.0


def test_bad_input_errors_name_the_sample():
    with pytest.raises(InvalidEC, match=r"y_pred\[2\].*'1\.2\.3'"):
        hierarchical_prf(["1.1.1.1"] * 3, ["1.1.1.1", None, "1.2.3"])
    with pytest.raises(InvalidEC, match=r"y_true\[1\].*'x'"):
        level_accuracy(["1.1.1.1", "x"], ["1.1.1.1", "1.1.1.1"])
    with pytest.raises(TypeError, match=r"y_pred\[1\].*5"):
        hierarchical_prf(["1.1.1.1"] * 2, ["1.1.1.1", 5])
    with pytest.raises(TypeError, match="single string"):
        hierarchical_prf("1.1.1.1", "1.1.1.1")  # the reference code's defect: scored per character
    with pytest.raises(ValueError, match=r"y_true\[1\] is missing"):
        hierarchical_prf(["1.1.1.1", None], ["1.1.1.1", "1.1.1.1"])
    with pytest.raises(ValueError, match="samples"):
        hierarchical_prf(["1.1.1.1"], ["1.1.1.1", "1.1.1.1"])
    with pytest.raises(ValueError, match="empty"):
        hierarchical_prf([], [])
    with pytest.raises(ValueError, match="average"):
        hierarchical_prf(["1.1.1.1"], ["1.1.1.1"], "weighted")
    with pytest.raises(InvalidEC, match=r"neighbour_ecs\[1, 0\].*'1\.2'"):
        knn_hierarchical_precision(["1.1.1.1"] * 2, [["1.1.1.1", None], ["1.2", "1.1.1.1"]])
    with pytest.raises(ValueError, match="rectangular|shape"):
        knn_hierarchical_precision(["1.1.1.1"] * 2, [["1.1.1.1"], ["1.1.1.1", "1.1.1.1"]])


def slow_best_overlap(true, neighbours):
    t = set(ec_prefixes(true))
    return max(len(t & set(ec_prefixes(n))) for n in neighbours)


@settings(max_examples=100, deadline=None)
@given(
    st.integers(1, 4).flatmap(
        lambda k: st.lists(
            st.tuples(TRUTH, st.lists(PREDICTION, min_size=k, max_size=k)), min_size=1, max_size=25
        )
    )
)
def test_knn_metrics_match_a_plain_python_oracle(rows):
    y_true, neighbours = map(list, zip(*rows, strict=True))
    expected = np.mean(
        [slow_best_overlap(t, nb) / len(ec_prefixes(t)) for t, nb in zip(y_true, neighbours, strict=True)]
    )
    assert knn_hierarchical_precision(y_true, neighbours) == pytest.approx(expected, rel=1e-12)
    acc = level_accuracy_at_k(y_true, neighbours)
    for level in range(1, 5):
        defined = [(t, nb) for t, nb in zip(y_true, neighbours, strict=True) if len(ec_prefixes(t)) >= level]
        if not defined:
            assert math.isnan(acc[level - 1])
            continue
        hits = [
            any(
                len(ec_prefixes(n)) >= level and ec_prefixes(n)[level - 1] == ec_prefixes(t)[level - 1]
                for n in nb
            )
            for t, nb in defined
        ]
        assert acc[level - 1] == pytest.approx(np.mean(hits), rel=1e-12)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(TRUTH, PREDICTION, PREDICTION), min_size=1, max_size=25))
def test_knn_at_one_is_macro_recall_and_more_neighbours_never_hurt(rows):
    y_true, first, second = map(list, zip(*rows, strict=True))
    k1 = knn_hierarchical_precision(y_true, [[p] for p in first])
    assert k1 == pytest.approx(hierarchical_prf(y_true, first, "macro")["hR"], rel=1e-12)
    assert level_accuracy_at_k(y_true, [[p] for p in first]) == level_accuracy(y_true, first)
    k2 = knn_hierarchical_precision(y_true, [[a, b] for a, b in zip(first, second, strict=True)])
    assert k2 >= k1 - 1e-12


def test_knn_precision_uses_the_best_neighbour_depth():
    """The reference took the denominator from the last neighbour; the true EC's depth is the denominator."""
    assert knn_hierarchical_precision(["1.2.3.4"], [["1.2.3.4", "1.2.-.-"]]) == 1.0
    assert knn_hierarchical_precision(["1.2.3.4"], [["1.2.-.-", "9.9.9.9"]]) == 0.5
    assert knn_hierarchical_precision(["1.2.-.-"], [["1.2.3.4"]]) == 1.0
    # Full truths and full neighbours at k = 1: hP = hR = hF (the paper's remark).
    y_true, nb = ["1.2.3.4", "2.1.1.1", "3.1.1.1"], ["1.2.3.5", "2.1.1.1", "4.1.1.1"]
    prf = hierarchical_prf(y_true, nb)
    assert (
        knn_hierarchical_precision(y_true, [[p] for p in nb])
        == pytest.approx(prf["hP"])
        == pytest.approx(prf["hR"])
    )


def test_level_accuracy_counts_only_levels_the_truth_specifies():
    y_true = ["1.2.3.4", "1.2.3.5", "2.1.-.-"]
    y_pred = ["1.2.3.4", "1.2.9.9", "2.1.1.1"]
    assert level_accuracy(y_true, y_pred) == [1.0, 1.0, 0.5, 0.5]
    assert math.isnan(level_accuracy(["1.-.-.-"], ["1.1.1.1"])[1])


def test_vectorised_path_agrees_with_hiclass_on_many_pairs():
    rng = np.random.default_rng(0)
    pool = [f"{a}.{b}.{c}.{d}" for a, b, c, d in rng.integers(1, 4, (60, 4))] + ["1.2.-.-", "3.-.-.-"]
    y_true = [pool[i] for i in rng.integers(0, 60, 2000)]
    y_pred = [pool[i] for i in rng.integers(0, len(pool), 2000)]
    for average in ("micro", "macro"):
        assert hierarchical_prf(y_true, y_pred, average) == hiclass_scores(y_true, y_pred, average)


BLOCK_KEYS = {"hP", "hR", "hF", "macro", "accuracy", "level_accuracy", "coverage", "n"}


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(ecs(min_depth=4), st.one_of(ecs(), ecs(min_depth=4))), min_size=1, max_size=30))
def test_metric_block_equals_hiclass_and_plain_python(pairs):
    """The one metric block every model reports: micro and macro are hiclass's numbers, the rest a plain count."""
    y_true, y_pred = map(list, zip(*pairs, strict=True))
    block = score_predictions(y_true, y_pred)
    assert set(block) == BLOCK_KEYS
    assert {k: block[k] for k in ("hP", "hR", "hF")} == hiclass_scores(y_true, y_pred, "micro")
    assert block["macro"] == hiclass_scores(y_true, y_pred, "macro")
    assert block["accuracy"] == pytest.approx(np.mean([t == p for t, p in zip(y_true, y_pred, strict=True)]))
    for level in range(1, 5):
        agree = [ec_prefixes(t)[level - 1] == (ec_prefixes(p) + ("",) * 4)[level - 1] for t, p in pairs]
        assert block["level_accuracy"][level - 1] == pytest.approx(np.mean(agree))
    assert (block["coverage"], block["n"]) == (1.0, len(pairs))


def test_metric_block_counts_missing_and_blank_predictions_as_no_prediction():
    y_true, y_pred = ["1.2.3.4", "2.7.7.7", "3.1.1.1", "1.2.3.4"], [" EC 1.2.3.4", "2.7.-.-", None, "  "]
    block = score_predictions(y_true, y_pred)
    micro = hiclass_scores(y_true, ["1.2.3.4", "2.7.-.-", "", ""], "micro")
    assert {k: block[k] for k in ("hP", "hR", "hF")} == micro
    assert (block["accuracy"], block["coverage"], block["n"]) == (0.25, 0.5, 4)
    assert block["macro"] == hierarchical_prf(y_true, y_pred, "macro")


def hiclass_gene_rows(groups):
    """hiclass multi-label input: per gene, one row of prefix nodes per label, padded to a common shape."""
    width = max(len(g) for g in groups)
    return [hiclass_rows(g) + [[""] * 4] * (width - len(g)) for g in groups]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(st.tuples(ecs(min_depth=4), st.one_of(ecs(), ecs(min_depth=4))), min_size=1, max_size=3),
                min_size=1, max_size=12))
def test_gene_block_equals_hiclass_multilabel(genes):
    """A gene's true set is the union of its ECs' prefixes, its predicted set the union of its predictions:
    hiclass's 3-D (multi-label) metrics, bit for bit."""
    gene_ids = [f"g{i}" for i, rows in enumerate(genes) for _ in rows]
    y_true = [t for rows in genes for t, _ in rows]
    y_pred = [p for rows in genes for _, p in rows]
    block = score_genes(gene_ids, y_true, y_pred)
    t = hiclass_gene_rows([[t for t, _ in rows] for rows in genes])
    p = hiclass_gene_rows([[p for _, p in rows] for rows in genes])
    for average, got in (("micro", block), ("macro", block["macro"])):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UndefinedMetricWarning)
            expected = {"hP": hm.precision(t, p, average), "hR": hm.recall(t, p, average), "hF": hm.f1(t, p, average)}
        assert {k: got[k] for k in ("hP", "hR", "hF")} == pytest.approx(expected, rel=1e-12)
    assert (block["n"], block["n_genes"]) == (len(y_true), len(genes))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(TRUTH, PREDICTION), min_size=1, max_size=30))
def test_one_record_per_gene_is_the_record_block(pairs):
    y_true, y_pred = map(list, zip(*pairs, strict=True))
    genes = score_genes([str(i) for i in range(len(pairs))], y_true, y_pred)
    assert genes == {**score_predictions(y_true, y_pred), "n_genes": len(pairs)}


def test_gene_accuracy_and_levels_by_hand():
    """Gene a (1.2.3.4 and 1.2.3.5) predicted 1.2.3.4 is right; gene b (2.1.1.1) predicted 2.1.-.- is right to
    level 2; gene c (3.1.1.1) predicted 3.1.1.1 on one record and 3.2.1.1 on its other (4.1.1.1) is wrong:
    a gene counts as right only when every node it predicts is a true one."""
    ids = ["a", "a", "b", "c", "c"]
    true = ["1.2.3.4", "1.2.3.5", "2.1.1.1", "3.1.1.1", "4.1.1.1"]
    pred = ["1.2.3.4", "1.2.3.4", "2.1.-.-", "3.1.1.1", "3.2.1.1"]
    block = score_genes(ids, true, pred)
    assert (block["n"], block["n_genes"], block["accuracy"], block["coverage"]) == (5, 3, 1 / 3, 1.0)
    assert block["level_accuracy"] == [1.0, 2 / 3, 1 / 3, 1 / 3]
    # nodes: a 4 of 5 true, 4 predicted; b 2 of 4, 2 predicted; c {3, 3.1, 3.1.1, 3.1.1.1} of 8 true, 7 predicted
    assert (block["hP"], block["hR"]) == (10 / 13, 10 / 17)
    records = score_predictions(true, pred)  # per record, gene a's second record is a miss
    assert records["accuracy"] == 2 / 5 and "n_genes" not in records


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 4).flatmap(
    lambda k: st.lists(st.tuples(TRUTH, st.lists(PREDICTION, min_size=k, max_size=k)), min_size=1, max_size=25)))
def test_knn_per_query_is_the_oracle_and_its_mean_the_metric(rows):
    y_true, neighbours = map(list, zip(*rows, strict=True))
    per_query = knn_precision_per_query(y_true, neighbours)
    expected = [slow_best_overlap(t, nb) / len(ec_prefixes(t)) for t, nb in zip(y_true, neighbours, strict=True)]
    assert per_query.shape == (len(rows),) and per_query.tolist() == pytest.approx(expected, rel=1e-12)
    assert float(np.mean(per_query)) == knn_hierarchical_precision(y_true, neighbours)  # identical, not close


def test_knn_missing_neighbour_scores_zero():
    """A baseline without an answer (homology: no hit) is a query with precision 0, not a skipped query."""
    scores = knn_precision_per_query(["1.2.3.4", "1.2.3.4", "2.1.-.-"], [[None], ["1.2.9.9"], [""]])
    assert scores.tolist() == [0.0, 0.5, 0.0]
    assert knn_hierarchical_precision(["1.2.3.4"] * 2, [[None], ["1.2.3.4"]]) == 0.5


def test_mean_by_identity_by_hand():
    values = [1.0, 0.5, 0.25, 0.0, 1.0, 0.75]
    identity = [0.95, 0.9, None, 0.2, 0.5, float("nan")]  # 0.9 and 0.5 fall in the upper bin (edges are lower bounds)
    assert mean_by_identity(values, identity) == {
        "<30": {"hP": 0.0, "n": 1}, "30-50": {"hP": None, "n": 0}, "50-90": {"hP": 1.0, "n": 1},
        ">=90": {"hP": 0.75, "n": 2}, "no hit": {"hP": 0.5, "n": 2}}
    assert list(mean_by_identity([0.5], [0.4], key="x")) == list(IDENTITY_BINS)
    assert mean_by_identity([0.5], [0.4], key="x")["30-50"] == {"x": 0.5, "n": 1}
    with pytest.raises(ValueError, match="identity has 1 values but there are 2 scores"):
        mean_by_identity([0.5, 0.5], [0.4])
    with pytest.raises(ValueError, match="identity"):
        mean_by_identity([0.5], [1.5])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 1), st.one_of(st.none(), st.floats(0, 1))), min_size=1, max_size=40))
def test_mean_by_identity_recombines_to_the_overall_mean(pairs):
    values, identity = map(list, zip(*pairs, strict=True))
    bins = mean_by_identity(values, identity)
    assert sum(b["n"] for b in bins.values()) == len(values)
    total = sum(b["hP"] * b["n"] for b in bins.values() if b["n"])
    assert total / len(values) == pytest.approx(np.mean(values), abs=1e-12)
    for name, b in bins.items():
        assert (b["hP"] is None) == (b["n"] == 0)
        if b["n"]:
            assert min(values) - 1e-12 <= b["hP"] <= max(values) + 1e-12, name

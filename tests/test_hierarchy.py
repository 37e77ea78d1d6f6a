"""Hierarchy-aware decoding (biotalk.hierarchy), shared by the classifier and CLIP zero-shot."""

import numpy as np
import pytest

from biotalk.ec import LabelMap, ec_prefixes
from biotalk.hierarchy import best_tau, decode_hierarchical, hierarchy_scores, tradeoff
from biotalk.metrics import score_predictions

LABELS = ["1.1.1.1", "1.1.1.2", "1.1.2.1", "1.2.1.1", "2.1.1.1", "2.1.1.3", "3.5.1.n3", "3.5.1.10", "3.5.1.2"]


def test_decoding_breaks_ties_in_the_label_map_order():
    """Decoding and the classifiers' label map share one EC order: on tied classes the argmax decoding
    returns the tie the label map puts first (3.5.1.n3 before 3.5.1.n10, 1.1.1.2 before 1.1.1.10)."""
    for tied in (["3.5.1.n10", "3.5.1.n3"], ["1.1.1.10", "1.1.1.2"]):
        labels = LabelMap.from_ecs(tied).labels
        for order in (tied, list(labels)):
            probs = np.full((1, 2), 0.5)
            assert decode_hierarchical(probs, order, 0.0)[0] == [labels[0]]
            assert hierarchy_scores(probs, order)[0][0, 3] == labels[np.argmax(probs[0])]


def test_prefix_mass_equals_brute_force_sum_in_any_label_order():
    rng = np.random.default_rng(1)
    perm = rng.permutation(len(LABELS))
    labels = [LABELS[i] for i in perm]  # unsorted: the result must not depend on the candidates' order
    probs = rng.dirichlet(np.full(len(labels), 0.3), size=50)
    nodes, best_p = hierarchy_scores(probs, labels)
    for row in range(len(probs)):
        for depth in range(1, 5):
            mass: dict[str, float] = {}
            for ec, p in zip(labels, probs[row], strict=True):
                node = ec_prefixes(ec)[depth - 1]
                mass[node] = mass.get(node, 0.0) + p
            assert best_p[row, depth - 1] == pytest.approx(max(mass.values()))
            assert mass[ec_prefixes(nodes[row, depth - 1])[-1]] == pytest.approx(best_p[row, depth - 1])


def test_spread_mass_earns_upper_levels_that_the_argmax_loses():
    # Ten sibling candidates under 1.1.1 share the mass; the truth is an eleventh sibling none of them is.
    labels = [f"1.1.1.{i}" for i in range(1, 11)] + ["2.7.7.7"]
    probs = np.array([[0.08] * 10 + [0.2]])
    argmax, _ = decode_hierarchical(probs, labels, 0.0)
    deep, score = decode_hierarchical(probs, labels, 0.5)
    assert argmax == ["2.7.7.7"] and deep == ["1.1.1.-"] and score[0] == pytest.approx(0.8)
    truth = ["1.1.1.99"]
    assert score_predictions(truth, argmax)["hF"] == 0.0
    assert score_predictions(truth, deep)["hP"] == 1.0 and score_predictions(truth, deep)["hR"] == 0.75


def test_best_tau_maximises_hf_and_prefers_the_smaller_tau_on_ties():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.full(len(LABELS), 0.5), size=300)
    truth = [LABELS[i] for i in rng.integers(0, len(LABELS), 300)]
    rows = tradeoff(probs, LABELS, truth, [0.0, 0.2, 0.4, 0.6, 0.8, 1.1])
    tau = best_tau(rows)
    assert max(r["hF"] for r in rows) == next(r["hF"] for r in rows if r["tau"] == tau)
    tied = [{"tau": 0.5, "hF": 0.3}, {"tau": 0.1, "hF": 0.3}, {"tau": 0.0, "hF": 0.2}]
    assert best_tau(tied) == 0.1
    with pytest.raises(ValueError):
        best_tau([])

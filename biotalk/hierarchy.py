"""Hierarchy-aware decoding of a probability distribution over full ECs, and its scores.

Any model that puts probabilities on full ECs (the MLP classifier over its training classes, CLIP
zero-shot over every ENZYME EC) is decoded the same way: the probabilities of the ECs sharing a prefix
are summed, and the prediction is the deepest prefix whose mass reaches ``tau``. A model unsure of the
fourth level can then still earn the first levels instead of losing all four on a wrong guess.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from biotalk.ec import EC, LEVELS, ec_order_key, ec_prefixes, parse_ec
from biotalk.metrics import score_genes, score_predictions


def hierarchy_scores(probs: np.ndarray, labels: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Most probable node and its summed probability at each EC depth: two (N, 4) arrays.

    At depth d the probabilities of the classes sharing a d-level prefix are added; column d-1 holds
    the best such node (a partial EC string like ``1.2.-.-``) and its summed probability.
    """
    order = sorted(range(len(labels)), key=lambda i: ec_order_key(labels[i]))
    ecs = [parse_ec(labels[i]) for i in order]
    p = np.asarray(probs, dtype=np.float64)[:, order]
    nodes = np.empty((len(p), LEVELS), dtype=object)
    best_p = np.zeros((len(p), LEVELS))
    for depth in range(1, LEVELS + 1):
        prefixes = [ec.levels[:depth] for ec in ecs]
        starts = [i for i in range(len(ecs)) if i == 0 or prefixes[i] != prefixes[i - 1]]
        names = np.array([str(EC(prefixes[i])) for i in starts], dtype=object)
        summed = np.add.reduceat(p, starts, axis=1) if len(p) else np.zeros((0, len(starts)))
        best = summed.argmax(1)
        nodes[:, depth - 1] = names[best]
        best_p[:, depth - 1] = summed[np.arange(len(p)), best]
    return nodes, best_p


def threshold(nodes: np.ndarray, best_p: np.ndarray, tau: float) -> tuple[list[str | None], np.ndarray]:
    """Per row, the deepest node of ``hierarchy_scores`` whose mass reaches ``tau``, and that mass."""
    passed = best_p >= tau
    # deepest passing depth per row (summed probabilities never grow with depth, but do not rely on it)
    depth = np.where(passed.any(1), LEVELS - np.argmax(passed[:, ::-1], axis=1), 0)
    rows = np.arange(len(nodes))
    preds = [nodes[r, d - 1] if d else None for r, d in zip(rows, depth, strict=True)]
    scores = np.where(depth > 0, best_p[rows, np.maximum(depth, 1) - 1], np.nan)
    return preds, scores


def decode_hierarchical(
    probs: np.ndarray, labels: Sequence[str], tau: float
) -> tuple[list[str | None], np.ndarray]:
    """Per row, the deepest EC node whose summed class probability reaches ``tau``, and that probability.

    ``tau = 0`` gives the argmax class (a full EC); a ``tau`` above 1 gives no prediction
    (``None``, score NaN): an abstention costs recall, a shallower node costs less precision.
    """
    return threshold(*hierarchy_scores(probs, labels), tau)


def tradeoff(probs: np.ndarray, labels: Sequence[str], y_true: Sequence[str], taus: Sequence[float],
             genes: Sequence[str] | None = None) -> list[dict]:  # fmt: skip
    """Micro hP/hR/hF and coverage of hierarchy-aware decoding over a grid of thresholds, per record or,
    with ``genes``, per gene (``biotalk.metrics.score_genes``, as the blocks the threshold is chosen for)."""
    nodes, best_p = hierarchy_scores(probs, labels)
    rows = []
    for tau in taus:
        preds, _ = threshold(nodes, best_p, tau)
        s = score_predictions(y_true, preds) if genes is None else score_genes(genes, y_true, preds)
        depth = [len(ec_prefixes(p)) for p in preds]
        rows.append({"tau": float(tau), "hP": s["hP"], "hR": s["hR"], "hF": s["hF"],
                     "coverage": s["coverage"], "mean_depth": float(np.mean(depth)) if depth else 0.0})
    return rows


def best_tau(rows: Sequence[dict]) -> float:
    """The threshold of a ``tradeoff`` with the highest hF (ties: the smaller, deeper-predicting tau)."""
    if not rows:
        raise ValueError("best_tau needs at least one tradeoff row")
    return min(rows, key=lambda r: (-r["hF"], r["tau"]))["tau"]

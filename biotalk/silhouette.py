"""Silhouette of embeddings grouped by EC (Table 3): how well an embedding separates enzyme classes,
on a seeded stratified sample so that large classes do not dominate."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from biotalk.ec import LEVELS
from biotalk.metrics import as_object_array, encode_ecs
from biotalk.rng import stream


@dataclass(frozen=True)
class SilhouetteResult:
    """Silhouette score with what it was computed on; score is nan and reason says why when undefined."""

    score: float
    n_samples: int
    n_classes: int
    n_singleton_classes: int
    reason: str = ""

    def __float__(self) -> float:
        return self.score


def stratified_sample(labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """Sorted row indices of a seeded random sample of up to ``per_class`` rows of every label."""
    perm = stream(seed).permutation(len(labels))
    order = perm[np.argsort(labels[perm], kind="stable")]
    sorted_labels = labels[order]
    starts = np.r_[0, np.flatnonzero(sorted_labels[1:] != sorted_labels[:-1]) + 1]
    rank = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    return np.sort(order[rank < per_class])


def silhouette(
    embeddings: np.ndarray,
    labels: Sequence[str],
    metric: str = "cosine",
    per_class: int = 20,
    seed: int = 0,
    level: int = 4,
) -> SilhouetteResult:
    """scikit-learn silhouette of embeddings grouped by EC (truncated to ``level``) on a stratified sample.

    Classes left with a single sampled row are dropped: sklearn scores such a row 0 by convention,
    which says nothing about the embedding and pulls the mean towards 0.
    """
    if metric not in ("cosine", "euclidean"):
        raise ValueError(f"metric must be 'cosine' or 'euclidean', got {metric!r}")
    if not 1 <= level <= LEVELS:
        raise ValueError(f"level must be 1..{LEVELS}, got {level}")
    if per_class < 2:
        raise ValueError(f"per_class must be at least 2, got {per_class}")
    embeddings = np.asarray(embeddings)
    arr = as_object_array(labels, "labels", 1)
    if embeddings.ndim != 2 or len(embeddings) != len(arr):
        raise ValueError(f"embeddings of shape {embeddings.shape} do not match {len(arr)} labels")
    codes = encode_ecs({"labels": arr})["labels"][:, level - 1] if len(arr) else np.zeros(0, np.int32)
    short = np.flatnonzero(codes < 0)
    if len(short):
        raise ValueError(f"labels[{short[0]}] = {arr[short[0]]!r} has no level {level}")
    rows = stratified_sample(codes, per_class, seed)
    classes, counts = np.unique(codes[rows], return_counts=True)
    singletons = classes[counts == 1]
    rows = rows[~np.isin(codes[rows], singletons)]
    n_classes = len(classes) - len(singletons)
    if n_classes < 2:
        reason = f"{n_classes} class(es) with at least 2 samples; silhouette needs 2"
        return SilhouetteResult(math.nan, len(rows), n_classes, len(singletons), reason)
    # imported here: sklearn takes seconds to import, which every script would pay at start
    from sklearn.metrics import silhouette_score

    score = silhouette_score(embeddings[rows], codes[rows], metric=metric)
    return SilhouetteResult(float(score), len(rows), n_classes, len(singletons))

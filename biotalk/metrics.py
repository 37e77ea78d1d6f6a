"""Hierarchical metrics over EC numbers, shared by every model in the project.

Each EC becomes a row of four integer node ids, one per level, where the id names the whole
prefix ("1.2" and "3.2" get different ids at level 2) and -1 marks an unspecified level. With
prefix ids, the HiClass sets are simply the specified columns: |alpha_i & beta_i| is the number
of levels whose ids agree, so every metric is a few numpy comparisons over (n, 4) arrays.
Strings are parsed once per distinct value (through biotalk.ec), never once per sample.

Definitions (docs/metrics.md has the long form): for sample i, alpha_i = predicted nodes with
their ancestors, beta_i = true nodes with their ancestors (HiClass). Any 0/0 is defined as 0:
hiclass raises ZeroDivisionError there (a run of missing predictions, a missing prediction
under macro averaging), everywhere else our numbers equal hiclass.metrics bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from biotalk.ec import LEVELS, InvalidEC, ec_prefixes, normalize_ec
from biotalk.rng import stream

ECLike = str | None


def _as_object_array(values, name: str, ndim: int) -> np.ndarray:
    """Reject a bare string (the reference code's defect: it was scored character by character)."""
    if isinstance(values, str):
        raise TypeError(f"{name} must be a sequence of EC strings, got a single string {values!r}")
    try:
        arr = np.asarray(values, dtype=object)
    except ValueError as err:  # ragged nested lists
        raise ValueError(f"{name} must be a rectangular {ndim}-D array of EC strings: {err}") from None
    if arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {arr.shape}")
    return arr


def _position(arr: np.ndarray, flat_index: int) -> str:
    return ", ".join(str(int(i)) for i in np.unravel_index(flat_index, arr.shape))


def _to_series(arr: np.ndarray, name: str) -> pl.Series:
    flat = arr.ravel().tolist()  # from a list: polars infers Object for an object array starting with None
    try:
        return pl.Series(name, flat, dtype=pl.String)
    except (TypeError, pl.exceptions.PolarsError):
        bad = next(i for i, v in enumerate(flat) if v is not None and not isinstance(v, str))
        raise TypeError(
            f"{name}[{_position(arr, bad)}]: expected an EC string or None, got {flat[bad]!r}"
        ) from None


def encode_ecs(named_arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Encode arrays of EC strings to node-id arrays of shape (*arr.shape, 4), ids shared by all arrays.

    None and blank strings are missing (all -1); an invalid EC raises InvalidEC naming array, index and value.
    """
    series = {name: _to_series(arr, name) for name, arr in named_arrays.items()}
    uniques = pl.concat(list(series.values())).drop_nulls().unique().sort()
    node_ids: dict[str, int] = {}
    table = np.full((len(uniques) + 1, LEVELS), -1, dtype=np.int32)  # last row: null
    for row, text in enumerate(uniques.to_list()):
        try:
            prefixes = ec_prefixes(text)
        except InvalidEC as err:
            for name, s in series.items():
                hits = (s == text).arg_true()
                if len(hits):
                    raise InvalidEC(f"{name}[{_position(named_arrays[name], hits[0])}]: {err}") from None
            raise
        for level, prefix in enumerate(prefixes):
            table[row, level] = node_ids.setdefault(prefix, len(node_ids))
    enum = pl.Enum(uniques)
    out = {}
    for name, s in series.items():
        rows = s.cast(enum).to_physical().fill_null(len(uniques)).to_numpy()
        out[name] = table[rows].reshape(*named_arrays[name].shape, LEVELS)
    return out


def _encode_truth(y_true) -> np.ndarray:
    arr = _as_object_array(y_true, "y_true", 1)
    if len(arr) == 0:
        raise ValueError("y_true is empty")
    return arr


def _check_truth(true: np.ndarray) -> None:
    missing = np.flatnonzero(true[:, 0] < 0)
    if len(missing):
        raise ValueError(f"y_true[{missing[0]}] is missing: every sample needs a true EC")


def _encode_pairs(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    true_arr = _encode_truth(y_true)
    pred_arr = _as_object_array(y_pred, "y_pred", 1)
    if len(true_arr) != len(pred_arr):
        raise ValueError(f"y_true has {len(true_arr)} samples but y_pred has {len(pred_arr)}")
    codes = encode_ecs({"y_true": true_arr, "y_pred": pred_arr})
    _check_truth(codes["y_true"])
    return codes["y_true"], codes["y_pred"]


def _overlap(true: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """|alpha & beta| per pair: levels whose prefix ids agree (a missing level never agrees)."""
    return ((true == pred) & (true >= 0)).sum(axis=-1)


def _divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """Elementwise num / den with 0/0 := 0."""
    return np.divide(num, den, out=np.zeros(num.shape, dtype=np.float64), where=den > 0)


def _sequential_mean(x: np.ndarray) -> float:
    """Mean summed left to right, as hiclass does, so macro scores match it to the last bit."""
    return float(np.cumsum(x)[-1] / len(x))


def hierarchical_prf(
    y_true: Sequence[str], y_pred: Sequence[ECLike], average: str = "micro"
) -> dict[str, float]:
    """HiClass hierarchical precision, recall and F1 over EC prefixes.

    Predictions may be full, partial ("1.2.-.-") or missing (None/""); a missing prediction adds
    nothing to the precision denominator and costs recall. 0/0 is 0 (e.g. all predictions missing: hP = 0).
    """
    if average not in ("micro", "macro"):
        raise ValueError(f"average must be 'micro' or 'macro', got {average!r}")
    true, pred = _encode_pairs(y_true, y_pred)
    inter = _overlap(true, pred)
    n_pred = (pred >= 0).sum(axis=1)
    n_true = (true >= 0).sum(axis=1)
    if average == "micro":
        inter_sum, pred_sum, true_sum = int(inter.sum()), int(n_pred.sum()), int(n_true.sum())
        hp = inter_sum / pred_sum if pred_sum else 0.0
        hr = inter_sum / true_sum
        hf = 2 * hp * hr / (hp + hr) if hp + hr else 0.0
        return {"hP": hp, "hR": hr, "hF": hf}
    p, r = _divide(inter, n_pred), _divide(inter, n_true)
    f = _divide(2 * p * r, p + r)
    return {"hP": _sequential_mean(p), "hR": _sequential_mean(r), "hF": _sequential_mean(f)}


def _level_fractions(hits: np.ndarray, true: np.ndarray) -> list[float]:
    """Per level L: hits among samples whose true EC specifies level L (nan when none does)."""
    defined = true >= 0
    counts = defined.sum(axis=0)
    return [
        float((hits[:, lv] & defined[:, lv]).sum() / counts[lv]) if counts[lv] else math.nan
        for lv in range(LEVELS)
    ]


def level_accuracy(y_true: Sequence[str], y_pred: Sequence[ECLike]) -> list[float]:
    """Fraction of samples whose prediction agrees with the truth down to level 1, 2, 3, 4."""
    true, pred = _encode_pairs(y_true, y_pred)
    return _level_fractions(true == pred, true)


def score_predictions(y_true: Sequence[str], y_pred: Sequence[str | None]) -> dict:
    """THE metric block of one split, the layout every model reports (MLP, baselines, CLIP zero-shot, LLM).

    ``hP``/``hR``/``hF``: micro-averaged HiClass scores over EC prefixes (``macro`` holds the per-record
    means); ``accuracy``: exact full-EC match; ``level_accuracy``: accuracy at EC levels 1-4;
    ``coverage``: share of records with any prediction (None and blank strings are none); ``n``: records.
    """
    y_true = [normalize_ec(ec) for ec in y_true]
    y_pred = [None if ec is None or (isinstance(ec, str) and not ec.strip()) else normalize_ec(ec) for ec in y_pred]
    micro = hierarchical_prf(y_true, y_pred, average="micro")
    return {
        **{k: float(v) for k, v in micro.items()},
        "macro": {k: float(v) for k, v in hierarchical_prf(y_true, y_pred, average="macro").items()},
        "accuracy": float(np.mean([t == p for t, p in zip(y_true, y_pred, strict=True)])) if y_true else 0.0,
        "level_accuracy": [float(v) for v in level_accuracy(y_true, y_pred)],
        "coverage": float(np.mean([p is not None for p in y_pred])) if y_pred else 0.0,
        "n": len(y_true),
    }


def _encode_neighbours(y_true, neighbour_ecs) -> tuple[np.ndarray, np.ndarray]:
    true_arr = _encode_truth(y_true)
    nb_arr = _as_object_array(neighbour_ecs, "neighbour_ecs", 2)
    if nb_arr.shape[0] != len(true_arr) or nb_arr.shape[1] == 0:
        raise ValueError(f"neighbour_ecs has shape {nb_arr.shape}, expected ({len(true_arr)}, k >= 1)")
    codes = encode_ecs({"y_true": true_arr, "neighbour_ecs": nb_arr})
    _check_truth(codes["y_true"])
    return codes["y_true"], codes["neighbour_ecs"]


def knn_hierarchical_precision(y_true: Sequence[str], neighbour_ecs: Sequence[Sequence[ECLike]]) -> float:
    """The paper's kNN metric: per query, the best prefix overlap among its k neighbours divided by
    the depth of the true EC, averaged over queries (the reference divided by the last neighbour's depth)."""
    true, nb = _encode_neighbours(y_true, neighbour_ecs)
    best = _overlap(true[:, None, :], nb).max(axis=1)
    return float(np.mean(best / (true >= 0).sum(axis=1)))


def level_accuracy_at_k(y_true: Sequence[str], neighbour_ecs: Sequence[Sequence[ECLike]]) -> list[float]:
    """Per level L: fraction of queries with at least one of their k neighbours agreeing down to level L."""
    true, nb = _encode_neighbours(y_true, neighbour_ecs)
    return _level_fractions((true[:, None, :] == nb).any(axis=1), true)


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
    arr = _as_object_array(labels, "labels", 1)
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

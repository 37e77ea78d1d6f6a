"""Hierarchical metrics over EC numbers, shared by every model in the project.

Each EC becomes a row of four integer node ids, one per level, where the id names the whole
prefix ("1.2" and "3.2" get different ids at level 2) and -1 marks an unspecified level, so every
metric is a few numpy operations over (n, 4) arrays and a sample's node set is a set of ids (the
union over a gene's EC records, for multi-EC genes). Strings are parsed once per distinct value.

Definitions (docs/metrics.md has the long form): for sample i, alpha_i = predicted nodes with
their ancestors, beta_i = true nodes with their ancestors (HiClass). Any 0/0 is defined as 0:
hiclass raises ZeroDivisionError there (a run of missing predictions, a missing prediction
under macro averaging), everywhere else our numbers equal hiclass.metrics bit for bit."""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence

import numpy as np
import polars as pl

from biotalk.ec import LEVELS, InvalidEC, ec_prefixes

ECLike = str | None


def as_object_array(values, name: str, ndim: int) -> np.ndarray:
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
    arr = as_object_array(y_true, "y_true", 1)
    if len(arr) == 0:
        raise ValueError("y_true is empty")
    return arr


def _check_truth(true: np.ndarray) -> None:
    missing = np.flatnonzero(true[:, 0] < 0)
    if len(missing):
        raise ValueError(f"y_true[{missing[0]}] is missing: every sample needs a true EC")


def _encode_pairs(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    true_arr = _encode_truth(y_true)
    pred_arr = as_object_array(y_pred, "y_pred", 1)
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


IDENTITY_BINS = ("<30", "30-50", "50-90", ">=90", "no hit")  # identity to training, percent
IDENTITY_EDGES = (0.3, 0.5, 0.9)


def identity_bins(identity: Sequence[float | None]) -> list[str]:
    """The ``IDENTITY_BINS`` label of each identity to training (a fraction 0..1; None or nan: no hit)."""
    labels = []
    for i, x in enumerate(identity):
        if x is None or x != x:
            labels.append(IDENTITY_BINS[-1])
        elif not 0 <= x <= 1:
            raise ValueError(f"identity[{i}] = {x!r}: expected a fraction in [0, 1], or None for no hit")
        else:
            labels.append(IDENTITY_BINS[bisect.bisect_right(IDENTITY_EDGES, x)])
    return labels


def _node_sets(samples: np.ndarray, true: np.ndarray, pred: np.ndarray, n: int) -> tuple[np.ndarray, ...]:
    """|alpha & beta|, |alpha|, |beta| of each of ``n`` samples whose node sets are the unions over their
    records' columns (``samples``: each record's sample; a node id names a whole prefix)."""
    width = int(max(true.max(initial=0), pred.max(initial=0))) + 1

    def keys(ids: np.ndarray) -> np.ndarray:
        rows = np.broadcast_to(samples[:, None], ids.shape)
        return np.unique(rows[ids >= 0].astype(np.int64) * width + ids[ids >= 0])

    t, p = keys(true), keys(pred)
    inter = np.intersect1d(t, p, assume_unique=True)
    return tuple(np.bincount(k // width, minlength=n) for k in (inter, p, t))


def _deepest(codes: np.ndarray) -> np.ndarray:
    """Each EC's deepest node as an (n, 1) column: equal ids are equal normalised ECs (-1: missing)."""
    depth = (codes >= 0).sum(axis=1)
    return codes[np.arange(len(codes)), np.maximum(depth - 1, 0)][:, None]


def _block(samples: np.ndarray, true: np.ndarray, pred: np.ndarray) -> dict:
    """The scores of records grouped into samples 0..n-1, in the layout of ``score_predictions``."""
    n = int(samples.max()) + 1
    inter, n_pred, n_true = _node_sets(samples, true, pred, n)
    inter_sum, pred_sum, true_sum = int(inter.sum()), int(n_pred.sum()), int(n_true.sum())
    hp = inter_sum / pred_sum if pred_sum else 0.0
    hr = inter_sum / true_sum
    p, r = _divide(inter, n_pred), _divide(inter, n_true)
    levels = []
    for column in range(LEVELS):
        hit, predicted, defined = _node_sets(samples, true[:, column : column + 1], pred[:, column : column + 1], n)
        correct = (predicted > 0) & (hit == predicted) & (defined > 0)
        levels.append(float(correct.sum() / (defined > 0).sum()) if (defined > 0).any() else math.nan)
    hit, predicted, _ = _node_sets(samples, _deepest(true), _deepest(pred), n)
    return {
        "hP": hp, "hR": hr, "hF": 2 * hp * hr / (hp + hr) if hp + hr else 0.0,
        "macro": {"hP": _sequential_mean(p), "hR": _sequential_mean(r), "hF": _sequential_mean(_divide(2 * p * r, p + r))},
        "accuracy": float(np.mean((predicted > 0) & (hit == predicted))),
        "level_accuracy": levels,
        "coverage": float(np.mean(n_pred > 0)),
        "n": len(samples),
    }  # fmt: skip


def _first_seen(ids: Sequence) -> np.ndarray:
    """Integer ids 0..n-1 numbered in order of first appearance."""
    _, first, inverse = np.unique(np.asarray(ids, dtype=object).astype(str), return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first)] = np.arange(len(first))
    return rank[inverse.ravel()]


def _scored(samples: np.ndarray, true: np.ndarray, pred: np.ndarray, identity, genes: bool) -> dict:
    """``_block`` plus ``n_genes`` (when samples are genes) and, with ``identity``, ``by_identity``: the
    block of each identity bin (a sample's identity: the highest of its records'; an empty bin: ``n`` 0)."""
    block = _block(samples, true, pred) | ({"n_genes": int(samples.max()) + 1} if genes else {})
    if identity is None:
        return block
    values = np.array([np.nan if x is None else float(x) for x in identity], dtype=np.float64)
    if len(values) != len(samples):
        raise ValueError(f"identity has {len(values)} values but there are {len(samples)} records")
    best = np.full(int(samples.max()) + 1, np.nan)
    np.fmax.at(best, samples, values)
    labels = np.asarray(identity_bins(best.tolist()), dtype=object)[samples]
    block["by_identity"] = {}
    for name in IDENTITY_BINS:
        rows = np.flatnonzero(labels == name)
        empty = {"n": 0} | ({"n_genes": 0} if genes else {})
        sub = _scored(_first_seen(samples[rows]), true[rows], pred[rows], None, genes) if len(rows) else empty
        block["by_identity"][name] = sub
    return block


def score_predictions(y_true: Sequence[str], y_pred: Sequence[ECLike], identity: Sequence[float | None] | None = None) -> dict:
    """THE metric block of one split, the layout every model reports (MLP, baselines, CLIP zero-shot, LLM).

    ``hP``/``hR``/``hF``: micro-averaged HiClass scores over EC prefixes (``macro`` holds the per-record
    means); ``accuracy``: exact EC match; ``level_accuracy``: accuracy at EC levels 1-4;
    ``coverage``: share of records with any prediction (None and blank strings are none); ``n``: records.
    With ``identity`` (each record's identity to training, ``biotalk.data.identity``), ``by_identity`` holds
    the same block for each of ``IDENTITY_BINS``.
    """
    true, pred = _encode_pairs(y_true, y_pred)
    return _scored(np.arange(len(true)), true, pred, identity, genes=False)


def score_genes(gene_ids: Sequence, y_true: Sequence[str], y_pred: Sequence[ECLike],
                identity: Sequence[float | None] | None = None) -> dict:  # fmt: skip
    """The metric block with genes as samples: a gene with several EC records is one sample whose true
    node set is the union of its ECs' prefixes, and whose predicted set the union of its records'
    predictions (HiClass's multi-label sets). ``accuracy`` and each level of ``level_accuracy``: the
    gene predicts something and only true nodes; ``coverage``: share of genes with a prediction;
    ``n``: records, ``n_genes``: genes; ``by_identity`` as in ``score_predictions``.
    """
    true, pred = _encode_pairs(y_true, y_pred)
    if len(gene_ids) != len(true):
        raise ValueError(f"gene_ids has {len(gene_ids)} values but there are {len(true)} records")
    return _scored(_first_seen(gene_ids), true, pred, identity, genes=True)


def _encode_neighbours(y_true, neighbour_ecs) -> tuple[np.ndarray, np.ndarray]:
    true_arr = _encode_truth(y_true)
    nb_arr = as_object_array(neighbour_ecs, "neighbour_ecs", 2)
    if nb_arr.shape[0] != len(true_arr) or nb_arr.shape[1] == 0:
        raise ValueError(f"neighbour_ecs has shape {nb_arr.shape}, expected ({len(true_arr)}, k >= 1)")
    codes = encode_ecs({"y_true": true_arr, "neighbour_ecs": nb_arr})
    _check_truth(codes["y_true"])
    return codes["y_true"], codes["neighbour_ecs"]


def knn_precision_per_query(y_true: Sequence[str], neighbour_ecs: Sequence[Sequence[ECLike]]) -> np.ndarray:
    """Each query's kNN hierarchical precision: the best prefix overlap among its k neighbours divided by
    the depth of its true EC. A missing neighbour (None or blank: no hit) overlaps nothing and scores 0,
    so a baseline that may find no neighbour is scored on every query, not only on the ones it answers."""
    true, nb = _encode_neighbours(y_true, neighbour_ecs)
    best = _overlap(true[:, None, :], nb).max(axis=1)
    return best / (true >= 0).sum(axis=1)


def knn_hierarchical_precision(y_true: Sequence[str], neighbour_ecs: Sequence[Sequence[ECLike]]) -> float:
    """The paper's kNN metric: ``knn_precision_per_query`` averaged over queries (the reference divided
    by the last neighbour's depth; the true EC's depth is the denominator here)."""
    return float(np.mean(knn_precision_per_query(y_true, neighbour_ecs)))


def mean_by_identity(values: Sequence[float], identity: Sequence[float | None], key: str = "hP") -> dict[str, dict]:
    """Per-query scores averaged within each of ``IDENTITY_BINS`` (identity to training, ``identity_bins``):
    ``{bin: {key: mean or None when the bin is empty, "n": queries}}``, every bin present, in order."""
    scores = np.asarray(values, dtype=np.float64)
    if len(scores) != len(identity):
        raise ValueError(f"identity has {len(identity)} values but there are {len(scores)} scores")
    labels = np.asarray(identity_bins(identity), dtype=object)
    out = {}
    for name in IDENTITY_BINS:
        inside = scores[labels == name]
        out[name] = {key: float(inside.mean()) if len(inside) else None, "n": len(inside)}
    return out


def level_accuracy_at_k(y_true: Sequence[str], neighbour_ecs: Sequence[Sequence[ECLike]]) -> list[float]:
    """Per level L: fraction of queries with at least one of their k neighbours agreeing down to level L."""
    true, nb = _encode_neighbours(y_true, neighbour_ecs)
    return _level_fractions((true[:, None, :] == nb).any(axis=1), true)

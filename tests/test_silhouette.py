"""Silhouette of embeddings grouped by EC: sklearn's score on a seeded stratified sample."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn.metrics import silhouette_score

from biotalk.silhouette import silhouette, stratified_sample


def clustered(n_classes, per_class, dim=16, seed=0, spread=0.05):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_classes, dim))
    labels = np.repeat([f"1.{i // 3 + 1}.{i % 3 + 1}.1" for i in range(n_classes)], per_class)
    x = np.repeat(centres, per_class, axis=0) + spread * rng.standard_normal((n_classes * per_class, dim))
    return x, labels


def test_silhouette_equals_sklearn_when_nothing_is_sampled_away():
    x, labels = clustered(6, 8, spread=1.0)
    for metric in ("cosine", "euclidean"):
        result = silhouette(x, labels, metric=metric, per_class=50)
        assert result.score == pytest.approx(silhouette_score(x, labels, metric=metric), rel=1e-9)
        assert (result.n_samples, result.n_classes, result.n_singleton_classes) == (48, 6, 0)


def test_silhouette_separated_clusters_score_high_and_sampling_is_seeded():
    x, labels = clustered(6, 40)
    a, b = silhouette(x, labels, seed=1), silhouette(x, labels, seed=1)
    assert a == b and a.score > 0.9 and a.n_samples == 6 * 20
    shuffled = silhouette(x, labels[np.random.default_rng(0).permutation(len(labels))])
    assert shuffled.score < 0.1


def test_silhouette_drops_singletons_and_truncates_levels():
    x, labels = clustered(6, 5)
    base = silhouette(x, labels)
    lone = silhouette(np.vstack([x, np.full((1, x.shape[1]), 9.0)]), np.append(labels, "6.6.6.6"))
    assert lone.score == pytest.approx(base.score) and lone.n_singleton_classes == 1
    level2 = silhouette(x, labels, level=2)  # classes 1.1, 1.2: three fine classes each
    assert level2.n_classes == 2 and level2.score < base.score
    nan = silhouette(x[:5], labels[:5])
    assert math.isnan(nan.score) and "needs 2" in nan.reason and math.isnan(float(nan))
    with pytest.raises(ValueError, match="no level 4"):
        silhouette(x[:2], ["1.2.-.-", "1.2.3.4"])


@given(st.lists(st.integers(0, 5), min_size=1, max_size=60), st.integers(1, 6), st.integers(0, 3))
def test_stratified_sample_takes_min_of_class_size_and_quota(labels, per_class, seed):
    labels = np.array(labels)
    rows = stratified_sample(labels, per_class, seed)
    assert len(set(rows.tolist())) == len(rows)
    for value in np.unique(labels):
        assert (labels[rows] == value).sum() == min(per_class, (labels == value).sum())
    assert np.array_equal(rows, stratified_sample(labels, per_class, seed))

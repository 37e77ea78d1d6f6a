import numpy as np
import pytest

from biotalk.knn import knn_predict_ecs, knn_search
from biotalk.metrics import knn_hierarchical_precision


def brute_force(index, queries, k, metric):
    """Plain numpy: cosine similarity (descending) or squared L2 distance (ascending), float64."""
    index, queries = index.astype(np.float64), queries.astype(np.float64)
    if metric == "cosine":
        unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
        scores = unit(queries) @ unit(index).T
        order = np.argsort(-scores, axis=1, kind="stable")
    else:
        scores = ((queries[:, None, :] - index[None, :, :]) ** 2).sum(-1)
        order = np.argsort(scores, axis=1, kind="stable")
    return scores, order


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_matches_numpy_brute_force(metric):
    rng = np.random.default_rng(0)
    index = rng.standard_normal((300, 24)) * rng.uniform(0.1, 10, (300, 1))  # unequal norms
    queries = rng.standard_normal((50, 24))
    before = index.copy()
    scores, indices = knn_search(index, queries, k=5, metric=metric, batch_size=7)
    full, order = brute_force(index, queries, 5, metric)
    assert indices.shape == scores.shape == (50, 5)
    assert np.array_equal(indices, order[:, :5])
    assert np.allclose(scores, np.take_along_axis(full, order[:, :5], 1), rtol=1e-4, atol=1e-4)
    assert np.array_equal(index, before)  # the caller's array is untouched


def test_cosine_and_raw_l2_disagree_on_unnormalised_vectors():
    """The reference code labelled IndexFlatL2 on raw vectors 'cosine'; the two rank differently."""
    index = np.array([[1.0, 0.0], [10.0, 3.0]])
    query = np.array([[10.0, 0.0]])
    assert knn_search(index, query, 1, "cosine")[1][0, 0] == 0
    assert knn_search(index, query, 1, "l2")[1][0, 0] == 1


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_exclude_self_is_leave_one_out(metric):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((120, 8))
    x[60] = x[61]  # an exact duplicate: its twin is a neighbour, itself is not
    _, indices = knn_search(x, x, k=3, metric=metric, exclude_self=True, batch_size=16)
    assert not (indices == np.arange(120)[:, None]).any()
    assert indices[60, 0] == 61 and indices[61, 0] == 60
    full, _ = brute_force(x, x, 3, metric)
    np.fill_diagonal(full, -np.inf if metric == "cosine" else np.inf)
    order = np.argsort(-full if metric == "cosine" else full, axis=1, kind="stable")
    keep = np.ones(120, bool)
    keep[[60, 61]] = False
    twin = lambda i: np.where(i == 61, 60, i)  # noqa: E731  the twins tie: their order is not defined
    assert np.array_equal(twin(indices[keep]), twin(order[keep, :3]))


def test_zero_vector_and_argument_errors():
    x = np.eye(4)
    x[3] = 0.0
    scores, _ = knn_search(x, x[3:], 2, "cosine")
    assert np.all(scores == 0.0)  # a zero vector is equally far from everything, no nan
    with pytest.raises(ValueError, match="k=5"):
        knn_search(x, x, 5)
    with pytest.raises(ValueError, match="k=4"):
        knn_search(x, x, 4, exclude_self=True)
    with pytest.raises(ValueError, match="dim"):
        knn_search(x, np.ones((1, 3)), 1)
    with pytest.raises(ValueError, match="metric"):
        knn_search(x, x, 1, metric="dot")
    with pytest.raises(ValueError, match="same length"):
        knn_search(x, x[:2], 1, exclude_self=True)


def test_predicted_ecs_and_end_to_end_precision():
    rng = np.random.default_rng(2)
    ecs = ["1.1.1.1", "1.1.1.2", "2.3.4.5"]
    centres = rng.standard_normal((3, 16)) * 5
    labels = np.repeat(ecs, 30)
    index = np.repeat(centres, 30, axis=0) + rng.standard_normal((90, 16)) * 0.1
    queries = centres + rng.standard_normal((3, 16)) * 0.1
    _, indices = knn_search(index, queries, k=3)
    neighbours = knn_predict_ecs(labels, indices)
    assert neighbours == [[ec] * 3 for ec in ecs]
    assert knn_hierarchical_precision(ecs, neighbours) == 1.0
    # Shifted labels: 1.1.1.1 <-> 1.1.1.2 share three levels, 2.3.4.5 shares none with 1.1.1.1.
    assert knn_hierarchical_precision(["1.1.1.2", "1.1.1.1", "1.1.1.1"], neighbours) == pytest.approx(
        (0.75 + 0.75 + 0) / 3
    )
    with pytest.raises(IndexError):
        knn_predict_ecs(labels[:10], indices)

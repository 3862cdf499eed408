"""Orientation recovery from pairwise distances: graphs, validation, spectral start, refinement."""

import numpy as np
import pytest
import torch

from orirec.evaluate.metrics import orientation_metrics
from orirec.geometry import pairwise_quat_distance, quat_distance, quat_to_matrix, uniform_quaternions
from orirec.recover import (
    descend_on_sphere,
    distance_weights,
    full_graph,
    knn_graph,
    recover_from_matrix,
    recover_orientations,
    spectral_init,
    torch_quat_distance,
    validate_distances,
)

N = 200


@pytest.fixture(scope="module")
def truth():
    q = uniform_quaternions(N, seed=11)
    return q, pairwise_quat_distance(q)


def test_full_graph_pairs():
    i, j = full_graph(5)
    assert i.dtype == np.int64 and j.dtype == np.int64
    assert i.size == 10 and np.all(i < j)
    assert len(set(zip(i.tolist(), j.tolist(), strict=True))) == 10
    with pytest.raises(ValueError, match="n"):
        full_graph(1)


def test_knn_graph_shape_and_symmetry():
    rng = np.random.default_rng(0)
    emb = rng.standard_normal((60, 8))
    i, j = knn_graph(emb, k=4, n_random=0, seed=0)
    assert np.all(i < j)
    keys = i * 60 + j
    assert np.unique(keys).size == keys.size  # deduplicated (a symmetric pair appears once)
    xn = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    sim = xn @ xn.T
    np.fill_diagonal(sim, -np.inf)
    nearest = np.argmax(sim, axis=1)
    edges = set(zip(i.tolist(), j.tolist(), strict=True))
    for a, b in enumerate(nearest.tolist()):
        assert (min(a, b), max(a, b)) in edges
    deg = np.bincount(np.concatenate([i, j]), minlength=60)
    assert deg.min() >= 4 and i.size <= 60 * 4
    i2, j2 = knn_graph(emb, k=4, n_random=3, seed=1)
    assert i2.size > i.size and set(zip(i.tolist(), j.tolist(), strict=True)) <= set(
        zip(i2.tolist(), j2.tolist(), strict=True)
    )
    assert np.array_equal(knn_graph(emb, 4, 3, seed=1)[1], j2)


@pytest.mark.parametrize(
    "bad, pattern",
    [
        (np.nan, "NaN or inf"),
        (np.inf, "NaN or inf"),
        (-0.1, r"outside \[0, pi\]"),
        (3.2, r"outside \[0, pi\]"),
    ],
)
def test_bad_distances_rejected(truth, bad, pattern):
    _, dist = truth
    i, j = full_graph(N)
    d = dist[i, j].copy()
    d[[7, 30]] = bad
    with pytest.raises(ValueError, match=pattern) as err:
        recover_orientations(N, i, j, d, steps=1)
    assert "2 value(s)" in str(err.value) and "(7,)" in str(err.value)
    with pytest.raises(ValueError):
        validate_distances(np.array([[0.0, np.nan], [0.1, 0.2]]))
    assert validate_distances(np.array([np.pi + 1e-7]))[0] == np.pi  # within tolerance, clipped


def test_bad_graph_rejected(truth):
    _, dist = truth
    with pytest.raises(ValueError, match="indices"):
        recover_orientations(3, np.array([0, 1]), np.array([1, 3]), np.array([0.1, 0.2]))
    with pytest.raises(ValueError, match="equal length"):
        recover_orientations(3, np.array([0, 1]), np.array([1]), np.array([0.1, 0.2]))
    with pytest.raises(ValueError, match="weights"):
        i, j = full_graph(4)
        recover_orientations(4, i, j, np.full(6, 1.0), weights=-np.ones(6))
    with pytest.raises(ValueError, match="symmetric"):
        m = dist[:5, :5].copy()
        m[0, 1] = 0.5 * m[0, 1]
        recover_from_matrix(m)


def test_torch_distance_matches_geometry_and_is_stable():
    q = uniform_quaternions(50, seed=3)
    q2 = uniform_quaternions(50, seed=4)
    ref = quat_distance(q, q2)
    got = torch_quat_distance(torch.from_numpy(q), torch.from_numpy(q2)).numpy()
    np.testing.assert_allclose(got, ref, atol=1e-12)
    # gradients stay finite at d = 0 (identical) and d = pi (orthogonal quaternions)
    a = torch.tensor([[1.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]], dtype=torch.float64, requires_grad=True)
    b = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]], dtype=torch.float64)
    d = torch_quat_distance(a, b)
    np.testing.assert_allclose(d.detach().numpy(), [0.0, np.pi], atol=1e-12)
    d.sum().backward()
    assert torch.isfinite(a.grad).all()


def test_spectral_init_exact(truth):
    q, dist = truth
    i, j = full_graph(N)
    q0 = spectral_init(N, i, j, dist[i, j])
    assert np.all(q0[:, 0] >= 0)
    assert np.max(np.abs(quat_distance(q0[i], q0[j]) - dist[i, j])) < 1e-8


def test_recover_exact_distances(truth):
    q, dist = truth
    res = recover_from_matrix(dist, seed=0)
    m = orientation_metrics(res.quaternions, q)
    assert m["err_o4_median"] < 1e-4  # degrees (measured ~1e-11)
    assert res.l_or < 1e-16 and res.wall_time_s > 0
    assert res.loss_history[-1] == res.l_or and np.all(np.isfinite(res.loss_history))


def test_recover_noisy_distances(truth):
    q, dist = truth
    i, j = full_graph(N)
    rng = np.random.default_rng(5)
    d = np.clip(dist[i, j] + 0.1 * rng.standard_normal(i.size), 0.0, np.pi)
    res = recover_orientations(N, i, j, d, seed=0)
    m = orientation_metrics(res.quaternions, q)
    # measured: median 1.1 deg, mean 1.1 deg; L_OR ~ 0.0093 rad^2 (noise variance 0.01 minus the fit)
    assert m["err_o4_median"] < 2.5 and m["err_o4_mean"] < 3.0
    assert 0.005 < res.l_or < 0.011
    assert res.loss_history[-1] <= res.loss_history[0]


def test_recover_sparse_knn_graph(truth):
    q, dist = truth
    emb = quat_to_matrix(q).reshape(N, 9)  # an ideal embedding: cosine similarity ~ 1 + 2 cos d
    i, j = knn_graph(emb, k=10, n_random=5, seed=0)
    assert i.size < N * (N - 1) // 8  # exercises the edge-list refinement path
    res = recover_orientations(N, i, j, dist[i, j], weights=distance_weights(dist[i, j]), seed=0)
    m = orientation_metrics(res.quaternions, q)
    assert m["err_o4_median"] < 0.01  # degrees (measured ~1e-12)


def test_descent_on_the_sphere_from_a_perturbed_start(truth):
    q, dist = truth
    i, j = full_graph(N)
    rng = np.random.default_rng(2)
    q_start = q + 0.05 * rng.standard_normal(q.shape)
    calls = []
    for loss in ("l2", "cauchy"):
        q1, hist = descend_on_sphere(
            q_start, i, j, dist[i, j], steps=200, loss=loss, progress=lambda s, v: calls.append(v)
        )
        assert hist[-1] < 1e-12 < hist[0]
        assert orientation_metrics(q1, q)["err_o4_median"] < 1e-3
    q2, hist2 = descend_on_sphere(q_start, i, j, dist[i, j], steps=300, optimizer="adam", lr=1e-2)
    assert hist2[-1] < 0.05 * hist2[0]
    assert calls
    with pytest.raises(ValueError, match="loss"):
        descend_on_sphere(q_start, i, j, dist[i, j], loss="l3")


def test_deterministic_by_seed(truth):
    q, dist = truth
    i, j = full_graph(N)
    rng = np.random.default_rng(9)
    d = np.clip(dist[i, j] + 0.2 * rng.standard_normal(i.size), 0.0, np.pi)
    a = recover_orientations(N, i, j, d, seed=3, steps=20)
    b = recover_orientations(N, i, j, d, seed=3, steps=20)
    assert np.array_equal(a.quaternions, b.quaternions)
    assert a.loss_history == b.loss_history


def test_distance_weights():
    d = np.array([0.0, 1.0, 3.0])
    w = distance_weights(d, "exp", tau=1.0)
    assert w[0] == 1.0 and np.all(np.diff(w) < 0)
    assert np.all(np.diff(distance_weights(d, "inverse")) < 0)
    with pytest.raises(ValueError, match="scheme"):
        distance_weights(d, "nope")

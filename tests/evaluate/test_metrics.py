"""Orientation and distance metrics of DESIGN §6."""

import numpy as np
import pytest

from orirec.evaluate.metrics import distance_metrics, orientation_errors, orientation_metrics
from orirec.geometry import (
    matrix_to_quat,
    multiply,
    pairwise_quat_distance,
    quat_to_matrix,
    uniform_quaternions,
)

KEYS = {"err_o4_median", "err_o4_mean", "err_rot_median", "err_rot_mean", "err_dir_median", "err_dir_mean"}


def about_x(deg):
    t = np.deg2rad(deg)
    return np.stack([np.cos(t / 2), np.sin(t / 2), 0 * t, 0 * t], axis=-1)


def test_exact_copy_and_gauge_copies_give_zero():
    q = uniform_quaternions(200, 0)
    B = quat_to_matrix(uniform_quaternions(1, 1))[0]
    J = np.diag([1.0, 1, -1])
    for q_est in (q, -q, matrix_to_quat(J @ quat_to_matrix(q) @ J @ B)):
        m = orientation_metrics(q_est, q)
        assert KEYS | {"acc10", "acc20", "n"} == set(m)
        assert all(m[k] < 1e-6 for k in KEYS)
        assert m["acc10"] == 1.0 and m["acc20"] == 1.0 and m["n"] == 200


def test_accuracy_fractions_on_constructed_case():
    # Small per-image rotations about the particle x axis with a symmetric spread, so that the best
    # registration is the identity: errors are exactly the planted angles.
    n = 100
    q = uniform_quaternions(n, 3)
    angles = np.array([5.0] * 30 + [15.0] * 30 + [25.0] * 40)
    sign = np.where(np.arange(n) % 2 == 0, 1.0, -1.0)
    q_ref = q.copy()
    q_est = multiply(q, about_x(angles * sign))
    errs = orientation_errors(q_est, q_ref)
    assert set(errs) == {"err_o4", "err_rot", "err_dir"}
    assert all(v.shape == (n,) for v in errs.values())
    m = orientation_metrics(q_est, q_ref)
    assert np.allclose(errs["err_rot"], angles, atol=1e-6)
    assert m["acc10"] == pytest.approx(0.30) and m["acc20"] == pytest.approx(0.60)
    assert m["err_rot_median"] == pytest.approx(15.0) and m["err_rot_mean"] == pytest.approx(16.0)
    # O(4) is a larger group, so its least-squares residual (sum of 1 - cos) can only be smaller.
    cost = {k: np.sum(1 - np.cos(np.deg2rad(errs[k]))) for k in ("err_o4", "err_rot")}
    assert cost["err_o4"] <= cost["err_rot"] + 1e-9
    assert np.all(errs["err_dir"] <= errs["err_rot"] + 1e-6)  # direction error <= full rotation error


def test_in_plane_error_has_no_direction_error():
    q = np.concatenate([uniform_quaternions(150, 5)] * 2)
    t = np.deg2rad(np.random.default_rng(6).uniform(5, 30, 150))
    t = np.concatenate([t, -t])  # balanced, so the best registration is the identity
    rz_left = np.stack([np.cos(t / 2), 0 * t, 0 * t, np.sin(t / 2)], axis=-1)  # rotation about the beam
    errs = orientation_errors(multiply(rz_left, q), q)
    assert np.median(errs["err_rot"]) > 5.0
    assert np.max(errs["err_dir"]) < 1e-5


def test_orientation_validation():
    q = uniform_quaternions(5, 0)
    with pytest.raises(ValueError, match="q_ref"):
        orientation_metrics(q, q[:4])
    with pytest.raises(ValueError, match="q_est"):
        orientation_errors(q[:, :3], q[:, :3])
    bad = q.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        orientation_metrics(bad, q)


def test_distance_metrics_bins():
    d_q = np.array([0.1, 0.2, 1.0, np.pi, np.pi - 0.1, 2.0])
    d_p = d_q + np.array([0.1, -0.1, 0.3, -0.5, -0.3, 0.0])
    m = distance_metrics(d_p, d_q, n_bins=4)
    err = d_p - d_q
    assert m["mae"] == pytest.approx(np.mean(np.abs(err)))
    assert m["rmse"] == pytest.approx(np.sqrt(np.mean(err**2)))
    assert np.allclose(m["bin_edges"], np.linspace(0, np.pi, 5))
    assert list(m["bin_count"]) == [2, 1, 1, 2]  # pi goes in the last bin
    assert m["bin_mae"][0] == pytest.approx(0.1) and m["bin_rmse"][3] == pytest.approx(np.sqrt(0.17))
    assert m["bin_mae"][2] == pytest.approx(0.0)
    sparse = distance_metrics(np.array([0.1]), np.array([0.1]), n_bins=3)
    assert np.isnan(sparse["bin_mae"][1]) and sparse["bin_count"][1] == 0


def test_distance_metrics_with_matrices_and_validation():
    q = uniform_quaternions(40, 9)
    D = pairwise_quat_distance(q)
    m = distance_metrics(D, D)
    assert m["mae"] == 0 and m["rmse"] == 0 and m["bin_count"].sum() == D.size
    with pytest.raises(ValueError, match="shapes differ"):
        distance_metrics(D, D[:3])
    with pytest.raises(ValueError, match=r"\[0, pi\]"):
        distance_metrics([1.0], [4.0])
    with pytest.raises(ValueError, match="n_bins"):
        distance_metrics([1.0], [1.0], n_bins=0)
    with pytest.raises(ValueError, match="non-finite"):
        distance_metrics([np.nan], [1.0])

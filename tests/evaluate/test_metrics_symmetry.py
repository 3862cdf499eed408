"""Orientation errors of a symmetric particle: any symmetry copy of the truth is a correct answer."""

import numpy as np
import pytest

from orirec.evaluate.metrics import orientation_metrics, symmetric_reference
from orirec.geometry import group_quaternions, multiply, quat_distance, uniform_quaternions


def _small_noise(n, deg, rng):
    v = rng.normal(size=(n, 3))
    v *= np.radians(deg) / np.linalg.norm(v, axis=1, keepdims=True)
    th = np.linalg.norm(v, axis=1, keepdims=True)
    return np.concatenate([np.cos(th / 2), np.sin(th / 2) * v / th], axis=1)


@pytest.mark.parametrize("sym", ["C2", "D2", "D7"])
def test_random_symmetry_copies_in_any_gauge_score_as_the_noise(sym):
    rng = np.random.default_rng(1)
    q = uniform_quaternions(300, 0)
    g = group_quaternions(sym)[rng.integers(0, 2 * int(sym[1:]) if sym[0] == "D" else int(sym[1:]), 300)]
    gauge = np.repeat(uniform_quaternions(1, 5), 300, 0)
    est = multiply(multiply(multiply(q, g), gauge), _small_noise(300, 5.0, rng))
    sym_err = orientation_metrics(est, q, sym)["err_rot_median"]
    assert sym_err == pytest.approx(5.0, abs=0.1)
    if sym != "C2":  # a majority of images on another copy: the C1 score is far off
        assert orientation_metrics(est, q)["err_rot_median"] > 60.0
    mirrored = est * np.array([1.0, -1.0, -1.0, 1.0])  # J R J: the mirror-image map, equally valid
    assert orientation_metrics(mirrored, q, sym)["err_rot_median"] == pytest.approx(5.0, abs=0.1)


def test_symmetric_reference_only_picks_copies_and_leaves_c1_alone():
    q = uniform_quaternions(50, 2)
    est = uniform_quaternions(50, 3)
    assert symmetric_reference(est, q, "C1") is not None and np.array_equal(symmetric_reference(est, q, "C1"), q)
    ref = symmetric_reference(est, q, "D2")
    copies = multiply(q[:, None, :], group_quaternions("D2")[None])
    assert np.all(np.min(quat_distance(ref[:, None, :], copies), axis=1) < 1e-9)
    chance = orientation_metrics(est, q, "D2")["err_rot_median"]
    assert 50.0 < chance < orientation_metrics(est, q)["err_rot_median"]  # D2's chance level is lower than C1's

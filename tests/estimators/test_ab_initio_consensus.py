"""The consensus of ab initio restarts: registered onto one reference, the agreeing ones averaged per image."""

import numpy as np
import pytest

from orirec.estimators.ab_initio.consensus import combine_restarts, restart_disagreement
from orirec.evaluate.metrics import orientation_metrics
from orirec.geometry import matrix_to_quat, multiply, quat_to_matrix, uniform_quaternions

J = np.diag([1.0, 1.0, -1.0])


def _jitter(q: np.ndarray, deg: float, rng: np.random.Generator) -> np.ndarray:
    """``q`` turned by a random small rotation of about ``deg`` (°) each."""
    v = rng.normal(size=(len(q), 3)) * np.radians(deg) / np.sqrt(3)
    theta = np.linalg.norm(v, axis=1, keepdims=True)
    d = np.concatenate([np.cos(theta / 2), np.sin(theta / 2) * v / theta], axis=1)
    return multiply(q, d)


def _in_gauge(q: np.ndarray, B: np.ndarray, mirrored: bool) -> np.ndarray:
    """The orientations a map rotated by ``B`` (and mirrored) gives the same images at."""
    R = quat_to_matrix(q) @ B
    return matrix_to_quat(J @ R @ J if mirrored else R)


@pytest.fixture(scope="module")
def restarts():
    """Four restarts that found the particle (each in its own gauge, 10° of independent error per image, one of
    them mirrored) and two stuck elsewhere (random orientations), with shifts (px) and scores."""
    rng = np.random.default_rng(0)
    truth = uniform_quaternions(200, seed=3)
    gauges = uniform_quaternions(6, seed=4)
    qs, shifts = [], []
    true_shift = rng.uniform(-2, 2, (200, 2))
    for k in range(6):
        if k < 4:
            q = _in_gauge(_jitter(truth, 10.0, rng), quat_to_matrix(gauges[k]), mirrored=k == 2)
        else:
            q = uniform_quaternions(200, seed=10 + k)
        qs.append(q)
        shifts.append(true_shift + rng.normal(0, 0.5, (200, 2)))
    scores = [0.50, 0.51, 0.52, 0.49, 0.60, 0.55]  # a stuck restart matches best: the score alone would pick it
    return truth, qs, shifts, scores, true_shift


def test_restarts_that_found_the_particle_agree(restarts):
    _, qs, _, _, _ = restarts
    D = restart_disagreement(qs)
    assert D.shape == (6, 6) and np.all(np.diag(D) == 0)
    good, bad = D[:4, :4][~np.eye(4, dtype=bool)], D[4:, :].ravel()[[0, 1, 2, 3, 5, 6, 7, 8, 9, 10]]
    assert good.max() < 20.0 and bad.min() > 60.0, (good, bad)  # the mirrored one too (handedness registered)


def test_consensus_averages_the_agreeing_restarts(restarts):
    truth, qs, shifts, scores, true_shift = restarts
    c = combine_restarts(qs, shifts, scores)
    assert c.reference in range(4) and sorted(c.members) == [0, 1, 2, 3] and c.members[0] == c.reference
    assert c.reference == 2  # four agree with one another; of those, the best score
    errs = [orientation_metrics(qs[k], truth)["err_rot_median"] for k in range(4)]
    err = orientation_metrics(c.quaternions, truth)["err_rot_median"]
    assert err < 0.75 * min(errs), (err, errs)  # independent errors of four restarts: about half
    assert np.allclose(np.linalg.norm(c.quaternions, axis=1), 1.0) and c.votes.min() >= 1 and c.votes.max() == 4
    rms = lambda s: np.sqrt(((s - true_shift) ** 2).sum(1).mean())  # noqa: E731
    assert rms(c.shifts_px) < 0.75 * rms(shifts[0])


def test_no_agreement_keeps_the_best_score():
    qs = [uniform_quaternions(100, seed=k) for k in range(3)]
    shifts = [np.zeros((100, 2))] * 3
    c = combine_restarts(qs, shifts, [0.1, 0.3, 0.2])
    assert c.reference == 1 and c.members == [1] and np.array_equal(c.quaternions, qs[1])
    with pytest.raises(ValueError, match="as many"):
        combine_restarts(qs, shifts[:2], [0.1, 0.3, 0.2])

"""recover.solve: the one path from a distance function to gauge-resolved orientations."""

import numpy as np
import pytest

from orirec.config import RecoverConfig
from orirec.evaluate.metrics import orientation_metrics
from orirec.geometry import orientation_features, quat_distance, uniform_quaternions
from orirec.recover.solve import consistency_score, plan_copies, quaternions_with_copies, solve_orientations
from orirec.simulate.projector import project
from orirec.structures import load_volume

N = 120


@pytest.fixture(scope="module")
def truth():
    q = uniform_quaternions(N, seed=3)
    vol, _ = load_volume("pseudo:3", 32, 3.5)
    return q, np.asarray(project(vol, q))


def _solve(q, images, cfg):
    nodes = {}

    def features(copies):
        nodes["q"] = quaternions_with_copies(q, copies)
        return orientation_features(nodes["q"])

    score = consistency_score(images, cfg) if cfg.gauge else None
    return solve_orientations(N, cfg, features, lambda _f, i, j: quat_distance(nodes["q"][i], nodes["q"][j]), score)


def test_exact_distances_give_gauge_resolved_orientations(truth):
    """With the gauge, err_rot (registered by a global rotation and handedness only) is small; without it the
    detector-frame rotation is left and err_rot is near chance, although the distances are reproduced."""
    q, images = truth
    cfg = RecoverConfig(steps=100, n_starts=5, gauge_sources=40, seed=1)
    with_gauge = _solve(q, images, cfg)
    assert with_gauge.n_nodes == N + 2 * 40 and with_gauge.gauge is not None
    assert orientation_metrics(with_gauge.quaternions, q)["err_rot_median"] < 15.0  # measured 5.9°
    without = _solve(q, images, cfg.model_copy(update={"gauge": False}))
    m = orientation_metrics(without.quaternions, q)
    assert m["err_o4_median"] < 0.01 and m["err_rot_median"] > 40.0  # measured 1e-11° and 81°
    i, j, d = with_gauge.edges_among_images()
    assert len(i) == N * (N - 1) // 2 and (i < N).all() and (j < N).all() and d.shape == i.shape


def test_the_gauge_needs_a_score_and_copies_are_seeded():
    cfg = RecoverConfig(gauge_sources=10)
    with pytest.raises(ValueError, match="consistency score"):
        solve_orientations(20, cfg, lambda c: np.eye(20, 10), lambda f, i, j: np.zeros(len(i)))
    a, b = plan_copies(20, cfg), plan_copies(20, cfg)
    assert np.array_equal(a.source, b.source) and len(a.source) == 10 * len(cfg.gauge_angles_deg)
    assert plan_copies(20, cfg.model_copy(update={"gauge": False})) is None

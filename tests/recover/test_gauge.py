"""Gauge resolution (DESIGN §1.3): a planted detector-frame rotation and inversion are undone without ground truth."""

import numpy as np
import pytest

from orirec.evaluate.metrics import orientation_metrics
from orirec.geometry import canonicalize, conjugate, multiply, rotate_about_z, uniform_quaternions
from orirec.reconstruct.consistency import crossval_reprojection_score, prepare_consistency_images
from orirec.recover.gauge import fix_beam_axis, plan_inplane_copies, search_inplane_angle
from orirec.simulate.projector import project
from orirec.structures import atoms_to_density, pseudo_protein


@pytest.fixture(scope="module")
def particle():
    vol = atoms_to_density(pseudo_protein(0, n_atoms=1200), 32, 3.5)
    q = uniform_quaternions(240, seed=1)
    return q, project(vol, q)


@pytest.mark.parametrize("transposed", [False, True])
def test_planted_gauge_is_resolved(particle, transposed):
    q, images = particle
    n = len(q)
    src, angle = plan_inplane_copies(n, 40, (np.pi / 3, -np.pi / 3), seed=0)
    q_all = np.concatenate([q, rotate_about_z(q[src], angle)])
    a, b = uniform_quaternions(2, seed=7)
    base = conjugate(q_all) if transposed else q_all
    planted = canonicalize(multiply(multiply(a, base), b))  # what a distance-only recovery may return
    before = orientation_metrics(planted[:n], q)
    assert before["err_o4_median"] < 1e-6 and before["err_rot_median"] > 20  # the gauge hides in err_o4

    g = fix_beam_axis(planted[:n], planted[n:], src, angle)
    assert g.transposed == transposed
    assert min(g.axis_spread_deg.values()) < 1e-6
    rows, small = prepare_consistency_images(images, 24, 240)
    alpha, scores = search_inplane_angle(g.quaternions, lambda qq: crossval_reprojection_score(small, qq[rows]))
    after = orientation_metrics(rotate_about_z(g.quaternions, alpha), q)
    assert after["err_rot_median"] < 1.0, after
    assert len(scores) > 30


def test_wrong_alpha_scores_lower(particle):
    q, images = particle
    rows, small = prepare_consistency_images(images, 24, 240)
    right = crossval_reprojection_score(small, q[rows])
    wrong = crossval_reprojection_score(small, rotate_about_z(q, np.deg2rad(40))[rows])
    assert right > wrong + 0.02


def test_copy_angles_are_validated():
    with pytest.raises(ValueError, match="angles"):
        plan_inplane_copies(10, 5, (0.0,))

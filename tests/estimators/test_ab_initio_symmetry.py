"""Ab initio with a point group (``--symmetry``): its maps are made with the group, its orientations are found up
to it."""

import numpy as np
import pytest

from orirec.estimators.ab_initio.passes import ArrayImages, GlobalPass, MatchGeometry, Shard
from orirec.estimators.ab_initio.search import ab_initio, sphere_radius_px
from orirec.evaluate.metrics import orientation_metrics
from orirec.geometry import uniform_quaternions
from orirec.reconstruct import reconstruct
from orirec.reconstruct.fourier import volume_from_sums
from orirec.simulate.projector import project
from orirec.structures import atoms_to_density, pseudo_protein

PIXEL_A, RADIUS_A, N = 3.5, 25.0, 200


def turned_about_z(vol: np.ndarray) -> np.ndarray:
    """``vol`` turned 180° about its z axis through voxel ``L // 2`` (volumes are indexed [z, y, x])."""
    return np.roll(vol[:, ::-1, ::-1], (1, 1), axis=(1, 2))


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


@pytest.fixture(scope="module")
def asymmetric():
    vol = atoms_to_density(pseudo_protein(0, n_atoms=1200, radius_A=RADIUS_A), 32, PIXEL_A)
    q = uniform_quaternions(N, seed=1)
    return vol, q, project(vol, q)


@pytest.fixture(scope="module")
def c2_particle(asymmetric):
    """Noisy projections of the pseudo-protein made C2 about its z axis (two copies), and their orientations."""
    vol = 0.5 * (asymmetric[0] + turned_about_z(asymmetric[0]))
    q = uniform_quaternions(N, seed=3)
    clean = project(vol, q)
    images = clean + np.random.default_rng(4).normal(0, 0.7 * clean.std(), clean.shape)
    return images.astype(np.float32), vol, q


def test_insertion_with_a_point_group_makes_the_map_symmetric(asymmetric):
    vol, q, images = asymmetric
    c1, c2 = reconstruct(images, q), reconstruct(images, q, symmetry="C2")
    assert _corr(c1, turned_about_z(c1)) < 0.9 and _corr(c1, vol) > 0.95
    assert _corr(c2, turned_about_z(c2)) > 0.999
    assert _corr(c2, 0.5 * (vol + turned_about_z(vol))) > 0.95


def test_a_pass_inserts_with_the_point_group(asymmetric):
    vol, q, images = asymmetric
    g = MatchGeometry(32, PIXEL_A, 32, 10.0, sphere_radius_px(32, PIXEL_A, 1.3 * RADIUS_A), 0.0, symmetry="C2")
    task = GlobalPass(ArrayImages(images.astype(np.float32)), g, 15.0)
    res = task(Shard(0, np.arange(N), np.zeros(N, dtype=np.int8), q, np.zeros((N, 2))), (vol, task.references(vol)))
    half = volume_from_sums(res.sums[0], 1e-2)
    assert res.sums[1] is None and _corr(half, turned_about_z(half)) > 0.999


def test_ab_initio_with_the_symmetry_finds_orientations_up_to_the_group(c2_particle):
    """The restarts run in C1; the map's C2 axis is then put on z and the map made again with the group."""
    images, vol, q = c2_particle
    res = ab_initio(images, PIXEL_A, iterations=20, resolution_start_A=16.0, resolution_end_A=10.0, restarts=2,
                    particle_radius_A=1.3 * RADIUS_A, symmetry="C2", seed=0)  # fmt: skip
    assert res.symmetry_score is not None and res.symmetry_score > 0.9  # the C1 map's own C2 axis, found
    assert _corr(res.volume, turned_about_z(res.volume)) > 0.99
    assert orientation_metrics(res.quaternions, q, symmetry="C2")["err_rot_median"] < 10.0

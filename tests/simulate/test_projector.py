"""Fourier-slice projector: convention (R: particle -> microscope, integrate along microscope z), accuracy.

Measured (pseudo-protein, radius L/4, Gaussian atoms sigma = 1 px, L = 48, pad 2, gridding correction on):
relative L2 error against the analytic line integral ~0.4% mean / < 1% max over random orientations, ~2.3% for
orientations whose slice lies on the Fourier grid (beam along a volume axis), where the gridding correction
over-corrects; without the correction those are exact (< 1e-3) and general orientations are off by ~2%.
"""

import warnings

import numpy as np
import pytest
import torch
from reference_projection import analytic_projection, rel_l2

from orirec.geometry import quat_to_matrix, uniform_quaternions
from orirec.simulate import FourierSliceProjector, project
from orirec.structures import Atoms, atoms_to_density, pseudo_protein

L, PX, SIG = 48, 1.2, 1.0  # box (px), pixel (Å), Gaussian sigma (px)


def _gaussian_volume(atoms):
    return atoms_to_density(atoms, L, PX, resolution_A=SIG * PX / 0.225)


def _analytic_projection(atoms, R):
    return analytic_projection(atoms, R, L, PX, SIG)


_rel = rel_l2


def _axis_quat(axis, angle):
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    return np.concatenate([[np.cos(angle / 2)], np.sin(angle / 2) * axis])[None]


@pytest.fixture(scope="module")
def protein():
    atoms = pseudo_protein(0, n_atoms=800, radius_A=L * PX / 4)
    return atoms, _gaussian_volume(atoms)


def test_accuracy_against_analytic_projection(protein):
    atoms, vol = protein
    q = uniform_quaternions(12, seed=5)
    imgs = project(vol, q, pad=2)
    errs = [_rel(imgs[i], _analytic_projection(atoms, R)) for i, R in enumerate(quat_to_matrix(q))]
    assert np.mean(errs) < 0.008 and max(errs) < 0.015, errs
    # pad 1 is clearly worse: the test can tell a good projector from a poor one.
    imgs1 = project(vol, q, pad=1)
    errs1 = [_rel(im, _analytic_projection(atoms, R)) for im, R in zip(imgs1, quat_to_matrix(q), strict=True)]
    assert np.mean(errs1) > 3 * np.mean(errs)


def test_identity_is_sum_over_z(protein):
    _, vol = protein
    ident = np.array([[1.0, 0, 0, 0]])
    exact = project(vol, ident, gridding_correction=False)[0]
    np.testing.assert_allclose(exact, vol.sum(0), atol=1e-4 * np.abs(vol.sum(0)).max())
    corrected = project(vol, ident)[0]
    assert _rel(corrected, vol.sum(0)) < 0.03  # grid-aligned slice: the correction over-corrects (~2%)


def test_identity_exact_for_random_volume():
    vol = np.random.default_rng(0).normal(size=(16, 16, 16)).astype(np.float32)
    img = project(vol, np.array([[1.0, 0, 0, 0]]), gridding_correction=False)[0]
    np.testing.assert_allclose(img, vol.sum(0), atol=1e-4)


@pytest.mark.parametrize(
    ("axis", "expected"),
    [
        # R = Rx(90°): microscope (x, y, z) = (x, -z, y) of the particle; microscope z = particle y.
        ((1, 0, 0), lambda v: np.roll(v.sum(1)[::-1], 1, axis=0)),
        # R = Ry(90°): microscope (x, y, z) = (z, y, -x); summing over particle x, image x = particle z.
        ((0, 1, 0), lambda v: v.sum(2).T),
        # R = Rz(90°): microscope (x, y) = (-y, x) of the particle: img[y, x] = zsum[-x, y] (rot90 k=-1).
        ((0, 0, 1), lambda v: np.roll(np.rot90(v.sum(0), k=-1), 1, axis=1)),
    ],
)
def test_90_degree_rotations(axis, expected):
    rng = np.random.default_rng(1)
    vol = np.zeros((16, 16, 16), np.float32)
    vol[2:15, 2:15, 2:15] = rng.random((13, 13, 13))  # off the last-index edge so flips stay in the box
    img = project(vol, _axis_quat(axis, np.pi / 2), gridding_correction=False)[0]
    np.testing.assert_allclose(img, expected(vol), atol=2e-4)


def test_off_centre_atom_lands_at_rotated_position():
    x0 = np.array([9.0, -5.0, 3.0]) * PX  # Å, relative to the atom's own centre: use two atoms, one heavy
    atoms = Atoms(np.stack([x0, np.zeros(3)]), np.array([50, 1]), np.array([1e-6, 1.0]))  # COM at the origin
    vol = _gaussian_volume(atoms)
    for q in [np.array([[1.0, 0, 0, 0]]), _axis_quat((1, 2, 3), 1.1), uniform_quaternions(3, seed=9)]:
        imgs = project(vol, q)
        for img, R in zip(imgs, quat_to_matrix(q), strict=True):
            x, y, _ = R @ (x0 / PX)
            iy, ix = np.unravel_index(np.argmax(img), img.shape)
            win = img[iy - 4 : iy + 5, ix - 4 : ix + 5].astype(np.float64)  # +-4 sigma around the peak
            g = np.arange(-4, 5)
            cy = iy - L // 2 + (win.sum(1) * g).sum() / win.sum()
            cx = ix - L // 2 + (win.sum(0) * g).sum() / win.sum()
            assert abs(cx - x) < 0.05 and abs(cy - y) < 0.05, (cx, cy, x, y)


def test_projector_batches_and_types(protein):
    _, vol = protein
    q = uniform_quaternions(7, seed=2)
    proj = FourierSliceProjector(torch.from_numpy(vol), pad=2)
    whole = proj.project(q)
    assert isinstance(whole, torch.Tensor) and whole.shape == (7, L, L) and whole.dtype == torch.float32
    np.testing.assert_allclose(project(vol, q, batch_size=3), whole.numpy(), atol=1e-5)
    # mass: each projection integrates to the total density within ~1% at pad 2 on the padded grid (measured
    # up to 0.9%: what the interpolation moves outside the crop, net of the gridding correction's gain); on the
    # image grid the folded-in replicas of the padded volume add 1.6% at pad 2 and 0.7% at pad 3.
    padded = FourierSliceProjector(vol, pad=2, sampling="padded").project(q).numpy()
    np.testing.assert_allclose(padded.sum((1, 2)), vol.sum(), rtol=0.015)
    np.testing.assert_allclose(FourierSliceProjector(vol, pad=3).project(q).numpy().sum((1, 2)), vol.sum(), rtol=0.01)


def test_projector_errors():
    with pytest.raises(ValueError, match="cubic"):
        FourierSliceProjector(np.zeros((8, 8, 9)))
    with pytest.raises(ValueError, match="pad"):
        FourierSliceProjector(np.zeros((8, 8, 8)), pad=0)
    with pytest.raises(ValueError, match="quaternions"):
        FourierSliceProjector(np.zeros((8, 8, 8))).project(np.zeros((3, 3)))


def test_sampling_modes_agree_and_auto_picks_padded_for_corner_density(protein):
    atoms, vol = protein
    q = uniform_quaternions(6, seed=3)
    image = FourierSliceProjector(vol, pad=3, sampling="image")
    assert FourierSliceProjector(vol, pad=3).sampling == "image"  # the particle fits the inscribed sphere
    padded = FourierSliceProjector(vol, pad=3, sampling="padded").project(q).numpy()
    assert max(_rel(a, b) for a, b in zip(image.project(q).numpy(), padded, strict=True)) < 0.01
    refs = [_analytic_projection(atoms, R) for R in quat_to_matrix(q)]
    assert np.mean([_rel(a, b) for a, b in zip(image.project(q).numpy(), refs, strict=True)]) < 0.006
    corner = np.zeros((16, 16, 16), np.float32)
    corner[1:4, 1:4, 1:4] = 1.0  # density in a corner: projections must be cropped, not wrapped around
    assert FourierSliceProjector(corner).sampling == "padded"
    with pytest.raises(ValueError, match="sampling"):
        FourierSliceProjector(vol, sampling="fast")


@pytest.mark.slow
def test_compiled_interpolation_matches_eager(protein):
    _, vol = protein
    q = uniform_quaternions(70, seed=4)  # more than one compiled chunk, the last one padded
    eager = FourierSliceProjector(vol, pad=2).project(q).numpy()
    proj = FourierSliceProjector(vol, pad=2, compile=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a fallback to the eager path must not pass silently
        compiled = proj.project(q).numpy()
    assert proj._interp is not None
    np.testing.assert_allclose(compiled, eager, atol=1e-4 * np.abs(eager).max())

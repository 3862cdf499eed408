"""NUFFT projector (finufft slices): same convention as the trilinear projector, accuracy, backend choice.

Measured (pseudo-protein of Gaussian atoms, sigma = 1 px, L = 48): relative L2 error against the analytic line
integral 0.07% mean / 0.10% max at eps 1e-3 and the same at 1e-4 (the floor is the sampled density, not the
NUFFT); 0.87% mean at eps 1e-2. Without the Nyquist-cube limit (aliased copies of low frequencies in the slice
corners) it was 0.25% / 0.73%.
"""

import numpy as np
import pytest
import torch
from reference_projection import analytic_projection, rel_l2

from orirec.config import SimulateConfig
from orirec.geometry import quat_to_matrix, uniform_quaternions
from orirec.simulate import FourierSliceProjector
from orirec.simulate import shards as shards_mod
from orirec.simulate.nufft_projector import NufftProjector
from orirec.simulate.shards import make_projector, resolve_backend
from orirec.structures import atoms_to_density, pseudo_protein

L, PX, SIG = 48, 1.2, 1.0  # box (px), pixel (Å), Gaussian sigma (px)


def _analytic_projection(atoms, R):
    return analytic_projection(atoms, R, L, PX, SIG)


_rel = rel_l2


@pytest.fixture(scope="module")
def protein():
    atoms = pseudo_protein(0, n_atoms=800, radius_A=L * PX / 4)
    return atoms, atoms_to_density(atoms, L, PX, resolution_A=SIG * PX / 0.225)


def test_accuracy_against_analytic_projection_and_eps_is_honoured(protein):
    atoms, vol = protein
    q = uniform_quaternions(12, seed=5)
    refs = [_analytic_projection(atoms, R) for R in quat_to_matrix(q)]
    proj = NufftProjector(vol)
    assert proj.sampling == "image"
    imgs = proj.project(q)
    assert isinstance(imgs, torch.Tensor) and imgs.shape == (12, L, L) and imgs.dtype == torch.float32
    errs = [_rel(a, b) for a, b in zip(imgs.numpy(), refs, strict=True)]
    assert np.mean(errs) < 0.0015 and max(errs) < 0.003, errs
    coarse = NufftProjector(vol, eps=3e-2).project(q).numpy()
    assert np.mean([_rel(a, b) for a, b in zip(coarse, refs, strict=True)]) > 2 * np.mean(errs)


def test_agrees_with_trilinear_projector_and_its_axis_conventions(protein):
    _, vol = protein
    q = uniform_quaternions(8, seed=7)
    trilinear = FourierSliceProjector(vol, pad=3, sampling="padded").project(q).numpy()
    nufft = NufftProjector(vol).project(q).numpy()
    assert max(_rel(a, b) for a, b in zip(nufft, trilinear, strict=True)) < 0.01
    # 90° rotations about each axis and the identity: exact slices of the grid, where the trilinear projector
    # without its gridding correction is exact too (tests/simulate/test_projector.py pins those to explicit sums).
    rng = np.random.default_rng(1)
    cube = np.zeros((16, 16, 16), np.float32)
    cube[2:15, 2:15, 2:15] = rng.random((13, 13, 13))
    s = np.sqrt(0.5)
    quats = np.array([[1.0, 0, 0, 0], [s, s, 0, 0], [s, 0, s, 0], [s, 0, 0, s]])
    exact = FourierSliceProjector(cube, gridding_correction=False).project(quats).numpy()
    np.testing.assert_allclose(NufftProjector(cube, eps=1e-5).project(quats).numpy(), exact, atol=2e-3)


def test_identity_is_sum_over_z_for_odd_box():
    vol = np.random.default_rng(0).normal(size=(15, 15, 15)).astype(np.float32)
    img = NufftProjector(vol, eps=1e-5, sampling="image").project(np.array([[1.0, 0, 0, 0]]))[0].numpy()
    np.testing.assert_allclose(img, vol.sum(0), atol=2e-3)


def test_padded_sampling_crops_corner_density():
    corner = np.zeros((16, 16, 16), np.float32)
    corner[1:4, 1:4, 1:4] = 1.0
    assert NufftProjector(corner).sampling == "padded"
    proj = NufftProjector(corner, eps=1e-5)
    q = uniform_quaternions(5, seed=2)
    # The same density in a box twice as large, projected on that box's own grid and cropped to the centre.
    ref = NufftProjector(np.pad(corner, 8), eps=1e-5, sampling="image").project(q).numpy()[:, 8:24, 8:24]
    assert max(_rel(a, b) for a, b in zip(proj.project(q).numpy(), ref, strict=True)) < 1e-3
    wrapped = NufftProjector(corner, eps=1e-5, sampling="image").project(q).numpy()
    assert max(_rel(a, b) for a, b in zip(wrapped, ref, strict=True)) > 0.1  # the test can tell them apart


def test_errors():
    with pytest.raises(ValueError, match="cubic"):
        NufftProjector(np.zeros((8, 8, 9)))
    with pytest.raises(ValueError, match="NaN"):
        NufftProjector(np.full((8, 8, 8), np.nan))
    with pytest.raises(ValueError, match="eps"):
        NufftProjector(np.zeros((8, 8, 8)), eps=1e-9)
    with pytest.raises(ValueError, match="sampling"):
        NufftProjector(np.zeros((8, 8, 8)), sampling="fast")
    with pytest.raises(ValueError, match="quaternions"):
        NufftProjector(np.ones((8, 8, 8))).project(np.zeros((3, 3)))


def test_backend_auto_resolves_to_nufft_on_cpu_and_torch_without_finufft(monkeypatch, protein):
    _, vol = protein
    cfg = SimulateConfig(inputs=["pseudo:0"])
    assert cfg.backend == "auto" and resolve_backend(cfg).backend == "nufft"
    assert isinstance(make_projector(vol, cfg), NufftProjector)
    assert resolve_backend(cfg.model_copy(update={"device": "cuda"})).backend == "torch"
    with pytest.raises(ValueError, match="CPU only"):
        resolve_backend(cfg.model_copy(update={"backend": "nufft", "device": "cuda"}))
    monkeypatch.setattr(shards_mod, "finufft_available", lambda: False)
    assert resolve_backend(cfg).backend == "torch"
    with pytest.raises(ValueError, match="finufft"):
        resolve_backend(cfg.model_copy(update={"backend": "nufft"}))

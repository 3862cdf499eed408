"""ASTRA backend: guarded without CUDA (a 3D call would kill the process); geometry; agreement on a GPU."""

import numpy as np
import pytest
import torch

from orirec.config import SimulateConfig
from orirec.geometry import uniform_quaternions
from orirec.simulate.astra_projector import AstraProjector, astra_gpu_available, astra_vectors
from orirec.simulate.projector import FourierSliceProjector
from orirec.simulate.to_store import simulate_to_store
from orirec.structures import atoms_to_density, pseudo_protein

GPU = astra_gpu_available()


def test_vectors_follow_the_rotation_convention():
    v = astra_vectors(np.array([[1.0, 0, 0, 0]]), 32)[0]
    np.testing.assert_allclose(v[0:3], [0, 0, 1])  # beam along particle z for the identity
    np.testing.assert_allclose(v[3:6], [-0.5, -0.5, 0])  # pixel (16, 16) of a 32 box at the origin
    np.testing.assert_allclose(v[6:9], [1, 0, 0])
    np.testing.assert_allclose(v[9:12], [0, 1, 0])
    for row in astra_vectors(uniform_quaternions(5, seed=1), 33):
        ray, d, u, w = row[0:3], row[3:6], row[6:9], row[9:12]
        np.testing.assert_allclose(np.cross(u, w), ray, atol=1e-12)  # right-handed detector frame
        np.testing.assert_allclose(d, 0, atol=1e-12)  # odd box: the geometric centre is pixel L // 2


@pytest.mark.skipif(GPU, reason="checks the refusal without CUDA")
def test_refuses_without_cuda_before_any_3d_call(tmp_path):
    with pytest.raises(RuntimeError, match="CUDA"):
        AstraProjector(np.zeros((8, 8, 8), np.float32))
    cfg = SimulateConfig(inputs=["pseudo:0"], n_per_structure=4, box_px=16, backend="astra")
    with pytest.raises(ValueError, match="CUDA"):
        simulate_to_store(cfg, tmp_path / "s.zarr")
    assert not (tmp_path / "s.zarr").exists()


@pytest.mark.gpu  # skipped without a CUDA GPU (tests/conftest.py)
@pytest.mark.skipif(torch.cuda.is_available() and not GPU, reason="ASTRA without CUDA here (astra.use_cuda() is False)")
def test_astra_agrees_with_torch_projector():
    L = 48
    vol = atoms_to_density(pseudo_protein(0, n_atoms=800, radius_A=L * 1.2 / 4), L, 1.2)
    q = uniform_quaternions(16, seed=3)
    ref = FourierSliceProjector(vol, pad=3, sampling="padded").project(q).numpy()
    out = AstraProjector(vol).project(q)
    err = np.linalg.norm(out - ref, axis=(1, 2)) / np.linalg.norm(ref, axis=(1, 2))
    assert err.max() < 0.05, err  # ASTRA samples the voxel grid by (bi)linear interpolation along each ray

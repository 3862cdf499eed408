"""Rotation heads of the direct-regression estimators: Gram–Schmidt 6D, quaternion, Euler; the 3D encoder."""

import numpy as np
import pytest
import torch

from orirec.geometry import euler_to_matrix, quat_to_matrix, uniform_quaternions
from orirec.models.encoder3d import Encoder3D
from orirec.models.rotation_heads import (
    RotationRegressor,
    euler_zyz_to_matrix_t,
    geodesic_loss,
    gram_schmidt_6d,
    quat_to_matrix_t,
)


def test_gram_schmidt_gives_proper_rotations():
    x = torch.randn(500, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    r = gram_schmidt_6d(x)
    eye = torch.eye(3, dtype=torch.float64).expand(500, 3, 3)
    assert torch.allclose(r.transpose(-1, -2) @ r, eye, atol=1e-10)
    assert torch.allclose(torch.linalg.det(r), torch.ones(500, dtype=torch.float64), atol=1e-10)


def test_gram_schmidt_is_continuous_and_keeps_rotations():
    # a rotation's own first two columns map back to the same rotation, and small input changes give small
    # output changes (continuity, the point of Zhou et al.'s representation)
    r = torch.from_numpy(quat_to_matrix(uniform_quaternions(50, seed=1)))
    x = torch.cat([r[..., 0], r[..., 1]], dim=-1)
    assert torch.allclose(gram_schmidt_6d(x), r, atol=1e-10)
    eps = 1e-6 * torch.randn(50, 6, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    assert (gram_schmidt_6d(x + eps) - r).abs().max() < 1e-4


def test_torch_conventions_match_geometry():
    q = uniform_quaternions(20, seed=3)
    assert np.allclose(quat_to_matrix_t(torch.from_numpy(q)).numpy(), quat_to_matrix(q), atol=1e-12)
    ang = np.random.default_rng(4).uniform(-np.pi, np.pi, (20, 3))
    ref = euler_to_matrix(ang[:, 0], ang[:, 1], ang[:, 2])
    assert np.allclose(euler_zyz_to_matrix_t(torch.from_numpy(ang)).numpy(), ref, atol=1e-12)


def test_geodesic_loss_is_the_rotation_angle():
    q = uniform_quaternions(2, seed=5)
    r = torch.from_numpy(quat_to_matrix(q))
    ang = 2 * np.arccos(min(1.0, abs(float(np.dot(q[0], q[1])))))
    assert float(geodesic_loss(r[:1], r[1:])) == pytest.approx(ang, abs=1e-5)


class _Features(torch.nn.Module):
    """A fixed 'encoder' for the learning test: inputs are already features."""

    feature_dim = 9

    def forward(self, x):
        return x


def test_6d_head_learns_rotations_better_than_chance():
    # tiny task: the input is a noisy flattened rotation matrix; the head must output the rotation
    torch.manual_seed(0)
    q = uniform_quaternions(512, seed=6)
    r = torch.from_numpy(quat_to_matrix(q)).float()
    x = r.reshape(-1, 9) + 0.05 * torch.randn(512, 9)
    net = RotationRegressor(_Features(), "6d", hidden=64)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(300):
        loss = geodesic_loss(net(x), r)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        err = float(geodesic_loss(net(x), r))
    # chance (random rotations) is ≈ 126° mean; learned must be far better
    assert np.degrees(err) < 30.0


@pytest.mark.parametrize("rep", ["6d", "quat", "euler"])
def test_regressor_outputs_rotations(rep):
    net = RotationRegressor(_Features(), rep)
    r = net(torch.randn(7, 9)).detach()
    assert r.shape == (7, 3, 3)
    assert torch.allclose(r.transpose(-1, -2) @ r, torch.eye(3).expand(7, 3, 3), atol=1e-4)


def test_unknown_representation_is_a_clear_error():
    with pytest.raises(ValueError, match="representation"):
        RotationRegressor(_Features(), "axis-angle")


def test_encoder3d_on_tiny_subvolumes():
    enc = Encoder3D(12, channels=(4, 8), feature_dim=16)
    out = enc(torch.randn(3, 12, 12, 12))
    assert out.shape == (3, 16)
    with pytest.raises(ValueError, match="Encoder3D"):
        enc(torch.randn(3, 10, 10, 10))

"""Training augmentations: in-plane rotation (checked against the projector), shift, noise level, CTF, config."""

import math

import numpy as np
import pytest
import torch

from orirec.geometry import quat_distance, uniform_quaternions
from orirec.simulate.projector import project
from orirec.structures import atoms_to_density, pseudo_protein
from orirec.train.augment import augment_images, check_augment, extra_noise_variance, rotate_with_quaternions


@pytest.fixture(scope="module")
def volume():
    return atoms_to_density(pseudo_protein(3, n_atoms=600, radius_A=20.0), 40, 2.0, resolution_A=9.0)


def _disk_rel_err(a, b):
    L = a.shape[-1]
    yy, xx = np.mgrid[:L, :L] - L // 2
    disk = xx**2 + yy**2 < (L // 2 - 2) ** 2
    return np.linalg.norm((a - b)[disk]) / np.linalg.norm(b[disk])


def test_rotated_image_is_the_projection_of_the_returned_quaternion(volume):
    q = uniform_quaternions(5, seed=3)
    images = project(volume, q)
    aug = check_augment({"rotate": True})
    x, q_new = augment_images(torch.from_numpy(images), torch.from_numpy(q), aug, np.random.default_rng(7))
    direct = project(volume, q_new.numpy())
    for a, b in zip(x.numpy(), direct, strict=True):
        assert _disk_rel_err(a, b) < 0.03
    # the sign matters: the inverse in-plane angle gives a clearly different image
    alpha = quat_distance(q, q_new.numpy())  # = |α| mod the quaternion sign
    assert np.all(alpha > 0.1)
    wrong_x, _ = rotate_with_quaternions(images, q, -np.full(5, 1.0))
    right_q = rotate_with_quaternions(images, q, np.full(5, 1.0))[1]
    assert _disk_rel_err(wrong_x[0], project(volume, right_q[:1])[0]) > 0.2


def test_rotation_changes_d_q_by_the_inplane_angle():
    q = uniform_quaternions(50, seed=1)
    alpha = np.random.default_rng(2).uniform(0, np.pi, 50)
    _, q_new = rotate_with_quaternions(np.zeros((50, 8, 8), np.float32), q, alpha)
    np.testing.assert_allclose(quat_distance(q, q_new), alpha, atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(q_new, axis=1), 1.0, atol=1e-12)
    assert np.all(q_new[:, 0] >= 0)


def test_shift_moves_the_content_and_keeps_the_orientation():
    img = np.zeros((1, 16, 16), np.float32)
    img[0, 8, 8] = 1.0
    aug = check_augment({"shift_px": 3.0})
    q = torch.from_numpy(uniform_quaternions(1, seed=0))
    x, q2 = augment_images(torch.from_numpy(img), q, aug, np.random.default_rng(0))
    assert torch.equal(q2, q)
    y, xx = np.unravel_index(np.argmax(x[0].numpy()), (16, 16))
    assert (y, xx) != (8, 8) and abs(y - 8) <= 3 and abs(xx - 8) <= 3
    assert x.sum().item() == pytest.approx(1.0, abs=1e-5)


def test_noise_reaches_the_target_level():
    rng = np.random.default_rng(0)
    clean = rng.standard_normal((200, 32, 32)).astype(np.float32) * 2.0  # clean variance 4
    s0 = 1.0
    noisy = clean + rng.standard_normal(clean.shape).astype(np.float32) * 2.0  # σ² = 1 already
    var = extra_noise_variance(noisy, s0, np.full(200, 16.0))
    np.testing.assert_allclose(var, 15.0 * 4.0, rtol=0.2)  # per image: 1024 px estimate the variance
    assert var.mean() == pytest.approx(60.0, rel=0.02)
    aug = check_augment({"noise_sigma2": (16.0, 16.0)})
    x, _ = augment_images(torch.from_numpy(noisy), None, aug, np.random.default_rng(1), sigma2_now=s0)
    measured = (x.numpy() - clean).var() / clean.var()
    assert measured == pytest.approx(16.0, rel=0.05)
    # a target below the current level adds nothing
    same, _ = augment_images(torch.from_numpy(noisy), None, check_augment({"noise_sigma2": (0.5, 0.5)}), rng, s0)
    np.testing.assert_array_equal(same.numpy(), noisy)


def test_bad_augment_configs():
    with pytest.raises(ValueError, match="unknown keys"):
        check_augment({"flip": True})
    with pytest.raises(ValueError, match="shift_px"):
        check_augment({"shift_px": -1})
    with pytest.raises(ValueError, match="noise_sigma2"):
        check_augment({"noise_sigma2": (4.0, 1.0)})
    with pytest.raises(ValueError, match="quaternions"):
        augment_images(torch.zeros(2, 8, 8), None, check_augment({"rotate": True}), np.random.default_rng(0))


def test_ctf_on_fresh_images_changes_them_and_is_seeded(tmp_path):
    from orirec.config import SimulateConfig
    from orirec.simulate.to_store import simulate_to_store
    from orirec.store import open_store
    from orirec.train.fresh import FreshImages

    cfg = SimulateConfig(inputs=["pseudo:0"], n_per_structure=16, box_px=32, sigma2=0.0, shard_size=16)
    simulate_to_store(cfg, tmp_path / "s.zarr")
    store = open_store(tmp_path / "s.zarr")
    plain = next(FreshImages(store, seed=3).image_batches(0, 1, 8))
    ctf1 = next(FreshImages(store, seed=3, ctf_defocus_range_A=(15000.0, 20000.0)).image_batches(0, 1, 8))
    ctf2 = next(FreshImages(store, seed=3, ctf_defocus_range_A=(15000.0, 20000.0)).image_batches(0, 1, 8))
    torch.testing.assert_close(plain[1], ctf1[1])  # same orientations
    torch.testing.assert_close(ctf1[0], ctf2[0])
    rel = (plain[0] - ctf1[0]).norm() / plain[0].norm()
    assert rel > 0.3 and math.isfinite(float(rel))

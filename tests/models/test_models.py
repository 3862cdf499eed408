"""Siamese encoder: shapes, presets, the learned distance, checkpoints, embedding, a few training steps."""

import math

import numpy as np
import pytest
import torch

from orirec.geometry import quat_distance, quat_to_matrix, uniform_quaternions
from orirec.models import (
    ENCODER_PRESETS,
    SiameseNet,
    build_model,
    distance,
    embed_images,
    encoder_preset,
    load_model,
    save_checkpoint,
)


def blob_projections(q: np.ndarray, box: int, seed: int = 0) -> np.ndarray:
    """Projections (N, box, box) of five 3D Gaussian blobs rotated by q (explicit function of orientation)."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(-0.35, 0.35, (5, 3)) * box
    weights, widths = rng.uniform(0.5, 1.5, 5), rng.uniform(1.5, 3.0, 5)
    p = np.einsum("nij,kj->nki", quat_to_matrix(q), centres)  # (N, 5, 3), microscope frame
    ax = np.arange(box) - box // 2
    gx = np.exp(-((ax[None, None, :] - p[..., 0:1]) ** 2) / (2 * widths[:, None] ** 2))
    gy = np.exp(-((ax[None, None, :] - p[..., 1:2]) ** 2) / (2 * widths[:, None] ** 2))
    return np.einsum("k,nky,nkx->nyx", weights, gy, gx).astype(np.float32)


@pytest.mark.parametrize("name", sorted(ENCODER_PRESETS))
@pytest.mark.parametrize("size", [8, 32])
def test_presets_shapes(name, size):
    net = build_model({"preset": name}, size)
    x = torch.randn(3, size, size)
    e = net(x)
    assert e.shape == (3, ENCODER_PRESETS[name]["feature_dim"])
    torch.testing.assert_close(net(x[:, None]), e)


def test_paper_preset_is_the_reference_stack():
    cfg = encoder_preset("paper")
    assert cfg["channels"] == [32, 64, 128, 256, 256, 512, 512]
    assert cfg["kernels"] == [7, 5, 3, 3, 3, 3, 3]
    net = SiameseNet(64, **cfg)
    convs = [m for m in net.features if isinstance(m, torch.nn.Conv2d)]
    pools = [m for m in net.features if isinstance(m, torch.nn.MaxPool2d)]
    assert [c.kernel_size[0] for c in convs] == cfg["kernels"]
    assert len(pools) == 6  # 64 -> 1 after six pools; the seventh is skipped on the 1x1 map
    assert isinstance(net.head, torch.nn.Identity)  # 512 channels = 512 features


def test_bad_config():
    with pytest.raises(ValueError, match="preset"):
        build_model({"preset": "huge"}, 32)
    with pytest.raises(ValueError, match="unknown keys"):
        build_model({"depth": 3}, 32)
    with pytest.raises(ValueError, match="kernels"):
        SiameseNet(32, channels=(8, 8), kernels=(3,))
    with pytest.raises(ValueError, match="forward"):
        SiameseNet(32, channels=(4,), kernels=(3,), feature_dim=4)(torch.zeros(2, 16, 16))


def test_distance_range_symmetry_and_safe_gradient():
    torch.manual_seed(0)
    e1, e2 = torch.randn(200, 16), torch.randn(200, 16)
    d = distance(e1, e2)
    assert torch.all((d >= 0) & (d <= math.pi))
    torch.testing.assert_close(d, distance(e2, e1))
    torch.testing.assert_close(distance(e1, -e1), distance(e1, e1))  # sign-blind, like quaternions
    assert float(distance(e1[:1], 3 * e1[:1])) < 0.01
    # orthogonal embeddings are the farthest apart: pi
    assert float(distance(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]))) == pytest.approx(math.pi)
    x = e1.clone().requires_grad_(True)
    distance(x, x.detach()).sum().backward()
    assert torch.isfinite(x.grad).all()


def test_per_image_normalization_makes_scale_irrelevant():
    torch.manual_seed(0)
    net = build_model({"preset": "tiny"}, 16)
    x = torch.rand(4, 16, 16)
    torch.testing.assert_close(net(5.0 * x + 3.0), net(x), atol=1e-4, rtol=1e-4)


def test_checkpoint_round_trip_identical_embeddings(tmp_path):
    torch.manual_seed(1)
    net = build_model({"preset": "tiny", "feature_dim": 12}, 24)
    images = blob_projections(uniform_quaternions(40, seed=0), 24)
    path = save_checkpoint(tmp_path / "c" / "m.pt", net, net.config, epoch=3, metrics={"mae": np.float32(0.5)})
    assert path.is_file() and not list(path.parent.glob(".*tmp*"))
    net2, meta = load_model(path)
    assert meta["epoch"] == 3 and meta["metrics"]["mae"] == pytest.approx(0.5)
    assert net2.config == net.config
    np.testing.assert_array_equal(embed_images(net, images, batch_size=7), embed_images(net2, images))


def test_load_missing_or_corrupt_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        load_model(tmp_path / "nope.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError, match="bad.pt"):
        load_model(bad)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    with pytest.raises(ValueError, match="not an orirec"):
        load_model(other)


def test_embed_images_matches_forward_and_restores_mode():
    torch.manual_seed(2)
    net = build_model({"preset": "tiny"}, 16)
    images = np.random.default_rng(0).normal(size=(10, 16, 16)).astype(np.float32)
    seen = []
    out = embed_images(net, images, batch_size=4, progress=seen.append)
    assert out.dtype == np.float32 and out.shape == (10, 16)
    assert seen == [4, 8, 10]
    assert net.training
    with torch.no_grad():
        np.testing.assert_allclose(out, net(torch.from_numpy(images)).numpy(), rtol=1e-5, atol=1e-6)


def test_training_steps_lower_the_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    q = uniform_quaternions(64, seed=4)
    images = torch.from_numpy(blob_projections(q, 24))
    i, j = np.arange(32), np.arange(32, 64)
    target = torch.from_numpy(quat_distance(q[i], q[j]).astype(np.float32))
    net = build_model({"preset": "tiny"}, 24)
    opt = torch.optim.RMSprop(net.parameters(), lr=1e-3)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(distance(net(images[i]), net(images[j])), target)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0], losses


# --- encoder families, distances, front end -------------------------------------------------------------

FAMILY_DISTANCE = [(f, d) for f in ("vgg", "resnet", "polar") for d in ("angle", "euclidean")]


@pytest.mark.parametrize(("family", "kind"), FAMILY_DISTANCE)
def test_families_embed_and_give_bounded_distances(family, kind):
    torch.manual_seed(0)
    net = build_model({"family": family, "preset": "tiny", "distance": kind, "feature_dim": 24}, 28)
    x = torch.randn(6, 28, 28)
    e = net(x)
    assert e.shape == (6, 24) and net.family == family
    d = net.pair_distance(x[:3], x[3:])
    assert d.shape == (3,) and torch.all(d >= 0) and torch.all(d <= math.pi)
    assert torch.allclose(net.pair_distance(x[:3], x[:3]), torch.zeros(3), atol=5e-3)  # |cos| clamp: 2.8e-3


@pytest.mark.parametrize("family", ["resnet", "polar"])
def test_family_checkpoint_round_trip(family, tmp_path):
    torch.manual_seed(1)
    net = build_model({"family": family, "preset": "tiny", "distance": "euclidean", "downsample": 2}, 32).eval()
    path = save_checkpoint(tmp_path / "m.pt", net, net.config, epoch=1)
    loaded, meta = load_model(path)
    assert type(loaded) is type(net) and meta["model_config"]["family"] == family
    assert loaded.distance_kind == "euclidean" and loaded.downsample == 2
    x = torch.randn(4, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), net(x))


def test_checkpoint_without_family_loads_as_vgg(tmp_path):
    net = build_model({"preset": "tiny"}, 16)
    cfg = {k: v for k, v in net.config.items() if k not in ("family", "distance", "downsample", "norm")}
    loaded, _ = load_model(save_checkpoint(tmp_path / "old.pt", net, cfg, epoch=1))
    assert isinstance(loaded, SiameseNet) and loaded.distance_kind == "angle"


def test_unknown_family_distance_norm_and_keys_are_errors():
    with pytest.raises(ValueError, match="family"):
        build_model({"family": "transformer"}, 16)
    with pytest.raises(ValueError, match="distance"):
        build_model({"distance": "cosine"}, 16)
    with pytest.raises(ValueError, match="norm"):
        build_model({"family": "resnet", "norm": "layer"}, 16)
    with pytest.raises(ValueError, match="pool_every"):
        build_model({"family": "resnet", "pool_every": 2}, 16)
    with pytest.raises(ValueError, match="downsample"):
        build_model({"downsample": 8}, 16)


def test_euclidean_distance_is_pi_tanh_of_the_norm():
    from orirec.models import embedding_distance, embedding_distance_np

    e1, e2 = torch.tensor([[0.0, 0.0], [1.0, 0.0]]), torch.tensor([[0.3, 0.4], [1.0, 0.0]])
    d = embedding_distance(e1, e2, "euclidean")
    torch.testing.assert_close(d, torch.tensor([math.pi * math.tanh(0.5), 0.0]), atol=1e-5, rtol=0)
    emb = torch.cat([e1, e2]).numpy()
    np.testing.assert_allclose(
        embedding_distance_np(emb, np.array([0, 1]), np.array([2, 3]), "euclidean"), d, atol=1e-5
    )
    ang = embedding_distance_np(emb, np.array([1]), np.array([3]), "angle")
    np.testing.assert_allclose(ang, distance(e1[1:], e2[1:]).numpy(), atol=3e-3)


def test_polar_front_end_turns_inplane_rotation_into_a_cyclic_shift():
    from orirec.imaging.inplane import rotate_inplane

    L = 33  # odd: the centre pixel is the rotation centre of both rotate_inplane and the polar grid
    net = build_model({"family": "polar", "preset": "tiny", "downsample": 1}, L)
    yy, xx = np.mgrid[:L, :L] - L // 2
    img = (np.exp(-((xx - 6) ** 2 + (yy - 2) ** 2) / 8.0) + 0.5 * np.exp(-((xx + 3) ** 2 + (yy + 7) ** 2) / 5.0))[None]
    rotated = rotate_inplane(img.astype(np.float32), np.array([np.pi / 2]))
    p0 = net.to_polar(torch.from_numpy(img.astype(np.float32))[:, None])[0, 0]
    p1 = net.to_polar(torch.from_numpy(rotated)[:, None])[0, 0]
    quarter = net.n_angles // 4
    # content rotated counter-clockwise by 90° appears a quarter turn later in angle
    assert torch.allclose(p1, torch.roll(p0, quarter, dims=-1), atol=2e-3)
    assert not torch.allclose(p1, torch.roll(p0, -quarter, dims=-1), atol=2e-2)


def test_fourier_front_end_matches_the_image_downsampler_and_cuts_white_noise_4x():
    from orirec.imaging.resize import fourier_downsample
    from orirec.models.encoder import fourier_crop

    rng = np.random.default_rng(0)
    L = 48
    yy, xx = np.mgrid[:L, :L] - L // 2
    smooth = np.exp(-((xx - 3) ** 2 + (yy + 5) ** 2) / (2 * 6.0**2))[None].astype(np.float32)
    ours = fourier_crop(torch.from_numpy(smooth)[:, None], 24)[:, 0].numpy()
    np.testing.assert_allclose(ours, fourier_downsample(smooth, 24), atol=1e-5)
    noise = rng.standard_normal((64, 1, L, L)).astype(np.float32)
    ratio = noise.var() / fourier_crop(torch.from_numpy(noise), 24).var().item()
    assert 3.6 < ratio < 4.4, ratio


@pytest.mark.parametrize("family", ["resnet", "polar"])
def test_training_steps_lower_the_loss_for_every_family(family):
    torch.manual_seed(0)
    q = uniform_quaternions(64, seed=4)
    images = torch.from_numpy(blob_projections(q, 24))
    i, j = np.arange(32), np.arange(32, 64)
    target = torch.from_numpy(quat_distance(q[i], q[j]).astype(np.float32))
    net = build_model({"family": family, "preset": "tiny"}, 24)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(net.pair_distance(images[i], images[j]), target)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0], losses


def test_vgg_without_norm_keeps_the_checkpoint_layout_of_earlier_versions():
    """Checkpoints saved before the norm option hold conv weights at features.0/3/6 (conv, ReLU, pool)."""
    from orirec.models import SiameseNet

    keys = SiameseNet(32, channels=[4, 8, 8], kernels=[3, 3, 3], feature_dim=8).state_dict().keys()
    assert {"features.0.weight", "features.3.weight", "features.6.weight"} <= set(keys)

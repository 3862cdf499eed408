"""The commonlines family (issue 9): per-band common-line coherence maps read along their diagonals, exact
invariance to a joint in-plane rotation, checkpoints, training through the one loop and recovery."""

import math

import numpy as np
import pytest
import torch
from synthetic import blob_projections, short_run

from orirec.config import ModelConfig, RecoverConfig
from orirec.geometry import uniform_quaternions
from orirec.models import build_model, edge_distances, embed_images, load_model, save_checkpoint
from orirec.models.commonlines import BAND_WIDTH, CommonLineNet
from orirec.pipeline.stages import stage_recover
from orirec.train import train_loop_per_worker

BOX = 21  # odd: rot90 turns the image exactly about its centre pixel
SMALL = {"family": "commonlines", "preset": "tiny", "n_angles": 16, "pair_batch": 64}


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model(SMALL, BOX).eval()


@pytest.fixture(scope="module")
def images():
    return torch.from_numpy(blob_projections(uniform_quaternions(8, seed=1), BOX, seed=0))


def test_shapes_range_and_symmetry(model, images):
    with torch.no_grad():
        e = model(images)
        assert e.shape == (8, *model.embedding_shape) == (8, model.n_bands, 16, 2 * BAND_WIDTH)
        d_ab, d_ba = model.distance(e[:4], e[4:]), model.distance(e[4:], e[:4])
    assert d_ab.shape == (4,) and ((d_ab >= 0) & (d_ab <= math.pi)).all()
    np.testing.assert_allclose(d_ab.numpy(), d_ba.numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="CommonLineNet.distance"):
        model.distance(e[:4, :, :, :3], e[4:, :, :, :3])


def test_joint_inplane_rotation_leaves_the_distance_unchanged(model, images):
    """A quarter turn of both images shifts every map along m only: the profiles over δ, and d_p, stay."""
    rot = torch.rot90(images, 1, dims=(-2, -1))
    with torch.no_grad():
        e, er = model(images), model(rot)
        d, dr = model.distance(e[:4], e[4:]), model.distance(er[:4], er[4:])
        d_one = model.distance(er[:4], e[4:])  # only the first image turned: the distance sees it
    np.testing.assert_allclose(d.numpy(), dr.numpy(), atol=1e-5)
    assert (d - d_one).abs().max() > 1e-4  # untrained head: small but far above the 1e-5 of the joint turn


def test_profile_peaks_at_the_relative_inplane_angle(model, images):
    """An image against itself peaks at δ = 0; against its quarter turn at δ = ±n_angles/4 (a quarter of the lines)."""
    rot = torch.rot90(images, 1, dims=(-2, -1))
    with torch.no_grad():
        e, er = model(images), model(rot)
        same = model.profiles(model.coherence(e, e))[:, : model.n_bands].sum(1)  # raw max over m, summed over bands
        turned = model.profiles(model.coherence(e, er))[:, : model.n_bands].sum(1)
    assert (same.argmax(dim=1) == 0).all()
    assert set(turned.argmax(dim=1).tolist()) <= {4, 12}
    np.testing.assert_allclose(same[:, 0].numpy(), turned.amax(dim=1).numpy(), rtol=1e-4)


def test_checkpoint_round_trip_and_config(model, tmp_path):
    path = save_checkpoint(tmp_path / "cl.pt", model, model.config, epoch=1)
    loaded, meta = load_model(path)
    assert isinstance(loaded, CommonLineNet) and meta["model_config"]["family"] == "commonlines"
    assert loaded.config == model.config
    feats = np.random.default_rng(0).standard_normal((10, BOX, BOX)).astype(np.float32)
    e1, e2 = embed_images(model, feats), embed_images(loaded, feats)
    i, j = np.triu_indices(10, 1)
    np.testing.assert_array_equal(edge_distances(model, e1, i, j), edge_distances(loaded, e2, i, j))
    assert embed_images(model, feats[:0]).shape == (0, *model.embedding_shape)
    net = build_model(ModelConfig(family="commonlines", preset="tiny").model_dump(exclude_none=True), 64)
    # radii 2 .. 24 Fourier px (3/8 of 64) in whole bands of three: 21 radii, 7 bands
    assert (net.n_radii, net.n_bands, net.n_angles, net.distance_kind) == (21, 7, 48, "pair")
    with pytest.raises(ValueError, match="n_radii"):
        build_model({**SMALL, "n_radii": 2}, BOX)


def test_head_fits_the_distances_of_a_fixed_set(images):
    """Adam on the pairs of 8 fixed blob projections: the squared error of d_p against d_q drops by half."""
    torch.manual_seed(0)
    net = build_model(SMALL, BOX)
    q = torch.from_numpy(uniform_quaternions(8, seed=1))
    i, j = torch.triu_indices(8, 8, 1)
    d_q = 2 * torch.acos((q[i] * q[j]).sum(-1).abs().clamp(max=1)).float()
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(150):
        e = net(images)
        loss = (net.distance(e[i], e[j]) - d_q).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_training_run_and_recovery(store_path, tmp_path):  # noqa: F811 - pytest fixture
    res = train_loop_per_worker(short_run(store_path, tmp_path, SMALL))
    losses = [h["train_loss"] for h in res["history"]]
    assert len(losses) == 6 and all(np.isfinite(losses))
    out = stage_recover(
        RecoverConfig(max_images=30, steps=10, n_starts=2, gauge=False), store_path, res["checkpoint"], tmp_path / "rec"
    )
    assert out["n_edges"] == 30 * 29 // 2
    assert np.isfinite(np.load(tmp_path / "rec" / "graph.npz")["d_p"]).all()


def test_coherence_peaks_on_the_true_common_line(shared_data):
    """Clean projections of the 5j0n map (64 px): the summed coherence peaks on the common line that the geometry
    predicts (within 10° in both images) for most pairs; a wrong sense or axis convention gives ~1 %."""
    from orirec.geometry import common_line_error
    from orirec.simulate.projector import project
    from orirec.structures import load_volume

    vol, _ = load_volume(shared_data / "maps" / "5j0n.mrc", 64, 3.667)
    q = uniform_quaternions(24, seed=7)
    x = torch.from_numpy(project(vol, q))
    net = build_model({"family": "commonlines", "preset": "tiny", "n_angles": 96}, 64).eval()
    i, j = np.triu_indices(24, 1)
    with torch.no_grad():
        e = net(x)
        peak = net.peak_lines(e[i], e[j]).double().numpy()
    err = common_line_error(peak[:, 0], peak[:, 1], q[i], q[j])
    assert np.mean(np.degrees(err) < 10) > 0.7


def test_mirror_image_fills_an_antidiagonal(model, images):
    """A view turned by π about the image's x axis is the image flipped in y: every line θ meets line −θ, so the
    best anti-diagonal mean coherence is 1, while an image against itself only crosses each anti-diagonal twice."""
    flipped = torch.flip(images, dims=(-2,))  # rows are y: odd box, exact about the centre pixel
    k = model.n_bands
    with torch.no_grad():
        e, ef = model(images), model(flipped)
        mirror_mean = model.mirror_scores(model.coherence(e, ef))[:, k : 2 * k]
        self_mean = model.mirror_scores(model.coherence(e, e))[:, k : 2 * k]
    assert (mirror_mean > 0.99).all()
    assert self_mean.mean() < mirror_mean.mean() - 0.03  # smooth blobs: lines alike, yet clearly below

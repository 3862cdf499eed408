"""The training loop: data split and sharding, resume, checkpoints, bad stores, DDP gradient equivalence."""

import math
import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from synthetic import blob_projections

from orirec.geometry import uniform_quaternions
from orirec.models import build_model, embed_images, load_model
from orirec.store import create_store
from orirec.train import PairData, split_by_image, train_loop_per_worker

BOX, PER_PROTEIN = 20, 150


def synthetic_arrays(n_proteins: int = 2):
    q = uniform_quaternions(n_proteins * PER_PROTEIN, seed=11)
    protein = np.repeat(np.arange(n_proteins, dtype=np.int32), PER_PROTEIN)
    images = np.concatenate([blob_projections(q[protein == p], BOX, seed=p) for p in range(n_proteins)])
    return images, q, protein


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    images, q, protein = synthetic_arrays()
    path = tmp_path_factory.mktemp("store") / "proj.zarr"
    n, shard = len(images), 128
    w = create_store(path, n, BOX, 2.0, shard_size=shard, attrs={"proteins": [{"id": "a"}, {"id": "b"}]})
    for k in range(math.ceil(n / shard)):
        s = slice(k * shard, min(n, (k + 1) * shard))
        w.write_shard(k, images=images[s], quaternions=q[s], protein=protein[s])
    w.finalize()
    return path


def base_config(store_path, out_dir, **kw):
    cfg = {
        "store": str(store_path),
        "out_dir": str(out_dir),
        "model": {"preset": "tiny"},
        "epochs": 1,
        "batch_size": 32,
        "pairs_per_epoch": 256,
        "val_pairs": 128,
        "val_fraction": 0.2,
        "seed": 3,
    }
    return {**cfg, **kw}


def test_split_and_pairs_respect_validation_images():
    images, q, protein = synthetic_arrays()
    train, val = split_by_image(protein, 0.2, seed=0)
    assert len(np.intersect1d(train, val)) == 0 and len(train) + len(val) == len(protein)
    assert all(np.sum(protein[val] == p) == 30 for p in (0, 1))
    data = PairData(images, q, protein, val_fraction=0.2, val_pairs=200, seed=0)
    assert np.isin(data.val_i, val).all() and np.isin(data.val_j, val).all()
    i, j, _ = data.epoch_pairs(0, 500)
    assert np.isin(i, train).all() and np.isin(j, train).all()
    assert np.all(protein[i] == protein[j])
    i2, _, _ = data.epoch_pairs(1, 500)
    assert not np.array_equal(i, i2)  # a new draw per epoch ...
    np.testing.assert_array_equal(i, data.epoch_pairs(0, 500)[0])  # ... reproducible by seed


def test_rank_shards_are_disjoint_and_cover_each_global_batch():
    images, q, protein = synthetic_arrays()
    data = PairData(images, q, protein, val_pairs=64, seed=1)
    full = list(data.batches(0, 100, 32, rank=0, world_size=1))
    parts = [list(data.batches(0, 100, 32, rank=r, world_size=2)) for r in range(2)]
    assert len(full) == 3 and all(len(p) == 3 for p in parts)
    for s in range(3):
        for k in range(3):
            torch.testing.assert_close(torch.cat([parts[0][s][k], parts[1][s][k]]), full[s][k])
    with pytest.raises(ValueError, match="batch_size"):
        next(data.batches(0, 100, 33, rank=0, world_size=2))


def test_train_resume_continues_and_matches_uninterrupted_run(store_path, tmp_path):
    reports = []
    r1 = train_loop_per_worker(base_config(store_path, tmp_path / "a", report=lambda m, c: reports.append((m, c))))
    assert r1["epochs_run"] == 1 and len(r1["history"]) == 1
    assert reports and reports[0][1].endswith("checkpoints")
    assert all(isinstance(v, int | float) for v in reports[0][0].values())
    assert len(r1["history"][0]["val_mae_bins"]) == 6
    r2 = train_loop_per_worker(base_config(store_path, tmp_path / "a", epochs=2, resume=True))
    assert r2["epochs_run"] == 2 and [h["epoch"] for h in r2["history"]] == [1, 2]
    assert r2["history"][0] == r1["history"][0]
    straight = train_loop_per_worker(base_config(store_path, tmp_path / "b", epochs=2))
    for key in ("train_loss", "val_loss", "val_mae"):
        assert straight["history"][1][key] == pytest.approx(r2["history"][1][key], rel=1e-5)
    model, meta = load_model(r2["checkpoint"])
    assert meta["metrics"]["val_mae"] == pytest.approx(r2["best_val_mae"])
    images, _, _ = synthetic_arrays()
    assert embed_images(model, images[:5]).shape == (5, 16)
    assert r2["best_val_mae"] == min(h["val_mae"] for h in r2["history"]) and r2["pairs_per_s"] > 0


def test_init_from_starts_from_the_checkpoint_weights(store_path, tmp_path):
    first = train_loop_per_worker(base_config(store_path, tmp_path / "a", epochs=2))
    # one epoch at lr 1e-9 leaves the weights as loaded: its validation MAE is the starting checkpoint's own
    tuned = train_loop_per_worker(
        base_config(store_path, tmp_path / "b", init_from=first["last_checkpoint"], pairs_per_epoch=32, lr=1e-9)
    )
    assert tuned["epochs_run"] == 1 and tuned["history"][0]["epoch"] == 1
    assert tuned["history"][0]["val_mae"] == pytest.approx(first["history"][-1]["val_mae"], rel=1e-4)
    fresh = train_loop_per_worker(base_config(store_path, tmp_path / "c", pairs_per_epoch=32, lr=1e-9))
    assert fresh["history"][0]["val_mae"] != pytest.approx(tuned["history"][0]["val_mae"], rel=1e-3)
    with pytest.raises(ValueError, match="init_from"):
        other = {"preset": "tiny", "feature_dim": 8}
        train_loop_per_worker(base_config(store_path, tmp_path / "d", init_from=first["last_checkpoint"], model=other))


def test_cosine_schedule_decays_per_epoch_and_reaches_the_optimizer(store_path, tmp_path):
    from orirec.train.loop import COSINE_FLOOR, scheduled_lr

    lrs = [scheduled_lr(1e-3, "cosine", e, 5) for e in range(5)]
    assert lrs[0] == pytest.approx(1e-3) and lrs[-1] == pytest.approx(COSINE_FLOOR * 1e-3)
    assert all(a > b for a, b in zip(lrs, lrs[1:], strict=False))
    assert scheduled_lr(1e-3, "constant", 4, 5) == 1e-3
    r = train_loop_per_worker(
        base_config(store_path, tmp_path / "a", epochs=3, pairs_per_epoch=32, lr_schedule="cosine", lr=2e-3)
    )
    assert [h["lr"] for h in r["history"]] == pytest.approx([scheduled_lr(2e-3, "cosine", e, 3) for e in range(3)])
    ck = torch.load(r["last_checkpoint"], map_location="cpu", weights_only=False)
    assert ck["optimizer_state"]["param_groups"][0]["lr"] == pytest.approx(r["history"][-1]["lr"])
    with pytest.raises(ValueError, match="lr_schedule"):
        train_loop_per_worker(base_config(store_path, tmp_path / "b", lr_schedule="step"))
    with pytest.raises(ValueError, match="optimizer must be one of"):
        train_loop_per_worker(base_config(store_path, tmp_path / "b", optimizer="sgd"))


def test_training_beats_the_best_constant_distance(store_path, tmp_path):
    cfg = base_config(store_path, tmp_path, epochs=2, pairs_per_epoch=1024, optimizer="adam", progress=True)
    r = train_loop_per_worker(cfg)
    data = PairData.from_store(store_path, val_fraction=0.2, val_pairs=128, seed=3)
    baseline = np.mean(np.abs(data.val_d - np.median(data.val_d)))  # best constant d_p (rad)
    assert r["best_val_mae"] == min(h["val_mae"] for h in r["history"])
    # measured: 0.60 vs 0.71 (ratio 0.83-0.89 over seeds 3-5); an untrained net gives d_p ~ 0, MAE ~ 1.6
    assert r["best_val_mae"] < 0.92 * baseline, (r["best_val_mae"], baseline)


def test_bad_store_and_config_errors(store_path, tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.zarr"):
        train_loop_per_worker(base_config(tmp_path / "missing.zarr", tmp_path))
    corrupt = tmp_path / "corrupt.zarr"
    corrupt.mkdir()
    (corrupt / "zarr.json").write_text("{ not json")
    with pytest.raises(ValueError, match="corrupt.zarr"):
        train_loop_per_worker(base_config(corrupt, tmp_path))
    part = tmp_path / "partial.zarr"
    create_store(part, 200, BOX, 2.0, shard_size=128).write_shard(0, images=np.ones((128, BOX, BOX)))
    with pytest.raises(ValueError, match="incomplete"):
        train_loop_per_worker(base_config(part, tmp_path))
    with pytest.raises(ValueError, match="unknown keys"):
        train_loop_per_worker(base_config(store_path, tmp_path, learning_rate=1.0))
    with pytest.raises(ValueError, match="loss"):
        train_loop_per_worker(base_config(store_path, tmp_path, loss="l3"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_world_size_one_gloo_matches_plain_run(store_path, tmp_path):
    plain = train_loop_per_worker(base_config(store_path, tmp_path / "plain"))
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{_free_port()}", rank=0, world_size=1)
    try:
        ddp = train_loop_per_worker(base_config(store_path, tmp_path / "ddp"))
    finally:
        dist.destroy_process_group()
    for key in ("train_loss", "val_loss", "val_mae"):
        assert ddp["history"][0][key] == pytest.approx(plain["history"][0][key], rel=1e-5)


def _grads(model) -> list[torch.Tensor]:
    return [p.grad.detach().clone() for p in model.parameters()]


def _ddp_worker(rank, world, port, arrays, out_path):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        data = PairData(*arrays, val_pairs=32, seed=5)
        torch.manual_seed(0)
        net = torch.nn.parallel.DistributedDataParallel(build_model({"preset": "tiny"}, BOX))
        xi, xj, d = next(data.batches(0, 64, 64, rank, world))
        e = net(torch.cat([xi, xj]))
        from orirec.models import distance

        torch.nn.functional.mse_loss(distance(e[: len(xi)], e[len(xi) :]), d).backward()
        torch.save(_grads(net.module), f"{out_path}.{rank}")
        # Both ranks finish their gloo work before either tears the group down: rank 0 hosts the TCP store; a peer
        # still talking to it when it went away aborted once in CI ("terminate called without an active exception").
        dist.barrier()
    finally:
        dist.destroy_process_group()


@pytest.mark.slow  # ~7-13 s: two spawned interpreters importing torch (world size 1 runs by default)
def test_ddp_two_ranks_average_gradient_equals_single_process(tmp_path):
    arrays = synthetic_arrays()
    mp.spawn(_ddp_worker, args=(2, _free_port(), arrays, str(tmp_path / "g")), nprocs=2, join=True)
    data = PairData(*arrays, val_pairs=32, seed=5)
    torch.manual_seed(0)
    net = build_model({"preset": "tiny"}, BOX)
    xi, xj, d = next(data.batches(0, 64, 64, 0, 1))
    from orirec.models import distance

    e = net(torch.cat([xi, xj]))
    torch.nn.functional.mse_loss(distance(e[: len(xi)], e[len(xi) :]), d).backward()
    for r in range(2):
        for g_ddp, g in zip(torch.load(tmp_path / f"g.{r}"), _grads(net), strict=True):
            torch.testing.assert_close(g_ddp, g, rtol=1e-4, atol=1e-6)


def test_on_the_fly_batches_are_fresh_and_follow_the_store(tmp_path):
    from orirec.config import run_preset
    from orirec.geometry import quat_distance
    from orirec.pipeline.stages import stage_simulate
    from orirec.store import open_store
    from orirec.train.fresh import FreshImages

    cfg = run_preset("tiny", simulate={"sigma2": 4.0, "n_per_structure": 64})
    stage_simulate(cfg.simulate, tmp_path / "s.zarr")
    fresh = FreshImages(open_store(tmp_path / "s.zarr"), seed=3)
    assert fresh.sigma2 == 4.0
    b0 = list(fresh.image_batches(0, 2, 32))
    b1 = list(fresh.image_batches(1, 2, 32))
    again = list(fresh.image_batches(0, 2, 32))
    x, q, prot = b0[0]
    assert x.shape == (32, 24, 24) and q.shape == (32, 4) and (prot == 0).all()
    assert torch.equal(x, again[0][0]) and not torch.equal(x, b1[0][0])  # seeded, new every epoch
    d = quat_distance(q[:16].numpy(), q[16:].numpy())  # partner distances spread over [0, π]
    assert d.min() < 0.8 and d.max() > 2.2
    from orirec.simulate.nufft_projector import NufftProjector

    assert isinstance(fresh.projector(0), NufftProjector)  # the simulator's own CPU projector
    clean = fresh.projector(0).project(q.numpy())
    ratio = (x.var(dim=(1, 2)) / clean.var(dim=(1, 2))).median()
    assert 4.0 < float(ratio) < 6.0  # σ² = 4: noisy variance ≈ (1 + σ²) × clean variance


def test_on_the_fly_training_runs(tmp_path):
    from orirec.config import run_preset
    from orirec.pipeline.stages import stage_simulate, stage_train

    cfg = run_preset("tiny", train={"on_the_fly": True, "epochs": 1})
    stage_simulate(cfg.simulate, tmp_path / "s.zarr")
    res = stage_train(cfg.train, tmp_path / "s.zarr", tmp_path / "t", progress=False)
    assert res["epochs_run"] == 1 and np.isfinite(res["val_mae"])
    # val_images 4: two held-out images per protein, so every validation pair is the same pair (one d_q bin)
    few = cfg.train.model_copy(update={"val_images": 4})
    res = stage_train(few, tmp_path / "s.zarr", tmp_path / "t4", progress=False)
    assert sum(c > 0 for c in res["val_bin_counts"]) == 1
    with pytest.raises(ValueError, match="val_images"):
        train_loop_per_worker(base_config(tmp_path / "s.zarr", tmp_path / "t2", on_the_fly=True, val_images=2))


# --- families and augmentations in the loop, evaluation of a trained model, MLflow ------------------------


def test_loop_trains_a_resnet_with_euclidean_distance_and_augmentations(store_path, tmp_path):
    from orirec.models import ResNetEncoder

    aug = {"rotate": True, "shift_px": 1.0, "noise_sigma2": (0.5, 2.0)}
    model = {"family": "resnet", "preset": "tiny", "distance": "euclidean"}
    res = train_loop_per_worker(base_config(store_path, tmp_path / "a", model=model, augment=aug, epochs=2))
    assert res["epochs_run"] == 2 and all(math.isfinite(h["train_loss"]) for h in res["history"])
    net, meta = load_model(res["checkpoint"])
    assert isinstance(net, ResNetEncoder) and net.distance_kind == "euclidean"
    assert meta["extra"]["config"]["augment"]["rotate"] is True
    # augmentation is seeded: the same config gives the same losses
    again = train_loop_per_worker(base_config(store_path, tmp_path / "b", model=model, augment=aug, epochs=2))
    assert again["history"][-1]["train_loss"] == pytest.approx(res["history"][-1]["train_loss"], rel=1e-6)


def test_augment_options_that_cannot_work_are_errors(store_path, tmp_path):
    with pytest.raises(ValueError, match="pairing"):
        train_loop_per_worker(base_config(store_path, tmp_path, pairing="pairs", augment={"rotate": True}))
    with pytest.raises(ValueError, match="on_the_fly"):
        train_loop_per_worker(base_config(store_path, tmp_path, augment={"ctf": True}))
    with pytest.raises(ValueError, match="unknown keys"):
        train_loop_per_worker(base_config(store_path, tmp_path, augment={"mirror": True}))


def _store_with_proteins(path, ids, seed):
    q = uniform_quaternions(len(ids) * 64, seed=seed)
    protein = np.repeat(np.arange(len(ids), dtype=np.int32), 64)
    images = np.concatenate([blob_projections(q[protein == p], BOX, seed=p) for p in range(len(ids))])
    w = create_store(path, len(images), BOX, 2.0, shard_size=len(images), attrs={"proteins": [{"id": i} for i in ids]})
    w.write_shard(0, images=images, quaternions=q, protein=protein)
    w.finalize()
    return path


def test_evaluate_model_reports_per_protein_and_seen_unseen(store_path, tmp_path, cli):
    from orirec.evaluate.distances import evaluate_model_distances

    ckpt = train_loop_per_worker(base_config(store_path, tmp_path / "t"))["checkpoint"]
    other = _store_with_proteins(tmp_path / "other.zarr", ["a", "zz"], seed=4)  # "a" seen, "zz" unseen
    res = evaluate_model_distances(ckpt, other, pairs_per_protein=100, n_bins=4, seed=1)
    assert [(r["id"], r["seen"], r["n_pairs"]) for r in res["proteins"]] == [("a", True, 100), ("zz", False, 100)]
    d_p, d_q, prot = res["pairs"]["d_p"], res["pairs"]["d_q"], res["pairs"]["protein"]
    assert res["overall"]["mae_rad"] == pytest.approx(np.abs(d_p - d_q).mean())
    assert res["seen"]["mae_rad"] == pytest.approx(np.abs(d_p - d_q)[prot == 0].mean())
    assert res["unseen"]["mae_rad"] == pytest.approx(np.abs(d_p - d_q)[prot == 1].mean())
    assert sum(res["overall"]["bin_count"]) == 200 and np.all((d_p >= 0) & (d_p <= np.pi))

    cli("evaluate-model", ckpt, other, "--out", tmp_path / "ev")
    assert {"distances.json", "distances.md", "dp_vs_dq.png"} <= {p.name for p in (tmp_path / "ev").iterdir()}
    assert "| zz | no |" in (tmp_path / "ev" / "distances.md").read_text()
    bad = cli("evaluate-model", ckpt, tmp_path / "nope.zarr", code=2)
    assert "nope.zarr" in bad.output


@pytest.mark.slow  # 25-65 s: MLflow's sqlite schema set-up and model logging dominate
def test_tracked_training_is_queryable_in_mlflow(store_path, tmp_path, cli):
    import mlflow
    from mlflow import MlflowClient

    out = tmp_path / "run"
    args = ["train", str(store_path), "--out", str(out), "--epochs", "2", "--preset", "tiny", "--family", "polar"]
    args += ["--batch-size", "32", "--pairs-per-epoch", "256", "--track", "--no-progress", "--experiment", "t"]
    cli(*args)
    uri = f"sqlite:///{out / 'mlflow.db'}"
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("t").experiment_id])
    assert run.data.params["model.family"] == "polar"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_mae")] == [1, 2]
    assert any(k.startswith("val_mae_bins_") for k in run.data.metrics) and "best_val_mae" in run.data.metrics
    assert "plots/dp_vs_dq.png" in [a.path for a in client.list_artifacts(run.info.run_id, "plots")]
    mlflow.set_tracking_uri(uri)
    (logged,) = mlflow.search_logged_models(experiment_ids=[run.info.experiment_id], output_format="list")
    assert logged.source_run_id == run.info.run_id
    info = mlflow.models.get_model_info(logged.model_uri)
    assert info.signature is not None and info.signature.inputs.to_dict()[0]["tensor-spec"]["shape"][-1] == BOX
    loaded = mlflow.pytorch.load_model(logged.model_uri)
    net, _ = load_model(out / "checkpoints" / "best.pt")
    x = torch.randn(3, BOX, BOX)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), net(x))


def test_tracker_does_not_leak_its_uri_into_the_environment(tmp_path, monkeypatch):
    """MLflow exports set_tracking_uri to $MLFLOW_TRACKING_URI; a later run_all would then log into this database."""
    import os

    from orirec.tracking import Tracker

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    t = Tracker(True, None, "leak", tmp_path)
    with t.run("r"):
        t.log_metrics({"x": 1.0})
    assert "MLFLOW_TRACKING_URI" not in os.environ


def test_all_pairs_loss_and_pair_data_use_symmetry_aware_distances():
    from orirec.geometry import multiply
    from orirec.geometry.symmetry import group_quaternions, symmetric_quat_distance
    from orirec.train.steps import all_pairs_loss, symmetry_operators

    assert symmetry_operators(["C1", "C1"]) is None
    ops = symmetry_operators(["C1", "C2", "D2"])
    assert ops.shape == (3, 4, 4, 4)
    q = uniform_quaternions(6, seed=5)
    q[1] = multiply(q[0], group_quaternions("C2")[1])  # the same view of a C2 particle: d_q must be 0
    q[4] = multiply(q[3], group_quaternions("D2")[3])
    protein = torch.tensor([1, 1, 1, 2, 2, 2])
    seen = {}

    def record(d_p, d_q):
        seen["d_q"] = d_q
        return (d_p - d_q) ** 2

    model = build_model({"preset": "tiny"}, 8)
    all_pairs_loss(model, record, torch.randn(6, 8, 8), torch.from_numpy(q), protein, symmetry=ops)
    groups = {1: "C2", 2: "D2"}
    expect = [symmetric_quat_distance(q[a], q[b], groups[int(protein[a])]) for a, b in
              [(0, 1), (0, 2), (1, 2), (3, 4), (3, 5), (4, 5)]]  # fmt: skip
    np.testing.assert_allclose(seen["d_q"].numpy(), expect, atol=1e-5)
    assert float(seen["d_q"][0]) < 1e-3 and float(seen["d_q"][3]) < 1e-3

    images = np.zeros((40, 8, 8), np.float32)
    qs = uniform_quaternions(40, seed=6)
    data = PairData(images, qs, np.zeros(40, np.int64), val_pairs=64, symmetry=["D2"])
    i, j, d = data.epoch_pairs(0, 200)
    np.testing.assert_allclose(d, symmetric_quat_distance(qs[i], qs[j], "D2"), atol=1e-9)
    assert d.max() < 2.1  # D2 caps d_q at 2.09 rad


def test_one_seed_trains_one_model_bit_for_bit(tmp_path):
    # The all-pairs loss gathers each embedding for many pairs; on 2 CPU threads the backward of that gather summed
    # in a thread-dependent order, so two trainings from one seed differed (and so did the demo's numbers).
    from orirec.config import SimulateConfig
    from orirec.simulate.to_store import simulate_to_store

    store = tmp_path / "s.zarr"
    simulate_to_store(SimulateConfig(inputs=["pseudo:0"], n_per_structure=256, box_px=32, pixel_size_A=3.75), store)
    torch.set_num_threads(2)
    states = []
    for k in range(2):
        cfg = base_config(store, tmp_path / f"t{k}", model={"preset": "small"}, batch_size=128, pairs_per_epoch=512)
        train_loop_per_worker(cfg)
        states.append(torch.load(tmp_path / f"t{k}" / "checkpoints" / "last.pt", weights_only=True)["state_dict"])
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])

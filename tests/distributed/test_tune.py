"""``orirec tune``: the search space file, trial configs, and (slow) an 8-trial ASHA sweep tracked in MLflow."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from orirec.config import TrainConfig, load_yaml
from orirec.distributed.tune import load_search_space, loop_config_for, to_nested

REPO = Path(__file__).resolve().parents[2]


def _space(tmp_path, text):
    p = tmp_path / "space.yaml"
    p.write_text(text)
    return p


def test_shipped_search_space_loads_and_every_choice_is_a_valid_config():
    space = load_search_space(REPO / "pipelines" / "tune-space.yaml")
    assert {"model.family", "lr", "optimizer", "batch_size"} <= set(space)
    assert set(space["model.family"]["choice"]) == {"vgg", "resnet", "polar"}


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("lr: {normal: [0, 1]}\n", "lr: expected one of"),
        ("learning_rate: {choice: [0.1]}\n", "learning_rate"),
        ("model.family: {choice: [vgg, transformer]}\n", "model.family='transformer'"),
        ("lr: {loguniform: [0, 1.0e-3]}\n", "loguniform needs lo > 0"),
        ("lr: {uniform: [1.0e-3, 1.0e-4]}\n", "lo < hi"),
        ("batch_size: {choice: []}\n", "non-empty list"),
        ("[1, 2]\n", "non-empty mapping"),
    ],
)
def test_bad_search_spaces_name_the_file_and_key(tmp_path, text, fragment):
    with pytest.raises(ValueError, match="space.yaml") as err:
        load_search_space(_space(tmp_path, text))
    assert fragment in str(err.value)


def test_missing_space_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_search_space(tmp_path / "nope.yaml")


def test_trial_config_merges_sampled_values_over_the_base():
    assert to_nested({"model.family": "polar", "lr": 0.1}) == {"model": {"family": "polar"}, "lr": 0.1}
    base = TrainConfig(epochs=3, batch_size=64)
    cfg = loop_config_for(base, {"model": {"family": "resnet", "feature_dim": 32}, "lr": 2e-3}, "s.zarr", "out")
    assert cfg["model"] == {
        "family": "resnet",
        "preset": "small",
        "feature_dim": 32,
        "distance": "angle",
        "downsample": 1,
    }
    assert (cfg["epochs"], cfg["batch_size"], cfg["lr"], cfg["store"]) == (3, 64, 2e-3, "s.zarr")
    with pytest.raises(ValueError, match="batch_size"):
        loop_config_for(base, {"batch_size": -1}, "s.zarr", "out")


@pytest.mark.slow  # 3-10 min on 2 shared cores: 8 Ray Train runs (about 20 s start-up each), 2 at a time
@pytest.mark.ray
def test_eight_trial_sweep_end_to_end_with_mlflow(tmp_path):
    import mlflow
    from mlflow import MlflowClient
    from typer.testing import CliRunner

    from orirec.cli.app import app
    from orirec.geometry import quat_to_matrix, uniform_quaternions
    from orirec.store import create_store

    q = uniform_quaternions(256, seed=2)
    protein = np.repeat(np.arange(2, dtype=np.int32), 128)
    centres = np.random.default_rng(0).uniform(-7, 7, (2, 5, 3))  # 5 Gaussian blobs per protein (Å = px)
    p3 = np.einsum("nij,nkj->nki", quat_to_matrix(q), centres[protein])  # microscope frame
    ax = np.arange(20) - 10
    dy = ax[None, None, :, None] - p3[:, :, None, None, 1]
    dx = ax[None, None, None, :] - p3[:, :, None, None, 0]
    images = np.exp(-(dx**2 + dy**2) / 8.0).sum(1).astype(np.float32)
    store = tmp_path / "s.zarr"
    w = create_store(store, 256, 20, 2.0, shard_size=128, attrs={"proteins": [{"id": "a"}, {"id": "b"}]})
    for k in range(2):
        s = slice(128 * k, 128 * (k + 1))
        w.write_shard(k, images=images[s], quaternions=q[s], protein=protein[s])
    w.finalize()
    out = tmp_path / "tune"
    args = ["tune", str(store), "--space", str(REPO / "pipelines" / "tune-space.yaml"), "--out", str(out)]
    args += ["--num-samples", "8", "--epochs", "2", "--pairs-per-epoch", "256"]
    res = CliRunner().invoke(app, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    sweep = json.loads((out / "sweep.json").read_text())
    assert len(sweep["trials"]) == 8
    finished = [t for t in sweep["trials"] if math.isfinite(t["best_val_mae"])]
    assert sweep["best"]["best_val_mae"] == min(t["best_val_mae"] for t in finished)
    best = load_yaml(out / "best_config.yaml", TrainConfig)
    assert best.model.family == sweep["best"]["config"]["model"]["family"]

    uri = f"sqlite:///{out / 'mlflow.db'}"
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("orirec-tune").experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert len(parents) == 1 and len(children) == 8
    assert all("model.family" in r.data.params for r in children)
    assert any(client.get_metric_history(r.info.run_id, "val_mae") for r in children)
    mlflow.set_tracking_uri(uri)
    assert mlflow.search_logged_models(experiment_ids=[parents[0].info.experiment_id], output_format="list")

    # the best config trains with orirec train --config
    again = CliRunner().invoke(
        app,
        [
            "train",
            str(store),
            "--config",
            str(out / "best_config.yaml"),
            "--out",
            str(tmp_path / "t"),
            "--epochs",
            "1",
            "--no-progress",
        ],
        catch_exceptions=False,
    )
    assert again.exit_code == 0, again.output
    assert (tmp_path / "t" / "checkpoints" / "best.pt").is_file()

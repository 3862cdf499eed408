"""MLflow tracking: on by default (OUT/mlflow.db, else $MLFLOW_TRACKING_URI, else --tracking-uri), quiet unless
``orirec -v``, and never stopping the work: an unreachable server or a failing MLflow call is warned about once and
the command finishes untracked."""

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orirec.tracking import Tracker

TINY = ["--preset", "tiny", "--epochs", "1", "--batch-size", "32", "--pairs-per-epoch", "256", "--no-progress"]
UNREACHABLE = "http://127.0.0.1:9"  # the discard port on loopback: nothing listens there


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from orirec.config import SimulateConfig
    from orirec.simulate.to_store import simulate_to_store

    path = tmp_path_factory.mktemp("store") / "s.zarr"
    simulate_to_store(SimulateConfig(inputs=["pseudo:1"], n_per_structure=64, box_px=24, pixel_size_A=3.0), path)
    return path


def orirec(*args, timeout: float = 300, env: dict | None = None) -> tuple[subprocess.CompletedProcess, float]:
    """Run the command line in a fresh process (MLflow's loggers as a user sees them); returns (result, seconds)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    t0 = time.perf_counter()
    res = subprocess.run(
        [sys.executable, "-c", "from orirec.cli.app import main; main()", *map(str, args)],
        capture_output=True, text=True, timeout=timeout, env={**clean, **(env or {})},
    )  # fmt: skip
    return res, time.perf_counter() - t0


def runs_in(uri: str, experiment: str):
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    return [] if exp is None else client.search_runs([exp.experiment_id])


def test_train_is_tracked_by_default_in_its_folder_and_quietly(store, tmp_path):
    """`orirec train` without --track wrote no MLflow run; MLflow's INFO/WARNING lines filled stderr."""
    out = tmp_path / "t"
    res, _ = orirec("train", store, "--out", out, *TINY)
    assert res.returncode == 0, res.stderr
    (run,) = runs_in(f"sqlite:///{out / 'mlflow.db'}", "orirec-train")
    assert run.info.status == "FINISHED" and "val_mae" in run.data.metrics
    assert "mlflow" not in res.stderr.lower() and "alembic" not in res.stderr.lower(), res.stderr
    assert "Warning" not in res.stderr, res.stderr


def test_tracking_uri_from_the_environment(tmp_path, monkeypatch):
    """`train --track` ignored $MLFLOW_TRACKING_URI."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert Tracker(True, None, "e", tmp_path).uri == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'env.db'}")
    assert Tracker(True, None, "e", tmp_path / "out").uri == f"sqlite:///{tmp_path / 'env.db'}"
    assert Tracker(True, "sqlite:///x.db", "e", tmp_path).uri == "sqlite:///x.db"  # --tracking-uri first
    from orirec.tracking import resolve_tracking_uri

    assert resolve_tracking_uri(tmp_path / "out") == f"sqlite:///{tmp_path / 'env.db'}"


def test_unreachable_server_never_stops_training(store, tmp_path):
    """`train --track --tracking-uri http://127.0.0.1:9` blocked 252 s, then died before the first epoch."""
    out = tmp_path / "t"
    res, seconds = orirec("train", store, "--out", out, *TINY, "--track", "--tracking-uri", UNREACHABLE, timeout=120)
    assert res.returncode == 0, res.stderr
    assert (out / "checkpoints" / "best.pt").is_file() and (out / "train_result.json").is_file()
    assert res.stderr.count("failed, continuing without it") == 1, res.stderr
    assert "this run was not tracked" in res.stderr and "Traceback" not in res.stderr
    assert seconds < 60  # imports and one tiny epoch; the probe gives up within 3 s
    assert not (out / "mlflow.db").exists()


def test_unreachable_server_gives_up_in_seconds(tmp_path, capsys):
    t = Tracker(True, UNREACHABLE, "e", tmp_path)
    t0 = time.perf_counter()
    t.enable_system_metrics()
    with t.run("r") as run_id:
        t.log_params({"a": 1})
        t.log_metrics({"x": 1.0})
        done = True
    assert done and run_id is None and time.perf_counter() - t0 < 10
    err = capsys.readouterr().err
    assert err.count("failed, continuing without it") == 1 and "127.0.0.1:9" in err, err
    assert t.failed and "not tracked" in t.failed and not t.enabled


def test_a_failing_mlflow_call_mid_run_turns_tracking_off(tmp_path, monkeypatch, capsys):
    import mlflow

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    t = Tracker(True, None, "mid", tmp_path)
    with t.run("r") as run_id:
        assert run_id is not None
        t.log_metrics({"x": 1.0}, step=1)

        def broken(*a, **k):
            raise RuntimeError("the database went away")

        monkeypatch.setattr(mlflow, "log_metrics", broken)
        t.log_metrics({"x": 2.0}, step=2)  # fails: warned once, tracking off
        t.log_metrics({"x": 3.0}, step=3)
        t.log_params({"a": 1})
        finished = True
    err = capsys.readouterr().err
    assert finished and err.count("the database went away") == 1, err
    assert "only up to the failure" in t.failed and mlflow.active_run() is None
    with t.run("next") as again:  # later runs are no-ops
        assert again is None


def test_quiet_by_default_and_verbose_with_v(tmp_path, cli):
    t = Tracker(True, None, "quiet", tmp_path)
    with t.run("r"):
        t.log_metrics({"x": 1.0})
    assert logging.getLogger("mlflow").getEffectiveLevel() == logging.ERROR
    assert logging.getLogger("mlflow.system_metrics").getEffectiveLevel() == logging.ERROR
    assert logging.getLogger("alembic").getEffectiveLevel() == logging.ERROR
    from orirec.tracking import set_verbose

    try:
        cli("-v", "recover", "--oracle", "--n", "40", "--steps", "5", "--no-progress")
        assert logging.getLogger("mlflow").getEffectiveLevel() == logging.INFO
    finally:
        set_verbose(False)
    assert logging.getLogger("mlflow").getEffectiveLevel() == logging.ERROR


def test_recover_is_tracked_by_default_and_not_with_no_track(store, tmp_path, cli):
    from orirec.train import train_loop_per_worker

    cfg = {"store": str(store), "out_dir": str(tmp_path / "m"), "model": {"preset": "tiny"}, "epochs": 1,
           "batch_size": 32, "pairs_per_epoch": 64, "val_pairs": 32, "val_fraction": 0.2}  # fmt: skip
    model = train_loop_per_worker(cfg)["checkpoint"]
    args = [str(store), "--model", model, "--steps", "5", "--no-gauge", "--max-images", "30", "--no-progress"]
    cli("recover", *args, "--out", tmp_path / "r")
    (run,) = runs_in(f"sqlite:///{tmp_path / 'r' / 'mlflow.db'}", "orirec-recover")
    assert run.data.metrics["n_images"] == 30 and run.data.params["steps"] == "5"
    cli("recover", *args, "--out", tmp_path / "n", "--no-track")
    assert not Path(tmp_path / "n" / "mlflow.db").exists()

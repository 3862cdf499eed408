"""Ray Train data-parallel training over the one ``train_loop_per_worker`` (DDP; gloo on CPU, NCCL on GPU).

:func:`build_trainer` makes the one ``TorchTrainer``; :func:`train_with_ray` fits it, and the Tune sweep
(orirec.distributed.tune) fits the same trainer inside each trial.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from orirec.distributed.runtime import ensure_ray
from orirec.train import train_loop_per_worker


def _worker_loop(config: dict[str, Any]) -> None:
    """Runs on each Ray Train worker: the shared loop, reporting metrics (and rank 0's checkpoint) to Ray."""
    import ray.train

    def report(metrics: dict[str, Any], checkpoint_dir: str | None) -> None:
        ckpt = ray.train.Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
        ray.train.report(metrics, checkpoint=ckpt)

    train_loop_per_worker({**config, "report": report})


def worker_config(loop_config: dict[str, Any], use_gpu: bool = False, cpus_per_worker: int = 1) -> dict[str, Any]:
    """The loop config as the Ray workers get it: absolute paths, resume on (a restarted group continues from
    ``last.pt``), no progress bar or callback, torch threads = CPUs per worker."""
    return {
        **loop_config,
        "out_dir": str(Path(loop_config["out_dir"]).resolve()),
        "store": str(Path(loop_config["store"]).resolve()),
        "report": None,
        "resume": True,
        "progress": False,
        "num_threads": cpus_per_worker,
        "device": "cuda" if use_gpu else "cpu",
    }


def build_trainer(
    loop_config: dict[str, Any],
    num_workers: int,
    use_gpu: bool = False,
    cpus_per_worker: int = 1,
    max_failures: int = 1,
    name: str = "train",
    callbacks: list | None = None,
):
    """The ``TorchTrainer`` over :func:`train_loop_per_worker` (Ray results kept in ``out_dir/ray``).

    ``loop_config`` is the loop's config (see orirec.train.loop); ``callbacks`` are Ray Train callbacks
    (the Tune sweep passes ``TuneReportCallback``).
    """
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    out_dir = Path(loop_config["out_dir"]).resolve()
    return TorchTrainer(
        _worker_loop,
        train_loop_config=worker_config(loop_config, use_gpu, cpus_per_worker),
        scaling_config=ScalingConfig(
            num_workers=num_workers, use_gpu=use_gpu, resources_per_worker={"CPU": cpus_per_worker}
        ),
        run_config=RunConfig(
            name=name,
            storage_path=str(out_dir / "ray"),
            failure_config=FailureConfig(max_failures=max_failures),
            callbacks=callbacks,
        ),
    )


def train_with_ray(
    loop_config: dict[str, Any],
    num_workers: int,
    use_gpu: bool = False,
    cpus_per_worker: int = 1,
    max_failures: int = 1,
) -> dict[str, Any]:
    """Run ``train_loop_per_worker`` on ``num_workers`` Ray Train workers; returns the last reported metrics.

    Checkpoints are written by rank 0 into ``loop_config['out_dir']`` (a shared path on a cluster) and
    also handed to Ray, which keeps them in ``out_dir/ray``. After a worker failure Ray restarts the
    group up to ``max_failures`` times and the loop resumes from ``last.pt``.
    """
    ensure_ray(num_cpus=max(num_workers * cpus_per_worker, 1))
    stale = Path(loop_config["out_dir"]).resolve() / "checkpoints" / "last.pt"
    if not loop_config.get("resume") and stale.exists():
        stale.unlink()  # a fresh run; inside the workers resume=True then only picks up this run's epochs
    trainer = build_trainer(loop_config, num_workers, use_gpu, cpus_per_worker, max_failures)
    result = trainer.fit()
    if result.error:
        raise RuntimeError(f"distributed training failed: {result.error}")
    return dict(result.metrics or {})

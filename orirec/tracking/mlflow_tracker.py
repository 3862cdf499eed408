"""A thin MLflow wrapper: one run per stage (nested under a pipeline run), a no-op when disabled.

Only rank 0 should create a tracker. The default tracking URI is a sqlite file in the run
folder (the MLflow file store is deprecated); MLflow is imported lazily so nothing runs at
import time.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Any


def default_tracking_uri(run_dir: str | Path) -> str:
    """``sqlite:///<run_dir>/mlflow.db`` (absolute)."""
    return f"sqlite:///{Path(run_dir).resolve() / 'mlflow.db'}"


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` → ``{"a.b": 1}``; lists become strings."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v if isinstance(v, (int, float, str, bool)) or v is None else str(v)
    return out


class Tracker:
    """Logs params, metrics and artifacts of one run; every method is a no-op when disabled."""

    def __init__(self, enabled: bool, uri: str | None, experiment: str, run_dir: str | Path):
        self.enabled = enabled
        self.uri = uri or default_tracking_uri(run_dir)
        self.experiment = experiment
        self.run_dir = Path(run_dir)
        self._mlflow = None
        self._stack = contextlib.ExitStack()

    def _client(self):
        if self._mlflow is None:
            logging.getLogger("alembic").setLevel(logging.WARNING)
            os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
            import mlflow

            before = os.environ.get("MLFLOW_TRACKING_URI")
            mlflow.set_tracking_uri(self.uri)
            # MLflow also exports the URI to os.environ; undo that, or a later run in this process (which reads
            # $MLFLOW_TRACKING_URI, as cluster jobs do) or a child process would log into this run's database.
            if before is None:
                os.environ.pop("MLFLOW_TRACKING_URI", None)
            else:
                os.environ["MLFLOW_TRACKING_URI"] = before
            if self.uri.startswith("sqlite:") and mlflow.get_experiment_by_name(self.experiment) is None:
                # A local database keeps its artifacts beside it, not in ./mlruns of whatever folder we run from.
                where = (self.run_dir / "mlartifacts").resolve().as_uri()
                mlflow.create_experiment(self.experiment, artifact_location=where)
            mlflow.set_experiment(self.experiment)
            self._mlflow = mlflow
        return self._mlflow

    @contextlib.contextmanager
    def run(self, name: str, nested: bool = False, tags: dict[str, str] | None = None):
        """Context manager for one MLflow run (``nested`` under the active one). Yields the run id or None."""
        if not self.enabled:
            yield None
            return
        with self._client().start_run(run_name=name, nested=nested, tags=tags) as r:
            yield r.info.run_id

    def log_params(self, params: dict[str, Any]) -> None:
        """Log (flattened) parameters to the active run."""
        if self.enabled:
            self._client().log_params(flatten(params))

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        """Log numeric metrics (non-numbers are skipped)."""
        if self.enabled:
            clean = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and v == v}
            self._client().log_metrics(clean, step=step)

    def log_artifact(self, path: str | Path, subdir: str | None = None) -> None:
        """Copy a file (or folder) into the active run's artifacts."""
        if not self.enabled:
            return
        path = Path(path)
        if path.is_dir():
            self._client().log_artifacts(str(path), artifact_path=subdir)
        else:
            self._client().log_artifact(str(path), artifact_path=subdir)

    def set_tags(self, tags: dict[str, str]) -> None:
        """Set tags on the active run."""
        if self.enabled:
            self._client().set_tags(tags)

    def enable_system_metrics(self) -> bool:
        """Turn on MLflow's system metrics (CPU, memory, ...) for runs started afterwards; needs psutil.

        Returns True when enabled (False when disabled or psutil is missing).
        """
        if not self.enabled:
            return False
        import importlib.util

        if importlib.util.find_spec("psutil") is None:
            return False
        self._client().enable_system_metrics_logging()
        return True

    def log_model(self, model, example_images, name: str = "model") -> str | None:
        """Log a torch encoder as an MLflow pytorch model with a signature: images (B, L, L) → embeddings (B, F), or
        line tokens (B, n_angles, F) for the pair family.

        ``example_images`` is a float32 numpy batch; the signature is inferred from it and the model's output
        (``mlflow.models.infer_signature``). Returns the model URI, or None when disabled.
        """
        if not self.enabled:
            return None
        import numpy as np
        import torch

        mlflow = self._client()
        from mlflow.models import infer_signature

        x = np.ascontiguousarray(example_images, dtype=np.float32)
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                emb = model(torch.from_numpy(x)).cpu().numpy()
        finally:
            model.train(was_training)
        # pickle (not MLflow 3's default pt2 export): every encoder family round-trips, loading needs orirec
        info = mlflow.pytorch.log_model(
            model, name=name, signature=infer_signature(x, emb), input_example=x[:2], serialization_format="pickle"
        )
        return info.model_uri

    def log_figure(self, figure, filename: str) -> None:
        """Log a matplotlib figure as an image artifact (e.g. ``"plots/dp_vs_dq.png"``)."""
        if self.enabled:
            self._client().log_figure(figure, filename)

    def log_dict(self, data: dict, filename: str) -> None:
        """Log a dict as a JSON/YAML artifact (by the file extension)."""
        if self.enabled:
            self._client().log_dict(data, filename)

    def log_history(self, history: list[dict[str, Any]], step_key: str = "epoch") -> None:
        """Log per-epoch metrics (one dict per epoch; list values become ``key_<k>``) at step ``entry[step_key]``."""
        for n, entry in enumerate(history):
            flat: dict[str, Any] = {}
            for k, v in entry.items():
                if isinstance(v, (list, tuple)):
                    flat.update({f"{k}_{i}": x for i, x in enumerate(v)})
                else:
                    flat[k] = v
            self.log_metrics(flat, step=int(entry.get(step_key, n + 1)))

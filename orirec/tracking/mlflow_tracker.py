"""A thin MLflow wrapper: one run per stage (nested under a pipeline run), a no-op when disabled.

Only rank 0 should create a tracker. The tracking URI is, in this order: the one given, ``$MLFLOW_TRACKING_URI``,
a sqlite file in the run folder (:func:`resolve_tracking_uri`; the MLflow file store is deprecated). MLflow is
imported lazily so nothing runs at import time.

Tracking never stops the work: an http(s) server is probed first (a short socket connect), MLflow's HTTP
retries and timeout are kept short, and any failure of an MLflow call (at the start or mid-run) is reported once
(``warn``), turns the tracker into a no-op and leaves a one-line ``failed`` message for the end of the command.
MLflow's INFO/WARNING chatter is silenced unless verbose (:func:`quiet_mlflow`, :func:`set_verbose`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from orirec.config.secrets import redact_uri

#: seconds to wait for an http(s) tracking server to accept a connection before tracking is turned off
PROBE_TIMEOUT_S = 3.0
#: MLflow's HTTP settings while tracking (unless set in the environment): no retries, a short timeout
HTTP_SETTINGS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "15"}

_verbose = False
#: (message, module) regexes of the warnings silenced: MLflow's own, and its notes on the pickle format of a
#: logged model (on purpose here) and on torch's local version label (+cpu)
_QUIET_WARNINGS = (("", r"mlflow(\..*)?$"), (r".*(local version label|pickle)", ""))


def set_verbose(verbose: bool) -> None:
    """Let MLflow's INFO and WARNING lines through (``orirec -v``), or silence them (the default)."""
    global _verbose
    _verbose = bool(verbose)
    quiet_mlflow()


def quiet_mlflow(verbose: bool | None = None) -> None:
    """Silence MLflow's INFO/WARNING log lines (system-metrics monitor, model-format and version-label notes,
    database set-up and migrations) and its Python warnings, unless ``verbose`` (default: :func:`set_verbose`'s
    setting), which restores MLflow's levels. Errors still show."""
    verbose = _verbose if verbose is None else verbose
    logging.getLogger("alembic").setLevel(logging.WARNING if verbose else logging.ERROR)
    logging.getLogger("mlflow").setLevel(logging.INFO if verbose else logging.ERROR)
    if not verbose:
        for message, module in _QUIET_WARNINGS:
            warnings.filterwarnings("ignore", message=message, module=module)


def default_tracking_uri(run_dir: str | Path) -> str:
    """``sqlite:///<run_dir>/mlflow.db`` (absolute)."""
    return f"sqlite:///{Path(run_dir).resolve() / 'mlflow.db'}"


def resolve_tracking_uri(run_dir: str | Path, uri: str | None = None) -> str:
    """The tracking URI of a run in ``run_dir``: ``uri`` when given, else ``$MLFLOW_TRACKING_URI`` (set by the
    cluster manifests), else the run folder's sqlite database (:func:`default_tracking_uri`)."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri(run_dir)


def probe(uri: str, timeout_s: float = PROBE_TIMEOUT_S) -> None:
    """For an http(s) URI, raise ConnectionError unless its host accepts a TCP connection within ``timeout_s``."""
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https"):
        return
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "localhost", port), timeout=timeout_s):
            pass
    except OSError as e:
        raise ConnectionError(f"cannot connect to {parts.hostname}:{port} ({e.strerror or e})") from None


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


def _stderr(line: str) -> None:
    print(f"warning: {line}", file=sys.stderr, flush=True)


class Tracker:
    """Logs params, metrics and artifacts of one run; every method is a no-op when disabled or after a failure.

    ``uri`` None: :func:`resolve_tracking_uri` (``$MLFLOW_TRACKING_URI``, else ``sqlite:///<run_dir>/mlflow.db``).
    ``warn(line)`` receives the one warning when tracking fails (default: a line on stderr); ``failed`` then holds
    a line saying the run was not tracked.
    """

    def __init__(
        self,
        enabled: bool,
        uri: str | None,
        experiment: str,
        run_dir: str | Path,
        warn: Callable[[str], Any] | None = None,
    ):
        self.enabled = enabled
        self.uri = resolve_tracking_uri(run_dir, uri)
        self.experiment = experiment
        self.run_dir = Path(run_dir)
        self.failed: str | None = None
        self._started = False  # whether a run was started (a failure then leaves it incomplete)
        self._warn = warn or _stderr
        self._mlflow: Any = None  # the mlflow module, imported on first use
        self._stack = contextlib.ExitStack()

    def _fail(self, exc: BaseException) -> None:
        """Turn tracking off after a failed MLflow call: warn once, remember why for the end of the command."""
        if self.failed is None:
            why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            where = redact_uri(self.uri)
            self._warn(f"MLflow tracking at {where} failed, continuing without it: {type(exc).__name__}: {why}")
            what = "was tracked in MLflow only up to the failure" if self._started else "was not tracked in MLflow"
            self.failed = f"this run {what} ({where}: {type(exc).__name__}: {why})"
        self.enabled = False

    @contextlib.contextmanager
    def _guard(self):
        """Run MLflow calls; any exception from them turns tracking off instead of stopping the work."""
        try:
            yield
        except Exception as e:  # noqa: BLE001 - whatever MLflow raises, the work goes on
            self._fail(e)

    def _client(self):
        if self._mlflow is None:
            quiet_mlflow()
            os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
            if urlsplit(self.uri).scheme in ("http", "https"):
                for k, v in HTTP_SETTINGS.items():
                    os.environ.setdefault(k, v)
                probe(self.uri)
            import mlflow

            quiet_mlflow()  # again: importing MLflow sets its own levels
            before = os.environ.get("MLFLOW_TRACKING_URI")
            try:
                mlflow.set_tracking_uri(self.uri)
            finally:
                # MLflow also exports the URI to os.environ; undo that, or a later run in this process (which
                # reads $MLFLOW_TRACKING_URI, as cluster jobs do) or a child process would log into this database.
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
        """Context manager for one MLflow run (``nested`` under the active one). Yields the run id, or None when
        disabled or when MLflow fails (then the body runs untracked; its own exceptions propagate)."""
        run_id = None
        if self.enabled:
            with self._guard():
                run_id = self._client().start_run(run_name=name, nested=nested, tags=tags).info.run_id
                self._started = True
        if run_id is None:
            yield None
            return
        status = "FAILED"
        try:
            yield run_id
            status = "FINISHED"
        except KeyboardInterrupt:
            status = "KILLED"
            raise
        finally:
            self._end(run_id, status)

    def _end(self, run_id: str, status: str) -> None:
        """End the active run; after a tracking failure, quietly (the server may be gone), stopping its
        system-metrics monitor, which MLflow leaves running when ending the run fails."""
        mlflow = self._mlflow
        if self.enabled:
            with self._guard():
                mlflow.end_run(status)
                return
        with contextlib.suppress(Exception):
            mlflow.end_run(status)
        with contextlib.suppress(Exception):
            from mlflow.tracking import fluent

            monitor = fluent.run_id_to_system_metrics_monitor.pop(run_id, None)
            if monitor is not None:
                monitor.finish()

    def log_params(self, params: dict[str, Any]) -> None:
        """Log (flattened) parameters to the active run."""
        if self.enabled:
            with self._guard():
                self._client().log_params(flatten(params))

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Log numeric metrics (non-numbers are skipped)."""
        if self.enabled:
            clean = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and v == v}
            with self._guard():
                self._client().log_metrics(clean, step=step)

    def log_artifact(self, path: str | Path, subdir: str | None = None) -> None:
        """Copy a file (or folder) into the active run's artifacts."""
        if not self.enabled:
            return
        path = Path(path)
        with self._guard():
            if path.is_dir():
                self._client().log_artifacts(str(path), artifact_path=subdir)
            else:
                self._client().log_artifact(str(path), artifact_path=subdir)

    def set_tags(self, tags: dict[str, str]) -> None:
        """Set tags on the active run."""
        if self.enabled:
            with self._guard():
                self._client().set_tags(tags)

    def enable_system_metrics(self) -> bool:
        """Turn on MLflow's system metrics (CPU, memory, ...) for runs started afterwards; needs psutil.

        Returns True when enabled (False when disabled, psutil is missing or MLflow fails).
        """
        if not self.enabled:
            return False
        import importlib.util

        if importlib.util.find_spec("psutil") is None:
            return False
        with self._guard():
            self._client().enable_system_metrics_logging()
        return self.enabled

    def log_model(self, model, example_images, name: str = "model") -> str | None:
        """Log a torch encoder as an MLflow pytorch model with a signature: images (B, L, L) → embeddings (B, F), or
        line tokens (B, n_angles, F) for the pair family.

        ``example_images`` is a float32 numpy batch; the signature is inferred from it and the model's output
        (``mlflow.models.infer_signature``). Returns the model URI, or None when disabled or MLflow fails.
        """
        if not self.enabled:
            return None
        import numpy as np
        import torch

        x = np.ascontiguousarray(example_images, dtype=np.float32)
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                emb = model(torch.from_numpy(x)).cpu().numpy()
        finally:
            model.train(was_training)
        with self._guard():
            mlflow = self._client()
            from mlflow.models import infer_signature

            # pickle (not MLflow 3's default pt2 export): every encoder family round-trips, loading needs orirec
            info = mlflow.pytorch.log_model(
                model, name=name, signature=infer_signature(x, emb), input_example=x[:2], serialization_format="pickle"
            )
            return info.model_uri
        return None

    def log_figure(self, figure, filename: str) -> None:
        """Log a matplotlib figure as an image artifact (e.g. ``"plots/dp_vs_dq.png"``)."""
        if self.enabled:
            with self._guard():
                self._client().log_figure(figure, filename)

    def log_dict(self, data: dict, filename: str) -> None:
        """Log a dict as a JSON/YAML artifact (by the file extension)."""
        if self.enabled:
            with self._guard():
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

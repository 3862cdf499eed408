"""Running a pipeline elsewhere: as a Ray job on an existing cluster, or as a KubeRay RayJob via kubectl."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orirec

# Left out of the job's working_dir upload (Ray's limit is a few hundred MiB; none of these is needed to run).
EXCLUDES = [
    ".venv",
    "runs",
    ".git",
    "mlruns",
    "*.egg-info",
    ".pytest_cache",
    ".ruff_cache",
    ".hypothesis",
    "__pycache__",
]


def checkout_root() -> Path:
    """The folder holding the ``orirec`` package and ``pipelines/``: the job's working_dir."""
    return Path(orirec.__file__).resolve().parent.parent


def relative_pipeline(pipeline: Path, root: Path) -> str:
    """The pipeline's path inside ``root`` (the job sees only what is uploaded)."""
    p = pipeline.resolve()
    if not p.is_file():
        raise FileNotFoundError(f"{pipeline}: pipeline file not found")
    try:
        return p.relative_to(root).as_posix()
    except ValueError:
        raise ValueError(f"{pipeline}: must lie inside {root} (the folder uploaded as the job's working_dir)") from None


def ray_entrypoint(pipeline: str, out: str, overrides: list[str]) -> str:
    """``orirec run`` through the uploaded package (``python -c``, so the working_dir copy is imported)."""
    args = ["python", "-c", "from orirec.cli.app import main; main()", "run", pipeline, "--out", out, "--no-progress"]
    for s in overrides:
        args += ["--set", s]
    return shlex.join(args)


def redact_command(command: str) -> str:
    """``command`` with URI credentials masked in every argument (for echoing it)."""
    from orirec.config.secrets import redact_setting

    return shlex.join(redact_setting(a) for a in shlex.split(command))


def launch_ray(
    pipeline: Path,
    address: str,
    out: str,
    overrides: list[str],
    env_vars: dict[str, str] | None = None,
    follow: bool = True,
    echo: Callable[[str], Any] = print,
    timeout_s: float = 3600.0,
) -> tuple[str, str]:
    """Submit ``orirec run PIPELINE`` to the Ray cluster at ``address``; returns ``(job_id, status)``.

    With ``follow``, the job's log is streamed to ``echo`` and the final status returned; otherwise the
    status right after submission. A token in ``RAY_AUTH_TOKEN`` (or ``RAY_AUTH_TOKEN_PATH``) is sent to a
    cluster with token auth (:func:`orirec.distributed.jobs.token_auth_from_env`).
    """
    from orirec.distributed.jobs import stream_logs, submit_job, token_auth_from_env, wait_job

    root = checkout_root()
    rel = relative_pipeline(pipeline, root)
    entry = ray_entrypoint(rel, out, overrides)
    env = {"OMP_WAIT_POLICY": "PASSIVE", "MPLBACKEND": "Agg", **(env_vars or {})}
    with token_auth_from_env():
        job_id = submit_job(address, entry, root, EXCLUDES, env, metadata={"orirec.pipeline": rel})
        echo(f"submitted Ray job {job_id}: {redact_command(entry)}")
        if not follow:
            return job_id, "PENDING"
        stream_logs(address, job_id, echo)
        return job_id, wait_job(address, job_id, timeout_s=timeout_s)


def kubectl_context() -> str | None:
    """The current kubectl context, or None when kubectl or a context is missing."""
    exe = shutil.which("kubectl")
    if exe is None:
        return None
    r = subprocess.run([exe, "config", "current-context"], capture_output=True, text=True, check=False)
    return r.stdout.strip() or None if r.returncode == 0 else None


def kubectl_apply(manifest_yaml: str) -> str:
    """``kubectl apply -f -`` of the manifest; returns kubectl's output."""
    if kubectl_context() is None:
        raise ValueError("no kubectl context (kubectl missing or not configured); use --dry-run to write the manifest")
    r = subprocess.run(
        [shutil.which("kubectl") or "kubectl", "apply", "-f", "-"],
        input=manifest_yaml,
        capture_output=True,
        text=True,
        check=False,
    )
    if r.returncode != 0:
        raise ValueError(
            f"kubectl apply failed: {r.stderr.strip().splitlines()[-1] if r.stderr.strip() else r.returncode}"
        )
    return r.stdout.strip()

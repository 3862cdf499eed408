"""Submitting work to a running Ray cluster through the Ray Jobs API (the dashboard's HTTP address).

Ray is imported inside the functions only (DESIGN §3: nothing runs at import).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

FINAL_STATES = ("SUCCEEDED", "FAILED", "STOPPED")


def _client(address: str):
    from ray.exceptions import AuthenticationError
    from ray.job_submission import JobSubmissionClient

    try:
        return JobSubmissionClient(address)
    except AuthenticationError:
        raise ValueError(
            f"{address}: the Ray cluster wants a token: export RAY_AUTH_MODE=token "
            "(token from $RAY_AUTH_TOKEN, $RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token)"
        ) from None
    except (ConnectionError, RuntimeError) as e:
        raise ValueError(f"{address}: no Ray dashboard reachable ({str(e).splitlines()[0]})") from None


def submit_job(
    address: str,
    entrypoint: str,
    working_dir: str | Path,
    excludes: list[str],
    env_vars: dict[str, str] | None = None,
    metadata: dict[str, str] | None = None,
    agent_wait_s: float = 120.0,
) -> str:
    """Upload ``working_dir`` (minus ``excludes``) as the job's runtime env and start ``entrypoint``; returns the id.

    Waits up to ``agent_wait_s`` for the head's job agent (a cluster started moments ago has none yet).
    """
    runtime_env: dict[str, Any] = {"working_dir": str(working_dir), "excludes": list(excludes)}
    if env_vars:
        runtime_env["env_vars"] = dict(env_vars)
    client = _client(address)
    t_end = time.monotonic() + agent_wait_s
    while True:
        try:
            return client.submit_job(entrypoint=entrypoint, runtime_env=runtime_env, metadata=metadata)
        except RuntimeError as e:  # a freshly started head answers 500 until its job agent is up
            if "No available agent" not in str(e) or time.monotonic() > t_end:
                raise
            time.sleep(2.0)


def stream_logs(address: str, job_id: str, echo: Callable[[str], Any]) -> None:
    """Pass the job's log to ``echo`` chunk by chunk until the job ends."""
    client = _client(address)

    async def _tail() -> None:
        async for chunk in client.tail_job_logs(job_id):
            echo(chunk.rstrip("\n"))

    asyncio.run(_tail())


def wait_job(address: str, job_id: str, timeout_s: float = 3600.0, poll_s: float = 1.0) -> str:
    """Wait until the job is SUCCEEDED, FAILED or STOPPED (or ``timeout_s`` passes); returns the status name."""
    client = _client(address)
    t_end = time.monotonic() + timeout_s
    while True:
        status = str(client.get_job_status(job_id).value)
        if status in FINAL_STATES or time.monotonic() > t_end:
            return status
        time.sleep(poll_s)


def job_logs(address: str, job_id: str) -> str:
    """The job's whole log so far."""
    return _client(address).get_job_logs(job_id)


@contextlib.contextmanager
def token_auth_from_env() -> Iterator[bool]:
    """Ray token auth for this process's Jobs API client when a token is given in the environment.

    Ray's client sends the token (``RAY_AUTH_TOKEN``, else the file ``RAY_AUTH_TOKEN_PATH``) only when
    ``RAY_AUTH_MODE=token``; with a token set and no mode, the mode is set to ``token`` for the block (an
    explicit ``RAY_AUTH_MODE``, ``disabled`` included, is respected). Ray caches the mode and the token, so
    both caches are refreshed on entry and exit. Yields whether token auth was switched on here.
    """
    given = bool(os.environ.get("RAY_AUTH_TOKEN", "").strip() or os.environ.get("RAY_AUTH_TOKEN_PATH"))
    if not given or "RAY_AUTH_MODE" in os.environ:
        yield False
        return
    os.environ["RAY_AUTH_MODE"] = "token"
    _refresh_ray_auth()
    try:
        yield True
    finally:
        os.environ.pop("RAY_AUTH_MODE", None)
        _refresh_ray_auth()


def _refresh_ray_auth() -> None:
    """Make Ray re-read RAY_AUTH_MODE and the token (as ray._private.authentication does on enabling it)."""
    try:
        from ray._raylet import AuthenticationTokenLoader, Config  # type: ignore[attr-defined]  # newer Rays only
    except ImportError:  # no Ray, or a Ray without token auth: nothing cached
        return
    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()

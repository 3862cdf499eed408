"""Which orirec wrote a file: the package version and, from a git checkout, the commit of its source.

Stamped into every run's ``config.yaml`` (``version``, ``git_sha``, ``git_dirty``), into the attributes of every
store (``orirec_version``, ``orirec_git_sha``, ``orirec_git_dirty``) and into the tags of a run's MLflow parent
run. Outside a git checkout (an installed wheel, a container without git) the git fields are None.
"""

from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path
from typing import Any

from orirec import __version__

#: The orirec package folder, whose git checkout (if any) is described.
SOURCE_DIR = Path(__file__).resolve().parents[1]

#: Seconds each git command may take before the git fields are given up as unknown (None).
GIT_TIMEOUT_S = 5.0


def version_info() -> dict[str, Any]:
    """``{"version": "0.2.0", "git_sha": <40 hex> | None, "git_dirty": bool | None}`` of this orirec.

    ``git_sha`` is the HEAD commit of the git checkout holding the package's source folder and ``git_dirty``
    whether its tracked files differ from that commit; both None when the package is not a tracked part of a
    checkout, git is missing, or a git command fails or times out. Found once per process and folder.
    """
    sha, dirty = _git_state(str(SOURCE_DIR))
    return {"version": __version__, "git_sha": sha, "git_dirty": dirty}


def _git(folder: str, *args: str) -> str | None:
    """Stdout of ``git args`` run in ``folder``, stripped; None on any failure (no git, not a checkout, timeout)."""
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"}  # read-only: never take the index lock
    try:
        out = subprocess.run(
            ["git", *args], cwd=folder, capture_output=True, text=True, timeout=GIT_TIMEOUT_S, env=env, check=True
        )
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    return out.stdout.strip()


@functools.cache
def _git_state(folder: str) -> tuple[str | None, bool | None]:
    # The package's own files must be tracked there: a copy installed inside some other checkout is not it.
    if not Path(folder).is_dir() or _git(folder, "ls-files", "--error-unmatch", "--", "__init__.py") is None:
        return None, None
    sha = _git(folder, "rev-parse", "--verify", "HEAD")
    if sha is None or len(sha) not in (40, 64) or any(c not in "0123456789abcdef" for c in sha):
        return None, None
    status = _git(folder, "status", "--porcelain", "--untracked-files=no")
    return sha, None if status is None else bool(status)

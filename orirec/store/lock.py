"""One run per store: a lock file beside the store, held for the whole run.

``STORE.zarr.lock`` is created with ``O_CREAT | O_EXCL`` (atomic, also on NFS v3+) and holds the holder's
pid, host, command and start time as JSON. A second run into the same store (to resume it, or to replace
it with ``--overwrite``) is refused with :class:`StoreLockedError` naming the holder. A lock left by a
process that died (same host, pid no longer alive, or alive but a different process) is recognised as
stale and taken over with a warning; a lock of another host cannot be checked and is refused (delete the
file when that run is gone). The lock sits beside the store, not inside it, so that replacing the store
does not remove it.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import os
import socket
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["StoreLock", "StoreLockedError", "lock_path", "locks_store", "store_lock"]

#: A lock file still empty after this long was left by a process killed between creating and filling it.
EMPTY_LOCK_STALE_S = 30.0

F = TypeVar("F", bound=Callable[..., Any])


class StoreLockedError(FileExistsError):
    """Another run holds the store's lock."""


def lock_path(store: str | Path) -> Path:
    """The lock file of ``store``: ``STORE.lock`` beside it (the store path resolved)."""
    p = Path(store).resolve()
    return p.with_name(p.name + ".lock")


def _process_started(pid: int) -> float | None:
    try:
        import psutil

        return float(psutil.Process(pid).create_time())
    except Exception:
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    except OSError:
        return False
    return True


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _describe(holder: dict[str, Any] | None) -> str:
    if holder is None:
        return "holder unknown (lock file being written or unreadable)"
    return (
        f"pid {holder.get('pid')} on {holder.get('host')}, since {holder.get('started')}, "
        f"command: {holder.get('command') or '?'}"
    )


class StoreLock:
    """The lock of one store; :meth:`acquire` / :meth:`release`, or use :func:`store_lock`."""

    def __init__(self, store: str | Path, command: str | None = None):
        self.store = Path(store)
        self.path = lock_path(store)
        self.command = command if command is not None else " ".join(sys.argv)[:500]
        self.info: dict[str, Any] | None = None
        self._made_dirs: list[Path] = []

    def _is_stale(self, holder: dict[str, Any] | None) -> str | None:
        """Why the lock at ``self.path`` (content ``holder``) is stale, or None when it may be held."""
        if holder is None:
            try:
                age = time.time() - self.path.stat().st_mtime
            except OSError:
                return None
            return f"unreadable lock file {age:.0f} s old" if age > EMPTY_LOCK_STALE_S else None
        if holder.get("host") != socket.gethostname():
            return None
        try:
            pid = int(holder["pid"])
        except (KeyError, TypeError, ValueError):
            return "lock file without a pid"
        if not _alive(pid):
            return f"process {pid} is not running"
        started, now = holder.get("pid_started"), _process_started(pid)
        if isinstance(started, (int, float)) and now is not None and abs(now - started) > 1.0:
            return f"pid {pid} now belongs to another process"
        return None

    def _take_over(self, holder: dict[str, Any] | None) -> None:
        """Move the stale lock aside (one process wins the rename) and drop it, unless it changed meanwhile."""
        aside = self.path.with_name(f"{self.path.name}.stale-{os.getpid()}")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return  # another process took it over first
        if _read(aside) != holder:  # a fresh lock replaced the stale one between our read and the rename: put it back
            with contextlib.suppress(OSError):
                os.link(aside, self.path)
        aside.unlink(missing_ok=True)

    def acquire(self) -> StoreLock:
        """Create the lock file, or raise :class:`StoreLockedError` naming the run that holds it."""
        for parent in reversed([self.path.parent, *self.path.parent.parents]):
            if not parent.exists():
                parent.mkdir(exist_ok=True)
                self._made_dirs.append(parent)
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": self.command,
            "started": datetime.now(UTC).astimezone().isoformat(timespec="seconds"),
            "pid_started": _process_started(os.getpid()),
        }
        for _ in range(5):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = _read(self.path)
                why = self._is_stale(holder)
                if why is None:
                    self._remove_made_dirs()
                    raise StoreLockedError(
                        f"{self.store}: another run is writing this store ({_describe(holder)}); wait for it to "
                        f"finish, or delete {self.path} if that run is gone"
                    ) from None
                warnings.warn(f"{self.store}: taking over a stale lock ({why}; was {_describe(holder)})", stacklevel=3)
                self._take_over(holder)
                continue
            with os.fdopen(fd, "w") as f:
                json.dump(info, f)
                f.flush()
                os.fsync(f.fileno())
            self.info = info
            return self
        raise StoreLockedError(f"{self.store}: could not take the lock {self.path} (other runs keep taking it)")

    def release(self) -> None:
        """Remove the lock file if it is still ours (and the folders :meth:`acquire` made, when left empty)."""
        if self.info is not None and _read(self.path) == self.info:
            self.path.unlink(missing_ok=True)
        self.info = None
        self._remove_made_dirs()

    def _remove_made_dirs(self) -> None:
        for d in reversed(self._made_dirs):
            with contextlib.suppress(OSError):
                d.rmdir()  # only when empty: a store written there stays
        self._made_dirs = []


@contextlib.contextmanager
def store_lock(store: str | Path, command: str | None = None) -> Iterator[StoreLock]:
    """Hold the lock of ``store`` for the ``with`` block (:class:`StoreLockedError` when another run holds it)."""
    lock = StoreLock(store, command).acquire()
    try:
        yield lock
    finally:
        lock.release()


def locks_store(arg: str) -> Callable[[F], F]:
    """Decorator: hold the lock of the store named by the argument ``arg`` for the whole call."""

    def wrap(fn: F) -> F:
        sig = inspect.signature(fn)

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            with store_lock(sig.bind(*args, **kwargs).arguments[arg]):
                return fn(*args, **kwargs)

        return run  # type: ignore[return-value]

    return wrap

"""A content-addressed disk cache of density volumes: each structure becomes a density once.

The key is the SHA-256 of the structure file's bytes plus everything that shapes the density (box in px,
pixel size in Å, resolution in Å, kind, and :data:`LOADER_VERSION`, bumped whenever the density code
changes its output). The folder is ``$ORIREC_CACHE`` (default ``~/.cache/orirec``; ``ORIREC_CACHE=off``
disables caching). Entries are written to a temporary name and renamed, so concurrent writers and a
killed process never leave a half-written entry; an unreadable entry is recomputed.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["LOADER_VERSION", "cache_dir", "cached_volume", "volume_cache_key"]

#: Bump when atoms_to_density / prepare_map change the volumes they produce (invalidates old entries).
LOADER_VERSION = 1

_DISABLED = ("off", "0", "false", "no", "")


def cache_dir() -> Path | None:
    """The cache folder (not created here), or None when ``ORIREC_CACHE`` disables caching."""
    env = os.environ.get("ORIREC_CACHE")
    if env is not None and env.strip().lower() in _DISABLED:
        return None
    return Path(env).expanduser() if env else Path.home() / ".cache" / "orirec"


def volume_cache_key(file_sha256: str, kind: str, box_px: int, pixel_size_A: float, resolution_A: float | None) -> str:
    """Hex key of one density: file content hash + box (px), pixel size (Å), resolution (Å), loader version."""
    parts = {
        "sha256": file_sha256,
        "kind": kind,
        "box_px": int(box_px),
        "pixel_size_A": float(pixel_size_A),
        "resolution_A": None if resolution_A is None else float(resolution_A),
        "loader_version": LOADER_VERSION,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _read(path: Path) -> tuple[np.ndarray, dict[str, Any]] | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            return z["volume"], json.loads(str(z["info"]))
    except Exception:  # a corrupt entry (truncated zip, bad JSON, missing key) is recomputed
        return None


def _write(path: Path, volume: np.ndarray, info: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, volume=volume, info=np.array(json.dumps(info)))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def cached_volume(
    key: str, compute: Callable[[], tuple[np.ndarray, dict[str, Any]]]
) -> tuple[np.ndarray, dict[str, Any], bool]:
    """``(volume, info, hit)``: the cached entry for ``key``, or ``compute()`` stored under it.

    ``info`` must be JSON-serializable. A cache folder that cannot be written is ignored (the volume is
    still returned).
    """
    folder = cache_dir()
    if folder is None:
        return (*compute(), False)
    path = folder / "volumes" / key[:2] / f"{key}.npz"
    if path.is_file() and (entry := _read(path)) is not None:
        return entry[0], entry[1], True
    volume, info = compute()
    try:
        _write(path, np.asarray(volume, dtype=np.float32), info)
    except OSError:
        pass  # a read-only or full cache folder must not fail the load
    return volume, info, False

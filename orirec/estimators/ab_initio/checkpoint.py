"""Finished ab initio restarts on disk, so that an interrupted run resumes at the next restart.

One ``.npz`` holds every finished restart (orientations, shifts, last map, iteration summaries) under a key made
from the images, the pixel size, the seed and the settings; a checkpoint of other images or settings is ignored
with a warning. Restart ``k`` draws from child ``k`` of the seed's ``SeedSequence`` whatever the number of
restarts, so asking for more restarts later reuses the finished ones.
"""

from __future__ import annotations

import json
import warnings
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from orirec.store.atomic import save_npz_atomic

__all__ = ["checkpoint_key", "load_restarts", "save_restarts"]


def checkpoint_key(images: np.ndarray, pixel_size_A: float, seed: int, settings: dict[str, Any]) -> int:
    """CRC32 of the images' bytes and of the run's settings (JSON)."""
    meta = json.dumps({"pixel_size_A": pixel_size_A, "seed": seed, **settings}, sort_keys=True, default=float)
    return zlib.crc32(meta.encode(), zlib.crc32(np.ascontiguousarray(images).tobytes()))


def load_restarts(path: Path | None, key: int) -> dict[int, dict[str, Any]]:
    """Finished restarts ``{k: {quaternions, volume, shifts_px, box_px, pixel_size_A, iterations}}`` of the
    checkpoint at ``path`` with this ``key``; empty when there is none (or one of another run, with a warning)."""
    if path is None or not path.is_file():
        return {}
    try:
        with np.load(path) as z:
            if int(z["key"]) != key:
                warnings.warn(f"{path}: checkpoint of other images or settings; ab initio starts over", stacklevel=3)
                return {}
            meta = json.loads(str(z["meta"]))
            arrays = {name: z[name] for name in z.files}
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not a readable ab initio checkpoint ({e}); delete it to start over") from e
    return {
        int(k): m | {name: arrays[f"{name}_{k}"] for name in ("quaternions", "volume", "shifts_px")}
        for k, m in meta.items()
    }


def save_restarts(path: Path, key: int, restarts: dict[int, dict[str, Any]]) -> None:
    """Write every finished restart to ``path`` atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {f"{name}_{k}": r[name] for k, r in restarts.items() for name in ("quaternions", "volume", "shifts_px")}
    meta = {k: {n: r[n] for n in ("box_px", "pixel_size_A", "iterations")} for k, r in restarts.items()}
    save_npz_atomic(path, key=np.int64(key), meta=json.dumps(meta, default=float), **arrays)

"""Files written whole or not at all: a temporary file beside the target, then ``os.replace``."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

__all__ = ["save_npz_atomic"]


def save_npz_atomic(path: Path, **arrays) -> None:
    """``np.savez(path, **arrays)`` through ``PATH.tmp.npz``, so an interrupted write leaves the old file."""
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)

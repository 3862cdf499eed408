"""Orientation files: CSV (quaternions + RELION Euler angles in degrees) and a RELION-convention STAR file."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from orirec.geometry import canonicalize, quat_to_euler

CSV_HEADER = "index,qw,qx,qy,qz,rot_deg,tilt_deg,psi_deg"


def write_orientations(path: str | Path, indices: np.ndarray, quaternions: np.ndarray) -> None:
    """Write ``indices`` (rows of the store) and their quaternions to ``path`` (.csv or .star), atomically."""
    path = Path(path)
    q = canonicalize(np.asarray(quaternions, dtype=np.float64))
    rot, tilt, psi = (np.rad2deg(a) for a in quat_to_euler(q))
    idx = np.asarray(indices, dtype=np.int64)
    tmp = path.with_name(path.name + ".tmp")
    if path.suffix.lower() == ".star":
        import pandas as pd

        from orirec.store.relion import orientation_columns, write_star

        df = pd.DataFrame({"rlnImageName": [f"{i + 1:06d}@images" for i in idx], **orientation_columns(q)})
        write_star(path, {"particles": df})
        return
    table = np.column_stack([idx, q, rot, tilt, psi])
    np.savetxt(tmp, table, delimiter=",", header=CSV_HEADER, comments="", fmt=["%d"] + ["%.10f"] * 4 + ["%.6f"] * 3)
    os.replace(tmp, path)


def read_orientations(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read ``(indices, quaternions)`` from a CSV written by :func:`write_orientations`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such orientation file")
    with open(path) as f:
        header = f.readline().strip()
    if header != CSV_HEADER:
        raise ValueError(f"{path}: not an orirec orientation CSV (header {header!r})")
    table = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
    q = table[:, 1:5]
    if not np.isfinite(q).all():
        raise ValueError(f"{path}: quaternions contain NaN or inf")
    return table[:, 0].astype(np.int64), canonicalize(q)

"""Orientation files: orirec's CSV (store rows, quaternions + RELION Euler angles in degrees) and RELION STAR files
(``rlnImageName`` + ``rlnAngleRot/Tilt/Psi``), written by orirec or by RELION itself (e.g. ``run_data.star``).

A STAR row is matched to a store row by its ``rlnImageName``:

- ``000012@images``: store row 11 (orirec's name for the images of a store without a source stack, e.g. a
  simulated one);
- ``N@stack.mrcs`` for a store made by ``orirec import``: the row imported from slice N of that stack. The store
  records its source stacks and slices (group ``source``, see :func:`record_sources`); for stores imported before
  that, the STAR file named in ``attrs["import"]["star"]`` is read again. A stack is matched by its resolved path
  (relative to the STAR's folder, then the current folder), else by its file name when that is unique.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from orirec.geometry import canonicalize, euler_to_quat, quat_to_euler

CSV_HEADER = "index,qw,qx,qy,qz,rot_deg,tilt_deg,psi_deg"
#: Stack name of ``rlnImageName`` when there is no real stack: ``000012@images`` is store row 11.
STORE_ROWS_STACK = "images"


def write_orientations(
    path: str | Path, indices: np.ndarray, quaternions: np.ndarray, image_names: Sequence[str] | None = None
) -> None:
    """Write ``indices`` (rows of the store) and their quaternions to ``path`` (.csv or .star), atomically.

    ``image_names``: the STAR's ``rlnImageName`` per row (e.g. :func:`source_image_names`, the particles an
    imported store came from); default ``000012@images`` for store row 11. Ignored for a CSV.
    """
    path = Path(path)
    q = canonicalize(np.asarray(quaternions, dtype=np.float64))
    rot, tilt, psi = (np.rad2deg(a) for a in quat_to_euler(q))
    idx = np.asarray(indices, dtype=np.int64)
    if path.suffix.lower() == ".star":
        from orirec.store.relion import orientation_columns, write_star

        names = [f"{i + 1:06d}@{STORE_ROWS_STACK}" for i in idx] if image_names is None else list(image_names)
        if len(names) != len(idx):
            raise ValueError(f"{path}: {len(names)} image names for {len(idx)} orientations")
        write_star(path, {"particles": pd.DataFrame({"rlnImageName": names, **orientation_columns(q)})})
        return
    tmp = path.with_name(path.name + ".tmp")
    table = np.column_stack([idx, q, rot, tilt, psi])
    np.savetxt(tmp, table, delimiter=",", header=CSV_HEADER, comments="", fmt=["%d"] + ["%.10f"] * 4 + ["%.6f"] * 3)
    os.replace(tmp, path)


def read_orientations(path: str | Path, store=None) -> tuple[np.ndarray, np.ndarray]:
    """Read ``(store rows, quaternions)`` from an orirec CSV or a STAR file (orirec's or RELION's).

    The format is told by the content (the CSV header, a STAR ``data_`` block). A STAR's rows are mapped to
    ``store`` rows (a :class:`~orirec.store.ProjectionStore` or its path) by ``rlnImageName`` (module docstring);
    without ``store`` only ``N@images`` names map. Refused: CSV indices that are fractional or repeated, STAR rows
    that map to no store row or to one twice; errors name the file and the first bad row.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such orientation file")
    with open(path, errors="replace") as f:
        first = next((line.strip() for line in f if line.strip()), "")
    if first == CSV_HEADER:
        return _read_csv(path)
    if first.startswith(("data_", "#")) or path.suffix.lower() == ".star":
        return _read_star(path, store)
    seen = f"header {first[:60]!r}" if first.isprintable() else "binary data"
    raise ValueError(f"{path}: not an orirec orientation CSV ({seen}) nor a STAR file")


def _read_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        table = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
    except ValueError as e:
        raise ValueError(f"{path}: not an orirec orientation CSV ({e})") from None
    if table.shape[0] == 0 or table.shape[1] != 8:
        raise ValueError(f"{path}: expected rows of 8 columns ({CSV_HEADER}), got shape {table.shape}")
    idx, q = table[:, 0], table[:, 1:5]
    bad = (idx != np.round(idx)) | ~np.isfinite(idx)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{path} line {i + 2}: index {idx[i]:g} is not an integer")
    repeat = _first_repeat(idx)
    if repeat:
        i, j = repeat
        raise ValueError(f"{path} line {i + 2}: index {int(idx[i])} appears twice (also line {j + 2})")
    finite = np.isfinite(q).all(axis=1)
    if not finite.all():
        raise ValueError(f"{path} line {int(np.flatnonzero(~finite)[0]) + 2}: quaternion contains NaN or inf")
    return idx.astype(np.int64), canonicalize(q)


def _first_repeat(rows: np.ndarray) -> tuple[int, int] | None:
    """``(i, j)``: the first position ``i`` whose value appeared before, first at ``j``; None without repeats."""
    repeated = pd.Series(rows).duplicated().to_numpy()
    if not repeated.any():
        return None
    i = int(np.flatnonzero(repeated)[0])
    return i, int(np.flatnonzero(rows == rows[i])[0])


def _read_star(path: Path, store) -> tuple[np.ndarray, np.ndarray]:
    from orirec.store.relion import ANGLE_LABELS, read_star_blocks

    particles, _ = read_star_blocks(path)
    missing = [lab for lab in ANGLE_LABELS if lab not in particles]
    if missing:
        raise ValueError(f"{path}: no orientations (missing column {', '.join(missing)})")
    angles = np.column_stack([pd.to_numeric(particles[lab], errors="coerce") for lab in ANGLE_LABELS])
    bad = ~np.isfinite(angles).all(axis=1)
    if bad.any():
        raise ValueError(f"{path} row {int(np.flatnonzero(bad)[0]) + 1}: an angle is not a finite number")
    rows = map_image_names(particles["rlnImageName"].astype(str).tolist(), path, store)
    rot, tilt, psi = np.deg2rad(angles).T
    return rows, canonicalize(euler_to_quat(rot, tilt, psi))


def map_image_names(names: Sequence[str], star: Path, store=None) -> np.ndarray:
    """Store rows of ``rlnImageName`` values read from ``star`` (see the module docstring); refuses unmapped ones."""
    from orirec.store.relion import split_image_name

    slices, stacks = np.empty(len(names), dtype=np.int64), []
    for i, name in enumerate(names):
        try:
            slices[i], stack = split_image_name(name)
        except ValueError as e:
            raise ValueError(f"{star} row {i + 1}: {e}") from None
        stacks.append(stack)
    if all(s == STORE_ROWS_STACK for s in stacks):
        rows = slices
    else:
        rows = _rows_from_sources(names, stacks, slices, star, store)
    if store is not None:
        n = _open(store).n_images
        out = np.flatnonzero(rows >= n)
        if out.size:
            i = int(out[0])
            raise ValueError(f"{star} row {i + 1} ({names[i]}): row {rows[i] + 1} is beyond the store's {n} images")
    repeat = _first_repeat(rows)
    if repeat:
        i, j = repeat
        raise ValueError(f"{star} row {i + 1} ({names[i]}): the same store image as row {j + 1} ({names[j]})")
    return rows


def _rows_from_sources(names, stacks: list[str], slices: np.ndarray, star: Path, store) -> np.ndarray:
    if store is None:
        raise ValueError(f"{star}: images other than N@{STORE_ROWS_STACK} need the store to map them to rows")
    s = _open(store)
    sources = store_sources(s)
    if sources is None:
        raise ValueError(
            f"{star}: cannot map rlnImageName {names[0]!r} to rows of {s.path} (the store records no source "
            f"stack: it was not made by orirec import); name its rows N@{STORE_ROWS_STACK}"
        )
    paths, stack_of_row, slice_of_row = sources
    width = int(max(slice_of_row.max(), slices.max())) + 1
    row_of = dict(zip((stack_of_row * width + slice_of_row).tolist(), range(len(slice_of_row)), strict=True))
    ids = {name: _match_stack(name, star, paths) for name in dict.fromkeys(stacks)}
    rows = np.empty(len(stacks), dtype=np.int64)
    for i, (stack, k) in enumerate(zip(stacks, slices.tolist(), strict=True)):
        sid = ids[stack]
        row = None if sid is None else row_of.get(sid * width + k)
        if row is None:
            raise ValueError(f"{star} row {i + 1} ({names[i]}): not an image of {s.path} (not among its sources)")
        rows[i] = row
    return rows


def _match_stack(name: str, star: Path, paths: list[Path]) -> int | None:
    """Index in ``paths`` (resolved source stacks) of the stack ``name`` seen from ``star``; None if none."""
    from orirec.store.relion import resolve_stack

    resolved = resolve_stack(name, star).resolve()
    for k, p in enumerate(paths):
        if p == resolved:
            return k
    same_name = [k for k, p in enumerate(paths) if p.name == Path(name).name]
    return same_name[0] if len(same_name) == 1 else None


def _open(store):
    from orirec.store.reader import ProjectionStore, open_store

    return store if isinstance(store, ProjectionStore) else open_store(store)


def record_sources(group, stacks: Sequence[Path], stack_of_row: np.ndarray, slices: np.ndarray) -> None:
    """Record in a store's zarr ``group`` where each row's image came from: stack ``stacks[stack_of_row[i]]``
    (resolved paths), slice ``slices[i]`` (0-based). Subgroup ``source``: arrays ``stack``, ``slice``, attrs
    ``stacks``. Rewritten whole (idempotent)."""
    src = group.require_group("source")
    src.attrs["stacks"] = [str(Path(p).resolve()) for p in stacks]
    for name, values in (("stack", stack_of_row), ("slice", slices)):
        values = np.asarray(values, dtype=np.int64)
        arr = src.create_array(name, shape=values.shape, dtype="int64", overwrite=True)
        arr[:] = values


def store_sources(store) -> tuple[list[Path], np.ndarray, np.ndarray] | None:
    """``(stacks, stack_of_row, slice_of_row)`` of an imported store (see :func:`record_sources`); for a store
    imported before sources were recorded, from the STAR in ``attrs["import"]["star"]`` when it still has as many
    rows; None when unknown (e.g. a simulated store)."""
    s = _open(store)
    if "source" in s.group:
        src = s.group["source"]
        return [Path(p) for p in src.attrs["stacks"]], src["stack"][:], src["slice"][:]
    star = Path((s.attrs.get("import") or {}).get("star", ""))
    if s.attrs.get("source") != "relion" or not star.is_file():
        return None
    from orirec.store.relion import read_star_blocks, resolve_stack, split_image_name

    particles, _ = read_star_blocks(star)
    if len(particles) != s.n_images:
        return None
    parsed = [split_image_name(n) for n in particles["rlnImageName"].astype(str)]
    files = list(dict.fromkeys(f for _, f in parsed))
    ids = {f: k for k, f in enumerate(files)}
    stack_of_row = np.array([ids[f] for _, f in parsed], dtype=np.int64)
    return [resolve_stack(f, star).resolve() for f in files], stack_of_row, np.array([k for k, _ in parsed])


def source_image_names(store, rows: np.ndarray, folder: str | Path | None = None) -> list[str] | None:
    """``rlnImageName`` (``000012@stack.mrcs``) of store ``rows`` in the stacks they were imported from, the paths
    relative to ``folder`` (the STAR's folder) when given; None for a store without source stacks."""
    sources = store_sources(store)
    if sources is None:
        return None
    paths, stack_of_row, slice_of_row = sources
    if folder is not None:
        paths = [Path(os.path.relpath(p, Path(folder).resolve())) for p in paths]
    rows = np.asarray(rows, dtype=np.int64)
    return [f"{slice_of_row[r] + 1:06d}@{paths[stack_of_row[r]]}" for r in rows]


def store_orientations(store) -> tuple[np.ndarray, np.ndarray]:
    """``(rows, quaternions)`` of every image of ``store`` at the angles the store itself holds; refused (naming the
    first row) when the store does not know them all."""
    s = _open(store)
    q = s.quaternions
    unknown = ~np.isfinite(q).all(axis=1)
    if unknown.any():
        i = int(np.flatnonzero(unknown)[0])
        raise ValueError(f"{s.path}: row {i + 1} has no orientation in the store; give --orientations")
    return np.arange(s.n_images), q

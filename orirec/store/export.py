"""Export a projection store to a RELION particle stack (``.mrcs`` + STAR).

The stack is written shard by shard into a memory-mapped MRC (a store larger than memory works) under a
temporary name and renamed when complete; the STAR file is written last, so a STAR file that exists always
points at a whole stack. Conventions are those of :mod:`orirec.store.relion`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from orirec.store.reader import open_store
from orirec.store.relion import ORIGIN_LABELS, orientation_columns, write_star
from orirec.store.schema import n_shards, shard_rows


def _write_stack(store, path: Path) -> None:
    import mrcfile

    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    shape = (store.n_images, store.box_px, store.box_px)
    try:
        with mrcfile.new_mmap(tmp, shape=shape, mrc_mode=2, overwrite=True) as m:
            m.set_image_stack()
            m.voxel_size = store.pixel_size_A
            size = int(store.attrs.get("shard_size", 256))
            for k in range(n_shards(store.n_images, size)):
                a, b = shard_rows(k, store.n_images, size)
                m.data[a:b] = np.asarray(store.images[a:b], dtype=np.float32)
            m.update_header_stats()
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_particle_stack(
    folder: Path, images: np.ndarray, pixel_size_A: float, ctf_params: np.ndarray | None, placeholder_optics: bool
) -> Path:
    """``folder/particles.{mrcs,star}`` for a peer tool: ``images`` (n, L, L; ``pixel_size_A`` Å/px) as an MRC stack
    and a STAR file with their CTF parameters (store ``ctf`` columns; None: none) and no angles or origins
    (see :func:`particle_tables_of`). Returns the STAR file's path."""
    import mrcfile

    folder.mkdir(parents=True, exist_ok=True)
    images = np.asarray(images, dtype=np.float32)
    with mrcfile.new(folder / "particles.mrcs", overwrite=True) as m:
        m.set_data(images)
        m.set_image_stack()
        m.voxel_size = pixel_size_A
    ctf = np.full((len(images), 7), np.nan) if ctf_params is None else np.asarray(ctf_params, np.float64)
    optics, particles = particle_tables_of(images.shape[-1], pixel_size_A, "particles.mrcs", ctf,
                                           placeholder_optics=placeholder_optics)  # fmt: skip
    return write_star(folder / "particles.star", {"optics": optics, "particles": particles})


def particle_tables(store, stack_name: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The optics and particles tables describing ``store`` as the stack ``stack_name`` (RELION 3.1+ layout)."""
    return particle_tables_of(
        store.box_px, store.pixel_size_A, stack_name, store.ctf, store.quaternions, store.shifts, str(store.path)
    )


def particle_tables_of(
    box_px: int,
    pixel_size_A: float,
    stack_name: str,
    ctf: np.ndarray,
    quaternions: np.ndarray | None = None,
    shifts_px: np.ndarray | None = None,
    source: str = "images",
    placeholder_optics: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The optics and particles tables of images ``1..n`` of the stack ``stack_name`` (RELION 3.1+ layout):
    ``ctf`` (n, 7) store CTF columns (NaN rows: no CTF), angles from ``quaternions`` and origins (Å) from
    ``shifts_px`` where given and finite. ``relion_refine`` needs a voltage, Cs and amplitude contrast in the
    optics table even without a CTF: with ``placeholder_optics`` those get 300 kV, 2.7 mm and 0.1 (unused without
    ``--ctf``; orirec's importer reads such a table as a partial CTF, so exports leave them out)."""
    n, p = len(ctf), pixel_size_A
    has_ctf = bool(np.isfinite(ctf).all(axis=1).any())
    if has_ctf and not np.isfinite(ctf).all():
        i = int(np.flatnonzero(~np.isfinite(ctf).all(axis=1))[0])
        raise ValueError(f"{source}: image {i} has no CTF while others do; RELION needs CTF for all or none")
    optics_cols = ctf[:, 3:6] if has_ctf else np.zeros((n, 0))
    combos, group = np.unique(np.round(optics_cols, 6), axis=0, return_inverse=True)
    group = group.reshape(-1) if combos.shape[0] else np.zeros(n, dtype=np.int64)
    n_groups = max(1, combos.shape[0])
    optics = pd.DataFrame(
        {
            "rlnOpticsGroupName": [f"opticsGroup{g + 1}" for g in range(n_groups)],
            "rlnOpticsGroup": np.arange(1, n_groups + 1),
            "rlnImagePixelSize": np.full(n_groups, p),
            "rlnImageSize": np.full(n_groups, box_px),
            "rlnImageDimensionality": np.full(n_groups, 2),
        }
    )
    if has_ctf:
        optics["rlnVoltage"], optics["rlnSphericalAberration"], optics["rlnAmplitudeContrast"] = combos.T
    elif placeholder_optics:
        optics["rlnVoltage"], optics["rlnSphericalAberration"], optics["rlnAmplitudeContrast"] = 300.0, 2.7, 0.1
    cols: dict[str, object] = {
        "rlnImageName": [f"{i + 1:06d}@{stack_name}" for i in range(n)],
        "rlnOpticsGroup": group + 1,
    }
    if quaternions is not None and np.isfinite(quaternions).all():
        cols.update(orientation_columns(quaternions))
    if shifts_px is not None and np.isfinite(shifts_px).all():
        cols[ORIGIN_LABELS[0]] = -shifts_px[:, 0].astype(np.float64) * p
        cols[ORIGIN_LABELS[1]] = -shifts_px[:, 1].astype(np.float64) * p
    if has_ctf:
        cols.update(
            {
                "rlnDefocusU": ctf[:, 0],
                "rlnDefocusV": ctf[:, 1],
                "rlnDefocusAngle": np.rad2deg(ctf[:, 2].astype(np.float64)),
                "rlnCtfBfactor": ctf[:, 6],
            }
        )
    return optics, pd.DataFrame(cols)


def export_store(store_path: str | Path, star: str | Path, overwrite: bool = False) -> dict:
    """Write ``star`` and ``<stem>.mrcs`` beside it (images, angles, origins, CTF) from a complete store.

    Returns ``{"star", "stack", "n_images"}``. An existing ``star`` or stack is refused (nothing written) unless
    ``overwrite``. Reference volumes are exported by :func:`orirec.pipeline.particles.export_particles`.
    """
    s = open_store(store_path)
    star = Path(star)
    if star.suffix.lower() != ".star":
        raise ValueError(f"{star}: the output must end in .star")
    stack = star.with_suffix(".mrcs")
    for path in (star, stack):
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path}: already exists; use --overwrite to replace it")
    optics, particles = particle_tables(s, stack.name)
    star.parent.mkdir(parents=True, exist_ok=True)
    _write_stack(s, stack)
    write_star(star, {"optics": optics, "particles": particles})
    return {"star": str(star), "stack": str(stack), "n_images": s.n_images}

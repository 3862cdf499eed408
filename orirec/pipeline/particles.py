"""Your own particles: import a RELION STAR + ``.mrcs`` stack into a store, recover and reconstruct from it,
and export a store back to ``.mrcs`` + STAR + MRC maps.

Import streams shard by shard (memory-mapped stacks in, one whole shard written and then marked complete),
so a stack larger than memory works and an interrupted import resumes. Per image, in this order:
Fourier crop/pad to the target pixel size, optional centring by the STAR origins, optional phase flip
(``sign(CTF)``), optional normalization (background mean/std outside a disk, as RELION), then a centred
real-space window to the target box.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from orirec.config import ReconstructConfig, RecoverConfig
from orirec.imaging.ctf import ctf_from_params, phase_flip
from orirec.imaging.formation import apply_shifts, normalize_background
from orirec.imaging.resize import fourier_resize, window
from orirec.pipeline.stages import stage_reconstruct, stage_recover
from orirec.store import create_store, open_store, reference_volume, writer_to_resume
from orirec.store.export import export_store
from orirec.store.lock import locks_store
from orirec.store.orientations import read_orientations, record_sources, source_image_names, write_orientations
from orirec.store.relion import (
    ANGLE_LABELS,
    ParticleTable,
    StackReader,
    orientation_columns,
    read_particles,
    write_star,
)
from orirec.store.safety import check_fits_in_memory
from orirec.structures.maps import write_map


@dataclass(frozen=True)
class ImportOptions:
    """How particles are resampled and normalized on import (px and Å).

    ``box_px`` / ``pixel_size_A`` default to the stack's. ``bg_radius_frac``: normalization uses the pixels
    outside the disk of radius ``bg_radius_frac * L / 2``. ``star_pixel_size_A`` is used only when the STAR
    file has no pixel size. ``center`` shifts each image by its ``rlnOriginX/YAngst`` (sub-pixel Fourier shift)
    so the particle sits at the box centre, and stores zero shifts.
    """

    box_px: int | None = None
    pixel_size_A: float | None = None
    normalize: bool = True
    bg_radius_frac: float = 0.75
    phase_flip: bool = False
    center: bool = False
    shard_size: int = 256
    chunk_size: int = 16
    star_pixel_size_A: float | None = None

    def __post_init__(self) -> None:
        """Refuse bad options before anything is read or written (messages name the command-line option)."""
        for option, value in (("--pixel-size", self.pixel_size_A), ("--star-pixel-size", self.star_pixel_size_A)):
            if value is not None and not 0 < value < math.inf:
                raise ValueError(f"{option} must be a finite number of Å > 0, got {value}")
        if self.box_px is not None and not (self.box_px == int(self.box_px) and self.box_px >= 8):
            raise ValueError(f"--box must be an integer >= 8 px, got {self.box_px}")
        if not 0 < self.bg_radius_frac <= 1:
            raise ValueError(f"--bg-radius must be in (0, 1] (a fraction of half the box), got {self.bg_radius_frac}")
        for option, value in (("--shard-size", self.shard_size), ("chunk size", self.chunk_size)):
            if not (value == int(value) and value >= 1):
                raise ValueError(f"{option} must be an integer >= 1, got {value}")
        if self.shard_size % min(self.chunk_size, self.shard_size):
            raise ValueError(f"--shard-size {self.shard_size} must be a multiple of the chunk size {self.chunk_size}")


def _normalize(img: np.ndarray, radius_px: float, table: ParticleTable, rows: np.ndarray) -> np.ndarray:
    """RELION-style background normalization; an error names the STAR row of the offending image."""
    try:
        return normalize_background(img, radius_px)[0]
    except ValueError as e:
        m = re.search(r"image (\d+)", str(e))
        where = (
            table.row_label(int(rows[int(m.group(1))])) if m else f"{table.star.name} rows {rows[0] + 1}-{rows[-1] + 1}"
        )
        raise ValueError(f"{where}: cannot normalize ({e}); use --no-normalize") from None


def target_geometry(table: ParticleTable, opts: ImportOptions) -> tuple[int, int, float]:
    """``(fourier_size_px, box_px, pixel_size_A)``: the spectrum is resized to ``fourier_size_px`` first."""
    L0, p0 = table.box_px, table.pixel_size_A
    p = p0 if opts.pixel_size_A is None else float(opts.pixel_size_A)
    if not p > 0:
        raise ValueError(f"pixel size must be > 0, got {p} Å")
    size = max(2, int(round(L0 * p0 / p)))
    actual = p0 * L0 / size
    if abs(actual - p) > 0.01 * p:
        raise ValueError(
            f"{table.star}: {p:g} Å is not reachable from {L0} px at {p0:g} Å by Fourier cropping "
            f"(nearest {actual:.4g} Å)"
        )
    box = size if opts.box_px is None else int(opts.box_px)
    return size, box, actual


MIB = 1 << 20


def stack_digest(path: Path) -> dict[str, Any]:
    """Size, mtime and a BLAKE2b hash (size + the whole file up to 2 MiB, else its first and last MiB) of a stack."""
    st = path.stat()
    h = hashlib.blake2b(str(st.st_size).encode(), digest_size=16)
    with open(path, "rb") as f:
        h.update(f.read(2 * MIB if st.st_size <= 2 * MIB else MIB))
        if st.st_size > 2 * MIB:
            f.seek(-MIB, os.SEEK_END)
            h.update(f.read(MIB))
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "blake2b": h.hexdigest()}


def _fingerprint(table: ParticleTable, opts: ImportOptions) -> str:
    """The import's identity: the STAR's text, every referenced stack (:func:`stack_digest`) and the options."""
    digest = hashlib.sha256(table.star.read_bytes()).hexdigest()
    stacks = {str(p.resolve()): stack_digest(p) for p in dict.fromkeys(table.files)}
    return json.dumps(
        {"star": str(table.star.resolve()), "sha256": digest, "stacks": stacks, "options": asdict(opts)},
        sort_keys=True,
    )


def check_memory(table: ParticleTable, fourier_px: int, box_px: int, shard_size: int) -> None:
    """Refuse an import whose shard cannot fit in memory, before anything is written: a shard's images at the
    largest of the stack's box, the Fourier size and the output box, at least 16 bytes per px (one complex copy).
    The store's size on disk is checked by :func:`orirec.store.create_store`."""
    rows, L = min(shard_size, table.n), max(table.box_px, fourier_px, box_px)
    check_fits_in_memory(rows * L**2 * 16, f"{rows} images per shard at {L}x{L} px", table.star)


def _record_sources(writer, table: ParticleTable) -> None:
    """Record each row's source stack and slice in the store (read back by orientation files of these particles)."""
    stacks = list(dict.fromkeys(table.files))
    ids = {p: k for k, p in enumerate(stacks)}
    record_sources(writer.group, stacks, np.array([ids[p] for p in table.files], dtype=np.int64), table.slices)


@locks_store("out")  # one run per store (orirec.store.lock)
def import_particles(
    star: str | Path,
    out: str | Path,
    opts: ImportOptions | None = None,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Import a particles STAR + stacks into the store ``out``; resumes an interrupted import of the same input.

    The STAR file and the stack headers are validated before the store is created; an image with NaN/inf
    stops the import with its row named, leaving its shard (and the store) not marked complete.
    """
    opts = opts or ImportOptions()
    t0 = time.perf_counter()
    table = read_particles(star, opts.star_pixel_size_A)
    size, box, pixel = target_geometry(table, opts)
    check_memory(table, size, box, opts.shard_size)
    if opts.phase_flip and not table.has_ctf():
        raise ValueError(f"{star}: phase flipping needs CTF columns (rlnDefocusU, rlnVoltage, ...)")
    out = Path(out)
    fingerprint = _fingerprint(table, opts)
    inputs = [table.star, *set(table.files)]  # --out must not be, hold or (replacing) lie among them
    writer = writer_to_resume(out, fingerprint, overwrite, "another import (STAR, stacks or options)", inputs)
    if writer is None:
        attrs = {
            "fingerprint": fingerprint,
            "source": "relion",
            "import": {"star": str(table.star), **asdict(opts)},
            "seed": None,
            "proteins": [{"id": table.star.stem, "name": table.star.stem, "source": str(table.star),
                          "pixel_size_A": pixel, "box_px": box}],
        }  # fmt: skip
        writer = create_store(out, table.n, box, pixel, opts.shard_size, opts.chunk_size, attrs, overwrite)
    if "source" not in writer.group:
        _record_sources(writer, table)
    ctf = table.ctf_params()
    q = table.quaternions()
    shifts = table.shifts_px(pixel)
    todo = writer.missing_shards()
    with StackReader(table) as reader:
        for done, k in enumerate(todo):
            a = k * writer.shard_size
            rows = np.arange(a, min(a + writer.shard_size, table.n))
            img = fourier_resize(reader.read(rows), size)
            if opts.center:
                img = apply_shifts(img, -shifts[rows])
            if opts.phase_flip:
                img = phase_flip(img, ctf_from_params(ctf[rows], size, pixel))
            if opts.normalize:
                img = _normalize(img, opts.bg_radius_frac * size / 2, table, rows)
            writer.write_shard(
                k,
                images=window(img, box),
                quaternions=q[rows],
                shifts=np.zeros_like(shifts[rows]) if opts.center else shifts[rows],
                ctf=ctf[rows],
                protein=np.zeros(len(rows), dtype=np.int32),
            )
            reader.close()  # unmap: pages read for this shard stop counting against the process
            if progress:
                progress(writer.n_shards - len(todo) + done + 1, writer.n_shards)
    writer.finalize()
    return {
        "n_images": table.n,
        "box_px": box,
        "pixel_size_A": pixel,
        "shards_written": len(todo),
        "shards_skipped": writer.n_shards - len(todo),
        "time_s": time.perf_counter() - t0,
    }


def _relative_names(table: ParticleTable, folder: Path) -> list[str]:
    """``rlnImageName`` values that resolve from ``folder`` (the output STAR's folder)."""
    import os

    rel = {p: os.path.relpath(p.resolve(), folder.resolve()) for p in set(table.files)}
    return [f"{s + 1:06d}@{rel[f]}" for s, f in zip(table.slices, table.files, strict=True)]


def write_recovered_star(table: ParticleTable, rows: np.ndarray, quaternions: np.ndarray, path: Path) -> Path:
    """The input particles (every input column kept) at ``rows`` with recovered angles, as a STAR at ``path``."""
    df = table.particles.iloc[rows].copy()
    df["rlnImageName"] = np.asarray(_relative_names(table, path.parent), dtype=object)[rows]
    for label, values in orientation_columns(quaternions).items():
        df[label] = values
    blocks = {"particles": df.reset_index(drop=True)}
    if table.optics is not None:
        blocks = {"optics": table.optics, **blocks}
    return write_star(path, blocks)


def recover_particles(
    cfg: RecoverConfig,
    reconstruct_cfg: ReconstructConfig,
    checkpoint: Path,
    star: Path,
    out_dir: Path,
    opts: ImportOptions | None = None,
    progress=None,
    gauge_progress=None,
    refine_progress=None,
) -> dict[str, Any]:
    """Import ``star`` at the model's box, recover orientations and reconstruct.

    Writes ``OUT/particles.zarr``, ``OUT/orientations.{csv,star}`` (store rows), ``OUT/particles.star`` (the
    input rows with ``rlnAngleRot/Tilt/Psi`` set, other columns kept) and ``OUT/map.mrc`` (voxel = the
    imported pixel size). Without a target pixel size the whole field of view is kept (Fourier crop of the
    stack's box to the model's box).
    """
    from orirec.models import load_checkpoint

    opts = opts or ImportOptions()
    meta = load_checkpoint(checkpoint)
    model_box = int(meta["model_config"]["in_size"])
    table = read_particles(star, opts.star_pixel_size_A)
    if opts.pixel_size_A is None:
        opts = ImportOptions(**{**asdict(opts), "pixel_size_A": table.pixel_size_A * table.box_px / model_box})
    opts = ImportOptions(**{**asdict(opts), "box_px": model_box})
    out_dir.mkdir(parents=True, exist_ok=True)
    store = out_dir / "particles.zarr"
    # an interrupted import of the same input resumes; one of other options is replaced
    previous = zarr.open_group(str(store), mode="r").attrs.get("fingerprint") if store.exists() else None
    stale = previous is not None and previous != _fingerprint(table, opts)
    imported = import_particles(star, store, opts, overwrite=stale)
    summary = stage_recover(cfg, store, checkpoint, out_dir, progress, gauge_progress, refine_progress)
    rows, q = read_orientations(out_dir / "orientations.csv")
    names = source_image_names(store, rows, out_dir)  # the real stacks, not N@images
    write_orientations(out_dir / "orientations.star", rows, q, names)
    write_recovered_star(table, rows, q, out_dir / "particles.star")
    rec = stage_reconstruct(reconstruct_cfg, store, out_dir / "orientations.csv", out_dir / "map.mrc")
    return {**summary, "pixel_size_A": imported["pixel_size_A"], "star": str(out_dir / "particles.star"),
            "map": rec["map"]}  # fmt: skip


def reconstruct_particles(
    cfg: ReconstructConfig, star: Path, out_map: Path, opts: ImportOptions | None = None
) -> dict[str, Any]:
    """Reconstruct a map from a STAR file's images at its own ``rlnAngleRot/Tilt/Psi`` (origins not applied)."""
    table = read_particles(star, (opts or ImportOptions()).star_pixel_size_A)
    q = table.quaternions()
    if not np.isfinite(q).all():
        raise ValueError(f"{star}: no angles (missing columns {', '.join(ANGLE_LABELS)}) to reconstruct from")
    with tempfile.TemporaryDirectory(prefix="orirec-") as tmp:
        store = Path(tmp) / "particles.zarr"
        import_particles(star, store, opts)
        write_orientations(Path(tmp) / "orientations.csv", np.arange(table.n), q)
        return dict(stage_reconstruct(cfg, store, Path(tmp) / "orientations.csv", out_map))


def export_particles(store: Path, star: Path, maps: bool = True, overwrite: bool = False) -> dict[str, Any]:
    """Export ``store`` to ``star`` + ``<stem>.mrcs``; with ``maps`` its reference volumes to ``<stem>_ref<k>.mrc``.

    Maps carry the store's pixel size as voxel size and origin 0 (the particle centre is voxel ``L // 2``).
    Existing output files are refused (before anything is written) unless ``overwrite``.
    """
    s = open_store(store)
    volumes = s.group["volumes"] if maps and "volumes" in s.group else None
    keys = sorted(volumes.array_keys(), key=int) if isinstance(volumes, zarr.Group) else []
    paths = {k: Path(star).with_name(f"{Path(star).stem}_ref{k}.mrc") for k in keys}
    existing = [p for p in (Path(star), Path(star).with_suffix(".mrcs"), *paths.values()) if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{existing[0]}: already exists; use --overwrite to replace it")
    res = export_store(store, star, overwrite=overwrite)
    res["maps"] = []
    for k, path in paths.items():
        write_map(path, reference_volume(s.group, int(k)), s.pixel_size_A)
        res["maps"].append(str(path))
    return res


__all__ = [
    "ImportOptions",
    "export_particles",
    "import_particles",
    "check_memory",
    "recover_particles",
    "reconstruct_particles",
    "stack_digest",
    "write_recovered_star",
]

"""RELION particle files: read and validate a particles STAR (+ optics table), memory-mapped ``.mrcs`` stacks,
and STAR writing shared by every orirec writer.

Conventions (checked against RELION in ``tests/store/test_relion_io.py``):

- ``rlnImageName`` is ``index@stack.mrcs`` (index 1-based); a relative stack path is resolved against the
  STAR file's folder first, then against the current folder (RELION's project folder).
- Angles ``rlnAngleRot/Tilt/Psi`` are ZYZ in degrees with RELION's meaning (:mod:`orirec.geometry.euler`).
- Origins ``rlnOriginX/YAngst`` (Å; RELION ≤ 3.0: ``rlnOriginX/Y`` in px of the stack): RELION *centres* a
  particle by shifting the image by ``+origin`` (``relion_project`` shifts a projection by ``-origin``). orirec's
  ``shifts`` (px) are the shift applied to the projection (content moved towards +x/+y), so
  ``shift_px = -origin_A / pixel_size_A``. A file with both must agree (within 1e-3 px).
- Defocus angle ``rlnDefocusAngle`` is in degrees; the store keeps radians (``CTF_COLUMNS``). A non-zero
  ``rlnPhaseShift`` (phase plate) is refused: the store has no phase-shift column.
- MRC stacks: a header without the ``MAP `` ID or machine stamp is read permissively (warned once per file) when
  its dimensions, mode and the file size agree; complex data (modes 3, 4) is refused.
"""

from __future__ import annotations

import os
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd

from orirec.geometry import canonicalize, euler_to_quat, quat_to_euler
from orirec.store.schema import CTF_COLUMNS

ANGLE_LABELS = ("rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi")
ORIGIN_LABELS = ("rlnOriginXAngst", "rlnOriginYAngst")
ORIGIN_PX_LABELS = ("rlnOriginX", "rlnOriginY")  # RELION <= 3.0, px of the stack
#: STAR labels of the store's CTF columns (B-factor optional, 0 when absent).
CTF_LABELS = (
    "rlnDefocusU",
    "rlnDefocusV",
    "rlnDefocusAngle",
    "rlnVoltage",
    "rlnSphericalAberration",
    "rlnAmplitudeContrast",
)
OPTICS_LABELS = ("rlnVoltage", "rlnSphericalAberration", "rlnAmplitudeContrast")
PIXEL_SIZE_LABELS = ("rlnImagePixelSize", "rlnPixelSize")
#: MRC modes of complex data: refused (an image is real; dropping the imaginary part would hide an error).
COMPLEX_MRC_MODES = {3: "complex int16", 4: "complex float32"}
MRC_HEADER_BYTES = 1024
_PERMISSIVE_WARNED: set[str] = set()


def write_star(path: str | Path, blocks: dict[str, pd.DataFrame]) -> Path:
    """Write data blocks (e.g. ``{"optics": ..., "particles": ...}``) to a STAR file atomically."""
    import starfile

    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        starfile.write(blocks, tmp, float_format="%.8g")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def orientation_columns(quaternions: np.ndarray) -> dict[str, np.ndarray]:
    """``rlnAngleRot/Tilt/Psi`` (degrees, RELION ZYZ) of unit quaternions (n, 4)."""
    rot, tilt, psi = quat_to_euler(canonicalize(np.asarray(quaternions, dtype=np.float64)))
    return dict(zip(ANGLE_LABELS, (np.rad2deg(rot), np.rad2deg(tilt), np.rad2deg(psi)), strict=True))


def split_image_name(name: str) -> tuple[int, str]:
    """``"000012@stack.mrcs"`` -> ``(11, "stack.mrcs")`` (0-based index); a bare path is image 0."""
    name = str(name).strip()
    if "@" not in name:
        return 0, name
    idx, _, file = name.partition("@")
    if not idx.isdigit() or int(idx) < 1 or not file:
        raise ValueError(f"bad rlnImageName {name!r} (expected index@file.mrcs with index >= 1)")
    return int(idx) - 1, file


@dataclass
class ParticleTable:
    """A validated particles STAR: one row per image, with its stack file and slice resolved."""

    star: Path
    particles: pd.DataFrame
    optics: pd.DataFrame | None
    files: list[Path]
    slices: np.ndarray
    pixel_size_A: float
    box_px: int

    @property
    def n(self) -> int:
        """Number of particles."""
        return len(self.particles)

    def row_label(self, i: int) -> str:
        """``"particles.star row 7 (000003@stack.mrcs)"`` for error messages (rows 1-based)."""
        return f"{self.star.name} row {i + 1} ({self.particles['rlnImageName'].iloc[i]})"

    def column(self, label: str) -> np.ndarray | None:
        """Per-particle float values of ``label`` from the particles table or its optics group; None if absent."""
        return _column(self.particles, self.optics, label, self.star)

    def has_ctf(self) -> bool:
        """True when defocus values are present (the other CTF labels are then required)."""
        return self.column("rlnDefocusU") is not None

    def ctf_params(self) -> np.ndarray:
        """(n, 7) CTF rows in ``CTF_COLUMNS`` order (angle in rad); all NaN without CTF labels."""
        out = np.full((self.n, len(CTF_COLUMNS)), np.nan)
        if not self.has_ctf():
            return out
        for k, label in enumerate(CTF_LABELS):
            out[:, k] = self.column(label)
        out[:, 2] = np.deg2rad(out[:, 2])
        bfac = self.column("rlnCtfBfactor")
        out[:, 6] = 0.0 if bfac is None else bfac
        return out

    def quaternions(self) -> np.ndarray:
        """(n, 4) quaternions of the STAR's angles; NaN when the file has none."""
        if self.column(ANGLE_LABELS[0]) is None:
            return np.full((self.n, 4), np.nan)
        rot, tilt, psi = (np.deg2rad(cast(np.ndarray, self.column(a))) for a in ANGLE_LABELS)  # a complete set
        return euler_to_quat(rot, tilt, psi)

    def origins_A(self) -> np.ndarray | None:
        """(n, 2) origins in Å from ``rlnOriginX/YAngst``, else ``rlnOriginX/Y`` (px of the stack); None if neither."""
        return _origins_A(self.particles, self.optics, self.star, self.pixel_size_A)

    def shifts_px(self, pixel_size_A: float | None = None) -> np.ndarray:
        """(n, 2) orirec shifts (px at ``pixel_size_A``, default the stack's) from the origins; 0 if none."""
        origins = self.origins_A()
        p = self.pixel_size_A if pixel_size_A is None else pixel_size_A
        return np.zeros((self.n, 2)) if origins is None else -origins / p


def _column(particles: pd.DataFrame, optics: pd.DataFrame | None, label: str, star: Path) -> np.ndarray | None:
    if label in particles:
        values = particles[label]
    elif optics is not None and label in optics:
        groups = optics.set_index("rlnOpticsGroup")[label]
        values = particles["rlnOpticsGroup"].map(groups)
        bad = ~particles["rlnOpticsGroup"].isin(groups.index)
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            g = particles["rlnOpticsGroup"].iloc[i]
            raise ValueError(f"{star.name} row {i + 1}: optics group {g} is not in the optics table")
    else:
        return None
    arr = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(arr)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{star.name} row {i + 1}: {label} is not a finite number ({values.iloc[i]!r})")
    return arr


def _first_row(bad: np.ndarray) -> int:
    return int(np.flatnonzero(bad)[0])


def _origins_A(particles: pd.DataFrame, optics: pd.DataFrame | None, star: Path, pixel_size_A: float):
    """(n, 2) origins (Å) from the Å labels or the px labels (``pixel_size_A`` Å/px); both must agree."""
    in_A = [_column(particles, optics, lab, star) for lab in ORIGIN_LABELS]
    in_px = [_column(particles, optics, lab, star) for lab in ORIGIN_PX_LABELS]
    a = None if in_A[0] is None else np.column_stack(cast(list[np.ndarray], in_A))  # complete sets (read_particles)
    px = None if in_px[0] is None else np.column_stack(cast(list[np.ndarray], in_px))
    if a is not None and px is not None:
        bad = np.abs(a / pixel_size_A - px).max(axis=1) > 1e-3
        if bad.any():
            i = _first_row(bad)
            raise ValueError(
                f"{star.name} row {i + 1}: rlnOriginX/Y ({px[i, 0]:g}, {px[i, 1]:g} px) disagree with "
                f"rlnOriginX/YAngst ({a[i, 0]:g}, {a[i, 1]:g} Å at {pixel_size_A:g} Å/px)"
            )
    return a if a is not None else (None if px is None else px * pixel_size_A)


def _check_values(particles: pd.DataFrame, optics: pd.DataFrame | None, star: Path) -> None:
    """Refuse non-physical rows (non-positive pixel size or voltage, negative defocus) and phase-plate data."""
    positive = (*PIXEL_SIZE_LABELS, "rlnDetectorPixelSize", "rlnMagnification", "rlnVoltage")
    rules = [(lab, "must be > 0", lambda v: v > 0) for lab in positive]
    rules += [(lab, "must be >= 0", lambda v: v >= 0) for lab in ("rlnDefocusU", "rlnDefocusV")]
    rules += [("rlnAmplitudeContrast", "must be in [0, 1]", lambda v: (v >= 0) & (v <= 1))]
    for label, need, ok in rules:
        v = _column(particles, optics, label, star)
        if v is not None and not ok(v).all():
            i = _first_row(~ok(v))
            raise ValueError(f"{star.name} row {i + 1}: {label} {need}, got {v[i]:g}")
    phase = _column(particles, optics, "rlnPhaseShift", star)
    if phase is not None and np.any(phase != 0):
        i = _first_row(phase != 0)
        shift = f"{phase[i]:g}°"
        raise ValueError(f"{star.name} row {i + 1}: phase-plate data (rlnPhaseShift) is not supported yet ({shift})")


def _pixel_sizes(particles: pd.DataFrame, optics: pd.DataFrame | None, star: Path) -> np.ndarray | None:
    for label in PIXEL_SIZE_LABELS:
        v = _column(particles, optics, label, star)
        if v is not None:
            return v
    det = _column(particles, optics, "rlnDetectorPixelSize", star)
    mag = _column(particles, optics, "rlnMagnification", star)
    return None if det is None or mag is None else det * 1e4 / mag


def read_star_blocks(star: str | Path) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The particles table and the optics table (None for pre-3.1 files) of a STAR file."""
    import starfile

    star = Path(star)
    if not star.is_file():
        raise FileNotFoundError(f"{star}: no such STAR file")
    try:
        blocks = starfile.read(star, always_dict=True)
    except Exception as e:  # starfile raises several types on malformed files
        raise ValueError(f"{star}: not a readable STAR file ({type(e).__name__}: {e})") from None
    tables = {k: v for k, v in blocks.items() if isinstance(v, pd.DataFrame)}
    particles = tables.get("particles")
    if particles is None:
        candidates = [v for k, v in tables.items() if k != "optics" and "rlnImageName" in v]
        particles = candidates[0] if len(candidates) == 1 else None
    if particles is None or "rlnImageName" not in particles:
        raise ValueError(f"{star}: no particles table with an rlnImageName column (blocks: {sorted(blocks)})")
    if len(particles) == 0:
        raise ValueError(f"{star}: the particles table is empty")
    optics = tables.get("optics")
    if optics is not None and "rlnOpticsGroup" not in optics:
        raise ValueError(f"{star}: the optics table has no rlnOpticsGroup column")
    if optics is not None and "rlnOpticsGroup" not in particles:
        if len(optics) != 1:
            raise ValueError(f"{star}: missing column rlnOpticsGroup with {len(optics)} optics groups")
        particles = particles.assign(rlnOpticsGroup=optics["rlnOpticsGroup"].iloc[0])
    return particles.reset_index(drop=True), optics


def resolve_stack(file: str, star: Path) -> Path:
    """The stack ``file`` of an ``rlnImageName`` in ``star``: beside the STAR file, else in the current folder."""
    p = Path(file)
    if p.is_absolute():
        return p
    for base in (star.parent, Path.cwd()):
        if (base / p).is_file():
            return base / p
    return star.parent / p


def open_stack(path: Path):
    """Open an MRC stack memory-mapped, read-only (an ``mrcfile`` object; close it).

    A header that mrcfile refuses (no ``MAP `` ID string, no machine stamp) is read in permissive mode when the
    header's dimensions, mode and the file size agree (``1024 + extended header + nx·ny·nz·bytes``); this is
    warned once per file. Complex data (modes 3 and 4) is refused.
    """
    import mrcfile

    try:
        m = mrcfile.mmap(path, mode="r", permissive=False)
    except Exception as e:
        m = _open_permissive(path, f"{type(e).__name__}: {e}")
    mode = int(m.header.mode)
    if mode in COMPLEX_MRC_MODES:
        m.close()
        raise ValueError(f"{path}: complex MRC data (mode {mode}, {COMPLEX_MRC_MODES[mode]}) is not supported; "
                         "particle images must be real")  # fmt: skip
    return m


def _open_permissive(path: Path, strict_error: str):
    """The stack opened permissively when its header and size agree; else the strict error as a ValueError."""
    import mrcfile

    refuse = ValueError(f"{path}: not a readable MRC stack ({strict_error})")
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        try:
            m = mrcfile.mmap(path, mode="r", permissive=True)
        except Exception:
            raise refuse from None
    mode = int(m.header.mode)
    if mode in COMPLEX_MRC_MODES:
        return m  # refused by the caller, with its own message
    expected = None if m.data is None else MRC_HEADER_BYTES + int(m.header.nsymbt) + m.data.nbytes
    if expected != path.stat().st_size:
        m.close()
        raise refuse
    if str(path) not in _PERMISSIVE_WARNED:
        _PERMISSIVE_WARNED.add(str(path))
        warnings.warn(f"{path}: non-standard MRC header ({strict_error}); read anyway, as its dimensions, mode "
                      "and file size agree", RuntimeWarning, stacklevel=3)  # fmt: skip
    return m


def stack_shape(path: Path) -> tuple[int, int, int]:
    """``(n_images, ny, nx)`` of an MRC stack (a 2D MRC counts as one image), header only (see :func:`open_stack`)."""
    m = open_stack(path)
    try:
        shape = m.data.shape
    finally:
        m.close()
    if len(shape) == 2:
        return (1, *shape)
    if len(shape) != 3:
        raise ValueError(f"{path}: expected a stack of 2D images, got data of shape {shape}")
    return shape


def read_particles(star: str | Path, pixel_size_A: float | None = None) -> ParticleTable:
    """Read and validate a particles STAR file and the stacks it references (headers only).

    Checks: an ``rlnImageName`` column; one pixel size (``rlnImagePixelSize`` in the particles or optics
    table, older labels accepted; ``pixel_size_A`` when the file has none); complete CTF, angle and origin
    label sets; every stack exists, is square, has one box and holds every referenced index. Errors name
    the file and the first bad row (rows 1-based).
    """
    star = Path(star)
    particles, optics = read_star_blocks(star)
    groups = (("CTF", CTF_LABELS), ("angle", ANGLE_LABELS), ("origin", ORIGIN_LABELS), ("origin", ORIGIN_PX_LABELS))
    for group, need in groups:
        present = [lab for lab in need if _column(particles, optics, lab, star) is not None]
        if present and len(present) < len(need):
            missing = [lab for lab in need if lab not in present]
            raise ValueError(f"{star}: {group} columns incomplete, missing {', '.join(missing)}")
    _check_values(particles, optics, star)
    sizes = _pixel_sizes(particles, optics, star)
    if sizes is None:
        if pixel_size_A is None:
            raise ValueError(f"{star}: no pixel size (missing column rlnImagePixelSize); give one (--star-pixel-size)")
        if not 0 < pixel_size_A < np.inf:
            raise ValueError(f"{star}: the given pixel size must be a finite number > 0, got {pixel_size_A:g} Å")
        sizes = np.full(len(particles), float(pixel_size_A))
    odd = np.flatnonzero(np.abs(sizes - sizes[0]) > 1e-4 * sizes[0])
    if odd.size:
        i = int(odd[0])
        raise ValueError(
            f"{star.name} row {i + 1}: mixed pixel sizes ({sizes[i]:g} Å here, {sizes[0]:g} Å in row 1); "
            "import each pixel size separately"
        )
    _origins_A(particles, optics, star, float(sizes[0]))  # the two origin conventions agree
    slices = np.empty(len(particles), dtype=np.int64)
    file_of_row = np.empty(len(particles), dtype=np.int64)
    names: dict[str, int] = {}
    for i, name in enumerate(particles["rlnImageName"].astype(str)):
        try:
            slices[i], file = split_image_name(name)
        except ValueError as e:
            raise ValueError(f"{star.name} row {i + 1}: {e}") from None
        file_of_row[i] = names.setdefault(file, len(names))
    paths = [resolve_stack(file, star) for file in names]
    order = np.argsort(file_of_row, kind="stable")
    bounds = np.searchsorted(file_of_row[order], np.arange(len(names) + 1))
    box = None
    for k, (file, path) in enumerate(zip(names, paths, strict=True)):
        rows = order[bounds[k] : bounds[k + 1]]
        if not path.is_file():
            raise FileNotFoundError(f"{star.name} row {rows[0] + 1}: stack {file} not found (looked beside {star})")
        n_img, ny, nx = stack_shape(path)
        if ny != nx:
            raise ValueError(f"{path}: images are {nx}x{ny} px; only square images are supported")
        if box is None:
            box = nx
        elif nx != box:
            raise ValueError(f"{path}: images are {nx} px, other stacks of {star.name} are {box} px")
        over = rows[slices[rows] >= n_img]
        if over.size:
            i = int(over[0])
            raise ValueError(
                f"{star.name} row {i + 1}: references image {slices[i] + 1} of {file}, which holds only {n_img} images"
            )
    files = [paths[k] for k in file_of_row]
    assert box is not None  # the table has rows, so at least one stack
    return ParticleTable(star, particles, optics, files, slices, float(sizes[0]), int(box))


class StackReader:
    """Memory-mapped read access to the images of a :class:`ParticleTable` (a few stacks open at a time)."""

    def __init__(self, table: ParticleTable, max_open: int = 32):
        self.table = table
        self.max_open = max_open
        self._open: OrderedDict[Path, Any] = OrderedDict()  # mrcfile objects

    def _data(self, path: Path) -> np.ndarray:
        if path in self._open:
            self._open.move_to_end(path)
        else:
            if len(self._open) >= self.max_open:
                _, old = self._open.popitem(last=False)
                old.close()
            self._open[path] = open_stack(path)
        data = self._open[path].data
        return data[None] if data.ndim == 2 else data

    def read(self, rows: np.ndarray) -> np.ndarray:
        """Images of the given table rows as float32 (len(rows), L, L); NaN/inf is an error naming the row."""
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty((len(rows), self.table.box_px, self.table.box_px), dtype=np.float32)
        for k, i in enumerate(rows):
            out[k] = self._data(self.table.files[i])[self.table.slices[i]]
            if not np.isfinite(out[k]).all():
                raise ValueError(f"{self.table.row_label(int(i))}: image contains NaN or inf")
        return out

    def close(self) -> None:
        """Close every open stack."""
        while self._open:
            self._open.popitem()[1].close()

    def __enter__(self) -> StackReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

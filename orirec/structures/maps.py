"""Density maps in and out: MRC read/write (mrcfile) and preparation (resample, centre, box)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

__all__ = ["prepare_map", "read_map", "write_map"]

#: Fraction of the positive density allowed to fall outside the output box in :func:`prepare_map`.
MAX_LOST_MASS = 0.01


def read_map(path: str | Path) -> tuple[np.ndarray, float]:
    """Read a 3D MRC map.

    Args:
        path: MRC/MAP file (``.mrc``, ``.map``, ``.mrcs``; gzip/bzip2 accepted by mrcfile).

    Returns:
        (volume, voxel_size_A): float32 array indexed ``[z, y, x]`` (axis order of the header
        resolved) and the voxel size in Å.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: unreadable file, complex data (MRC modes 3, 4), not a 3D volume, anisotropic or zero voxel
            size, NaN/inf values.
    """
    import mrcfile

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"map file not found: {p}")
    _refuse_complex(p)
    try:
        with mrcfile.open(p, mode="r", permissive=False) as mrc:
            data = np.asarray(mrc.data, dtype=np.float32).copy()
            vs = mrc.voxel_size
            voxel = (float(vs.x), float(vs.y), float(vs.z))
            axes = (int(mrc.header.mapc), int(mrc.header.mapr), int(mrc.header.maps))
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"could not read map {p}: {reason}") from None
    if data.ndim != 3 or min(data.shape) < 2:
        raise ValueError(f"{p}: expected a 3D volume, got data of shape {data.shape}")
    if sorted(axes) != [1, 2, 3]:
        raise ValueError(f"{p}: invalid axis order mapc/mapr/maps = {axes}")
    if axes != (1, 2, 3):
        # data[s, r, c] with c along axis axes[0] etc.; reorder so that the array is [z, y, x].
        file_axis_of = {axes[2]: 0, axes[1]: 1, axes[0]: 2}  # header axis (1=x, 2=y, 3=z) -> array axis
        data = np.ascontiguousarray(np.transpose(data, (file_axis_of[3], file_axis_of[2], file_axis_of[1])))
    if not np.all(np.isfinite(data)):
        kind = "NaN" if np.isnan(data).any() else "inf"
        raise ValueError(f"{p}: map contains {kind}")
    if min(voxel) <= 0:
        raise ValueError(f"{p}: voxel size in the header is {voxel} Å (must be > 0)")
    if max(voxel) - min(voxel) > 1e-3 * max(voxel):
        raise ValueError(f"{p}: anisotropic voxel size {voxel} Å is not supported")
    return data, voxel[0]


def _refuse_complex(p: Path) -> None:
    """A complex map (MRC mode 3 or 4) is an error, not a silent loss of its imaginary part."""
    import warnings

    import mrcfile

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a permissive header read; the strict read reports the problems
            with mrcfile.open(p, mode="r", permissive=True, header_only=True) as mrc:
                mode = int(mrc.header.mode)
    except Exception:
        return  # unreadable header: the strict read names the problem
    if mode in (3, 4):
        raise ValueError(f"{p}: complex MRC data (mode {mode}) is not supported; a map must be real")


def write_map(path: str | Path, volume: np.ndarray, voxel_size_A: float) -> Path:
    """Write a float32 MRC map with the given voxel size (Å) and origin 0, atomically.

    The map is written to a temporary file beside ``path`` and renamed over it, so readers never
    see a half-written file.

    Args:
        path: destination file.
        volume: (nz, ny, nx) array indexed ``[z, y, x]``.
        voxel_size_A: voxel size in Å, > 0.

    Returns:
        The path written.
    """
    import mrcfile

    vol = np.asarray(volume, dtype=np.float32)
    if vol.ndim != 3:
        raise ValueError(f"write_map: volume must be 3D, got shape {vol.shape}")
    if not voxel_size_A > 0:
        raise ValueError(f"write_map: voxel_size_A must be > 0, got {voxel_size_A}")
    p = Path(path)
    tmp = p.with_name(f".{p.name}.tmp-{os.getpid()}")
    try:
        with mrcfile.new(tmp, overwrite=True) as mrc:
            mrc.set_data(np.ascontiguousarray(vol))
            mrc.voxel_size = float(voxel_size_A)
            mrc.header.origin = (0.0, 0.0, 0.0)
            mrc.header.nxstart = mrc.header.nystart = mrc.header.nzstart = 0
        os.replace(tmp, p)
    finally:
        if tmp.exists():
            tmp.unlink()
    return p


def _lowpass(volume: np.ndarray, cutoff: float) -> np.ndarray:
    """Fourier low-pass to ``cutoff`` (cycles/voxel) with a raised-cosine edge 10% wide."""
    f = np.fft.rfftn(volume)
    k = [np.fft.fftfreq(n) for n in volume.shape[:-1]] + [np.fft.rfftfreq(volume.shape[-1])]
    kz, ky, kx = np.meshgrid(*k, indexing="ij", sparse=True)
    r = np.sqrt(kz**2 + ky**2 + kx**2)
    lo, hi = 0.9 * cutoff, cutoff
    mask = np.clip((hi - r) / (hi - lo), 0.0, 1.0)
    mask = 0.5 - 0.5 * np.cos(np.pi * mask)
    return np.fft.irfftn(f * mask, s=volume.shape).astype(np.float32)


def prepare_map(volume: np.ndarray, voxel_size_A: float, box_px: int, pixel_size_A: float) -> np.ndarray:
    """Resample a map to ``pixel_size_A``, centre it on its centre of mass, and box it to L^3.

    Steps: low-pass to the new Nyquist frequency when downsampling; centre of mass of the positive
    density; one cubic-spline resampling (``scipy.ndimage.affine_transform``) onto an L^3 grid
    whose index ``L // 2`` (every axis) is the centre of mass (sub-voxel exact). Values stay
    density values (not rescaled by the voxel volume).

    Args:
        volume: (nz, ny, nx) map indexed ``[z, y, x]``.
        voxel_size_A: input voxel size (Å).
        box_px: output box edge L (px), >= 8.
        pixel_size_A: output voxel size (Å).

    Returns:
        (L, L, L) float32 volume.

    Raises:
        ValueError: bad sizes, no positive density, or more than 1% of the positive density would
            fall outside the box (the message gives the box needed).
    """
    from scipy import ndimage

    vol = np.asarray(volume, dtype=np.float32)
    if vol.ndim != 3:
        raise ValueError(f"prepare_map: volume must be 3D, got shape {vol.shape}")
    if not voxel_size_A > 0 or not pixel_size_A > 0:
        raise ValueError(f"prepare_map: voxel sizes must be > 0, got {voxel_size_A} and {pixel_size_A} Å")
    L = int(box_px)
    if L != box_px or L < 8:
        raise ValueError(f"prepare_map: box_px must be an integer >= 8, got {box_px}")
    pos = np.clip(vol, 0.0, None).astype(np.float64)
    total = pos.sum()
    if not total > 0:
        raise ValueError("prepare_map: map has no positive density")
    idx = np.indices(vol.shape, dtype=np.float64)
    com = np.array([(idx[a] * pos).sum() / total for a in range(3)])  # (z, y, x) voxel index
    scale = pixel_size_A / voxel_size_A  # input voxels per output voxel
    # Mass that would land outside the output box (measured on the input grid, independent of interpolation).
    out_idx = [(idx[a] - com[a]) / scale + L // 2 for a in range(3)]
    inside = np.ones(vol.shape, dtype=bool)
    for o in out_idx:
        inside &= (o >= -0.5) & (o <= L - 0.5)
    lost = pos[~inside].sum() / total
    if lost > MAX_LOST_MASS:
        dist = np.sqrt(sum(((idx[a] - com[a]) * voxel_size_A) ** 2 for a in range(3)))
        order = np.argsort(dist, axis=None)
        cum = np.cumsum(pos.ravel()[order]) / total
        r99 = float(dist.ravel()[order][np.searchsorted(cum, 1 - MAX_LOST_MASS)])
        need = int(np.ceil(2 * r99 / pixel_size_A)) + 2
        raise ValueError(
            f"prepare_map: {100 * lost:.1f}% of the density falls outside a box of "
            f"{L} px x {pixel_size_A:g} Å = {L * pixel_size_A:.1f} Å (99% radius {r99:.1f} Å); "
            f"use box_px >= {need + need % 2}"
        )
    if scale > 1.0:
        vol = _lowpass(vol, 0.5 / scale)
    offset = com - (L // 2) * scale
    out = ndimage.affine_transform(
        vol, np.full(3, scale), offset=offset, output_shape=(L, L, L), order=3, mode="constant", cval=0.0
    )
    return out.astype(np.float32)

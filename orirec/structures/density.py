"""Atoms to density: Gaussian atoms on a cubic grid, centred on the centre of mass (separable, one matmul)."""

from __future__ import annotations

import math

import numpy as np

from orirec.structures.atoms import Atoms

__all__ = ["SIGMA_PER_RESOLUTION", "atoms_to_density", "gaussian_sigma_A", "volume_radius_A"]

#: Gaussian width per unit resolution, as in Chimera's ``molmap`` (sigma = 0.225 * resolution).
SIGMA_PER_RESOLUTION = 0.225


DEFAULT_RESOLUTION_PX = 4.5


def default_resolution_A(pixel_size_A: float) -> float:
    """Default Gaussian-atom resolution (Å) for a pixel size (Å): σ ≈ 1 px."""
    return DEFAULT_RESOLUTION_PX * float(pixel_size_A)


def gaussian_sigma_A(pixel_size_A: float, resolution_A: float | None = None) -> float:
    """Standard deviation (Å) of each atom's Gaussian: 0.225 * resolution.

    The default resolution, DEFAULT_RESOLUTION_PX * pixel (Å), gives σ ≈ 1 px: the density is then
    band-limited (its Fourier amplitude at Nyquist is below 1%), so projections do not alias.
    """
    res = default_resolution_A(pixel_size_A) if resolution_A is None else float(resolution_A)
    if res <= 0:
        raise ValueError(f"resolution_A must be > 0, got {res}")
    return SIGMA_PER_RESOLUTION * res


def volume_radius_A(atoms: Atoms, pixel_size_A: float, resolution_A: float | None = None) -> float:
    """Radius (Å) of the particle's density: largest atom distance from the centre of mass + 3 sigma."""
    return atoms.radius_A() + 3.0 * gaussian_sigma_A(pixel_size_A, resolution_A)


def atoms_to_density(
    atoms: Atoms,
    box_px: int,
    pixel_size_A: float,
    resolution_A: float | None = None,
    chunk_atoms: int = 2048,
) -> np.ndarray:
    """Sample a Gaussian-atom density on a cubic grid.

    Each atom is an isotropic 3D Gaussian of standard deviation ``0.225 * resolution_A`` (Chimera
    molmap), weighted by its atomic number and normalized so that the voxel values sum to about
    ``sum(Z)`` (values are electrons per voxel). The mass-weighted centre of mass sits at voxel
    index ``box_px // 2`` on every axis; the array is indexed ``[z, y, x]``.

    The separable Gaussians are accumulated as one float32 matmul per chunk of atoms:
    ``rho[z, (y, x)] += gz.T @ (gy ⊗ gx)`` (row-wise outer product).

    Args:
        atoms: the atoms (coordinates in Å).
        box_px: box edge L (px), >= 8.
        pixel_size_A: voxel size (Å), > 0.
        resolution_A: resolution (Å) setting the Gaussian width; default DEFAULT_RESOLUTION_PX * pixel_size_A.
        chunk_atoms: atoms per matmul chunk (bounds memory to chunk * L^2 floats).

    Returns:
        (L, L, L) float32 density.

    Raises:
        ValueError: bad pixel size / box, non-finite (NaN/inf) coordinates, or the particle (radius + 3 sigma)
            does not fit in the box.
    """
    import torch

    if not (pixel_size_A > 0 and math.isfinite(pixel_size_A)):
        raise ValueError(f"pixel_size_A must be finite and > 0, got {pixel_size_A}")
    L = int(box_px)
    if L != box_px or L < 8:
        raise ValueError(f"box_px must be an integer >= 8, got {box_px}")
    if len(atoms) == 0:
        raise ValueError("atoms_to_density: no atoms")
    bad = ~np.isfinite(atoms.coords_A).all(axis=1)
    if bad.any():
        raise ValueError(
            f"{int(bad.sum())} of {len(atoms)} atoms have NaN/inf coordinates (first: atom {int(bad.argmax()) + 1})"
        )
    sigma_A = gaussian_sigma_A(pixel_size_A, resolution_A)
    radius = volume_radius_A(atoms, pixel_size_A, resolution_A)
    half_box_A = L * pixel_size_A / 2.0
    if radius > half_box_A:
        min_box = math.ceil(2.0 * radius / pixel_size_A)
        min_box += min_box % 2
        raise ValueError(
            f"particle radius {radius:.1f} Å (atoms + 3 sigma) does not fit in a box of {L} px x "
            f"{pixel_size_A:g} Å = {2 * half_box_A:.1f} Å (half-width {half_box_A:.1f} Å); "
            f"use box_px >= {min_box}"
        )
    sigma = sigma_A / pixel_size_A
    pos = (atoms.coords_A - atoms.center_of_mass_A()) / pixel_size_A + (L // 2)  # (n, 3) px, (x, y, z)
    weight = atoms.atomic_number.astype(np.float64) / ((2.0 * math.pi) ** 1.5 * sigma**3)

    rho = torch.zeros(L, L, L, dtype=torch.float32)
    cut = max(5.0 * sigma, 1.0)  # Gaussian tails beyond 5 sigma (< 4e-6 of the peak) are dropped
    tile = max(8, min(L, 16))
    order = np.argsort(pos[:, 2], kind="stable")
    pos, weight = pos[order], weight[order]
    inv = -0.5 / sigma**2
    for z0 in range(0, L, tile):
        z1 = min(z0 + tile, L)
        a, b = np.searchsorted(pos[:, 2], [z0 - cut, z1 - 1 + cut])
        if a == b:
            continue
        slab, w_slab = pos[a:b], weight[a:b]
        by_y = np.argsort(slab[:, 1], kind="stable")
        slab, w_slab = slab[by_y], w_slab[by_y]
        for y0 in range(0, L, tile):
            y1 = min(y0 + tile, L)
            c, d = np.searchsorted(slab[:, 1], [y0 - cut, y1 - 1 + cut])
            for s in range(c, d, chunk_atoms):
                e = min(s + chunk_atoms, d)
                _accumulate(rho[z0:z1, y0:y1], slab[s:e], w_slab[s:e], (z0, z1), (y0, y1), L, inv)
    return rho.numpy()


def _accumulate(
    out, pos: np.ndarray, weight: np.ndarray, zr: tuple[int, int], yr: tuple[int, int], L: int, inv: float
) -> None:
    """Add the Gaussians at ``pos`` (px, (x, y, z)) to the tile ``out`` = rho[z0:z1, y0:y1, :], one matmul."""
    import torch

    p = torch.from_numpy(pos)

    def profile(lo: int, hi: int, axis: int) -> torch.Tensor:
        d = (torch.arange(lo, hi, dtype=torch.float64)[None, :] - p[:, axis : axis + 1]).float()
        return torch.exp(inv * d * d)

    gx, gy = profile(0, L, 0), profile(*yr, 1)
    gz = profile(*zr, 2) * torch.from_numpy(weight).float()[:, None]
    gyx = (gy[:, :, None] * gx[:, None, :]).reshape(p.shape[0], -1)
    out += (gz.T @ gyx).reshape(out.shape)

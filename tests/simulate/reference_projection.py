"""Brute-force reference for the projectors: exact line integrals of Gaussian atoms (used by tests and benchmarks)."""

import numpy as np


def analytic_projection(atoms, R: np.ndarray, box_px: int, pixel_A: float, sigma_px: float) -> np.ndarray:
    """(box, box) exact line integral of the Gaussian atoms (std ``sigma_px``) rotated by R: 2D Gaussians at the
    (x, y) of ``R @ x``, relative to the centre of mass, pixel centres at ``index - box // 2``."""
    pos = (atoms.coords_A - atoms.center_of_mass_A()) / pixel_A @ R.T
    g = np.arange(box_px) - box_px // 2
    gx = np.exp(-((g[None, :] - pos[:, 0:1]) ** 2) / (2 * sigma_px**2))
    gy = np.exp(-((g[None, :] - pos[:, 1:2]) ** 2) / (2 * sigma_px**2))
    return (gy.T * atoms.atomic_number / (2 * np.pi * sigma_px**2)) @ gx


def rel_l2(a: np.ndarray, b: np.ndarray) -> float:
    """Relative L2 error ``‖a − b‖ / ‖b‖``."""
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))

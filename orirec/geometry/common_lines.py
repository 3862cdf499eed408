"""True common lines of two views (Fourier slice theorem), for diagnostics and tests.

The central slices of views i and j (beam axes ``n = Rᵀ e_z`` in particle coordinates, DESIGN §2) meet along
``c = n_i × n_j``; in image i that line points along the first two components of ``R_i c``. Angles are in rad,
counter-clockwise from the image's +x axis (columns) towards +y (rows), the sense of the polar grids of
:mod:`orirec.models.polar`; a common line is a line through the origin, so ``(θ_i + π, θ_j + π)`` is the same one.
"""

from __future__ import annotations

import numpy as np

from orirec.geometry.quaternions import multiply, quat_to_matrix
from orirec.geometry.symmetry import group_quaternions

__all__ = ["common_line_angles", "common_line_error"]


def common_line_angles(q_i: np.ndarray, q_j: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Angles (rad, in (−π, π]) of the common line of views ``q_i`` and ``q_j`` ((..., 4) quaternions) in
    image i and in image j. Views with (anti)parallel beam axes share every line; their angle is then NaN."""
    r_i, r_j = quat_to_matrix(np.asarray(q_i, dtype=np.float64)), quat_to_matrix(np.asarray(q_j, dtype=np.float64))
    c = np.cross(r_i[..., 2, :], r_j[..., 2, :])  # rows 2 of R are the beam axes in particle coordinates
    norm = np.linalg.norm(c, axis=-1, keepdims=True)
    c = np.where(norm > 1e-9, c / np.where(norm > 1e-9, norm, 1.0), np.nan)
    in_i, in_j = np.einsum("...ab,...b->...a", r_i, c), np.einsum("...ab,...b->...a", r_j, c)
    return np.arctan2(in_i[..., 1], in_i[..., 0]), np.arctan2(in_j[..., 1], in_j[..., 0])


def common_line_error(
    theta_i: np.ndarray, theta_j: np.ndarray, q_i: np.ndarray, q_j: np.ndarray, symmetry: str | None = None
) -> np.ndarray:
    """Error (rad) of a line pair (``theta_i`` in image i, ``theta_j`` in image j, rad) as the common line of views
    ``q_i`` and ``q_j``: the larger of the two in-image angle gaps, for the nearer sense (``θ + π`` is the same
    line) and, for a point group ``symmetry`` (e.g. "D2"), the nearest copy (``q_j`` and ``q_j·g`` give one image)."""

    def gap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.abs(np.angle(np.exp(1j * (a - b))))

    err = np.full(np.broadcast(theta_i, theta_j).shape, np.inf)
    for g in group_quaternions(symmetry):
        t_i, t_j = common_line_angles(q_i, multiply(q_j, g))
        same = np.maximum(gap(theta_i, t_i), gap(theta_j, t_j))
        opposite = np.maximum(gap(theta_i, t_i + np.pi), gap(theta_j, t_j + np.pi))
        err = np.fmin(err, np.minimum(same, opposite))
    return err

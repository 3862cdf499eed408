"""True common lines of two views (Fourier slice theorem), for diagnostics and tests.

The central slices of views i and j (beam axes ``n = Rᵀ e_z`` in particle coordinates, DESIGN §2) meet along
``c = n_i × n_j``; in image i that line points along the first two components of ``R_i c``. Angles are in rad,
counter-clockwise from the image's +x axis (columns) towards +y (rows), the sense of the polar grids of
:mod:`orirec.models.polar`; a common line is a line through the origin, so ``(θ_i + π, θ_j + π)`` is the same one.
"""

from __future__ import annotations

import numpy as np

from orirec.geometry.quaternions import quat_to_matrix

__all__ = ["common_line_angles"]


def common_line_angles(q_i: np.ndarray, q_j: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Angles (rad, in (−π, π]) of the common line of views ``q_i`` and ``q_j`` ((..., 4) quaternions) in
    image i and in image j. Views with (anti)parallel beam axes share every line; their angle is then NaN."""
    r_i, r_j = quat_to_matrix(np.asarray(q_i, dtype=np.float64)), quat_to_matrix(np.asarray(q_j, dtype=np.float64))
    c = np.cross(r_i[..., 2, :], r_j[..., 2, :])  # rows 2 of R are the beam axes in particle coordinates
    norm = np.linalg.norm(c, axis=-1, keepdims=True)
    c = np.where(norm > 1e-9, c / np.where(norm > 1e-9, norm, 1.0), np.nan)
    in_i, in_j = np.einsum("...ab,...b->...a", r_i, c), np.einsum("...ab,...b->...a", r_j, c)
    return np.arctan2(in_i[..., 1], in_i[..., 0]), np.arctan2(in_j[..., 1], in_j[..., 0])

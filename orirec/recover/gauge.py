"""Gauge resolution without ground truth (DESIGN §1.3).

Distances fix orientations only up to ``R_i → A R_i B`` and ``R_i → A R_iᵀ B``. ``B`` (a rotation of
the particle) and the mirror are harmless; ``A`` (a rotation of the detector frame) and the inversion
are not. In-plane rotated copies of some images have known orientations ``R_z(φ) R_i``; after a
joint recovery, ``Ř'_i Ř_iᵀ = A R_z(φ) Aᵀ`` is a rotation by φ about ``A e_z`` for every copy in the
plain branch, while in the inverted branch ``Ř_iᵀ Ř'_i = Bᵀ R_z(-φ) B`` is the consistent one. The
copies therefore give the branch and the beam axis ``A e_z``; rotating that axis onto ``e_z`` leaves
only a rotation ``R_z(α)`` on the left, found by a 1-D search on reconstruction consistency. α and
α + π give a map and its mirror image (``J R J = R_z(π) R R_z(π)``), so α is searched on [0, π).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from orirec.geometry import canonicalize, conjugate, multiply, rotate_about_z

__all__ = [
    "GaugeResult",
    "fix_beam_axis",
    "plan_inplane_copies",
    "resolve_gauge",
    "search_inplane_angle",
]


def plan_inplane_copies(n: int, n_sources: int, angles_rad: tuple[float, ...], seed: int = 0):
    """Choose ``n_sources`` of ``n`` images (seeded) and an in-plane angle per copy (rad).

    Returns ``(src, angle)``: copy ``k`` is image ``src[k]`` rotated by ``angle[k]``.
    """
    if not angles_rad or any(not 0 < abs(a) < np.pi for a in angles_rad):
        raise ValueError(f"gauge copy angles must be non-zero and within (-π, π) rad, got {angles_rad}")
    rows = np.sort(np.random.default_rng([seed, 4]).choice(n, size=min(n, n_sources), replace=False))
    src = np.repeat(rows, len(angles_rad))
    angle = np.tile(np.asarray(angles_rad, dtype=np.float64), len(rows))
    return src, angle


def _signed_axes(q_rel: np.ndarray, sign: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotation axes of relative quaternions, flipped by ``sign``; and their rotation angles (rad)."""
    q_rel = canonicalize(q_rel)
    v = q_rel[:, 1:]
    norm = np.linalg.norm(v, axis=1)
    axes = v / np.maximum(norm, 1e-12)[:, None] * sign[:, None]
    return axes, 2 * np.arctan2(norm, q_rel[:, 0])


def _consensus(axes: np.ndarray) -> tuple[np.ndarray, float]:
    mean = axes.mean(axis=0)
    mean /= max(np.linalg.norm(mean), 1e-12)
    spread = np.degrees(np.arccos(np.clip(axes @ mean, -1, 1)))
    return mean, float(np.median(spread))


def _rotation_to_z(a: np.ndarray) -> np.ndarray:
    """Unit quaternion of the smallest rotation taking the unit vector ``a`` onto ``e_z``."""
    z = np.array([0.0, 0.0, 1.0])
    c = float(a @ z)
    if c < -1 + 1e-12:
        return np.array([0.0, 1.0, 0.0, 0.0])  # a = -e_z: half turn about x
    axis = np.cross(a, z)
    q = np.array([1.0 + c, *axis])
    return q / np.linalg.norm(q)


@dataclass
class GaugeResult:
    """Gauge-resolved orientations and how they were found."""

    quaternions: np.ndarray
    transposed: bool
    beam_axis: np.ndarray
    axis_spread_deg: dict[str, float]
    copy_angle_error_deg: float
    alpha_rad: float = 0.0
    alpha_scores: list[tuple[float, float]] = field(default_factory=list)


def fix_beam_axis(q: np.ndarray, q_copies: np.ndarray, src: np.ndarray, angle: np.ndarray) -> GaugeResult:
    """Resolve the inversion and ``A e_z`` from recovered orientations of images (``q``) and copies.

    Returns orientations whose remaining left gauge is a rotation about the beam axis only.
    """
    sign = np.sign(angle)
    plain_axes, plain_angles = _signed_axes(multiply(q_copies, conjugate(q[src])), sign)
    inv_axes, _ = _signed_axes(multiply(conjugate(q[src]), q_copies), -sign)
    plain, plain_spread = _consensus(plain_axes)
    inv, inv_spread = _consensus(inv_axes)
    transposed = inv_spread < plain_spread
    axis = inv if transposed else plain
    base = canonicalize(conjugate(q)) if transposed else q
    fixed = canonicalize(multiply(_rotation_to_z(axis), base))
    return GaugeResult(
        quaternions=fixed,
        transposed=bool(transposed),
        beam_axis=axis,
        axis_spread_deg={"plain": plain_spread, "inverted": inv_spread},
        copy_angle_error_deg=float(np.degrees(np.median(np.abs(plain_angles - np.abs(angle))))),
    )


def search_inplane_angle(
    q: np.ndarray,
    score: Callable[[np.ndarray], float],
    coarse_step_deg: float = 6.0,
    fine_step_deg: float = 0.5,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[float, list[tuple[float, float]]]:
    """Find α in [0, π) maximizing ``score(R_z(α) q)``: a coarse grid, then a fine grid around the best.

    Returns ``(alpha_rad, [(alpha_rad, score), ...])`` for every evaluated angle.
    """
    coarse = np.deg2rad(np.arange(0.0, 180.0, coarse_step_deg))
    fine_offsets = np.deg2rad(np.arange(-coarse_step_deg, coarse_step_deg + 1e-9, fine_step_deg))
    total = len(coarse) + len(fine_offsets)
    evaluated: list[tuple[float, float]] = []
    for k, a in enumerate(coarse):
        evaluated.append((float(a), score(rotate_about_z(q, a))))
        if progress:
            progress(k + 1, total)
    best = max(evaluated, key=lambda t: t[1])[0]
    for k, off in enumerate(fine_offsets):
        a = float((best + off) % np.pi)
        if off != 0:
            evaluated.append((a, score(rotate_about_z(q, a))))
        if progress:
            progress(len(coarse) + k + 1, total)
    return max(evaluated, key=lambda t: t[1])[0], evaluated


def resolve_gauge(
    q_images: np.ndarray,
    q_copies: np.ndarray,
    src: np.ndarray,
    angle: np.ndarray,
    score: Callable[[np.ndarray], float],
    progress: Callable[[int, int], None] | None = None,
) -> GaugeResult:
    """The whole gauge resolution: inversion and beam axis from the copies, then α by maximizing ``score``.

    ``score(q)`` rates orientations of the images by reconstruction consistency (higher is better);
    ``progress(done, total)`` follows the α search.
    """
    g = fix_beam_axis(q_images, q_copies, src, angle)
    alpha, scores = search_inplane_angle(g.quaternions, score, progress=progress)
    g.quaternions = rotate_about_z(g.quaternions, alpha)
    g.alpha_rad, g.alpha_scores = alpha, scores
    return g

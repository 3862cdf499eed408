"""Put a symmetric density in the symmetry frame of its declared point group (RELION convention).

Symmetry-aware distances (:mod:`orirec.geometry.symmetry`) assume the n-fold axis is the particle z axis
and, for Dn, a 2-fold axis is x. Deposited models are rarely in that frame (a PDB dimer's 2-fold points
anywhere), so a declared group is located in the density: every symmetry axis of a point group passes
through the centre of mass and is a principal axis of the inertia tensor, so the n-fold axis is searched
among the three principal axes (when extra density tilts them, by a scan of the hemisphere and a local
refinement), and a Dn's in-plane 2-fold by a 1-D angle search; each
candidate is scored by the correlation of the volume with its rotated copies (the n-fold first, then the
2-fold alone, so the search costs a few dozen rotations of the volume). The volume is then rotated
(cubic spline) so that the axes fall on z (and x). A group that the density does not have is refused.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import affine_transform, gaussian_filter, zoom

from orirec.geometry import group_quaternions, parse_symmetry, quat_to_matrix

__all__ = ["MIN_SYMMETRY_CORRELATION", "align_to_symmetry", "rotate_volume", "symmetry_correlation"]

#: A volume "has" a group when its detail (:func:`_detail`) correlates at least this well with each of its
#: rotated copies. Measured: exact C2/C4/D2/D7 assemblies 0.97-1.0 after alignment (linear interpolation),
#: asymmetric pseudo-proteins 0.1-0.25 (the raw low-resolution blob would give 0.7: its envelope dominates).
MIN_SYMMETRY_CORRELATION = 0.85

#: Width (px) of the Gaussian subtracted to keep only the density's detail when scoring a symmetry.
_DETAIL_SIGMA_PX = 1.5

_XYZ_TO_ZYX = np.array([[0, 0, 1], [0, 1, 0], [1, 0, 0]], dtype=np.float64)


def rotate_volume(volume: np.ndarray, R: np.ndarray, order: int = 3) -> np.ndarray:
    """The volume rotated by ``R`` (acting on (x, y, z) about voxel L//2): ``out(x) = volume(R^T x)``.

    ``volume`` is indexed ``[z, y, x]``; values outside the box are 0.
    """
    c = np.full(3, volume.shape[0] // 2, dtype=np.float64)
    M = _XYZ_TO_ZYX @ np.asarray(R, dtype=np.float64).T @ _XYZ_TO_ZYX
    out = affine_transform(volume.astype(np.float64), M, offset=c - M @ c, order=order, mode="constant", cval=0.0)
    return out.astype(np.float32)


def _cc(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    return float((a * b).sum() / max(np.sqrt((a * a).sum() * (b * b).sum()), 1e-30))


def _detail(volume: np.ndarray) -> np.ndarray:
    """The volume minus a Gaussian blur of it: its detail, without the envelope that every blob shares."""
    v = volume.astype(np.float64)
    return v - gaussian_filter(v, _DETAIL_SIGMA_PX)


def symmetry_correlation(volume: np.ndarray, group: str, frame: np.ndarray | None = None) -> float:
    """Smallest correlation of the volume's detail with its copies rotated by the group's elements (1 = exact).

    ``frame`` (3x3, optional) expresses the group in other axes: the elements tested are ``F^T g F``.
    """
    return _group_cc(_detail(volume), group, frame)


def _group_cc(detail: np.ndarray, group: str, frame: np.ndarray | None = None) -> float:
    G = quat_to_matrix(group_quaternions(group))[1:]
    if len(G) == 0:
        return 1.0
    F = np.eye(3) if frame is None else np.asarray(frame, dtype=np.float64)
    return min(_cc(detail, rotate_volume(detail, F.T @ g @ F, order=1)) for g in G)


def _principal_axes(volume: np.ndarray) -> np.ndarray:
    """(3, 3) principal axes (rows, unit (x, y, z)) of the positive density about the box centre."""
    w = np.clip(volume, 0.0, None).astype(np.float64).ravel()
    idx = np.indices(volume.shape).reshape(3, -1)[::-1].astype(np.float64) - volume.shape[0] // 2  # (x, y, z)
    c = (idx * w).sum(1) / w.sum()
    d = idx - c[:, None]
    _, vec = np.linalg.eigh((d * w) @ d.T)
    return vec.T


def _frame(z: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Rotation whose rows are the new x, y, z axes: ``F @ z = e_z`` and ``F @ x`` is along e_x."""
    z = z / np.linalg.norm(z)
    x = x - np.dot(x, z) * z
    x /= np.linalg.norm(x)
    return np.stack([x, np.cross(z, x), z])


def _generator_cc(detail: np.ndarray, axis: np.ndarray, n: int) -> float:
    """Correlation of ``detail`` with its copy rotated by 2 pi / n about ``axis``."""
    F = _frame(axis, _any_perpendicular(axis))
    return _cc(detail, rotate_volume(detail, F.T @ _rotz(2 * np.pi / n) @ F, order=1))


def _any_perpendicular(z: np.ndarray) -> np.ndarray:
    return np.cross(z, [1.0, 0.0, 0.0] if abs(z[0]) < 0.9 else [0.0, 1.0, 0.0])


def _search_axis(volume: np.ndarray, detail: np.ndarray, n: int, n_directions: int = 400) -> np.ndarray:
    """Frame of the best n-fold axis: a coarse scan of the hemisphere on a volume of at most 32 px, then
    a greedy local refinement (steps of 4, 2, 1, 0.5 degrees) at full size."""
    L = volume.shape[0]
    if L > 32:
        small = zoom(volume.astype(np.float64), 32 / L, order=1)
        coarse = small - gaussian_filter(small, _DETAIL_SIGMA_PX)
    else:
        coarse = detail
    k = np.arange(n_directions) + 0.5
    z = k / n_directions  # Fibonacci points on the upper hemisphere (an axis and its opposite are the same)
    phi = np.pi * (1 + 5**0.5) * k
    dirs = np.stack([np.sqrt(1 - z**2) * np.cos(phi), np.sqrt(1 - z**2) * np.sin(phi), z], axis=1)
    scores = np.array([_generator_cc(coarse, d, n) for d in dirs])
    axis = dirs[int(np.argmax(scores))]
    score = _generator_cc(detail, axis, n)
    for step in np.deg2rad([4.0, 2.0, 1.0, 0.5]):
        improved = True
        while improved:
            improved = False
            e1 = _any_perpendicular(axis)
            e1 /= np.linalg.norm(e1)
            e2 = np.cross(axis, e1)
            for d in (e1, -e1, e2, -e2):
                trial = axis * np.cos(step) + d * np.sin(step)
                if (c := _generator_cc(detail, trial, n)) > score:
                    axis, score, improved = trial, c, True
    return _frame(axis, _any_perpendicular(axis))


def _rotz(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def align_to_symmetry(volume: np.ndarray, group: str, name: str = "volume") -> tuple[np.ndarray, np.ndarray, float]:
    """``(aligned, R, cc)``: the volume in its symmetry frame, the rotation applied, and its symmetry score.

    ``R`` maps old particle coordinates to new ones (``aligned(R x) = volume(x)``); it is the identity when
    the volume already has the group in the standard frame. ``cc`` is :func:`symmetry_correlation` of
    the result. Raises ValueError naming ``name`` when no frame reaches :data:`MIN_SYMMETRY_CORRELATION`.
    """
    kind, n = parse_symmetry(group)
    if kind == "C" and n == 1:
        return volume, np.eye(3), 1.0
    detail = _detail(volume)
    cc = _group_cc(detail, group)
    if cc >= MIN_SYMMETRY_CORRELATION:
        return volume, np.eye(3), cc
    # the n-fold axis: the principal axis with the best Cn score (for D2, any of the three 2-folds)
    axes = _principal_axes(volume)
    frames = [_frame(axes[i], axes[(i + 1) % 3]) for i in range(3)]
    scores = [_group_cc(detail, f"C{n}", F) for F in frames]
    best = frames[int(np.argmax(scores))]
    if max(scores) < MIN_SYMMETRY_CORRELATION:  # extra density (ligands, loose ends) tilted the inertia axes
        best = _search_axis(volume, detail, n)
    if kind == "D":  # a 2-fold in the plane perpendicular to z: 1-D search of its angle, then refine
        flip = np.diag([1.0, -1.0, -1.0])  # pi about x

        def flip_cc(F: np.ndarray) -> float:
            return _cc(detail, rotate_volume(detail, F.T @ flip @ F, order=1))

        step = np.pi / n / 24
        angles = np.arange(24) * step
        a0 = angles[int(np.argmax([flip_cc(_rotz(a) @ best) for a in angles]))]
        fine = a0 + np.linspace(-step, step, 9)
        best = _rotz(fine[int(np.argmax([flip_cc(_rotz(a) @ best) for a in fine]))]) @ best
    best_cc = _group_cc(detail, group, best)
    if best_cc < MIN_SYMMETRY_CORRELATION:
        raise ValueError(
            f"{name}: declared symmetry {group} not found in the density (best correlation {best_cc:.2f} "
            f"< {MIN_SYMMETRY_CORRELATION}); declare C1 or fix the symmetry"
        )
    aligned = rotate_volume(volume, best)
    return aligned, best, symmetry_correlation(aligned, group)

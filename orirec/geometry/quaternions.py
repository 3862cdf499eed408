"""Unit quaternions and rotation matrices (numpy, float64, broadcast over leading dimensions).

Conventions (DESIGN §2): quaternions are scalar-first ``(w, x, y, z)``, unit, canonical with ``w >= 0``.
A rotation matrix ``R`` maps particle (volume) coordinates to the microscope frame; the quaternion
``q`` and ``-q`` represent the same rotation. Angles are in radians.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "as_quaternions",
    "as_rotations",
    "canonicalize",
    "conjugate",
    "matrix_to_quat",
    "multiply",
    "normalize",
    "pairwise_quat_distance",
    "project_to_so3",
    "quat_distance",
    "quat_to_matrix",
    "rotation_angle",
    "viewing_direction",
]

Array = NDArray[np.float64]


def as_quaternions(q: ArrayLike, name: str = "q") -> Array:
    """Return ``q`` as a float64 array of shape (..., 4) with finite values, or raise ValueError."""
    arr = np.asarray(q, dtype=np.float64)
    if arr.ndim < 1 or arr.shape[-1] != 4:
        raise ValueError(f"{name}: expected quaternions of shape (..., 4), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: contains non-finite values")
    return arr


def as_rotations(R: ArrayLike, name: str = "R") -> Array:
    """Return ``R`` as a float64 array of shape (..., 3, 3) with finite values, or raise ValueError."""
    arr = np.asarray(R, dtype=np.float64)
    if arr.ndim < 2 or arr.shape[-2:] != (3, 3):
        raise ValueError(f"{name}: expected matrices of shape (..., 3, 3), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: contains non-finite values")
    return arr


def normalize(q: ArrayLike) -> Array:
    """Scale quaternions (..., 4) to unit norm; raises ValueError on a zero quaternion."""
    q = as_quaternions(q)
    norm = np.linalg.norm(q, axis=-1, keepdims=True)
    if np.any(norm == 0):
        raise ValueError("q: contains a zero quaternion, which cannot be normalized")
    return q / norm


def canonicalize(q: ArrayLike, tol: float = 1e-12) -> Array:
    """Unit quaternions (..., 4) in canonical sign: the first of (w, x, y, z) with ``|c| > tol`` is positive.

    This is ``w > 0`` whenever ``|w| > tol``. For ``|w| <= tol`` (rotations by pi, where the sign of w is
    rounding noise) the sign is fixed by the first of (x, y, z) above ``tol``, and a remaining negative
    ``w`` (of size <= tol) is set to 0, so the output always has ``w >= 0`` and
    ``canonicalize(q) == canonicalize(-q)``.
    """
    q = normalize(q)
    first = np.argmax(np.abs(q) > tol, axis=-1)[..., None]
    sign = np.where(np.take_along_axis(q, first, axis=-1) < 0, -1.0, 1.0)
    out = q * sign
    out[..., 0] = np.maximum(out[..., 0], 0.0)
    return out


def conjugate(q: ArrayLike) -> Array:
    """Quaternion conjugate ``(w, -x, -y, -z)``; for unit quaternions the inverse rotation."""
    q = as_quaternions(q)
    return q * np.array([1.0, -1.0, -1.0, -1.0])


def multiply(q1: ArrayLike, q2: ArrayLike) -> Array:
    """Hamilton product ``q1 * q2`` (broadcast); ``quat_to_matrix(q1*q2) == R(q1) @ R(q2)``."""
    a = as_quaternions(q1, "q1")
    b = as_quaternions(q2, "q2")
    w1, x1, y1, z1 = np.moveaxis(a, -1, 0)
    w2, x2, y2, z2 = np.moveaxis(b, -1, 0)
    return np.stack(
        [
            w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
            w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
            w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
            w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2,
        ],
        axis=-1,
    )


def quat_to_matrix(q: ArrayLike) -> Array:
    """Rotation matrices (..., 3, 3) of quaternions (..., 4) (normalized first; sign does not matter)."""
    w, x, y, z = np.moveaxis(normalize(q), -1, 0)
    R = np.stack(
        [
            1 - 2 * (y * y + z * z),
            2 * (x * y - w * z),
            2 * (x * z + w * y),
            2 * (x * y + w * z),
            1 - 2 * (x * x + z * z),
            2 * (y * z - w * x),
            2 * (x * z - w * y),
            2 * (y * z + w * x),
            1 - 2 * (x * x + y * y),
        ],
        axis=-1,
    )
    return R.reshape(R.shape[:-1] + (3, 3))


def matrix_to_quat(R: ArrayLike) -> Array:
    """Canonical unit quaternions (..., 4) of rotation matrices (..., 3, 3).

    Shepperd/Markley: the quaternion is built from the largest of (trace, R00, R11, R22), which keeps the
    division well conditioned for every rotation. Slightly non-orthogonal input gives the quaternion of a
    nearby rotation (use ``project_to_so3`` first for strongly perturbed matrices).
    """
    R = as_rotations(R)
    m = R.reshape(R.shape[:-2] + (9,))
    r00, r01, r02, r10, r11, r12, r20, r21, r22 = np.moveaxis(m, -1, 0)
    tr = r00 + r11 + r22
    # Four candidate (unnormalized) quaternions, each 4*(one component) times the quaternion.
    cands = np.stack(
        [
            np.stack([1 + tr, r21 - r12, r02 - r20, r10 - r01], axis=-1),
            np.stack([r21 - r12, 1 + r00 - r11 - r22, r01 + r10, r02 + r20], axis=-1),
            np.stack([r02 - r20, r01 + r10, 1 - r00 + r11 - r22, r12 + r21], axis=-1),
            np.stack([r10 - r01, r02 + r20, r12 + r21, 1 - r00 - r11 + r22], axis=-1),
        ],
        axis=-2,
    )
    choice = np.argmax(np.stack([tr, r00, r11, r22], axis=-1), axis=-1)
    q = np.take_along_axis(cands, choice[..., None, None], axis=-2)[..., 0, :]
    return canonicalize(q)


def _quat_angle_stable(q1: Array, q2: Array) -> Array:
    """2*arccos|<q1,q2>| for unit quaternions, via the well-conditioned atan2 of chord lengths."""
    s = np.where(np.sum(q1 * q2, axis=-1, keepdims=True) < 0, -1.0, 1.0)
    minus = np.linalg.norm(q1 - s * q2, axis=-1)
    plus = np.linalg.norm(q1 + s * q2, axis=-1)
    return 4.0 * np.arctan2(minus, plus)


def quat_distance(q1: ArrayLike, q2: ArrayLike) -> Array:
    """Geodesic distance ``d_q = 2 arccos|<q1, q2>|`` in [0, pi] rad (broadcast over leading dims).

    Equals the rotation angle of ``R1^T R2``. Inputs are normalized; the value is computed as
    ``4 atan2(|q1 - s q2|, |q1 + s q2|)`` with ``s = sign<q1,q2>``, which equals the arccos form but stays
    accurate near 0 (where arccos loses half the digits).
    """
    a = normalize(as_quaternions(q1, "q1"))
    b = normalize(as_quaternions(q2, "q2"))
    a, b = np.broadcast_arrays(a, b)
    return _quat_angle_stable(a, b)


def pairwise_quat_distance(q: ArrayLike) -> Array:
    """All pairwise ``d_q`` (rad) of quaternions (n, 4) as an (n, n) matrix with an exact zero diagonal."""
    q = normalize(q)
    if q.ndim != 2:
        raise ValueError(f"q: expected shape (n, 4), got {q.shape}")
    g = np.clip(np.abs(q @ q.T), 0.0, 1.0)
    d = 2.0 * np.arccos(g)
    np.fill_diagonal(d, 0.0)
    return d


def rotation_angle(R1: ArrayLike, R2: ArrayLike) -> Array:
    """Geodesic angle (rad, in [0, pi]) between rotation matrices: the rotation angle of ``R1^T R2``.

    Uses ``atan2(sin, cos)`` with ``cos = (tr M - 1)/2`` and ``sin = |vee(M - M^T)|/2``, accurate at every
    angle (the plain arccos form loses precision near 0 and pi).
    """
    A = as_rotations(R1, "R1")
    B = as_rotations(R2, "R2")
    M = np.swapaxes(A, -1, -2) @ B
    cos = (np.trace(M, axis1=-2, axis2=-1) - 1.0) / 2.0
    v = np.stack([M[..., 2, 1] - M[..., 1, 2], M[..., 0, 2] - M[..., 2, 0], M[..., 1, 0] - M[..., 0, 1]], -1)
    sin = np.linalg.norm(v, axis=-1) / 2.0
    return np.arctan2(sin, cos)


def project_to_so3(M: ArrayLike) -> Array:
    """Nearest rotation (Frobenius norm) to each 3x3 matrix (..., 3, 3): SVD with a determinant fix."""
    M = as_rotations(M, "M")
    U, _, Vt = np.linalg.svd(M)
    d = np.where(np.linalg.det(U @ Vt) < 0, -1.0, 1.0)
    U = U.copy()
    U[..., :, 2] *= d[..., None]
    return U @ Vt


def viewing_direction(q: ArrayLike) -> Array:
    """Unit viewing direction (..., 3) in the particle frame: ``R^T e_z``, the beam axis seen by the particle.

    For RELION Euler angles this is ``(sin tilt cos rot, sin tilt sin rot, cos tilt)``.
    """
    R = quat_to_matrix(q)
    return R[..., 2, :]


def orientation_features(q: np.ndarray) -> np.ndarray:
    """Sign-invariant features (n, 10) of unit quaternions: the entries of q qᵀ on and above the diagonal,
    off-diagonal ones scaled by √2, so that the cosine similarity of two rows is <q1, q2>² (a monotone
    function of the geodesic distance). The oracle's stand-in for learned embeddings
    (its kNN graph and partitions)."""
    a, b = np.triu_indices(4)
    return (q[:, a] * q[:, b]) * np.where(a == b, 1.0, np.sqrt(2.0))


def z_rotation_quaternions(angle_rad: np.ndarray | float) -> np.ndarray:
    """Unit quaternions of ``R_z(φ)``, rotations by φ (rad) about the beam axis; shape (..., 4)."""
    half = np.asarray(angle_rad, dtype=np.float64) / 2
    zero = np.zeros_like(half)
    return np.stack([np.cos(half), zero, zero, np.sin(half)], axis=-1)


def rotate_about_z(q: np.ndarray, alpha_rad: float | np.ndarray) -> np.ndarray:
    """Left-multiply orientations by ``R_z(α)`` (a rotation of the detector frame about the beam)."""
    return canonicalize(multiply(z_rotation_quaternions(alpha_rad), q))

"""RELION ZYZ Euler angles ``(rot, tilt, psi)`` in radians (DESIGN §2).

The matrix is ``A = Rz(-psi) @ Ry(-tilt) @ Rz(-rot)`` with active ``Rz``/``Ry``; it maps particle coordinates
to the microscope frame, so the viewing direction in the particle frame is
``A^T e_z = (sin tilt cos rot, sin tilt sin rot, cos tilt)``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from orirec.geometry.quaternions import as_rotations, matrix_to_quat, quat_to_matrix

__all__ = ["GIMBAL_EPS", "euler_to_matrix", "euler_to_quat", "matrix_to_euler", "quat_to_euler"]

Array = NDArray[np.float64]

#: |sin tilt| below which a matrix is treated as gimbal-locked (tilt 0 or pi).
GIMBAL_EPS = 1e-12


def _angles(rot: ArrayLike, tilt: ArrayLike, psi: ArrayLike) -> tuple[Array, Array, Array]:
    out = []
    for name, a in (("rot", rot), ("tilt", tilt), ("psi", psi)):
        arr = np.asarray(a, dtype=np.float64)
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name}: contains non-finite values")
        out.append(arr)
    try:
        return tuple(np.broadcast_arrays(*out))  # type: ignore[return-value]
    except ValueError as exc:
        raise ValueError(f"rot, tilt, psi: shapes do not broadcast ({exc})") from None


def euler_to_matrix(rot: ArrayLike, tilt: ArrayLike, psi: ArrayLike) -> Array:
    """RELION rotation matrices (..., 3, 3) from ZYZ angles (rad), broadcast over the angle shapes."""
    rot, tilt, psi = _angles(rot, tilt, psi)
    ca, sa = np.cos(rot), np.sin(rot)
    cb, sb = np.cos(tilt), np.sin(tilt)
    cg, sg = np.cos(psi), np.sin(psi)
    A = np.stack(
        [
            cg * cb * ca - sg * sa,
            cg * cb * sa + sg * ca,
            -cg * sb,
            -sg * cb * ca - cg * sa,
            -sg * cb * sa + cg * ca,
            sg * sb,
            sb * ca,
            sb * sa,
            cb,
        ],
        axis=-1,
    )
    return A.reshape(A.shape[:-1] + (3, 3))


def _rz(a: Array) -> Array:
    c, s = np.cos(a), np.sin(a)
    z, o = np.zeros_like(a), np.ones_like(a)
    return np.stack([c, -s, z, s, c, z, z, z, o], axis=-1).reshape(a.shape + (3, 3))


def _ry(b: Array) -> Array:
    c, s = np.cos(b), np.sin(b)
    z, o = np.zeros_like(b), np.ones_like(b)
    return np.stack([c, z, s, z, o, z, -s, z, c], axis=-1).reshape(b.shape + (3, 3))


def _wrap(a: Array) -> Array:
    """Map angles from atan2's [-pi, pi] onto (-pi, pi]."""
    return np.where(a <= -np.pi, a + 2 * np.pi, a)


def matrix_to_euler(R: ArrayLike, eps: float = GIMBAL_EPS) -> tuple[Array, Array, Array]:
    """RELION ZYZ angles ``(rot, tilt, psi)`` (rad) of rotation matrices (..., 3, 3).

    Ranges: rot, psi in (-pi, pi], tilt in [0, pi]. ``tilt`` comes from the third row (the viewing
    direction) and ``rot`` from its azimuth; ``psi`` is then read from ``A @ Rz(rot) @ Ry(tilt) = Rz(-psi)``,
    which stays exact near gimbal lock. Gimbal lock (``|sin tilt| < eps``, tilt 0 or pi): only rot+psi
    (tilt 0) or rot-psi (tilt pi) is defined; we choose ``psi = 0`` and put the whole in-plane angle into
    ``rot``. ``euler_to_matrix(*matrix_to_euler(R))`` reproduces ``R`` in every case.
    """
    A = as_rotations(R)
    sb = np.hypot(A[..., 2, 0], A[..., 2, 1])
    tilt = np.arctan2(sb, A[..., 2, 2])
    locked = sb < eps
    rot = np.where(locked, 0.0, np.arctan2(A[..., 2, 1], A[..., 2, 0]))
    # Non-locked: Rz(-psi) = A Rz(rot) Ry(tilt); locked (psi = 0): Rz(-rot) = Ry(tilt) A.
    M_psi = A @ _rz(rot) @ _ry(tilt)
    M_rot = _ry(tilt) @ A
    psi = np.where(locked, 0.0, np.arctan2(M_psi[..., 0, 1], M_psi[..., 0, 0]))
    rot = np.where(locked, np.arctan2(M_rot[..., 0, 1], M_rot[..., 0, 0]), rot)
    return _wrap(rot), np.asarray(tilt, dtype=np.float64), _wrap(psi)


def euler_to_quat(rot: ArrayLike, tilt: ArrayLike, psi: ArrayLike) -> Array:
    """Canonical quaternions (..., 4) of RELION ZYZ angles (rad)."""
    return matrix_to_quat(euler_to_matrix(rot, tilt, psi))


def quat_to_euler(q: ArrayLike, eps: float = GIMBAL_EPS) -> tuple[Array, Array, Array]:
    """RELION ZYZ angles ``(rot, tilt, psi)`` (rad) of quaternions (..., 4); see ``matrix_to_euler``."""
    return matrix_to_euler(quat_to_matrix(q), eps=eps)

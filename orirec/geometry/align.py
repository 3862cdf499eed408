"""Deterministic alignment of estimated orientations to a reference (DESIGN §1.3 and §6).

Pairwise distances ``d_q`` fix orientations only up to ``R -> A R B`` and ``R -> A R^T B`` (on quaternions:
all of O(4)). ``align_o4`` removes that whole group (the published protocol, ``err_o4``);
``register_rotation`` removes only the physically harmless part, a global rotation of the particle
``R -> R B`` and the mirror ``R -> J R J`` with ``J = diag(1, 1, -1)`` (``err_rot``). Both are closed form
(least squares / orthogonal Procrustes on rotation matrices, which carry no sign ambiguity) followed, for
O(4), by alternating-Procrustes refinement. The Frobenius residual of one image is at most 8, so a few
outliers have bounded influence.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from orirec.geometry.quaternions import as_quaternions, matrix_to_quat, project_to_so3, quat_to_matrix

__all__ = ["align_o4", "apply_o4", "register_rotation"]

Array = NDArray[np.float64]
_J = np.diag([1.0, 1.0, -1.0])


def _pair(q_est: ArrayLike, q_ref: ArrayLike) -> tuple[Array, Array]:
    a = as_quaternions(q_est, "q_est")
    b = as_quaternions(q_ref, "q_ref")
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"q_est, q_ref: expected matching shapes (n, 4), got {a.shape} and {b.shape}")
    if a.shape[0] == 0:
        raise ValueError("q_est, q_ref: need at least one orientation")
    if np.any(np.linalg.norm(a, axis=1) == 0) or np.any(np.linalg.norm(b, axis=1) == 0):
        raise ValueError("q_est, q_ref: contain a zero quaternion")
    return quat_to_matrix(a), quat_to_matrix(b)


def _residual(Y: Array, Z: Array) -> float:
    """Sum of squared Frobenius distances between stacks of matrices."""
    return float(np.sum((Y - Z) ** 2))


def _kron_init(X: Array, Y: Array) -> tuple[Array, Array]:
    """Closed-form start for ``Y_i ~ A X_i B``: least squares for the 9x9 map, nearest Kronecker product.

    With row-major vec, ``vec(A X B) = (A kron B^T) vec(X)``. The rearranged map ``K[(i,k),(j,l)] =
    A_ik B_lj`` has rank one (Van Loan-Pitsianis); its top singular pair gives ``A`` and ``B^T`` up to a
    common scale and sign, fixed by ``det A > 0`` (``(-A) X (-B) = A X B``), then projected onto SO(3).
    """
    n = X.shape[0]
    x = X.reshape(n, 9)
    y = Y.reshape(n, 9)
    Kt, *_ = np.linalg.lstsq(x, y, rcond=1e-10)  # y ~ x @ K^T
    K = Kt.T.reshape(3, 3, 3, 3).transpose(0, 2, 1, 3).reshape(9, 9)
    U, S, Vt = np.linalg.svd(K)
    A0 = U[:, 0].reshape(3, 3) * np.sqrt(S[0])
    B0 = Vt[0].reshape(3, 3).T * np.sqrt(S[0])
    if np.linalg.det(A0) < 0:
        A0, B0 = -A0, -B0
    return project_to_so3(A0), project_to_so3(B0)


def _refine(X: Array, Y: Array, A: Array, B: Array, max_iter: int, tol: float) -> tuple[Array, Array, float]:
    """Alternating orthogonal Procrustes for ``min_{A,B in SO(3)} sum ||Y_i - A X_i B||^2``.

    Works on the 81 sufficient statistics ``T[i,j,k,l] = sum_n Y_nij X_nkl``, so an iteration costs O(1)
    in the number of images; stops when A and B move less than ``tol`` (max abs entry change).
    """
    n = X.shape[0]
    T = (Y.reshape(n, 9).T @ X.reshape(n, 9)).reshape(3, 3, 3, 3)
    for _ in range(max_iter):
        A_new = project_to_so3(np.einsum("ijkl,lj->ik", T, B))
        B_new = project_to_so3(np.einsum("jm,jkmi->ik", A_new, T))
        step = max(np.abs(A_new - A).max(), np.abs(B_new - B).max())
        A, B = A_new, B_new
        if step <= tol:
            break
    return A, B, _residual(Y, A @ X @ B)


def apply_o4(q: ArrayLike, A: ArrayLike, B: ArrayLike, transposed: bool) -> Array:
    """Apply an O(4) gauge to quaternions (n, 4): ``R -> A R B`` (or ``A R^T B``); canonical output."""
    R = quat_to_matrix(as_quaternions(q))
    if transposed:
        R = np.swapaxes(R, -1, -2)
    return matrix_to_quat(np.asarray(A) @ R @ np.asarray(B))


def align_o4(
    q_est: ArrayLike, q_ref: ArrayLike, max_iter: int = 500, tol: float = 1e-14
) -> tuple[Array, dict[str, Any]]:
    """Best O(4) alignment of estimated quaternions (n, 4) onto reference quaternions (n, 4).

    Finds ``A, B`` in SO(3) and ``transposed`` minimizing ``sum_i ||R_ref_i - A S_i B||_F^2`` with
    ``S_i = R_est_i`` or ``R_est_i^T`` (both branches solved: Kronecker least-squares start, then
    alternating Procrustes; the lower residual wins). Deterministic. With n <= 3 orientations (or a
    degenerate set) both branches can fit exactly and ``transposed`` is not identifiable.

    Returns ``(q_aligned, info)``: canonical aligned quaternions (n, 4) and ``info`` with ``A``, ``B``
    (3x3), ``transposed`` (bool) and ``residual`` (sum of squared Frobenius residuals).
    """
    X, Y = _pair(q_est, q_ref)
    best: tuple[float, Array, Array, bool] | None = None
    for transposed in (False, True):
        S = np.swapaxes(X, -1, -2) if transposed else X
        A, B = _kron_init(S, Y)
        A, B, res = _refine(S, Y, A, B, max_iter, tol)
        if best is None or res < best[0]:
            best = (res, A, B, transposed)
    res, A, B, transposed = best  # type: ignore[misc]
    S = np.swapaxes(X, -1, -2) if transposed else X
    q_aligned = matrix_to_quat(A @ S @ B)
    return q_aligned, {"A": A, "B": B, "transposed": transposed, "residual": res}


def register_rotation(q_est: ArrayLike, q_ref: ArrayLike) -> tuple[Array, dict[str, Any]]:
    """Register estimated quaternions (n, 4) to a reference by the real gauge only.

    The gauge is a global rotation of the particle, ``R_i -> R_i B``, and handedness, ``R_i -> J R_i J`` with
    ``J = diag(1, 1, -1)`` (the mirrored map gives the same images). ``B`` is the closed-form orthogonal
    Procrustes solution of ``min sum ||R_ref_i - S_i B||^2`` for ``S_i = R_est_i`` and ``S_i = J R_est_i J``;
    the lower residual wins. A rotation of the detector frame (``R -> A R``) is NOT removed.

    Returns ``(q_registered, info)`` with ``info``: ``B`` (3x3), ``mirrored`` (bool), ``residual``.
    """
    X, Y = _pair(q_est, q_ref)
    best: tuple[float, Array, bool] | None = None
    for mirrored in (False, True):
        S = _J @ X @ _J if mirrored else X
        B = project_to_so3(np.einsum("nji,njk->ik", S, Y))
        res = _residual(Y, S @ B)
        if best is None or res < best[0]:
            best = (res, B, mirrored)
    res, B, mirrored = best  # type: ignore[misc]
    S = _J @ X @ _J if mirrored else X
    return matrix_to_quat(S @ B), {"B": B, "mirrored": mirrored, "residual": res}

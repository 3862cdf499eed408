"""Orientation and distance error metrics (DESIGN §6). Angles out are in degrees unless named otherwise."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from orirec.geometry import (
    align_o4,
    group_quaternions,
    multiply,
    quat_distance,
    quat_to_matrix,
    register_rotation,
    symmetry_order,
    viewing_direction,
)

__all__ = ["distance_metrics", "orientation_errors", "orientation_metrics", "symmetric_reference"]

Array = NDArray[np.float64]


def _check_quats(q_est: ArrayLike, q_ref: ArrayLike) -> tuple[Array, Array]:
    a = np.asarray(q_est, dtype=np.float64)
    b = np.asarray(q_ref, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] != 4:
        raise ValueError(f"q_est: expected shape (n, 4), got {a.shape}")
    if b.shape != a.shape:
        raise ValueError(f"q_ref: shape {b.shape} does not match q_est shape {a.shape}")
    if a.shape[0] == 0:
        raise ValueError("q_est: need at least one orientation")
    for name, arr in (("q_est", a), ("q_ref", b)):
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name}: contains non-finite values")
        if np.any(np.linalg.norm(arr, axis=1) == 0):
            raise ValueError(f"{name}: contains a zero quaternion")
    return a, b


def symmetric_reference(q_est: ArrayLike, q_ref: ArrayLike, symmetry: str | None = "C1", anchors: int = 16) -> Array:
    """The copy ``q_ref_i ∘ g_i`` of each reference orientation, ``g_i`` in the point group, that the estimate
    matches: for a symmetric particle every copy gives the same image, so an estimator may return any of them.

    The gauge (a global rotation ``B`` and handedness) is found first by consensus: each of ``anchors`` images
    and each copy of its reference proposes the ``B`` that makes them agree, and the proposal under which most
    images lie within 20° of some copy wins. Then each image's nearest copy and the gauge registration
    (:func:`~orirec.geometry.register_rotation`) alternate until the choice stops changing. C1 returns
    ``q_ref`` as it is.
    """
    a, b = _check_quats(q_est, q_ref)
    if symmetry_order(symmetry) == 1:
        return b
    n = len(b)
    copies = multiply(b[:, None, :], group_quaternions(symmetry)[None])  # (n, |G|, 4)
    X, Y = quat_to_matrix(a), quat_to_matrix(copies)
    J = np.diag([1.0, 1.0, -1.0])
    cos20 = np.cos(np.radians(20.0))
    best: tuple[int, Array | None] = (-1, None)
    for S in (X, J @ X @ J):
        for i in np.unique(np.linspace(0, n - 1, min(n, anchors)).astype(int)):
            for g in range(Y.shape[1]):
                cos = (np.einsum("nij,ngij->ng", S @ (S[i].T @ Y[i, g]), Y) - 1) / 2  # cos of each copy's error
                votes = int(np.sum(cos.max(1) > cos20))
                if votes > best[0]:
                    best = (votes, np.argmax(cos, axis=1))
    pick = best[1]
    assert pick is not None  # n >= 1 (checked), so some proposal got votes >= 0
    for _ in range(20):
        q_reg, _ = register_rotation(a, copies[np.arange(n), pick])
        new = np.argmin(quat_distance(q_reg[:, None, :], copies), axis=1)
        if np.array_equal(new, pick):
            break
        pick = new
    return copies[np.arange(n), pick]


def orientation_errors(q_est: ArrayLike, q_ref: ArrayLike, symmetry: str | None = "C1") -> dict[str, Array]:
    """Per-image orientation errors (degrees) of estimated vs reference quaternions, both (n, 4).

    - ``err_o4``: angle after the best O(4) alignment (``align_o4``; the published protocol).
    - ``err_rot``: angle after registration by a global particle rotation and handedness only
      (``register_rotation``; the real gauge, the number that matters).
    - ``err_dir``: angle between viewing directions ``R^T e_z`` after that registration.

    With a point group ``symmetry`` (e.g. "D2"), each reference is first replaced by its symmetry copy that
    the estimate matches (:func:`symmetric_reference`): orientations that differ by a symmetry operation
    give the same image and cannot be told apart.
    """
    a, b = _check_quats(q_est, q_ref)
    b = symmetric_reference(a, b, symmetry)
    q_o4, _ = align_o4(a, b)
    q_reg, _ = register_rotation(a, b)
    v_est = viewing_direction(q_reg)
    v_ref = viewing_direction(b)
    cross = np.linalg.norm(np.cross(v_est, v_ref), axis=-1)
    dot = np.sum(v_est * v_ref, axis=-1)
    return {
        "err_o4": np.rad2deg(quat_distance(q_o4, b)),
        "err_rot": np.rad2deg(quat_distance(q_reg, b)),
        "err_dir": np.rad2deg(np.arctan2(cross, dot)),
    }


def orientation_metrics(q_est: ArrayLike, q_ref: ArrayLike, symmetry: str | None = "C1") -> dict[str, float]:
    """Summary orientation metrics (degrees; accuracies as fractions in [0, 1]) as a flat dict.

    Keys: ``err_o4_median``, ``err_o4_mean``, ``err_rot_median``, ``err_rot_mean``, ``err_dir_median``,
    ``err_dir_mean``, ``acc10``, ``acc20`` (fraction of images with ``err_rot`` < 10 / 20 degrees), ``n``.
    ``symmetry``: the particle's point group (see :func:`orientation_errors`).
    """
    errs = orientation_errors(q_est, q_ref, symmetry)
    out: dict[str, float] = {}
    for key in ("err_o4", "err_rot", "err_dir"):
        out[f"{key}_median"] = float(np.median(errs[key]))
        out[f"{key}_mean"] = float(np.mean(errs[key]))
    out["acc10"] = float(np.mean(errs["err_rot"] < 10.0))
    out["acc20"] = float(np.mean(errs["err_rot"] < 20.0))
    out["n"] = int(errs["err_rot"].shape[0])
    return out


def distance_metrics(d_p: ArrayLike, d_q: ArrayLike, n_bins: int = 10) -> dict[str, float | Array]:
    """Quality of predicted distances ``d_p`` against true ``d_q`` (both rad, same shape, d_q in [0, pi]).

    Returns ``mae``, ``rmse``, ``bias`` (mean of ``d_p - d_q``; rad) overall, and per bin of ``d_q`` over
    ``n_bins`` equal bins of [0, pi]: ``bin_edges`` (n_bins + 1,), ``bin_mae``, ``bin_rmse``, ``bin_bias``
    (rad; NaN for empty bins) and ``bin_count`` (int). ``d_q == pi`` falls in the last bin.
    """
    p = np.asarray(d_p, dtype=np.float64)
    q = np.asarray(d_q, dtype=np.float64)
    if p.shape != q.shape:
        raise ValueError(f"d_p, d_q: shapes differ ({p.shape} vs {q.shape})")
    if p.size == 0:
        raise ValueError("d_p, d_q: empty input")
    if isinstance(n_bins, bool) or not isinstance(n_bins, int | np.integer) or n_bins < 1:
        raise ValueError(f"n_bins: expected a positive integer, got {n_bins!r}")
    for name, arr in (("d_p", p), ("d_q", q)):
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name}: contains non-finite values")
    tol = 1e-9
    if np.any(q < -tol) or np.any(q > np.pi + tol):
        raise ValueError(f"d_q: values must lie in [0, pi] rad, got range [{q.min():.6g}, {q.max():.6g}]")
    p, q = p.ravel(), np.clip(q.ravel(), 0.0, np.pi)
    err = p - q
    edges = np.linspace(0.0, np.pi, int(n_bins) + 1)
    idx = np.clip(np.searchsorted(edges, q, side="right") - 1, 0, n_bins - 1)
    count = np.bincount(idx, minlength=n_bins)
    abs_sum = np.bincount(idx, weights=np.abs(err), minlength=n_bins)
    sq_sum = np.bincount(idx, weights=err**2, minlength=n_bins)
    sum_ = np.bincount(idx, weights=err, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        safe = np.where(count > 0, count, np.nan)
        bin_mae = abs_sum / safe
        bin_rmse = np.sqrt(sq_sum / safe)
        bin_bias = sum_ / safe
    return {
        "mae": float(np.mean(np.abs(err))),
        "rmse": float(np.sqrt(np.mean(err**2))),
        "bias": float(np.mean(err)),
        "bin_edges": edges,
        "bin_mae": bin_mae,
        "bin_rmse": bin_rmse,
        "bin_bias": bin_bias,
        "bin_count": count.astype(np.int64),
    }

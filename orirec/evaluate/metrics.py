"""Orientation and distance error metrics (DESIGN §6). Angles out are in degrees unless named otherwise."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from orirec.geometry import align_o4, quat_distance, register_rotation, viewing_direction

__all__ = ["distance_metrics", "orientation_errors", "orientation_metrics"]

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


def orientation_errors(q_est: ArrayLike, q_ref: ArrayLike) -> dict[str, Array]:
    """Per-image orientation errors (degrees) of estimated vs reference quaternions, both (n, 4).

    - ``err_o4``: angle after the best O(4) alignment (``align_o4``; the published protocol).
    - ``err_rot``: angle after registration by a global particle rotation and handedness only
      (``register_rotation``; the real gauge, the number that matters).
    - ``err_dir``: angle between viewing directions ``R^T e_z`` after that registration.
    """
    a, b = _check_quats(q_est, q_ref)
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


def orientation_metrics(q_est: ArrayLike, q_ref: ArrayLike) -> dict[str, float]:
    """Summary orientation metrics (degrees; accuracies as fractions in [0, 1]) as a flat dict.

    Keys: ``err_o4_median``, ``err_o4_mean``, ``err_rot_median``, ``err_rot_mean``, ``err_dir_median``,
    ``err_dir_mean``, ``acc10``, ``acc20`` (fraction of images with ``err_rot`` < 10 / 20 degrees), ``n``.
    """
    errs = orientation_errors(q_est, q_ref)
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

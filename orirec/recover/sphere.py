"""Descent on the unit-quaternion sphere: orientations that minimize L_OR, from a start (spectral or a block's).

Not to be confused with projection-matching refinement (:mod:`orirec.estimators.projection_matching`), which
matches images against a map.

``L_OR = sum_e w_e rho(d_e - d_q(q_i[e], q_j[e]))`` with rho the squared error ('l2'), Huber or
Cauchy loss. The quaternion parameters are normalized inside the loss (so the loss lives on the
sphere) and renormalized after each step. Full-batch gradients are accumulated over edge chunks,
so large graphs fit in memory; the optimizer is L-BFGS (strong Wolfe line search) or Adam.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from orirec.config import RecoverConfig
from orirec.geometry import canonicalize

from .graph import validate_graph, validate_weights

_DEFAULTS = RecoverConfig()  # the recovery's defaults live in orirec.config

_EPS = 1e-30
DENSE_MAX = 3000  # largest n refined with n x n matrices (dense enough graphs only)


def torch_quat_distance(q1: torch.Tensor, q2: torch.Tensor) -> torch.Tensor:
    """Differentiable geodesic distance (rad) between unit quaternions (..., 4), stable near 0 and pi.

    ``d = 2 atan2(||v||, |s|)`` with ``(s, v)`` the relative quaternion ``conj(q1) q2``; equal to
    ``2 arccos |<q1, q2>|`` for unit inputs, with bounded gradients at both ends.
    """
    w1, v1 = q1[..., :1], q1[..., 1:]
    w2, v2 = q2[..., :1], q2[..., 1:]
    s = (q1 * q2).sum(-1)
    v = w1 * v2 - w2 * v1 - torch.linalg.cross(v1, v2, dim=-1)
    vn = torch.sqrt((v * v).sum(-1) + _EPS)
    return 2.0 * torch.atan2(vn, s.abs())


def _rho(r: torch.Tensor, loss: str, delta: float) -> torch.Tensor:
    """Per-edge loss of residuals r (rad); 'huber' and 'cauchy' behave like r^2 for |r| << delta."""
    if loss == "l2":
        return r * r
    if loss == "huber":
        a = r.abs()
        return torch.where(a <= delta, r * r, 2.0 * delta * a - delta * delta)
    if loss == "cauchy":
        return delta * delta * torch.log1p((r / delta) ** 2)
    raise ValueError(f"loss: unknown loss {loss!r} (expected 'l2', 'huber' or 'cauchy')")


def _chunks(m: int, size: int) -> list[slice]:
    return [slice(s, min(s + size, m)) for s in range(0, m, size)]


Objective = Callable[[bool], tuple[float, float]]
# An Objective returns (robust objective with weights summing to n, so that each quaternion's gradient is
# O(1); L_OR = weighted mean squared error in rad^2) and, when asked, leaves the objective's gradient
# in ``param.grad``.


def _dense_objective(
    param: torch.Tensor,
    i: np.ndarray,
    j: np.ndarray,
    d: np.ndarray,
    w: np.ndarray | None,
    loss: str,
    delta: float,
) -> Objective | None:
    """Objective on an n x n weight matrix (missing pairs weight 0): Gram-matrix form, matmul gradients.

    Uses ``d = 2 arccos(min(|<q_i, q_j>|, 1 - 1e-15))``: accurate to ~1e-8 rad for nearly equal
    orientations, which is far below any distance noise; much faster than per-edge gathers.
    Returns None when the edge list holds the same pair twice (the edge path handles that).
    """
    n = param.shape[0]
    seen = np.zeros((n, n), dtype=bool)
    seen[np.minimum(i, j), np.maximum(i, j)] = True
    if int(seen.sum()) != i.size:
        return None
    del seen
    wm = np.zeros((n, n))
    dm = np.zeros((n, n))
    wm[i, j] = 1.0 if w is None else w
    dm[i, j] = d
    tw = torch.from_numpy(wm * (n / wm.sum()))  # sums to n: O(1) gradients per quaternion
    td = torch.from_numpy(dm)

    def objective(backward: bool) -> tuple[float, float]:
        if backward:
            param.grad = None
        with torch.set_grad_enabled(backward):
            q = param / param.norm(dim=1, keepdim=True)
            c = torch.clamp((q @ q.T).abs(), max=1.0 - 1e-15)
            r = td - 2.0 * torch.arccos(c)
            obj = (tw * _rho(r, loss, delta)).sum()
            if backward:
                obj.backward()
        return float(obj.detach()), float((tw * r.detach() ** 2).sum()) / n

    return objective


def _edge_objective(
    param: torch.Tensor,
    i: np.ndarray,
    j: np.ndarray,
    d: np.ndarray,
    w: np.ndarray | None,
    loss: str,
    delta: float,
    chunk_size: int,
) -> Objective:
    """Objective over an edge list, full-batch gradient accumulated over chunks of ``chunk_size`` edges."""
    ti = torch.from_numpy(i)
    tj = torch.from_numpy(j)
    td = torch.from_numpy(d)
    tw = torch.ones_like(td) if w is None else torch.from_numpy(w)
    n = param.shape[0]
    tw = tw * (n / tw.sum())  # sums to n: O(1) gradients per quaternion
    chunks = _chunks(i.size, chunk_size)

    def objective(backward: bool) -> tuple[float, float]:
        total, l_or = 0.0, 0.0
        if backward:
            param.grad = torch.zeros_like(param)
        for sl in chunks:
            with torch.set_grad_enabled(backward):
                q = param / param.norm(dim=1, keepdim=True)
                r = td[sl] - torch_quat_distance(q.index_select(0, ti[sl]), q.index_select(0, tj[sl]))
                obj = (tw[sl] * _rho(r, loss, delta)).sum()
                if backward:
                    obj.backward()
            total += float(obj.detach())
            l_or += float((tw[sl] * r.detach() ** 2).sum())
        return total, l_or / n

    return objective


def l_or_value(q: np.ndarray, i: np.ndarray, j: np.ndarray, d: np.ndarray, weights: np.ndarray | None = None) -> float:
    """L_OR (rad^2) of quaternions ``q`` (n, 4): the weighted mean squared distance error over edges (i, j)."""
    q = np.asarray(q, dtype=np.float64)
    i, j, d = validate_graph(q.shape[0], i, j, d)
    w = validate_weights(weights, i.size)
    param = torch.from_numpy(q / np.linalg.norm(q, axis=1, keepdims=True))
    return _edge_objective(param, i, j, d, w, "l2", 1.0, 2_000_000)(False)[1]


def descend_on_sphere(
    q0: np.ndarray,
    i: np.ndarray,
    j: np.ndarray,
    d: np.ndarray,
    weights: np.ndarray | None = None,
    steps: int = _DEFAULTS.steps,
    loss: str = _DEFAULTS.loss,
    lr: float = 1.0,
    seed: int = 0,
    progress: Callable[[int, float], None] | None = None,
    optimizer: str = "lbfgs",
    delta: float = 0.2,
    chunk_size: int = 2_000_000,
    tol: float = 1e-14,
    fixed: np.ndarray | None = None,
) -> tuple[np.ndarray, list[float]]:
    """Refine unit quaternions ``q0`` (n, 4) to fit distances ``d`` (rad) on edges ``(i, j)``.

    Parameters
    ----------
    weights: per-edge weights (default uniform); see ``graph.distance_weights`` for weights that
        trust small distances more.
    steps: optimizer steps (each L-BFGS step may evaluate the loss a few times in its line search).
    loss: 'l2', 'huber' (default; quadratic below ``delta`` rad, linear above) or 'cauchy'.
    lr: step size (1.0 for L-BFGS, ~1e-2 for Adam).
    seed: seeds the torch generator (used only to break exact ties; the run is deterministic).
    progress: called as ``progress(step, l_or)`` after each step.
    optimizer: 'lbfgs' or 'adam'.
    chunk_size: edges per chunk when accumulating the full-batch gradient.
    tol: stop early when the relative change of the objective falls below ``tol``.
    fixed: optional (n,) bool mask of quaternions held fixed (their gradient is zeroed; block-wise
        recovery refines one part with its boundary neighbours fixed).

    Returns (q (n, 4) canonical unit quaternions, history): history[k] is L_OR after step k, the
    weighted mean squared distance error ``sum w r^2 / sum w`` in rad^2 (history[0] = initial).
    """
    q0 = np.asarray(q0, dtype=np.float64)
    if q0.ndim != 2 or q0.shape[1] != 4:
        raise ValueError(f"q0: expected an (n, 4) quaternion array, got shape {q0.shape}")
    n = q0.shape[0]
    i, j, d = validate_graph(n, i, j, d)
    w = validate_weights(weights, i.size)
    if optimizer not in ("lbfgs", "adam"):
        raise ValueError(f"optimizer: expected 'lbfgs' or 'adam', got {optimizer!r}")
    _rho(torch.zeros(1), loss, delta)  # validates the loss name
    torch.manual_seed(seed)
    param = torch.nn.Parameter(torch.from_numpy(q0 / np.linalg.norm(q0, axis=1, keepdims=True)).clone())
    if fixed is not None:
        fixed = np.asarray(fixed, dtype=bool).ravel()
        if fixed.size != n:
            raise ValueError(f"fixed: expected {n} flags (one per quaternion), got {fixed.size}")
        free = torch.from_numpy((~fixed).astype(np.float64))[:, None]
        param.register_hook(lambda g: g * free)
    objective = None
    if n <= DENSE_MAX and i.size >= n * (n - 1) // 8:
        objective = _dense_objective(param, i, j, d, w, loss, delta)
    if objective is None:
        objective = _edge_objective(param, i, j, d, w, loss, delta, int(chunk_size))

    history = [objective(False)[1]]
    if optimizer == "lbfgs":
        opt: torch.optim.Optimizer = torch.optim.LBFGS(
            [param],
            lr=lr,
            max_iter=1,
            max_eval=25,  # per step; bounds the strong-Wolfe line search (default would be 1)
            history_size=20,
            line_search_fn="strong_wolfe",
            tolerance_grad=0.0,
            tolerance_change=1e-30,
        )
    else:
        opt = torch.optim.Adam([param], lr=lr)
    prev = np.inf
    for step in range(int(steps)):
        if optimizer == "lbfgs":

            def closure() -> torch.Tensor:
                return torch.tensor(objective(True)[0], dtype=torch.float64)

            opt.step(closure)  # type: ignore[arg-type]  # L-BFGS takes a closure returning the loss tensor
        else:
            objective(True)
            opt.step()
            with torch.no_grad():
                param.div_(param.norm(dim=1, keepdim=True))
        cur, l_or = objective(False)
        history.append(l_or)
        if progress is not None:
            progress(step, l_or)
        if abs(prev - cur) <= tol * max(cur, 1e-300) or cur == 0.0:
            break
        prev = cur
    q = param.detach().numpy()
    return canonicalize(q / np.linalg.norm(q, axis=1, keepdims=True)), history

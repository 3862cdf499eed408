"""Spectral initialization of orientations from pairwise geodesic distances.

With ``d_ij = d_q(q_i, q_j)`` the angle of ``R_i^T R_j``, ``G_ij = 1 + 2 cos d_ij = tr(R_i^T R_j)
= <vec R_i, vec R_j>``: G is the Gram matrix of the rotation matrices seen as 9-vectors (rank <= 9,
diagonal 3). Its top-9 eigenpairs give ``X = V sqrt(lambda)`` with ``X = vec(R) O^T`` for an unknown
9x9 orthogonal ``O``; alternating Procrustes over ``O`` (rows of ``X O`` projected onto SO(3), then
``O`` re-fitted) recovers the rotations up to the O(4) gauge of the distances.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.sparse
import scipy.sparse.csgraph
import scipy.sparse.linalg

from orirec.config import RecoverConfig
from orirec.geometry import canonicalize, matrix_to_quat, project_to_so3

from .graph import validate_graph, validate_weights

_DEFAULTS = RecoverConfig()  # the recovery's defaults live in orirec.config

DENSE_MAX = 6000  # largest n handled with a dense n x n matrix (6000^2 float64 = 288 MB)


def _top9(m: np.ndarray | scipy.sparse.spmatrix) -> tuple[np.ndarray, np.ndarray]:
    """Top-9 (largest algebraic) eigenpairs of a symmetric matrix, eigenvalues descending."""
    n = m.shape[0]
    k = min(9, n)
    if n <= 50:
        dense = m.toarray() if isinstance(m, scipy.sparse.sparray | scipy.sparse.spmatrix) else np.asarray(m)
        lam, v = scipy.linalg.eigh(dense)
        lam, v = lam[n - k :], v[:, n - k :]
    else:
        v0 = np.random.default_rng(0).standard_normal(n)
        lam, v = scipy.sparse.linalg.eigsh(m, k=k, which="LA", v0=v0)
    order = np.argsort(lam)[::-1]
    return lam[order], v[:, order]


def gram_embedding(
    n: int,
    i: np.ndarray,
    j: np.ndarray,
    d: np.ndarray,
    weights: np.ndarray | None = None,
    n_iter: int = 20,
) -> np.ndarray:
    """Rank-9 embedding ``X`` (n, 9) with ``X X^T ~ G = 1 + 2 cos d`` on the observed pairs.

    Full unweighted graph: exact top-9 eigendecomposition. Missing pairs or non-uniform weights
    (n <= DENSE_MAX): weighted low-rank completion by iterated imputation (``n_iter`` rounds,
    missing entries start from graph shortest-path distances, weights scaled to [0, 1]). Larger
    sparse graphs: one sparse eigendecomposition with the observed entries scaled by
    ``(n - 1) / mean degree``.
    """
    g = 1.0 + 2.0 * np.cos(d)
    m_edges = i.size
    uniform = weights is None or np.ptp(weights) == 0
    if n > DENSE_MAX:
        scale = (n - 1) / (2.0 * m_edges / n)
        vals = np.concatenate([g * scale, g * scale, np.full(n, 3.0)])
        rows = np.concatenate([i, j, np.arange(n)])
        cols = np.concatenate([j, i, np.arange(n)])
        mat = scipy.sparse.csr_matrix((vals, (rows, cols)), shape=(n, n))
        lam, v = _top9(mat)
        return v * np.sqrt(np.maximum(lam, 0.0))
    obs = np.zeros((n, n))
    obs[i, j] = g
    obs[j, i] = g
    np.fill_diagonal(obs, 3.0)
    wm = np.zeros((n, n))
    wm[i, j] = 1.0 if weights is None else weights / weights.max()
    wm[j, i] = wm[i, j]
    np.fill_diagonal(wm, 1.0)
    complete = int(np.count_nonzero(wm)) == n * n
    if complete and uniform:
        lam, v = _top9(obs)
        return v * np.sqrt(np.maximum(lam, 0.0))
    # Missing pairs start from graph shortest-path distances (upper bounds of the geodesic distance for
    # exact data; 2 pi / 3, i.e. G = 0, the mean over random pairs, between disconnected components).
    missing = wm == 0
    if missing.any():
        graph = scipy.sparse.csr_matrix((np.maximum(d, 1e-12), (i, j)), shape=(n, n))
        sp = scipy.sparse.csgraph.shortest_path(graph, method="D", directed=False)
        sp[~np.isfinite(sp)] = 2.0 * np.pi / 3.0
        low = 1.0 + 2.0 * np.cos(np.minimum(sp, np.pi))
    else:
        low = obs
    x = np.zeros((n, 9))
    for _ in range(max(1, n_iter)):
        filled = wm * obs + (1.0 - wm) * low
        lam, v = _top9(filled)
        x = v * np.sqrt(np.maximum(lam, 0.0))
        low = x @ x.T
    return x


def _alternate(x: np.ndarray, o: np.ndarray, n_iter: int, tol: float) -> tuple[np.ndarray, np.ndarray]:
    """Alternating Procrustes from starts ``o`` (s, 9, 9); returns (o, mean squared residual per start)."""
    n = x.shape[0]
    prev = np.full(o.shape[0], np.inf)
    res = prev
    for _ in range(n_iter):
        y = np.einsum("nk,skl->snl", x, o)
        r = project_to_so3(y.reshape(-1, n, 3, 3)).reshape(-1, n, 9)
        u, _, vt = np.linalg.svd(np.einsum("nk,snl->skl", x, r))
        o = u @ vt
        res = np.mean(np.sum((np.einsum("nk,skl->snl", x, o) - r) ** 2, axis=2), axis=1)
        if np.all((np.abs(prev - res) <= tol * res) | (res <= 1e-24)):
            break
        prev = res
    return o, res


def procrustes_rotations(
    x: np.ndarray,
    n_starts: int = _DEFAULTS.n_starts,
    seed: int = _DEFAULTS.seed,
    max_iter: int = 300,
    tol: float = 1e-10,
    n_probe: int = 30,
    probe_rows: int = 400,
) -> tuple[np.ndarray, float]:
    """Find rotations R_i ~ reshape(X_i O) over 9x9 orthogonal O by alternating Procrustes.

    Stage 1: ``n_starts`` deterministic random orthogonal starts (``seed``) run together for
    ``n_probe`` iterations on ``probe_rows`` seeded random rows of ``X`` (O is fixed by any
    well-spread subset; only a fraction of the starts reach the global basin). Stage 2: the start
    with the smallest residual is iterated on all rows until the relative change of the residual
    is below ``tol`` or the residual below 1e-24 (at most ``max_iter`` iterations). Returns
    (R (n, 3, 3), residual), the residual being the mean squared ``||X_i O - vec R_i||^2``.
    """
    n = x.shape[0]
    rng = np.random.default_rng(seed)
    starts = []
    for _ in range(max(1, int(n_starts))):
        qm, rm = np.linalg.qr(rng.standard_normal((9, 9)))
        starts.append(qm * np.sign(np.diag(rm)))
    rows = np.sort(rng.choice(n, size=min(n, int(probe_rows)), replace=False))
    o, res = _alternate(x[rows], np.stack(starts), n_probe, 0.0)
    best = int(np.argmin(res))
    o, res = _alternate(x, o[best : best + 1], max_iter, tol)
    rot = project_to_so3((x @ o[0]).reshape(n, 3, 3))
    return rot, float(res[0])


def spectral_init(
    n: int,
    i: np.ndarray,
    j: np.ndarray,
    d: np.ndarray,
    weights: np.ndarray | None = None,
    n_starts: int = _DEFAULTS.n_starts,
    seed: int = _DEFAULTS.seed,
) -> np.ndarray:
    """Initial unit quaternions (n, 4), canonical (w >= 0), from distances ``d`` (rad) on edges (i, j).

    Builds ``G = 1 + 2 cos d`` (diagonal 3), takes its rank-9 embedding (see ``gram_embedding``)
    and rounds it to rotations by alternating Procrustes with ``n_starts`` seeded random starts.
    The result is defined up to the O(4) gauge of the distances.
    """
    i, j, d = validate_graph(n, i, j, d)
    weights = validate_weights(weights, i.size)
    x = gram_embedding(n, i, j, d, weights)
    rot, _ = procrustes_rotations(x, n_starts=n_starts, seed=seed)
    return canonicalize(matrix_to_quat(rot))

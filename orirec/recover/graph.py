"""Pair graphs for orientation recovery and validation of pairwise distances.

A pair graph is two int64 arrays ``(i, j)`` of equal length with ``i < j``: edge ``e``
joins image ``i[e]`` and image ``j[e]``. Distances ``d[e]`` are in radians, in [0, pi].
"""

from __future__ import annotations

import numpy as np

_TOL = 1e-6


def full_graph(n: int) -> tuple[np.ndarray, np.ndarray]:
    """All pairs ``i < j`` of ``n`` images, as two int64 arrays of length n(n-1)/2."""
    if int(n) < 2:
        raise ValueError(f"n: need at least 2 images for a pair graph, got {n}")
    i, j = np.triu_indices(int(n), k=1)
    return i.astype(np.int64), j.astype(np.int64)


def _dedupe(i: np.ndarray, j: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Order each pair as (min, max), drop self-loops and duplicates; sorted by (i, j)."""
    a = np.minimum(i, j).astype(np.int64)
    b = np.maximum(i, j).astype(np.int64)
    keep = a != b
    key = np.unique(a[keep] * n + b[keep])
    return key // n, key % n


def validate_embeddings(embeddings: np.ndarray, min_n: int = 1) -> np.ndarray:
    """Embeddings as a finite float64 (n, f) array with n >= ``min_n`` (ValueError otherwise)."""
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < min_n:
        raise ValueError(f"embeddings: expected an (n, f) array with n >= {min_n}, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("embeddings: contains NaN or inf")
    return x


def knn_graph(embeddings: np.ndarray, k: int = 10, n_random: int = 0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Cosine k-nearest-neighbour graph in embedding space plus random long-range edges.

    Parameters
    ----------
    embeddings: (n, f) float array; one feature vector per image.
    k: neighbours per image (by cosine similarity, self excluded).
    n_random: random extra edges per image (uniform over other images), which keep the
        graph connected and constrain large distances.
    seed: seed of the random edges.

    Returns the symmetrized, deduplicated edge list ``(i, j)`` with ``i < j``.
    """
    x = validate_embeddings(embeddings, min_n=2)
    n = x.shape[0]
    if k < 0 or n_random < 0:
        raise ValueError(f"k and n_random must be >= 0, got k={k}, n_random={n_random}")
    k = min(int(k), n - 1)
    xn = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    ii: list[np.ndarray] = []
    jj: list[np.ndarray] = []
    if k > 0:
        block = max(1, 2**22 // n)
        for s in range(0, n, block):
            sim = xn[s : s + block] @ xn.T
            rows = np.arange(s, min(s + block, n))
            sim[rows - s, rows] = -np.inf
            nb = np.argpartition(-sim, k - 1, axis=1)[:, :k]
            ii.append(np.repeat(rows, k))
            jj.append(nb.ravel())
    if n_random > 0:
        rng = np.random.default_rng(seed)
        src = np.repeat(np.arange(n), int(n_random))
        off = rng.integers(1, n, size=src.size)
        ii.append(src)
        jj.append((src + off) % n)
    if not ii:
        raise ValueError("knn_graph: k and n_random are both 0, the graph would be empty")
    return _dedupe(np.concatenate(ii), np.concatenate(jj), n)


def validate_distances(d: np.ndarray) -> np.ndarray:
    """Check pairwise distances (rad): finite and in [0, pi] (tolerance 1e-6).

    Returns the distances as float64 clipped to [0, pi]; raises ``ValueError`` naming how
    many values are bad and the first bad index otherwise.
    """
    d = np.asarray(d, dtype=np.float64)
    bad_nf = ~np.isfinite(d)
    if bad_nf.any():
        first = np.argwhere(bad_nf)[0]
        raise ValueError(
            f"distances: {int(bad_nf.sum())} value(s) are NaN or inf (first at index {tuple(first.tolist())})"
        )
    bad = (d < -_TOL) | (d > np.pi + _TOL)
    if bad.any():
        first = tuple(np.argwhere(bad)[0].tolist())
        raise ValueError(
            f"distances: {int(bad.sum())} value(s) outside [0, pi] rad (first at index {first}: {d[first]:.6g})"
        )
    return np.clip(d, 0.0, np.pi)


def validate_graph(n: int, i: np.ndarray, j: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, ...]:
    """Check an edge list against ``n`` images; returns (i, j, d) as int64/int64/float64 arrays."""
    i = np.asarray(i).astype(np.int64).ravel()
    j = np.asarray(j).astype(np.int64).ravel()
    d = validate_distances(np.asarray(d).ravel())
    if not (i.size == j.size == d.size) or i.size == 0:
        raise ValueError(f"graph: i, j, d must be non-empty and of equal length, got {i.size}, {j.size}, {d.size}")
    if i.min() < 0 or j.min() < 0 or max(i.max(), j.max()) >= n:
        raise ValueError(
            f"graph: edge indices must lie in [0, {n}), got range [{min(i.min(), j.min())}, {max(i.max(), j.max())}]"
        )
    if np.any(i == j):
        raise ValueError(f"graph: {int(np.sum(i == j))} self-loop edge(s) (i == j)")
    return i, j, d


def distance_weights(d: np.ndarray, scheme: str = "exp", tau: float = 1.0, eps: float = 0.1) -> np.ndarray:
    """Edge weights that trust small distances more (learned distances plateau when large).

    ``scheme='exp'``: w = exp(-d / tau); ``'inverse'``: w = 1 / (eps + d); ``'uniform'``: w = 1.
    d in rad. Returns float64 weights of the same shape.
    """
    d = np.asarray(d, dtype=np.float64)
    if scheme == "exp":
        return np.exp(-d / float(tau))
    if scheme == "inverse":
        return 1.0 / (float(eps) + d)
    if scheme == "uniform":
        return np.ones_like(d)
    raise ValueError(f"scheme: unknown weighting {scheme!r} (expected 'exp', 'inverse' or 'uniform')")


def validate_weights(w: np.ndarray | None, m: int) -> np.ndarray | None:
    """Check per-edge weights: None or m finite non-negative values, not all zero."""
    if w is None:
        return None
    w = np.asarray(w, dtype=np.float64).ravel()
    if w.size != m:
        raise ValueError(f"weights: expected {m} values (one per edge), got {w.size}")
    if not np.all(np.isfinite(w)) or np.any(w < 0) or not np.any(w > 0):
        raise ValueError("weights: must be finite, non-negative and not all zero")
    return w

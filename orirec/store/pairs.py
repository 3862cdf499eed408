"""Pair sampling for distance learning (DESIGN §1.1): pairs within one protein, d_q ≈ uniform on [0, π].

Orientation pairs drawn at random follow the skewed natural distribution of the geodesic distance
(density (1 - cos d)/π on [0, π] for uniform orientations, most pairs near 2 rad, almost none near 0).
:func:`sample_uniform_pairs` instead draws a target distance t ~ U[0, max_distance] per pair and picks,
among random candidates of the same protein, the one whose d_q is closest to t; pairs still far from
their target get fresh candidates for a few more rounds, which fills in the rare small distances.

Symmetric particles: given the point group of each protein (``symmetry``, e.g. ``store.symmetries``), d_q is
the symmetry-aware distance ``min_g d_q(q_i, q_j * g)`` (:func:`orirec.geometry.symmetric_quat_distance`),
the distance a network can learn from images that are identical for ``q`` and ``q * g``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from orirec.geometry import group_quaternions, multiply, quat_distance, symmetry_name

__all__ = ["sample_random_pairs", "sample_uniform_pairs"]

_CHUNK = 8192  # pairs per vectorized block (bounds memory to _CHUNK × n_candidates distances)


def _groups(quaternions: np.ndarray, protein: np.ndarray) -> tuple[np.ndarray, ...]:
    """Validate inputs; return (q, order, start, count, pos, eligible) for same-protein draws.

    ``order`` lists image indices sorted by protein; image ``i`` sits at ``order[start[i] + pos[i]]``
    inside its protein's block of ``count[i]`` images.
    """
    q = np.asarray(quaternions, dtype=np.float64)
    p = np.asarray(protein)
    if q.ndim != 2 or q.shape[1] != 4:
        raise ValueError(f"quaternions: expected shape (N, 4), got {q.shape}")
    if p.shape != (q.shape[0],):
        raise ValueError(f"protein: expected shape ({q.shape[0]},), got {p.shape}")
    order = np.argsort(p, kind="stable")
    _, first, counts = np.unique(p[order], return_index=True, return_counts=True)
    block = np.repeat(np.arange(len(first)), counts)  # block id per sorted position
    start_sorted, count_sorted = first[block], counts[block]
    start, count, pos = (np.empty(len(p), dtype=np.int64) for _ in range(3))
    start[order], count[order] = start_sorted, count_sorted
    pos[order] = np.arange(len(p)) - start_sorted
    eligible = np.flatnonzero(count >= 2)
    if len(eligible) == 0:
        raise ValueError("protein: no protein has two or more images, so no within-protein pair exists")
    return q, order, start, count, pos, eligible


def _symmetric_copies(q: np.ndarray, protein: np.ndarray, symmetry: Sequence[str] | None) -> np.ndarray | None:
    """(N, G, 4) copies ``q_i * g`` over the group of each image's protein (padded with ``q_i``); None if all C1."""
    if symmetry is None:
        return None
    groups = [symmetry_name(s) for s in symmetry]
    used = np.unique(protein)
    if len(used) and (used.min() < 0 or used.max() >= len(groups)):
        raise ValueError(f"symmetry: {len(groups)} groups given, but protein indices reach {int(used.max())}")
    elements = {p: group_quaternions(groups[p]) for p in used.tolist()}
    size = max(len(g) for g in elements.values())
    if size == 1:
        return None
    copies = np.repeat(q[:, None, :], size, axis=1)
    for p, g in elements.items():
        rows = np.flatnonzero(protein == p)
        copies[rows, : len(g)] = multiply(q[rows, None, :], g[None])
    return copies


def _pair_distance(q: np.ndarray, copies: np.ndarray | None, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """d_q (rad) of pairs (i, j): plain, or the minimum over the symmetric copies of j."""
    if copies is None:
        return quat_distance(q[i], q[j])
    best = np.argmax(np.abs(np.einsum("nk,ngk->ng", q[i], copies[j])), axis=1)
    return quat_distance(q[i], copies[j, best])


def _draw_partners(rng, i, order, start, count, pos, k: int) -> np.ndarray:
    """k random partners j != i of the same protein for each i (shape (len(i), k))."""
    r = (rng.random((len(i), k)) * (count[i, None] - 1)).astype(np.int64)
    r += r >= pos[i, None]  # skip i itself
    return order[start[i, None] + r]


def _check_n(n_pairs: int) -> int:
    if int(n_pairs) < 0:
        raise ValueError(f"n_pairs: must be >= 0, got {n_pairs}")
    return int(n_pairs)


def sample_random_pairs(
    quaternions: np.ndarray,
    protein: np.ndarray,
    n_pairs: int,
    seed: int | Sequence[int],
    symmetry: Sequence[str] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs (i, j), i != j of the same protein, drawn uniformly: d_q follows the natural distribution.

    ``symmetry``: point group per protein index (e.g. ``store.symmetries``); d_q is then symmetry-aware.
    Returns ``(i, j, d_q)``: int64 indices into ``quaternions`` and d_q (rad, float64).
    """
    q, order, start, count, pos, eligible = _groups(quaternions, protein)
    copies = _symmetric_copies(q, np.asarray(protein), symmetry)
    rng = np.random.default_rng(seed)
    i = eligible[rng.integers(0, len(eligible), _check_n(n_pairs))]
    j = _draw_partners(rng, i, order, start, count, pos, 1)[:, 0]
    return i, j, _pair_distance(q, copies, i, j)


def sample_uniform_pairs(
    quaternions: np.ndarray,
    protein: np.ndarray,
    n_pairs: int,
    seed: int | Sequence[int],
    n_candidates: int = 32,
    max_distance: float = np.pi,
    tolerance: float = 0.02,
    max_rounds: int = 32,
    symmetry: Sequence[str] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs within one protein whose d_q is approximately uniform on [0, max_distance].

    For each pair, ``i`` is a uniformly drawn image (of a protein with >= 2 images) and a target
    t ~ U[0, max_distance] (rad) is drawn; among ``n_candidates`` random partners j != i of the same
    protein the one with d_q closest to t is kept. Pairs whose best |d_q - t| still exceeds
    ``tolerance`` (rad) draw ``n_candidates`` more partners, for up to ``max_rounds`` rounds in all
    (only those pairs: the cost stays near one round). Distances that the data cannot reach (below the
    nearest-neighbour spacing of a small set, or beyond the largest d_q of a restricted orientation
    distribution) end at the closest available partner.

    Args:
        quaternions: (N, 4) unit quaternions (w, x, y, z).
        protein: (N,) integer protein index per image; pairs never cross proteins.
        n_pairs: number of pairs to draw.
        seed: seed (or seed sequence) of numpy.random.default_rng; same seed, same pairs.
        n_candidates: partners tried per pair and round.
        max_distance: upper end of the target distribution (rad), in (0, π].
        tolerance: accept a pair once |d_q - t| <= tolerance (rad).
        max_rounds: rounds of candidate draws at most.
        symmetry: point group per protein index (``"C1"``, ``"C2"``, ``"D7"``, ...; e.g. ``store.symmetries``);
            d_q is then ``min_g d_q(q_i, q_j g)``. Dihedral groups cap d_q below pi (D2: 2.09 rad, D7:
            1.62 rad), so targets above the reachable range end at the largest distance available.
    Returns:
        ``(i, j, d_q)``: int64 indices (n_pairs,) into ``quaternions`` and d_q (rad, float64).
    """
    n_pairs = _check_n(n_pairs)
    if int(n_candidates) < 1 or int(max_rounds) < 1:
        raise ValueError(f"n_candidates and max_rounds must be >= 1, got {n_candidates}, {max_rounds}")
    if not 0 < max_distance <= np.pi + 1e-12:
        raise ValueError(f"max_distance: must be in (0, pi] rad, got {max_distance}")
    if tolerance < 0:
        raise ValueError(f"tolerance: must be >= 0 rad, got {tolerance}")
    q, order, start, count, pos, eligible = _groups(quaternions, protein)
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    copies = _symmetric_copies(q, np.asarray(protein), symmetry)
    chunk = _CHUNK if copies is None else max(256, _CHUNK // copies.shape[1])
    rng = np.random.default_rng(seed)
    i = eligible[rng.integers(0, len(eligible), n_pairs)]
    target = rng.uniform(0.0, max_distance, n_pairs)
    j = np.empty(n_pairs, dtype=np.int64)
    d = np.full(n_pairs, np.inf)
    todo = np.arange(n_pairs)
    for _ in range(int(max_rounds)):
        if len(todo) == 0:
            break
        for lo in range(0, len(todo), chunk):
            idx = todo[lo : lo + chunk]
            cand = _draw_partners(rng, i[idx], order, start, count, pos, int(n_candidates))
            if copies is None:
                dot = np.abs(np.einsum("nk,nck->nc", q[i[idx]], q[cand]))
            else:
                dot = np.abs(np.einsum("nk,ncgk->ncg", q[i[idx]], copies[cand])).max(axis=2)
            dc = 2.0 * np.arccos(np.minimum(dot, 1.0))  # exact d_q of the winners is recomputed below
            best = np.argmin(np.abs(dc - target[idx, None]), axis=1)
            dbest = dc[np.arange(len(idx)), best]
            better = np.abs(dbest - target[idx]) < np.abs(d[idx] - target[idx])
            j[idx[better]] = cand[better, best[better]]
            d[idx[better]] = dbest[better]
        todo = todo[np.abs(d[todo] - target[todo]) > tolerance]
    return i, j, _pair_distance(q, copies, i, j)

"""Partition a pair graph for block-wise (distributed) recovery: balanced k-means on the embeddings.

Every node goes to exactly one part. A part owns its nodes' orientations and every edge that touches
one of its nodes: *internal* edges (both ends in the part) and *boundary* edges (one end outside; the
outside end is held fixed while the part is refined and is refreshed every round).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.cluster.vq

from orirec.recover.graph import validate_embeddings


@dataclass
class GraphPart:
    """One part of a partitioned pair graph.

    nodes: sorted global ids of the part's nodes (it owns their orientations).
    edges: indices into the global edge list of the part's internal edges, then its boundary edges (each sorted).
    n_internal: how many of ``edges`` are internal (both ends in the part).
    halo: sorted global ids of the outside endpoints of the boundary edges (held fixed).
    """

    nodes: np.ndarray
    edges: np.ndarray
    n_internal: int
    halo: np.ndarray


def balanced_kmeans(
    embeddings: np.ndarray, parts: int, seed: int = 0, n_iter: int = 20, sample: int = 20_000, slack: float = 0.1
) -> np.ndarray:
    """Labels (n,) in [0, parts) from k-means on the row-normalized embeddings, with balanced part sizes.

    Centroids come from ``scipy.cluster.vq.kmeans2`` (k-means++, ``n_iter`` iterations, seeded) on at
    most ``sample`` seeded random rows; every node then goes to its nearest centroid that still has room,
    each part holding at most ``ceil(n / parts * (1 + slack))`` nodes (nodes closest to a centroid are
    placed first). Deterministic given ``seed``.
    """
    x = validate_embeddings(embeddings, min_n=1)
    n = x.shape[0]
    parts = int(parts)
    if parts < 1 or parts > n:
        raise ValueError(f"parts: expected 1 <= parts <= n = {n}, got {parts}")
    if parts == 1:
        return np.zeros(n, dtype=np.int64)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(n, size=min(n, max(int(sample), parts)), replace=False))
    centroids, _ = scipy.cluster.vq.kmeans2(x[rows], parts, iter=int(n_iter), minit="++", rng=rng)
    return _assign_with_capacity(x, centroids, int(np.ceil(n / parts * (1.0 + slack))))


def _assign_with_capacity(x: np.ndarray, centroids: np.ndarray, capacity: int) -> np.ndarray:
    """Nearest centroid with room; rounds of proposals, each centroid taking its closest proposers."""
    n, parts = x.shape[0], centroids.shape[0]
    dist = np.full((n, parts), np.inf)
    for s in range(0, n, 1 << 16):  # squared distances in blocks (memory O(block * parts))
        blk = x[s : s + (1 << 16)]
        dist[s : s + blk.shape[0]] = (
            (blk * blk).sum(1)[:, None] - 2.0 * blk @ centroids.T + (centroids * centroids).sum(1)[None, :]
        )
    labels = np.full(n, -1, dtype=np.int64)
    room = np.full(parts, capacity, dtype=np.int64)
    while (todo := np.flatnonzero(labels < 0)).size:
        dt = dist[todo]
        dt[:, room == 0] = np.inf
        choice = np.argmin(dt, axis=1)
        best = dt[np.arange(todo.size), choice]
        order = np.lexsort((todo, best, choice))  # by centroid, then distance, then id: deterministic
        ch = choice[order]
        starts = np.searchsorted(ch, np.arange(parts))
        rank = np.arange(order.size) - starts[ch]
        take = rank < room[ch]
        labels[todo[order[take]]] = ch[take]
        room -= np.bincount(ch[take], minlength=parts)
    return labels


def split_graph(labels: np.ndarray, i: np.ndarray, j: np.ndarray) -> list[GraphPart]:
    """Split the edges ``(i, j)`` by the node ``labels`` (n,) into one :class:`GraphPart` per label.

    An internal edge belongs to one part; a boundary edge to both parts it joins. Raises ``ValueError``
    for an empty part (a part with no node) or an edge index outside the labelled nodes.
    """
    labels = np.asarray(labels, dtype=np.int64).ravel()
    i = np.asarray(i, dtype=np.int64).ravel()
    j = np.asarray(j, dtype=np.int64).ravel()
    n = labels.size
    if i.size != j.size or (i.size and (min(i.min(), j.min()) < 0 or max(i.max(), j.max()) >= n)):
        raise ValueError(f"graph: edge indices must lie in [0, {n}) with len(i) == len(j)")
    if n == 0 or labels.min() < 0:
        raise ValueError("labels: expected non-negative part labels, one per node")
    parts = int(labels.max()) + 1
    counts = np.bincount(labels, minlength=parts)
    if np.any(counts == 0):
        raise ValueError(f"labels: part(s) {np.flatnonzero(counts == 0).tolist()} have no node")
    li, lj = labels[i], labels[j]
    internal = li == lj
    node_order = np.argsort(labels, kind="stable")
    node_starts = np.concatenate([[0], np.cumsum(counts)])
    # each edge listed under the part of its i end, and (boundary only) under the part of its j end
    e_all = np.concatenate([np.arange(i.size), np.flatnonzero(~internal)])
    p_all = np.concatenate([li, lj[~internal]])
    o = np.lexsort((e_all, p_all))
    e_all, p_all = e_all[o], p_all[o]
    e_starts = np.searchsorted(p_all, np.arange(parts + 1))
    out = []
    for p in range(parts):
        edges = e_all[e_starts[p] : e_starts[p + 1]]
        inner = internal[edges]
        ends = np.concatenate([i[edges[~inner]], j[edges[~inner]]])
        out.append(
            GraphPart(
                nodes=np.sort(node_order[node_starts[p] : node_starts[p + 1]]),
                edges=np.concatenate([edges[inner], edges[~inner]]),
                n_internal=int(inner.sum()),
                halo=np.unique(ends[labels[ends] != p]),
            )
        )
    return out

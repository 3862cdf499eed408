"""The single entry from distances to gauge-resolved orientations (DESIGN §1.2, §1.3).

Every caller that turns pairwise distances into orientations goes through :func:`solve_orientations`: a run's
recover stage, ``orirec compare`` (distance estimators), the per-protein study and the oracle benchmark. The
protocol, written once:

1. in-plane copies: with ``cfg.gauge``, ``cfg.gauge_sources`` images get copies rotated in-plane by
   ``cfg.gauge_angles_deg``; the copies join the pair graph as extra nodes;
2. graph: the full pair graph, or kNN in feature space plus random long-range edges (``cfg.graph``);
3. distances d_p (rad) on the graph's edges, from the caller's distance function;
4. recovery: spectral start + L-BFGS on the sphere, in one piece or in block-Jacobi parts (``cfg.partitions``);
5. gauge: the copies fix the inversion and the beam axis; a 1-D search on the caller's consistency score fixes
   the rotation about the beam.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from orirec.config import RecoverConfig
from orirec.geometry import rotate_about_z
from orirec.imaging.inplane import rotate_inplane
from orirec.reconstruct.consistency import crossval_reprojection_score, prepare_consistency_images

from .api import RecoveryResult, recover_orientations
from .blocks import BlockRunner, recover_partitioned
from .gauge import GaugeResult, plan_inplane_copies, resolve_gauge
from .graph import full_graph, knn_graph
from .partition import balanced_kmeans

__all__ = [
    "FULL_GRAPH_MAX",
    "InplaneCopies",
    "SolvedOrientations",
    "check_pair_model",
    "consistency_score",
    "images_with_copies",
    "inplane_copies",
    "pair_graph",
    "plan_copies",
    "quaternions_with_copies",
    "recover_graph",
    "require_vectors",
    "solve_orientations",
]

FULL_GRAPH_MAX = 20_000  # nodes; a full graph above this holds > 2e8 edges: use the kNN graph

_NO_VECTOR = (
    "model families 'pair' and 'commonlines' have no embedding vector: "
    "use graph 'full' and partitions 1 (num_workers 1)"
)

Progress = Callable[[int, int], None] | None


@dataclass(frozen=True)
class InplaneCopies:
    """Copy ``k`` of the pair graph is image ``source[k]`` rotated in-plane by ``angle_rad[k]`` (rad)."""

    source: np.ndarray
    angle_rad: np.ndarray


@dataclass
class SolvedOrientations:
    """Gauge-resolved orientations of the ``n`` images and how they were found.

    quaternions: (n, 4) unit quaternions, scalar-first, w >= 0; recovery: the recovery over every node (images
    then copies); i, j, d_p: the graph's edges over the nodes and their distances (rad); gauge: None when the
    gauge was not resolved; times (s) of the features + graph + distances, the recovery and the gauge.
    """

    quaternions: np.ndarray
    recovery: RecoveryResult
    i: np.ndarray
    j: np.ndarray
    d_p: np.ndarray
    n_nodes: int
    gauge: GaugeResult | None = None
    time_graph_s: float = 0.0
    time_recover_s: float = 0.0
    time_gauge_s: float = 0.0

    def edges_among_images(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The edges (i, j, d_p) between two images (copies left out)."""
        n = len(self.quaternions)
        among = (self.i < n) & (self.j < n)
        return self.i[among], self.j[among], self.d_p[among]


def plan_copies(n: int, cfg: RecoverConfig) -> InplaneCopies | None:
    """The in-plane copies of ``cfg`` for ``n`` images (seeded by ``cfg.seed``); None when ``cfg.gauge`` is off."""
    if not cfg.gauge:
        return None
    src, angle = plan_inplane_copies(n, cfg.gauge_sources, tuple(np.deg2rad(cfg.gauge_angles_deg)), cfg.seed)
    return InplaneCopies(src, angle)


def inplane_copies(images: np.ndarray, copies: InplaneCopies) -> np.ndarray:
    """The in-plane rotated copies (m, L, L) of the images (n, L, L)."""
    return rotate_inplane(images[copies.source], copies.angle_rad)


def images_with_copies(images: np.ndarray, copies: InplaneCopies | None) -> np.ndarray:
    """The images (n, L, L) followed by their in-plane rotated copies: the nodes of the pair graph."""
    if copies is None:
        return images
    return np.concatenate([images, inplane_copies(images, copies)])


def quaternions_with_copies(q: np.ndarray, copies: InplaneCopies | None) -> np.ndarray:
    """Orientations (n, 4) followed by those of the in-plane rotated copies, ``R_z(φ) R``."""
    if copies is None:
        return q
    return np.concatenate([q, rotate_about_z(q[copies.source], copies.angle_rad)])


def consistency_score(images: np.ndarray, cfg: RecoverConfig) -> Callable[[np.ndarray], float]:
    """``score(q)`` of the gauge search: cross-validated reprojection correlation of low-resolution maps made from
    (at most ``cfg.gauge_max_images`` of) ``images`` at orientations ``q`` (n, 4)."""
    rows, small = prepare_consistency_images(images, cfg.gauge_box_px, cfg.gauge_max_images, cfg.seed)
    return lambda q: crossval_reprojection_score(small, q[rows], seed=cfg.seed)


def require_vectors(features: np.ndarray, what: str) -> None:
    """ValueError unless ``features`` hold one vector per node (n, f): the kNN graph and the k-means partition need
    vectors; a pair model's line tokens (n, n_angles, f) are compared only by its own head."""
    if np.ndim(features) != 2:
        raise ValueError(f"{what} needs one embedding vector per image, got shape {np.shape(features)}: {_NO_VECTOR}")


def check_pair_model(cfg: RecoverConfig, model) -> None:
    """Fail before any work when a pair model (no embedding vector) meets a kNN graph or a partitioned run."""
    partitioned = (cfg.partitions or cfg.num_workers) > 1 or cfg.num_workers > 1
    if getattr(model, "distance_kind", None) == "pair" and (cfg.graph != "full" or partitioned):
        raise ValueError(f"recover: graph {cfg.graph!r}, partitions {cfg.partitions or cfg.num_workers}: {_NO_VECTOR}")


def pair_graph(cfg: RecoverConfig, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The pair graph of ``cfg.graph`` over the nodes' features; a clear error for a full graph too large."""
    if cfg.graph != "full":
        require_vectors(features, f"graph {cfg.graph!r}")
        return knn_graph(features, cfg.knn_k, cfg.n_random_edges, seed=cfg.seed)
    if len(features) > FULL_GRAPH_MAX:
        raise ValueError(
            f"graph 'full' over {len(features)} nodes would hold {len(features) * (len(features) - 1) // 2} pairs; "
            f"use --graph knn above {FULL_GRAPH_MAX} nodes"
        )
    return full_graph(len(features))


def _step_progress(progress: Progress, total: int):
    """Adapt a ``(done, total)`` progress callback to the recovery's ``(step, l_or)`` calls."""
    return None if progress is None else (lambda step, _l_or: progress(step, total))


def recover_graph(
    cfg: RecoverConfig,
    features: np.ndarray,
    i: np.ndarray,
    j: np.ndarray,
    d: np.ndarray,
    progress: Progress = None,
    checkpoint: Path | None = None,
    block_runner: BlockRunner | None = None,
) -> RecoveryResult:
    """Recover orientations on the graph (i, j, d): in one piece, or partitioned over the features' k-means.

    ``cfg.partitions`` (default ``cfg.num_workers``) > 1 runs block-Jacobi rounds (:mod:`orirec.recover.blocks`),
    on ``block_runner`` when given (e.g. Ray actors) else in this process; ``checkpoint`` (.npz) makes an
    interrupted partitioned run resumable.
    """
    parts = cfg.partitions or cfg.num_workers
    if parts <= 1 and cfg.num_workers <= 1:
        return recover_orientations(
            len(features), i, j, d, n_starts=cfg.n_starts, steps=cfg.steps, seed=cfg.seed, loss=cfg.loss,
            progress=_step_progress(progress, cfg.steps),
        )  # fmt: skip
    require_vectors(features, f"partitioned recovery (partitions {parts}, num_workers {cfg.num_workers})")
    labels = balanced_kmeans(features, max(parts, 1), seed=cfg.seed)
    return recover_partitioned(
        len(features), i, j, d, labels, rounds=cfg.rounds, block_steps=cfg.block_steps, relax=cfg.relax,
        n_starts=cfg.n_starts, seed=cfg.seed, loss=cfg.loss, checkpoint=checkpoint, runner=block_runner,
        progress=_step_progress(progress, cfg.rounds),
    )  # fmt: skip


def solve_orientations(
    n: int,
    cfg: RecoverConfig,
    features: Callable[[InplaneCopies | None], np.ndarray],
    distances: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray],
    gauge_score: Callable[[np.ndarray], float] | None = None,
    progress: Progress = None,
    gauge_progress: Progress = None,
    checkpoint: Path | None = None,
    block_runner: BlockRunner | None = None,
) -> SolvedOrientations:
    """Gauge-resolved orientations of ``n`` images from a distance function (the protocol of the module docstring).

    ``features(copies)`` returns the features of the n images followed by those of the in-plane copies (None: no
    copies); ``distances(features, i, j)`` returns d_p (rad, in [0, π]) on edges (i, j) between nodes;
    ``gauge_score(q)`` rates orientations (n, 4) of the images by reconstruction consistency (higher is better;
    see :func:`consistency_score`) and is required when ``cfg.gauge``. ``progress`` follows the recovery,
    ``gauge_progress`` the in-plane search (both ``(done, total)``).
    """
    if cfg.gauge and gauge_score is None:
        raise ValueError("recover: the gauge (cfg.gauge) needs a consistency score of the images")
    t0 = time.perf_counter()
    copies = plan_copies(n, cfg)
    feats = features(copies)
    i, j = pair_graph(cfg, feats)
    d_p = np.asarray(distances(feats, i, j), dtype=np.float64)
    t1 = time.perf_counter()
    res = recover_graph(cfg, feats, i, j, d_p, progress, checkpoint=checkpoint, block_runner=block_runner)
    t2 = time.perf_counter()
    solved = SolvedOrientations(
        quaternions=res.quaternions[:n], recovery=res, i=i, j=j, d_p=d_p, n_nodes=len(feats),
        time_graph_s=t1 - t0, time_recover_s=t2 - t1,
    )  # fmt: skip
    if copies is not None and gauge_score is not None:
        solved.gauge = resolve_gauge(
            res.quaternions[:n], res.quaternions[n:], copies.source, copies.angle_rad, gauge_score, gauge_progress
        )
        solved.quaternions = solved.gauge.quaternions
        solved.time_gauge_s = time.perf_counter() - t2
    return solved

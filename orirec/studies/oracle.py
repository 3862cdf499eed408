"""Oracle recovery: exact (optionally noisy) distances between known orientations, for science and benchmarks.

The distances come from the ground truth; the images (projections of the embedded pseudo-protein)
are only used to resolve the gauge, exactly as in a real run, so ``err_rot`` is honest.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from orirec.config import RecoverConfig
from orirec.evaluate.metrics import orientation_metrics
from orirec.geometry import orientation_features, quat_distance, uniform_quaternions
from orirec.pipeline.stages import ray_block_runner
from orirec.recover.solve import InplaneCopies, consistency_score, quaternions_with_copies, solve_orientations
from orirec.simulate.projector import project
from orirec.structures import load_volume


def oracle_recover(
    n: int,
    seed: int = 0,
    distance_noise_rad: float = 0.0,
    cfg: RecoverConfig | None = None,
    box_px: int = 32,
    pixel_size_A: float = 3.5,
    progress=None,
    embedding_noise: float = 0.0,
) -> dict[str, Any]:
    """Recover ``n`` uniform orientations from their exact distances plus Gaussian noise (σ rad, clipped).

    The kNN graph and the partition (``cfg.partitions``/``cfg.num_workers`` > 1) use
    :func:`orientation_features` of the true orientations plus Gaussian noise of σ ``embedding_noise``
    per feature, standing in for learned embeddings. Returns the metrics of DESIGN §6 (degrees) with
    wall times (s) for the graph, recovery and gauge.
    """
    cfg = (cfg or RecoverConfig()).model_copy(update={"seed": seed})
    if n < 3:
        raise ValueError(f"--n must be at least 3, got {n}")
    if distance_noise_rad < 0:
        raise ValueError(f"--distance-noise must be >= 0 rad, got {distance_noise_rad}")
    if embedding_noise < 0:
        raise ValueError(f"embedding noise must be >= 0, got {embedding_noise}")
    q_true = uniform_quaternions(n, seed=seed)

    graph_nodes: dict[str, np.ndarray] = {}  # the true quaternions of the images and copies, set by features()

    def features(copies: InplaneCopies | None) -> np.ndarray:
        nodes = quaternions_with_copies(q_true, copies)
        graph_nodes["q"] = nodes
        emb = orientation_features(nodes)
        if embedding_noise > 0:
            emb = emb + np.random.default_rng([seed, 10]).normal(0.0, embedding_noise, emb.shape)
        return emb

    def distances(_emb: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        d = quat_distance(graph_nodes["q"][i], graph_nodes["q"][j])
        if distance_noise_rad > 0:
            d = np.clip(d + np.random.default_rng([seed, 9]).normal(0.0, distance_noise_rad, len(d)), 0.0, np.pi)
        return d

    solved = solve_orientations(
        n, cfg, features, distances, gauge_score=_gauge_score(q_true, cfg, box_px, pixel_size_A) if cfg.gauge else None,
        progress=progress, block_runner=ray_block_runner(cfg.num_workers),
    )  # fmt: skip
    q = solved.quaternions
    out: dict[str, Any] = {
        "n": n,
        "n_edges": len(solved.i),
        "distance_noise_rad": distance_noise_rad,
        "partitions": cfg.partitions or cfg.num_workers,
        "num_workers": cfg.num_workers,
        "time_graph_s": solved.time_graph_s,
        "time_recover_s": solved.time_recover_s,
        "l_or": solved.recovery.l_or,
    }
    if solved.gauge is not None:
        out["time_gauge_s"] = solved.time_gauge_s
    out.update(orientation_metrics(q, q_true))
    out["time_total_s"] = solved.time_recover_s + solved.time_gauge_s
    return out


def _gauge_score(q_true: np.ndarray, cfg: RecoverConfig, box_px: int, pixel_size_A: float):
    """The consistency score of projections of the embedded pseudo-protein at the true orientations: only the
    images the search uses are projected (memory and time independent of n)."""
    n = len(q_true)
    vol, _ = load_volume(f"pseudo:{cfg.seed}", box_px, pixel_size_A)
    sel = np.sort(np.random.default_rng([cfg.seed, 11]).choice(n, size=min(n, cfg.gauge_max_images), replace=False))
    score = consistency_score(project(vol, q_true[sel]), cfg)
    return lambda q: score(q[sel])

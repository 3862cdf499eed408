"""Oracle recovery: exact (optionally noisy) distances between known orientations, for science and benchmarks.

The distances come from the ground truth; the images (projections of the embedded pseudo-protein)
are only used to resolve the gauge, exactly as in a real run, so ``err_rot`` is honest.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from orirec.config import RecoverConfig
from orirec.evaluate.metrics import orientation_metrics
from orirec.geometry import quat_distance, uniform_quaternions
from orirec.pipeline.stages import consistency_score, step_progress
from orirec.recover import full_graph, knn_graph, recover_orientations
from orirec.recover.gauge import plan_inplane_copies, resolve_gauge, rotate_about_z
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
) -> dict[str, Any]:
    """Recover ``n`` uniform orientations from their exact distances plus Gaussian noise (σ rad, clipped).

    Returns the metrics of DESIGN §6 (degrees) with wall times (s) for recovery and gauge.
    """
    cfg = cfg or RecoverConfig()
    if n < 3:
        raise ValueError(f"--n must be at least 3, got {n}")
    if distance_noise_rad < 0:
        raise ValueError(f"--distance-noise must be >= 0 rad, got {distance_noise_rad}")
    q_true = uniform_quaternions(n, seed=seed)
    nodes = q_true
    if cfg.gauge:
        src, angle = plan_inplane_copies(n, cfg.gauge_sources, tuple(np.deg2rad(cfg.gauge_angles_deg)), seed)
        nodes = np.concatenate([q_true, rotate_about_z(q_true[src], angle)])
    if cfg.graph == "full":
        i, j = full_graph(len(nodes))
    else:  # the kNN graph of the true orientations stands in for the embedding kNN
        i, j = knn_graph(nodes, cfg.knn_k, cfg.n_random_edges, seed=seed)
    d = quat_distance(nodes[i], nodes[j])
    if distance_noise_rad > 0:
        d = np.clip(d + np.random.default_rng([seed, 9]).normal(0.0, distance_noise_rad, len(d)), 0.0, np.pi)
    t0 = time.perf_counter()
    res = recover_orientations(
        len(nodes),
        i,
        j,
        d,
        n_starts=cfg.n_starts,
        steps=cfg.steps,
        seed=seed,
        loss=cfg.loss,
        progress=step_progress(progress, cfg.steps),
    )
    out: dict[str, Any] = {
        "n": n,
        "n_edges": len(i),
        "distance_noise_rad": distance_noise_rad,
        "time_recover_s": time.perf_counter() - t0,
        "l_or": res.l_or,
    }
    q = res.quaternions[:n]
    if cfg.gauge:
        t1 = time.perf_counter()
        vol, _ = load_volume(f"pseudo:{seed}", box_px, pixel_size_A)
        images = project(vol, q_true)
        q = resolve_gauge(q, res.quaternions[n:], src, angle, consistency_score(images, cfg)).quaternions
        out["time_gauge_s"] = time.perf_counter() - t1
    out.update(orientation_metrics(q, q_true))
    out["time_total_s"] = time.perf_counter() - t0
    return out

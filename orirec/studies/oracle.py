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
from orirec.pipeline.stages import consistency_score, pair_graph, recover_graph
from orirec.recover.gauge import plan_inplane_copies, resolve_gauge, rotate_about_z
from orirec.simulate.projector import project
from orirec.structures import load_volume


def orientation_features(q: np.ndarray) -> np.ndarray:
    """Sign-invariant features (n, 10) of unit quaternions: the entries of q qᵀ on and above the diagonal,
    off-diagonal ones scaled by √2, so that the cosine similarity of two rows is <q1, q2>² (a monotone
    function of the geodesic distance). The oracle's stand-in for learned embeddings."""
    a, b = np.triu_indices(4)
    return (q[:, a] * q[:, b]) * np.where(a == b, 1.0, np.sqrt(2.0))


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
    q_true = uniform_quaternions(n, seed=seed)
    nodes = q_true
    if cfg.gauge:
        src, angle = plan_inplane_copies(n, cfg.gauge_sources, tuple(np.deg2rad(cfg.gauge_angles_deg)), seed)
        nodes = np.concatenate([q_true, rotate_about_z(q_true[src], angle)])
    if embedding_noise < 0:
        raise ValueError(f"embedding noise must be >= 0, got {embedding_noise}")
    t_graph = time.perf_counter()
    emb = orientation_features(nodes)
    if embedding_noise > 0:
        emb = emb + np.random.default_rng([seed, 10]).normal(0.0, embedding_noise, emb.shape)
    i, j = pair_graph(cfg, emb)
    d = quat_distance(nodes[i], nodes[j])
    t_graph = time.perf_counter() - t_graph
    if distance_noise_rad > 0:
        d = np.clip(d + np.random.default_rng([seed, 9]).normal(0.0, distance_noise_rad, len(d)), 0.0, np.pi)
    t0 = time.perf_counter()
    res = recover_graph(cfg, emb, i, j, d, progress)
    out: dict[str, Any] = {
        "n": n,
        "n_edges": len(i),
        "distance_noise_rad": distance_noise_rad,
        "partitions": cfg.partitions or cfg.num_workers,
        "num_workers": cfg.num_workers,
        "time_graph_s": t_graph,
        "time_recover_s": time.perf_counter() - t0,
        "l_or": res.l_or,
    }
    q = res.quaternions[:n]
    if cfg.gauge:
        t1 = time.perf_counter()
        vol, _ = load_volume(f"pseudo:{seed}", box_px, pixel_size_A)
        # only the images the consistency search uses are projected (memory and time independent of n)
        sel = np.sort(np.random.default_rng([seed, 11]).choice(n, size=min(n, cfg.gauge_max_images), replace=False))
        score = consistency_score(project(vol, q_true[sel]), cfg)
        q = resolve_gauge(q, res.quaternions[n:], src, angle, lambda qq: score(qq[sel])).quaternions
        out["time_gauge_s"] = time.perf_counter() - t1
    out.update(orientation_metrics(q, q_true))
    out["time_total_s"] = time.perf_counter() - t0
    return out

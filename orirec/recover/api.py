"""Orientation recovery entry points: validate -> spectral initialization -> refinement."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from orirec.config import RecoverConfig

from .graph import validate_distances, validate_graph, validate_weights
from .spectral import spectral_init
from .sphere import descend_on_sphere


@dataclass
class RecoveryResult:
    """Recovered orientations (defined up to the O(4) gauge of the distances).

    quaternions: (n, 4) unit quaternions, scalar-first, canonical (w >= 0).
    loss_history: L_OR (weighted mean squared distance error, rad^2) after each refinement step,
        entry 0 being the spectral initialization.
    l_or: final L_OR (rad^2).
    wall_time_s: wall-clock time of the whole recovery (s).
    """

    quaternions: np.ndarray
    loss_history: list[float] = field(default_factory=list)
    l_or: float = float("nan")
    wall_time_s: float = 0.0


def recover_orientations(
    n: int,
    i: np.ndarray,
    j: np.ndarray,
    d: np.ndarray,
    weights: np.ndarray | None = None,
    n_starts: int = RecoverConfig.model_fields["n_starts"].default,
    steps: int = RecoverConfig.model_fields["steps"].default,
    seed: int = RecoverConfig.model_fields["seed"].default,
    progress: Callable[[int, float], None] | None = None,
    loss: str = RecoverConfig.model_fields["loss"].default,
) -> RecoveryResult:
    """Recover ``n`` orientations from pairwise distances ``d`` (rad, in [0, pi]) on edges ``(i, j)``.

    Validates the inputs (``ValueError`` on NaN/inf/out-of-range distances or bad indices), builds a
    spectral initialization (``n_starts`` seeded Procrustes starts) and refines it for up to
    ``steps`` L-BFGS steps with the ``loss`` ('huber', 'l2' or 'cauchy') and per-edge ``weights``
    (default uniform). ``progress(step, l_or)`` is called after each refinement step.
    """
    t0 = time.perf_counter()
    if int(n) < 2:
        raise ValueError(f"n: need at least 2 images, got {n}")
    i, j, d = validate_graph(int(n), i, j, d)
    weights = validate_weights(weights, i.size)
    q0 = spectral_init(int(n), i, j, d, weights=weights, n_starts=n_starts, seed=seed)
    q, history = descend_on_sphere(q0, i, j, d, weights=weights, steps=steps, loss=loss, seed=seed, progress=progress)
    return RecoveryResult(
        quaternions=q, loss_history=history, l_or=float(history[-1]), wall_time_s=time.perf_counter() - t0
    )


def recover_from_matrix(dist: np.ndarray, **kw) -> RecoveryResult:
    """Recover orientations from a full symmetric (n, n) distance matrix (rad) using all pairs i < j.

    The matrix must be finite with entries in [0, pi]; keyword arguments go to ``recover_orientations``.
    """
    dist = np.asarray(dist, dtype=np.float64)
    if dist.ndim != 2 or dist.shape[0] != dist.shape[1] or dist.shape[0] < 2:
        raise ValueError(f"dist: expected a square (n, n) matrix with n >= 2, got shape {dist.shape}")
    validate_distances(dist)
    if not np.allclose(dist, dist.T, atol=1e-6):
        raise ValueError("dist: the distance matrix is not symmetric")
    n = dist.shape[0]
    i, j = np.triu_indices(n, k=1)
    return recover_orientations(n, i, j, dist[i, j], **kw)

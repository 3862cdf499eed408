"""Oracle distances: the exact geodesic distances between the true orientations, optionally plus Gaussian
noise — the same distances (and noise seeding) as :func:`orirec.studies.oracle.oracle_recover`, on the
images of a store. The upper bound of every distance-based estimator; it reads the test ground truth.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from orirec.estimators.base import EstimatorData, EstimatorOptions, TrainingData, register
from orirec.geometry import quat_distance, quat_to_matrix

__all__ = ["OracleEstimator"]


class OracleEstimator:
    """Distance estimator: ``d_q(q_i, q_j)`` + N(0, σ²) (rad, clipped to [0, π]); σ = ``noise_rad``.

    Features for the kNN graph: ``feature_fn(q)`` (e.g. ``orirec.studies.oracle.orientation_features``),
    by default the flattened rotation matrices (their cosine similarity, (1 + 2 cos θ)/3, is monotone in
    the angle θ between two orientations).
    """

    kind: ClassVar[str] = "distances"
    needs_training = False
    uses_ground_truth = True

    def __init__(self, noise_rad: float = 0.0, seed: int = 0, feature_fn=None, name: str = "oracle") -> None:
        if noise_rad < 0:
            raise ValueError(f"oracle: distance noise must be >= 0 rad, got {noise_rad}")
        self.name, self.noise_rad, self.seed, self.feature_fn = name, float(noise_rad), seed, feature_fn

    def fit(self, train: TrainingData) -> dict[str, Any]:
        """Nothing to learn."""
        return {}

    def _truth(self, data: EstimatorData) -> np.ndarray:
        if data.true_quaternions is None or not np.isfinite(data.true_quaternions).all():
            raise ValueError(f"{self.name}: needs the ground-truth orientations of every image (a simulated store)")
        return np.asarray(data.true_quaternions, dtype=np.float64)

    def features(self, data: EstimatorData) -> np.ndarray:
        """Sign-invariant features of the true orientations."""
        q = self._truth(data)
        return self.feature_fn(q) if self.feature_fn is not None else quat_to_matrix(q).reshape(len(q), 9)

    def distances(self, data: EstimatorData, features: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """Exact distances plus seeded Gaussian noise (rad)."""
        q = self._truth(data)
        d = quat_distance(q[i], q[j])
        if self.noise_rad > 0:
            d = np.clip(d + np.random.default_rng([self.seed, 9]).normal(0.0, self.noise_rad, len(d)), 0.0, np.pi)
        return d


@register("oracle")
def _make_exact(options: EstimatorOptions) -> OracleEstimator:
    return OracleEstimator(0.0, options.seed, options.oracle_features, "oracle")


@register("oracle-noise")
def _make_noisy(options: EstimatorOptions) -> OracleEstimator:
    return OracleEstimator(options.oracle_noise_rad, options.seed, options.oracle_features, "oracle-noise")

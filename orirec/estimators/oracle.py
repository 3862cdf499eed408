"""Oracle distances: the exact geodesic distances between the true orientations, optionally plus Gaussian
noise — the same distances (and noise seeding) as :func:`orirec.studies.oracle.oracle_recover`, on the
images of a store. The upper bound of every distance-based estimator; it reads the test ground truth.
"""

from __future__ import annotations

import numpy as np

from orirec.config.estimators import OracleConfig
from orirec.estimators.base import DistanceEstimator, EstimatorData, register
from orirec.geometry import orientation_features, quat_distance

__all__ = ["OracleEstimator"]


class OracleEstimator(DistanceEstimator):
    """Distance estimator: ``d_q(q_i, q_j)`` + N(0, σ²) (rad, clipped to [0, π]); σ = ``noise_rad``.

    Features for the kNN graph and the partitions: :func:`orirec.geometry.orientation_features` of the true
    orientations (their cosine similarity, <q1, q2>², is monotone in the angle between two orientations), as in
    :func:`orirec.studies.oracle.oracle_recover`.
    """

    uses_ground_truth = True

    def __init__(self, noise_rad: float = 0.0, seed: int = 0, name: str = "oracle") -> None:
        if noise_rad < 0:
            raise ValueError(f"oracle: distance noise must be >= 0 rad, got {noise_rad}")
        super().__init__(name)
        self.noise_rad, self.seed = float(noise_rad), seed

    def _truth(self, data: EstimatorData) -> np.ndarray:
        if data.true_quaternions is None or not np.isfinite(data.true_quaternions).all():
            raise ValueError(f"{self.name}: needs the ground-truth orientations of every image (a simulated store)")
        return np.asarray(data.true_quaternions, dtype=np.float64)

    def features(self, data: EstimatorData) -> np.ndarray:
        """Sign-invariant features of the true orientations."""
        q = self._truth(data)
        return orientation_features(q)

    def distances(self, data: EstimatorData, features: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """Exact distances plus seeded Gaussian noise (rad)."""
        q = self._truth(data)
        d = quat_distance(q[i], q[j])
        if self.noise_rad > 0:
            d = np.clip(d + np.random.default_rng([self.seed, 9]).normal(0.0, self.noise_rad, len(d)), 0.0, np.pi)
        return d


@register("oracle")
def _make_exact(config: OracleConfig) -> OracleEstimator:
    return OracleEstimator(0.0, config.seed, "oracle")


@register("oracle-noise")
def _make_noisy(config: OracleConfig) -> OracleEstimator:
    return OracleEstimator(config.oracle_noise_rad, config.seed, "oracle-noise")

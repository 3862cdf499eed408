"""The published baseline: Euclidean distance between normalized images, calibrated to an angle (rad).

Images are Fourier down-sampled to ``euclid_box_px`` (less noise, less work), normalized per image (mean 0,
std 1) and compared by ‖a − b‖₂. The raw distance is not an angle; a monotone map to d_q (rad) is fitted on
random pairs of a held-out *training* store — isotonic regression of d_q on ‖a − b‖ (scikit-learn) — never on
the test images' true orientations.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from orirec.config.estimators import EuclideanConfig
from orirec.estimators.base import DistanceEstimator, EstimatorData, TrainingData, per_edge, register
from orirec.geometry import quat_distance
from orirec.imaging.resize import fourier_downsample

__all__ = ["EuclideanEstimator", "normalized_image_features"]


def normalized_image_features(images: np.ndarray, box_px: int) -> np.ndarray:
    """(n, box_px²) float32: images down-sampled to ``box_px`` and normalized per image (mean 0, std 1)."""
    img = np.asarray(images, dtype=np.float32)
    if img.ndim != 3 or img.shape[1] != img.shape[2]:
        raise ValueError(f"images: expected (n, L, L), got shape {img.shape}")
    if box_px < img.shape[-1]:
        img = fourier_downsample(img, box_px)
    f = img.reshape(len(img), -1)
    f = (f - f.mean(axis=1, keepdims=True)) / (f.std(axis=1, keepdims=True) + 1e-6)
    return f.astype(np.float32)


def _pair_distances(f: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    return per_edge(lambda a, b: np.linalg.norm(f[a] - f[b], axis=1), i, j)


class EuclideanEstimator(DistanceEstimator):
    """Distance estimator: calibrated Euclidean distance between normalized, down-sampled images."""

    needs_training = True

    def __init__(self, config: EuclideanConfig) -> None:
        super().__init__("euclidean")
        self.box_px, self.n_pairs, self.seed = config.euclid_box_px, config.calibration_pairs, config.seed
        self.calibration: Any = None

    def fit(self, train: TrainingData) -> dict[str, Any]:
        """Fit the monotone calibration ‖a − b‖ → d_q (rad) on random pairs of the training images."""
        t0 = time.perf_counter()
        n = len(train.images)
        if n < 2:
            raise ValueError(f"euclidean: the training store {train.source} needs at least 2 images, has {n}")
        rng = np.random.default_rng([self.seed, 21])
        i, j = rng.integers(0, n, self.n_pairs), rng.integers(0, n, self.n_pairs)
        keep = i != j
        i, j = i[keep], j[keep]
        f = normalized_image_features(train.images, self.box_px)
        d_e = _pair_distances(f, i, j)
        d_q = quat_distance(train.quaternions[i], train.quaternions[j])
        from sklearn.isotonic import IsotonicRegression  # a declared dependency: no silent fallback

        self.calibration = IsotonicRegression(y_min=0.0, y_max=np.pi, out_of_bounds="clip").fit(d_e, d_q)
        method = "isotonic"
        fitted = self.calibration.predict(d_e)
        return {
            "calibration": method,
            "calibration_pairs": int(len(i)),
            "calibration_mae_rad": float(np.mean(np.abs(fitted - d_q))),
            "time_fit_s": time.perf_counter() - t0,
        }

    def features(self, data: EstimatorData) -> np.ndarray:
        """Normalized down-sampled images, flattened (n, box_px²)."""
        return normalized_image_features(data.images, self.box_px)

    def distances(self, data: EstimatorData, features: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """Calibrated distances (rad) on the edges."""
        if self.calibration is None:
            raise ValueError("euclidean: not calibrated; it needs a training store (--train-store)")
        return np.clip(self.calibration.predict(_pair_distances(features, i, j)), 0.0, np.pi)


@register("euclidean")
def _make(config: EuclideanConfig) -> EuclideanEstimator:
    return EuclideanEstimator(config)

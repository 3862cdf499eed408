"""The published baseline: Euclidean distance between normalized images, calibrated to an angle (rad).

Images are Fourier down-sampled to ``euclid_box_px`` (less noise, less work), normalized per image (mean 0,
std 1) and compared by ‖a − b‖₂. The raw distance is not an angle; a monotone map to d_q (rad) is fitted on
random pairs of a held-out *training* store — isotonic regression of d_q on ‖a − b‖ (scikit-learn; a
quantile map where it is missing) — never on the test images' true orientations.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import numpy as np

from orirec.estimators.base import EstimatorData, EstimatorOptions, TrainingData, per_edge, register
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


class _QuantileMap:
    """Monotone map x → y matching the quantiles of x to those of y (fallback without scikit-learn)."""

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        qs = np.linspace(0, 1, 201)
        self.xq, self.yq = np.quantile(x, qs), np.quantile(y, qs)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.interp(x, self.xq, self.yq)


class EuclideanEstimator:
    """Distance estimator: calibrated Euclidean distance between normalized, down-sampled images."""

    kind: ClassVar[str] = "distances"
    needs_training = True
    uses_ground_truth = False

    def __init__(self, options: EstimatorOptions) -> None:
        self.name = "euclidean"
        self.box_px, self.n_pairs, self.seed = options.euclid_box_px, options.calibration_pairs, options.seed
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
        try:
            from sklearn.isotonic import IsotonicRegression

            self.calibration = IsotonicRegression(y_min=0.0, y_max=np.pi, out_of_bounds="clip").fit(d_e, d_q)
            method = "isotonic"
        except ImportError:
            self.calibration, method = _QuantileMap(d_e, d_q), "quantile"
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
def _make(options: EstimatorOptions) -> EuclideanEstimator:
    return EuclideanEstimator(options)

"""One interface for every orientation estimator compared by ``orirec compare`` (DESIGN §1, alternatives).

Two kinds, one protocol each:

- :class:`DistanceEstimator` — images → features (for the pair graph) → pairwise distances d_p (rad) on
  the graph's edges; the caller recovers orientations from them (``orirec.recover``) and resolves the
  gauge exactly as a real run does. Learned Siamese distances, Euclidean image distances, the oracle.
- :class:`OrientationEstimator` — images → unit quaternions (n, 4) directly. Regression heads, cVAE,
  common lines, ab initio projection matching.

Estimators that learn something (a calibration, a network) take a :class:`TrainingData` with ground truth
from a *training* store in ``fit``; only the oracle may read the test images' ground truth
(``EstimatorData.true_quaternions``), and says so with ``uses_ground_truth = True``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

__all__ = [
    "ESTIMATORS",
    "DistanceEstimator",
    "Estimator",
    "EstimatorData",
    "EstimatorOptions",
    "OrientationEstimator",
    "TrainingData",
    "estimator_names",
    "per_edge",
    "make_estimator",
    "register",
]


@dataclass
class EstimatorData:
    """Images whose orientations are estimated.

    images: (n, L, L) float32; pixel_size_A: Å per px; true_quaternions: (n, 4) ground truth, read only by
    estimators with ``uses_ground_truth`` (the oracle) and by ``save_artifacts`` (evaluation plots);
    max_shift_px: the dataset's largest particle shift (px), None when unknown (common lines search ±that);
    ctf_params: (n, 7) CTF parameters of the images (the store's CTF columns), None when there is no CTF
    (classical common lines phase-flip the images with them, as after CTF estimation on real data).
    """

    images: np.ndarray
    pixel_size_A: float
    true_quaternions: np.ndarray | None = None
    max_shift_px: float | None = None
    ctf_params: np.ndarray | None = None

    def phase_flipped_images(self) -> np.ndarray:
        """The images multiplied by sign(CTF) in Fourier space where ``ctf_params`` are known, else as they are."""
        if self.ctf_params is None:
            return self.images
        from orirec.imaging.ctf import ctf_from_params, phase_flip

        ctf = ctf_from_params(np.asarray(self.ctf_params), self.images.shape[-1], self.pixel_size_A)
        return np.asarray(phase_flip(self.images, ctf))


@dataclass
class TrainingData:
    """Images (n, L, L) with their true orientations (n, 4) from a training store (never the test images)."""

    images: np.ndarray
    quaternions: np.ndarray
    pixel_size_A: float
    source: str = ""


@dataclass
class EstimatorOptions:
    """Settings shared by the estimator factories (each reads only its own).

    seed: every random step's seed. model: Siamese checkpoint (siamese). oracle_noise_rad: σ of the Gaussian
    noise of oracle-noise (rad). steps (regression heads), cvae_steps, batch_size, lr: training budgets (Adam).
    encoder_preset: preset of the regression / cVAE encoders. downsample: Fourier down-sampling factor of
    their input. latent_dim, cvae_condition ("quat" | "euler"), grid_size (orientations of the cVAE search),
    refine_steps (local refinement steps). euclid_box_px: box the Euclidean baseline compares images at;
    calibration_pairs: training pairs of its isotonic calibration. oracle_features: sign-invariant features
    of quaternions for the oracle's kNN graph (injected by the caller; default the rotation matrices).
    """

    seed: int = 0
    model: Path | None = None
    oracle_noise_rad: float = 0.1
    steps: int = 400
    cvae_steps: int = 1000
    batch_size: int = 64
    lr: float = 1e-3
    encoder_preset: str = "small"
    downsample: int = 2
    latent_dim: int = 15
    cvae_condition: str = "quat"
    grid_size: int = 4000
    refine_steps: int = 30
    euclid_box_px: int = 32
    calibration_pairs: int = 200_000
    oracle_features: Callable[[np.ndarray], np.ndarray] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class DistanceEstimator(Protocol):
    """images → features → pairwise distances (rad)."""

    name: str
    kind: ClassVar[str]  # "distances"
    needs_training: bool
    uses_ground_truth: bool

    def fit(self, train: TrainingData) -> dict[str, Any]:
        """Learn from a training store (a no-op for estimators that need none); returns a summary."""

    def features(self, data: EstimatorData) -> np.ndarray:
        """Per-image features (n, f) whose nearest neighbours are the likely nearest orientations (a pair model:
        line tokens (n, n_angles, f), compared only by its own head, so the graph must be full)."""

    def distances(self, data: EstimatorData, features: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """Distances d_p (rad, in [0, π]) on the edges ``(i, j)``."""


@runtime_checkable
class OrientationEstimator(Protocol):
    """images → orientations (unit quaternions, scalar-first, w >= 0)."""

    name: str
    kind: ClassVar[str]  # "orientations"
    needs_training: bool
    uses_ground_truth: bool

    def fit(self, train: TrainingData) -> dict[str, Any]:
        """Learn from a training store; returns a summary (losses, wall time)."""

    def estimate(self, data: EstimatorData) -> np.ndarray:
        """Orientations (n, 4) of ``data.images``."""


Estimator = DistanceEstimator | OrientationEstimator

#: name → factory(options) → estimator; filled by :func:`register` in the estimator modules.
ESTIMATORS: dict[str, Callable[[EstimatorOptions], Any]] = {}


def register(*names: str):
    """Decorator: register a factory ``f(options) -> estimator`` under one or more names."""

    def deco(factory):
        for n in names:
            ESTIMATORS[n] = factory
        return factory

    return deco


#: the order of the comparison table (other registered names follow)
ORDER = ("siamese", "euclidean", "oracle", "oracle-noise", "regress-6d", "regress-quat", "regress-euler", "cvae",
         "aspire-cl", "ab-initio")  # fmt: skip


def estimator_names() -> list[str]:
    """Registered estimator names: those of :data:`ORDER` first, then any other in registration order."""
    from orirec import estimators as _  # noqa: F401  (the modules register themselves)

    return [n for n in ORDER if n in ESTIMATORS] + [n for n in ESTIMATORS if n not in ORDER]


def make_estimator(name: str, options: EstimatorOptions | None = None):
    """Build the estimator registered as ``name``; ValueError naming the choices for an unknown name."""
    names = estimator_names()
    if name not in ESTIMATORS:
        raise ValueError(f"estimator: unknown name {name!r}; choose from {', '.join(names)}")
    return ESTIMATORS[name](options or EstimatorOptions())


def per_edge(fn: Callable[[np.ndarray, np.ndarray], np.ndarray], i: np.ndarray, j: np.ndarray, chunk: int = 20_000):
    """``fn(i_chunk, j_chunk)`` over the edges in chunks (bounded memory for millions of edges); float64."""
    i, j = np.asarray(i, dtype=np.int64), np.asarray(j, dtype=np.int64)
    out = np.empty(len(i), dtype=np.float64)
    for s in range(0, len(i), chunk):
        out[s : s + chunk] = fn(i[s : s + chunk], j[s : s + chunk])
    return out

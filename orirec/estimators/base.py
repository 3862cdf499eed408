"""One interface for every way orirec gets orientations (DESIGN §1, alternatives): :class:`Estimator`.

``fit(train) -> summary`` learns from a training store (default: nothing to learn) and ``estimate(data) ->
quaternions (n, 4)`` gives the orientations. Hooks with defaults: ``resume_in(folder)`` (keep partial work so
that a rerun resumes), ``save_artifacts(out_dir, data)`` (plots), ``summary_row()`` (numbers for the table).

:class:`DistanceEstimator` is an Estimator whose ``estimate`` goes images → features (for the pair graph) →
pairwise distances d_p (rad) on the graph's edges → :func:`orirec.recover.solve.solve_orientations`, which
recovers the orientations and resolves the gauge exactly as a real run does. Learned Siamese distances,
Euclidean image distances and the oracle are distance estimators; regression heads, the cVAE, common lines and
ab initio give orientations directly.

Each estimator has one typed config (:mod:`orirec.config.estimators`). Estimators that learn something take a
:class:`TrainingData` with ground truth from a *training* store in ``fit``; only the oracle may read the test
images' ground truth (``EstimatorData.true_quaternions``), and says so with ``uses_ground_truth = True``.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from orirec.config import RecoverConfig
from orirec.config.estimators import ESTIMATOR_CONFIGS, EstimatorConfig
from orirec.recover.solve import (
    InplaneCopies,
    consistency_score,
    images_with_copies,
    quaternions_with_copies,
    solve_orientations,
)

__all__ = [
    "ESTIMATORS",
    "DistanceEstimator",
    "Estimator",
    "EstimatorData",
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

    def with_copies(self, copies: InplaneCopies) -> EstimatorData:
        """The images followed by their in-plane rotated copies (the pair graph's nodes), with the copies' true
        orientations when known (``R_z(φ) R``)."""
        q = None if self.true_quaternions is None else quaternions_with_copies(self.true_quaternions, copies)
        return EstimatorData(images_with_copies(self.images, copies), self.pixel_size_A, q)

    def phase_flipped_images(self) -> np.ndarray:
        """The images multiplied by sign(CTF) in Fourier space where ``ctf_params`` are known, else as they are."""
        from orirec.imaging.ctf import phase_flip_by_params  # noqa: I001

        return phase_flip_by_params(self.images, self.ctf_params, self.pixel_size_A)


@dataclass
class TrainingData:
    """Images (n, L, L) with their true orientations (n, 4) from a training store (never the test images)."""

    images: np.ndarray
    quaternions: np.ndarray
    pixel_size_A: float
    source: str = ""


class Estimator(abc.ABC):
    """Images → orientations (unit quaternions, scalar-first, w >= 0); see the module docstring."""

    kind: ClassVar[str] = "orientations"
    needs_training: ClassVar[bool] = False
    uses_ground_truth: ClassVar[bool] = False
    gauge_note: str = "absolute frame learned from the training store"

    def __init__(self, name: str) -> None:
        self.name = name
        self.summary: dict[str, Any] = {}  # numbers of the last estimate (filled by estimate)

    def fit(self, train: TrainingData) -> dict[str, Any]:
        """Learn from a training store; returns a summary (losses, wall time). Default: nothing to learn."""
        return {}

    @abc.abstractmethod
    def estimate(self, data: EstimatorData) -> np.ndarray:
        """Orientations (n, 4) of ``data.images``."""

    def resume_in(self, folder: Path) -> None:
        """Keep partial work in ``folder`` so that a rerun resumes there. Default: nothing is kept."""
        return None

    def save_artifacts(self, out_dir: Path, data: EstimatorData) -> list[Path]:
        """Write plots or files about the last estimate under ``out_dir``; returns their paths. Default: none."""
        return []

    def summary_row(self) -> dict[str, Any]:
        """The last estimate's numbers for a comparison table, named after the estimator."""
        return {f"{self.name}_{k}": v for k, v in self.summary.items()}


class DistanceEstimator(Estimator):
    """Images → features → pairwise distances d_p (rad) → gauge-resolved orientations (``self.recover``)."""

    kind: ClassVar[str] = "distances"

    def __init__(self, name: str, recover: RecoverConfig | None = None) -> None:
        super().__init__(name)
        self.recover = recover or RecoverConfig()

    @property
    def gauge_note(self) -> str:  # type: ignore[override]
        return "in-plane copies + consistency search (no truth)" if self.recover.gauge else "none (gauge off)"

    @abc.abstractmethod
    def features(self, data: EstimatorData) -> np.ndarray:
        """Per-image features (n, f) whose nearest neighbours are the likely nearest orientations (a pair model:
        line tokens (n, n_angles, f), compared only by its own head, so the graph must be full)."""

    @abc.abstractmethod
    def distances(self, data: EstimatorData, features: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """Distances d_p (rad, in [0, π]) on the edges ``(i, j)``."""

    def estimate(self, data: EstimatorData) -> np.ndarray:
        """Gauge-resolved orientations from this estimator's distances (in-plane copies join the pair graph)."""
        nodes: dict[str, EstimatorData] = {}  # the images and their in-plane copies, set by features()

        def features(copies: InplaneCopies | None) -> np.ndarray:
            nodes["data"] = data if copies is None else data.with_copies(copies)
            return self.features(nodes["data"])

        cfg = self.recover
        solved = solve_orientations(
            len(data.images), cfg, features, lambda feats, i, j: self.distances(nodes["data"], feats, i, j),
            gauge_score=consistency_score(data.images, cfg) if cfg.gauge else None,
        )  # fmt: skip
        self.summary = {"n_edges": int(len(solved.i)), "l_or": float(solved.recovery.l_or)}
        if solved.gauge is not None:
            g = solved.gauge
            self.summary |= {
                "gauge_transposed": bool(g.transposed),
                "gauge_copy_angle_error_deg": g.copy_angle_error_deg,
            }
        return solved.quaternions

    def summary_row(self) -> dict[str, Any]:
        """The recovery's numbers (edges, L_OR, gauge), as a real run reports them."""
        return dict(self.summary)


#: name → factory(config, **objects) → estimator; filled by :func:`register` in the estimator modules.
ESTIMATORS: dict[str, Callable[..., Estimator]] = {}


def register(*names: str):
    """Decorator: register a factory ``f(config, **objects) -> Estimator`` under one or more names (each name's
    config class is :data:`orirec.config.estimators.ESTIMATOR_CONFIGS`)."""

    def deco(factory):
        for n in names:
            ESTIMATORS[n] = factory
        return factory

    return deco


#: the order of the comparison table (other registered names follow)
ORDER = tuple(ESTIMATOR_CONFIGS)


def estimator_names() -> list[str]:
    """Registered estimator names: those of :data:`ORDER` first, then any other in registration order."""
    from orirec import estimators as _  # noqa: F401  (the modules register themselves)

    return [n for n in ORDER if n in ESTIMATORS] + [n for n in ESTIMATORS if n not in ORDER]


def make_estimator(
    name: str, settings: Mapping[str, Any] | None = None, recover: RecoverConfig | None = None, **objects: Any
) -> Estimator:
    """Build the estimator registered as ``name``; ValueError naming the choices for an unknown name.

    ``settings``: one flat mapping of options (e.g. the command line's); the estimator's typed config
    (:mod:`orirec.config.estimators`) takes its own fields and validates them. ``recover``: how a distance
    estimator recovers orientations (default :class:`~orirec.config.RecoverConfig`). ``objects``: things that
    are not settings, such as a progress callback (ab-initio's ``progress``).
    """
    names = estimator_names()
    if name not in ESTIMATORS:
        raise ValueError(f"estimator: unknown name {name!r}; choose from {', '.join(names)}")
    config: EstimatorConfig = ESTIMATOR_CONFIGS[name].model_validate(dict(settings or {}))
    est = ESTIMATORS[name](config, **objects)
    if isinstance(est, DistanceEstimator) and recover is not None:
        est.recover = recover
    return est


def per_edge(fn: Callable[[np.ndarray, np.ndarray], np.ndarray], i: np.ndarray, j: np.ndarray, chunk: int = 20_000):
    """``fn(i_chunk, j_chunk)`` over the edges in chunks (bounded memory for millions of edges); float64."""
    i, j = np.asarray(i, dtype=np.int64), np.asarray(j, dtype=np.int64)
    out = np.empty(len(i), dtype=np.float64)
    for s in range(0, len(i), chunk):
        out[s : s + chunk] = fn(i[s : s + chunk], j[s : s + chunk])
    return out

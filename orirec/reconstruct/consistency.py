"""Reconstruction consistency: how well a set of orientations explains the images (no ground truth)."""

from __future__ import annotations

import numpy as np
import torch

from orirec.reconstruct.fourier import reconstruct
from orirec.simulate.inplane import fourier_downsample
from orirec.simulate.nufft_projector import cpu_projector

__all__ = ["crossval_reprojection_score", "prepare_consistency_images"]


def prepare_consistency_images(images: np.ndarray, box_px: int = 32, max_images: int = 600, seed: int = 0):
    """A seeded subset of at most ``max_images`` images, Fourier-cropped to ``box_px``; returns (rows, images)."""
    rng = np.random.default_rng([seed, 5])
    n = len(images)
    rows = np.sort(rng.choice(n, size=min(n, max_images), replace=False))
    return rows, fourier_downsample(np.asarray(images)[rows], box_px)


def _ncc_disk(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    L = a.shape[-1]
    yy, xx = np.mgrid[:L, :L] - L // 2
    disk = xx**2 + yy**2 <= (L // 2 - 1) ** 2
    a = a[:, disk] - a[:, disk].mean(axis=1, keepdims=True)
    b = b[:, disk] - b[:, disk].mean(axis=1, keepdims=True)
    return (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)


def crossval_reprojection_score(images: np.ndarray, quaternions: np.ndarray, seed: int = 0) -> float:
    """Mean normalized cross-correlation (inside the inscribed disk) of each image with the projection,
    at its orientation, of the map reconstructed from the OTHER half of the images.

    Cross-validated, so a set of orientations cannot score well by fitting noise: inconsistent
    orientations (e.g. a wrong detector-frame rotation, DESIGN §1.3) blur both half-maps and lower it.
    """
    n = len(images)
    half = np.random.default_rng([seed, 6]).permutation(n) < n // 2
    scores = []
    for fit, test in ((half, ~half), (~half, half)):
        vol = reconstruct(images[fit], quaternions[fit])
        with torch.no_grad():
            proj = cpu_projector(vol).project(quaternions[test]).cpu().numpy()
        scores.append(_ncc_disk(proj, images[test]))
    return float(np.concatenate(scores).mean())

"""Reconstruction consistency: how well a set of orientations explains the images (no ground truth)."""

from __future__ import annotations

import numpy as np
import torch

from orirec.imaging.ncc import MaskedNCC
from orirec.imaging.resize import fourier_downsample
from orirec.reconstruct.fourier import reconstruct
from orirec.simulate.nufft_projector import cpu_projector

__all__ = ["crossval_reprojection_score", "prepare_consistency_images"]


def prepare_consistency_images(images: np.ndarray, box_px: int = 32, max_images: int = 600, seed: int = 0):
    """A seeded subset of at most ``max_images`` images, Fourier-cropped to ``box_px``; returns (rows, images)."""
    rng = np.random.default_rng([seed, 5])
    n = len(images)
    rows = np.sort(rng.choice(n, size=min(n, max_images), replace=False))
    return rows, fourier_downsample(np.asarray(images)[rows], box_px)


def crossval_reprojection_score(images: np.ndarray, quaternions: np.ndarray, seed: int = 0) -> float:
    """Mean normalized cross-correlation (inside the inscribed disk) of each image with the projection,
    at its orientation, of the map reconstructed from the OTHER half of the images.

    Cross-validated, so a set of orientations cannot score well by fitting noise: inconsistent
    orientations (e.g. a wrong detector-frame rotation, DESIGN §1.3) blur both half-maps and lower it.
    """
    n = len(images)
    half = np.random.default_rng([seed, 6]).permutation(n) < n // 2
    ncc = MaskedNCC(images.shape[-1], margin_px=1)
    scores = []
    for fit, test in ((half, ~half), (~half, half)):
        vol = reconstruct(images[fit], quaternions[fit])
        with torch.no_grad():
            proj = cpu_projector(vol).project(quaternions[test]).cpu()
            scores.append((ncc(proj) * ncc(images[test])).sum(1).numpy())
    return float(np.concatenate(scores).mean())

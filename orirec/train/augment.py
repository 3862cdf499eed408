"""Training-time augmentations of image batches (DESIGN §1.1), seeded per step.

- ``rotate``: in-plane rotation of each image by α uniform on [0, 2π). The projection of orientation q
  rotated in-plane by α (counter-clockwise, :func:`orirec.imaging.inplane.rotate_inplane`) is the
  projection of ``z(α)·q``, so the quaternion is replaced by ``z(α)·q`` and every d_q of the step is
  recomputed from the new quaternions (all-pairs training).
- ``shift_px``: sub-pixel shift, uniform in ±shift_px per axis (px; Fourier phase ramp, periodic).
- ``noise_sigma2``: white noise added so that each image's noise level becomes a σ² drawn uniformly in the
  range (relative to the clean-image variance, DESIGN §2), given the store's own σ² (no noise is removed:
  a target below the store's level leaves the image as is).
- ``ctf``: a random CTF on freshly projected images (on-the-fly mode only; see orirec.train.fresh).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from orirec.config.models import AugmentConfig
from orirec.geometry import canonicalize, multiply, z_rotation_quaternions
from orirec.imaging.formation import apply_shifts
from orirec.imaging.inplane import rotate_inplane

__all__ = [
    "DEFAULT_AUGMENT",
    "augment_images",
    "check_augment",
    "extra_noise_variance",
    "is_active",
    "rotate_with_quaternions",
]

#: every augmentation off (the defaults of orirec.config AugmentConfig, their one home)
DEFAULT_AUGMENT: dict[str, Any] = AugmentConfig().model_dump()


def check_augment(augment: dict[str, Any] | None) -> dict[str, Any]:
    """Fill defaults and validate an augmentation config (raises ValueError naming the bad key)."""
    aug = {**DEFAULT_AUGMENT, **(augment or {})}
    unknown = set(aug) - set(DEFAULT_AUGMENT)
    if unknown:
        raise ValueError(f"augment config: unknown keys {sorted(unknown)}; known: {sorted(DEFAULT_AUGMENT)}")
    if float(aug["shift_px"]) < 0:
        raise ValueError(f"augment config: shift_px must be >= 0 px, got {aug['shift_px']}")
    ns = aug["noise_sigma2"]
    if ns is not None and (len(ns) != 2 or not 0 <= float(ns[0]) <= float(ns[1])):
        raise ValueError(f"augment config: noise_sigma2 must be a range (lo, hi) with 0 <= lo <= hi, got {ns}")
    return aug


def is_active(aug: dict[str, Any]) -> bool:
    """True when any image-space augmentation (shift, rotation, noise) is on."""
    return bool(aug["rotate"]) or float(aug["shift_px"]) > 0 or aug["noise_sigma2"] is not None


def rotate_with_quaternions(
    images: np.ndarray, quaternions: np.ndarray, angles_rad: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Rotate images (B, L, L) in-plane by ``angles_rad`` and return them with their orientations z(α)·q."""
    q = canonicalize(multiply(z_rotation_quaternions(np.asarray(angles_rad, dtype=np.float64)), quaternions))
    return rotate_inplane(images, angles_rad), q


def extra_noise_variance(images: np.ndarray, sigma2_now: float, sigma2_target: np.ndarray) -> np.ndarray:
    """Per-image variance (B,) of the white noise that raises the noise level from ``sigma2_now`` to
    ``sigma2_target``: the clean variance is estimated as ``var(image) / (1 + sigma2_now)``."""
    clean_var = images.reshape(len(images), -1).var(axis=1) / (1.0 + float(sigma2_now))
    return np.maximum(np.asarray(sigma2_target, dtype=np.float64) - float(sigma2_now), 0.0) * clean_var


def augment_images(
    images: torch.Tensor,
    quaternions: torch.Tensor | None,
    aug: dict[str, Any],
    rng: np.random.Generator,
    sigma2_now: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Apply rotation, shift and noise (in that order) to a batch (B, L, L); returns (images, quaternions).

    ``quaternions`` (B, 4) are needed for ``rotate`` (they come back as z(α)·q) and may be None otherwise.
    ``sigma2_now`` is the noise level already in the images (the store's σ²).
    """
    if not is_active(aug):
        return images, quaternions
    x = images.detach().cpu().numpy().astype(np.float32, copy=False)
    q = None if quaternions is None else quaternions.detach().cpu().numpy().astype(np.float64)
    n = len(x)
    if aug["rotate"]:
        if q is None:
            raise ValueError("augment: in-plane rotation changes d_q and needs the quaternions (pairing 'all')")
        x, q = rotate_with_quaternions(x, q, rng.uniform(0.0, 2 * np.pi, n))
    if float(aug["shift_px"]) > 0:
        s = float(aug["shift_px"])
        x = apply_shifts(x, rng.uniform(-s, s, (n, 2)))
    if aug["noise_sigma2"] is not None:
        lo, hi = (float(v) for v in aug["noise_sigma2"])
        var = extra_noise_variance(x, sigma2_now, rng.uniform(lo, hi, n))
        x = x + rng.standard_normal(x.shape) * np.sqrt(var)[:, None, None]
    out_q = None if q is None else torch.from_numpy(q)
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), out_q

"""In-plane rotation of images and Fourier down-sampling (image-space operations on (B, L, L) arrays)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["rotate_inplane"]


def rotate_inplane(images: np.ndarray, angles_rad: np.ndarray) -> np.ndarray:
    """Rotate each image's content by ``angles_rad`` counter-clockwise in the (x, y) image plane.

    Images are indexed ``[y, x]`` about the centre pixel ``L//2``. The projection of orientation ``R``
    rotated by ``φ`` is the projection of orientation ``R_z(φ) R``: ``out(r) = img(R_z(-φ) r)``.
    Bicubic interpolation; content that leaves the frame is lost and empty corners are 0.
    """
    img = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
    if img.ndim != 3 or img.shape[1] != img.shape[2]:
        raise ValueError(f"rotate_inplane: images must be (B, L, L), got {tuple(img.shape)}")
    phi = torch.as_tensor(np.asarray(angles_rad, dtype=np.float64)).reshape(-1)
    if phi.shape[0] != img.shape[0]:
        raise ValueError(f"rotate_inplane: {phi.shape[0]} angles for {img.shape[0]} images")
    L = img.shape[-1]
    c = L // 2
    coords = torch.arange(L, dtype=torch.float64) - c
    y, x = torch.meshgrid(coords, coords, indexing="ij")
    cos, sin = torch.cos(phi)[:, None, None], torch.sin(phi)[:, None, None]
    # source point R_z(-φ) r for each output point r
    xs = cos * x + sin * y
    ys = -sin * x + cos * y
    # grid_sample with align_corners=True maps -1 → index 0 and +1 → index L-1
    grid = torch.stack([(xs + c) / (L - 1) * 2 - 1, (ys + c) / (L - 1) * 2 - 1], dim=-1).float()
    out = F.grid_sample(img[:, None], grid, mode="bicubic", padding_mode="zeros", align_corners=True)
    return out[:, 0].numpy()

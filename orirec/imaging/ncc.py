"""Masked normalized cross-correlation of image batches, as unit feature vectors (dot product = NCC)."""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["MaskedNCC"]


class MaskedNCC:
    """Unit features whose dot products are normalized cross-correlations inside the inscribed disk.

    ``box_px``: image side (px); ``margin_px``: the disk's radius is ``box_px // 2 - margin_px``;
    with ``resolution_A`` (and ``pixel_size_A``, Å/px) the images are first low-passed to that resolution.
    """

    def __init__(
        self, box_px: int, margin_px: int = 2, pixel_size_A: float | None = None, resolution_A: float | None = None
    ) -> None:
        yy, xx = np.mgrid[:box_px, :box_px] - box_px // 2
        self.disk = torch.from_numpy((xx**2 + yy**2 <= (box_px // 2 - margin_px) ** 2).reshape(-1))
        self.lowpass = None
        if resolution_A is not None:
            if pixel_size_A is None:
                raise ValueError("MaskedNCC: a low-pass resolution (Å) needs the pixel size (Å/px)")
            f = np.fft.fftfreq(box_px) / pixel_size_A  # 1/Å
            k = np.sqrt(f[:, None] ** 2 + f[None, :] ** 2)
            self.lowpass = torch.from_numpy((k <= 1.0 / resolution_A).astype(np.float32))

    def __call__(self, images: np.ndarray | torch.Tensor) -> torch.Tensor:
        """(n, P) float features of ``images`` (n, L, L)."""
        x = torch.as_tensor(images)
        if self.lowpass is not None:
            x = torch.fft.ifft2(torch.fft.fft2(x) * self.lowpass.to(x.device)).real
        x = x.reshape(len(x), -1)[:, self.disk.to(x.device)]
        x = x - x.mean(1, keepdim=True)
        return x / torch.clamp(x.norm(dim=1, keepdim=True), min=1e-12)

"""Rotation-aware encoder (family "polar"): a polar resampling front end and convolutions that are
circular in the angle, so an in-plane rotation of the image by α is a cyclic shift of every feature map
by ``α / 2π`` of its angular length (equivariance).

The head is deliberately *not* rotation invariant: the image of ``z(α)·q`` is the image of ``q`` rotated
in-plane by α, and ``d_q(q, z(α)·q) = |α|`` (mod the sign), so the distance must see the in-plane angle.
The angular axis is kept (pooled in radius only at the end) and read by a linear layer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from orirec.models.encoder import EncoderBase
from orirec.models.norms import norm_layer

__all__ = ["PolarEncoder", "polar_grid", "polar_grid_at", "polar_spectrum"]


def polar_grid(size_px: int, n_radii: int, n_angles: int) -> torch.Tensor:
    """``grid_sample`` grid (1, n_radii, n_angles, 2) of polar samples of a (size, size) image about its
    centre pixel ``size // 2``: radius ``r_k = k · (size/2 − 1) / (n_radii − 1)`` px, angle ``θ_m = 2π m / n_angles``
    counter-clockwise from +x (the sense of :func:`orirec.imaging.inplane.rotate_inplane`)."""
    return polar_grid_at(size_px, torch.linspace(0.0, size_px / 2 - 1, n_radii, dtype=torch.float64), n_angles)


def polar_grid_at(size_px: int, radii_px: torch.Tensor, n_angles: int) -> torch.Tensor:
    """``grid_sample`` grid (1, len(radii_px), n_angles, 2) of polar samples about pixel ``size // 2`` (the centre
    of an image, or the DC term of an fftshift-ed spectrum) at the given radii (px) and angles
    ``θ_m = 2π m / n_angles`` counter-clockwise from +x (align_corners=True convention)."""
    c = size_px // 2
    r = radii_px.to(torch.float64)
    th = torch.arange(n_angles, dtype=torch.float64) * (2 * math.pi / n_angles)
    x = c + r[:, None] * torch.cos(th)[None, :]
    y = c + r[:, None] * torch.sin(th)[None, :]
    to_unit = lambda v: v / (size_px - 1) * 2 - 1  # noqa: E731 - align_corners=True mapping
    return torch.stack([to_unit(x), to_unit(y)], dim=-1)[None].float()


def polar_spectrum(x: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Images (B, 1, l, l) → their centred 2D spectrum sampled (bilinear) on ``grid`` from :func:`polar_grid_at`,
    real and imaginary parts (B, 2, n_radii, n_angles). Phases are about the image centre (pixel l // 2), the
    projection of the particle's origin, so the central lines of two views match on their common line."""
    f = torch.fft.fftshift(torch.fft.fft2(torch.fft.ifftshift(x[:, 0].float(), dim=(-2, -1))), dim=(-2, -1))
    ri = torch.stack([f.real, f.imag], dim=1)
    return F.grid_sample(ri, grid.expand(x.shape[0], -1, -1, -1), mode="bilinear", align_corners=True)


class _CircularConv(nn.Module):
    """k×k conv, circular padding along the angle (last axis) and zero padding along the radius."""

    def __init__(self, c_in: int, c_out: int, kernel: int) -> None:
        super().__init__()
        self.pad = kernel // 2
        self.conv = nn.Conv2d(c_in, c_out, kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (self.pad, self.pad, 0, 0), mode="circular")
        return self.conv(F.pad(x, (0, 0, self.pad, self.pad)))


class PolarEncoder(EncoderBase):
    """Polar front end (``n_radii`` × ``n_angles`` samples, bilinear), then conv + norm + ReLU + 2×2 max-pool
    per layer (circular in angle), mean over radius, flatten (channels × angles), linear.

    Args mirror :class:`orirec.models.siamese.SiameseNet`; ``n_radii`` defaults to half the body box and
    ``n_angles`` to twice it (rounded up to a multiple of 8).
    """

    family_keys = ("channels", "kernels", "norm", "n_radii", "n_angles")
    family = "polar"
    grid: torch.Tensor  # buffer

    def __init__(
        self,
        in_size: int,
        channels: Sequence[int] = (16, 32, 64, 64, 128),
        kernels: Sequence[int] = (7, 5, 3, 3, 3),
        feature_dim: int = 128,
        norm: str = "none",
        distance: str = "angle",
        downsample: int = 1,
        n_radii: int | None = None,
        n_angles: int | None = None,
    ) -> None:
        super().__init__(in_size, feature_dim, distance, downsample)
        channels, kernels = [int(c) for c in channels], [int(k) for k in kernels]
        if not channels or len(channels) != len(kernels):
            raise ValueError(f"PolarEncoder: channels {channels} and kernels {kernels} must be non-empty, equal length")
        if any(c < 1 for c in channels) or any(k < 1 or k % 2 == 0 for k in kernels):
            raise ValueError(f"PolarEncoder: channels must be >= 1 and kernels odd, got {channels}, {kernels}")
        self.n_radii = int(n_radii or max(self.body_size // 2, 2))
        self.n_angles = int(n_angles or 8 * math.ceil(2 * self.body_size / 8))
        if self.n_radii < 2 or self.n_angles < 4:
            raise ValueError(f"PolarEncoder: need n_radii >= 2 and n_angles >= 4, got {self.n_radii}, {self.n_angles}")
        self.channels, self.kernels, self.norm = channels, kernels, str(norm)
        self.register_buffer("grid", polar_grid(self.body_size, self.n_radii, self.n_angles), persistent=False)
        layers: list[nn.Module] = []
        n_r, n_a, prev = self.n_radii, self.n_angles, 1
        for c, k in zip(channels, kernels, strict=True):
            layers += [_CircularConv(prev, c, k), norm_layer(self.norm, c), nn.ReLU(inplace=True)]
            if n_r > 1 and n_a > 1 and n_a % 2 == 0:
                layers.append(nn.MaxPool2d(2, ceil_mode=True))
                n_r, n_a = (n_r + 1) // 2, n_a // 2
            prev = c
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(prev * n_a, self.feature_dim)

    def to_polar(self, x: torch.Tensor) -> torch.Tensor:
        """Normalized images (B, 1, l, l) → polar samples (B, 1, n_radii, n_angles)."""
        grid = self.grid.expand(x.shape[0], -1, -1, -1)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Normalized images (B, 1, l, l) → features (B, F)."""
        f = self.features(self.to_polar(x)).mean(dim=-2)  # mean over radius: (B, C, angles)
        return self.head(f.flatten(1))

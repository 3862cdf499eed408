"""A small 3D convolutional encoder for subvolumes (cryo-ET users): (B, D, D, D) voxels → features (B, F).

Used with :class:`orirec.models.rotation_heads.RotationRegressor` to regress the orientation of a
subtomogram directly. Each subvolume is normalized (mean 0, std 1) inside the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

__all__ = ["Encoder3D"]


class Encoder3D(nn.Module):
    """Conv3d + ReLU + 2×2×2 max-pool per layer, global average pool, linear to ``feature_dim``.

    Args:
        in_size: subvolume box D (voxels); inputs are (B, D, D, D) or (B, 1, D, D, D).
        channels: output channels of each conv layer (kernel 3, 'same' padding).
        feature_dim: size F of the features.
    """

    def __init__(self, in_size: int, channels: Sequence[int] = (8, 16, 32), feature_dim: int = 64) -> None:
        super().__init__()
        channels = [int(c) for c in channels]
        if int(in_size) < 2 or not channels or any(c < 1 for c in channels) or int(feature_dim) < 1:
            raise ValueError(
                f"Encoder3D: need in_size >= 2 voxels, non-empty positive channels and feature_dim >= 1, got "
                f"{in_size}, {channels}, {feature_dim}"
            )
        self.in_size, self.channels, self.feature_dim = int(in_size), channels, int(feature_dim)
        layers: list[nn.Module] = []
        prev, size = 1, self.in_size
        for c in channels:
            layers += [nn.Conv3d(prev, c, 3, padding=1), nn.ReLU(inplace=True)]
            if size > 1:
                layers.append(nn.MaxPool3d(2))
                size //= 2
            prev = c
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(prev, self.feature_dim)

    @property
    def config(self) -> dict[str, Any]:
        """Keyword arguments that rebuild this network."""
        return {"in_size": self.in_size, "channels": list(self.channels), "feature_dim": self.feature_dim}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Subvolumes (B, D, D, D) or (B, 1, D, D, D) → features (B, F)."""
        if x.ndim == 4:
            x = x.unsqueeze(1)
        D = self.in_size
        if x.ndim != 5 or x.shape[1] != 1 or tuple(x.shape[-3:]) != (D, D, D):
            raise ValueError(f"Encoder3D.forward: expected (B, [1,] {D}, {D}, {D}), got {tuple(x.shape)}")
        x = x.float()
        x = (x - x.mean(dim=(-3, -2, -1), keepdim=True)) / (x.std(dim=(-3, -2, -1), keepdim=True) + 1e-6)
        return self.head(self.features(x).mean(dim=(-3, -2, -1)))

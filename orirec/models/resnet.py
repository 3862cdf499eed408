"""Residual encoder (family "resnet"): a stem conv, then one residual block per width, each halving the map.

Every conv is followed by a normalization layer ("group" by default, batch-independent so data-parallel
training computes the single-process gradient; "batch" or "none" also possible).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from orirec.models.encoder import EncoderBase
from orirec.models.norms import conv_stack, norm_layer

__all__ = ["ResidualBlock", "ResNetEncoder"]


class ResidualBlock(nn.Module):
    """Two k×k convs with normalization and a (projected when the shape changes) identity shortcut."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, norm: str) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False)
        self.norm1 = norm_layer(norm, c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, kernel, padding=kernel // 2, bias=False)
        self.norm2 = norm_layer(norm, c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), norm_layer(norm, c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.norm1(self.conv1(x)))
        return F.relu(self.norm2(self.conv2(out)) + self.shortcut(x))


class ResNetEncoder(EncoderBase):
    """Residual CNN: stem conv (``kernels[0]``, ``channels[0]``), then a stride-2 residual block per further
    width ``channels[1:]`` (kernel ``kernels[i]``; stride 1 once the map is 1×1), global average pool, linear.

    Args mirror :class:`orirec.models.siamese.SiameseNet` (``norm`` defaults to "group").
    """

    family_keys = ("channels", "kernels", "norm")
    family = "resnet"

    def __init__(
        self,
        in_size: int,
        channels: Sequence[int] = (16, 32, 64, 64, 128),
        kernels: Sequence[int] = (7, 3, 3, 3, 3),
        feature_dim: int = 128,
        norm: str = "group",
        distance: str = "angle",
        downsample: int = 1,
    ) -> None:
        super().__init__(in_size, feature_dim, distance, downsample)
        channels, kernels = conv_stack("ResNetEncoder", channels, kernels)
        self.channels, self.kernels, self.norm = channels, kernels, str(norm)
        self.stem = nn.Sequential(
            nn.Conv2d(1, channels[0], kernels[0], padding=kernels[0] // 2, bias=False),
            norm_layer(self.norm, channels[0]),
            nn.ReLU(inplace=True),
        )
        blocks, size = [], self.body_size
        for c_in, c_out, k in zip(channels[:-1], channels[1:], kernels[1:], strict=True):
            stride = 2 if size > 1 else 1
            blocks.append(ResidualBlock(c_in, c_out, k, stride, self.norm))
            size = (size + 1) // 2 if stride == 2 else size
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(channels[-1], self.feature_dim)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Normalized images (B, 1, l, l) → features (B, F)."""
        return self.head(self.blocks(self.stem(x)).mean(dim=(-2, -1)))

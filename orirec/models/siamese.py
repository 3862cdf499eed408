"""Siamese distance-learning encoder (DESIGN §1.1).

A VGG-like stack embeds one image into a feature vector; the learned distance between two
images is ``d_p = 2·arccos|cos(e1, e2)|`` (rad, in [0, π]), trained to match the geodesic
distance ``d_q = 2·arccos|<q1, q2>|`` between their orientations.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from orirec.models.encoder import EncoderBase, embedding_distance
from orirec.models.norms import conv_stack, norm_layer

__all__ = ["ENCODER_PRESETS", "SiameseNet", "distance", "encoder_preset"]

#: Named encoder sizes. "paper" is the published reference stack (DESIGN §1.1).
ENCODER_PRESETS: dict[str, dict[str, Any]] = {
    "paper": {
        "channels": (32, 64, 128, 256, 256, 512, 512),
        "kernels": (7, 5, 3, 3, 3, 3, 3),
        "feature_dim": 512,
    },
    "small": {"channels": (16, 32, 64, 64, 128), "kernels": (7, 5, 3, 3, 3), "feature_dim": 128},
    "tiny": {"channels": (8, 16, 16), "kernels": (5, 3, 3), "feature_dim": 16},
}


def encoder_preset(name: str) -> dict[str, Any]:
    """Return a copy of the named encoder size ("paper", "small", "tiny") as a config dict."""
    if name not in ENCODER_PRESETS:
        raise ValueError(f"model preset: unknown name {name!r}; choose one of {sorted(ENCODER_PRESETS)}")
    p = ENCODER_PRESETS[name]
    return {"channels": list(p["channels"]), "kernels": list(p["kernels"]), "feature_dim": p["feature_dim"]}


def distance(e1: torch.Tensor, e2: torch.Tensor) -> torch.Tensor:
    """Learned distance d_p = 2·arccos|cos(e1, e2)| (rad, in [0, π]) between embeddings (..., F).

    |cos| is clamped to 1 - 1e-6 so the gradient stays finite for identical embeddings.
    """
    return embedding_distance(e1, e2, "angle")


class SiameseNet(EncoderBase):
    """VGG-like encoder (family "vgg"): conv ('same') + [norm] + ReLU + 2×2 max-pool per layer, global
    average pool, linear.

    Args:
        in_size: image box L (px); images are (B, 1, L, L) or (B, L, L).
        channels: output channels of each conv layer.
        kernels: odd kernel size (px) of each conv layer.
        feature_dim: size F of the embedding; a final linear layer is added when it differs
            from the last channel count.
        pool_every: max-pool after every ``pool_every``-th conv (1 = after each, as published).
            Pooling is skipped once the feature map is 1×1, so small images work.
        norm: "none" (published), "batch" or "group" after each conv.
        distance: "angle" (published) or "euclidean" (:mod:`orirec.models.encoder`).
        downsample: Fourier down-sampling factor of the input (1 = none).

    Each image is normalized inside the model (mean subtracted, divided by its std), so raw
    images of any scale can be fed.
    """

    family_keys = ("channels", "kernels", "pool_every", "norm")
    family = "vgg"

    def __init__(
        self,
        in_size: int,
        channels: Sequence[int] = ENCODER_PRESETS["paper"]["channels"],
        kernels: Sequence[int] = ENCODER_PRESETS["paper"]["kernels"],
        feature_dim: int = 512,
        pool_every: int = 1,
        norm: str = "none",
        distance: str = "angle",
        downsample: int = 1,
    ) -> None:
        super().__init__(in_size, feature_dim, distance, downsample)
        channels, kernels = conv_stack("SiameseNet", channels, kernels)
        if int(pool_every) < 1:
            raise ValueError(f"SiameseNet: pool_every must be >= 1, got {pool_every}")
        self.pool_every, self.norm = int(pool_every), str(norm)
        self.channels, self.kernels = channels, kernels
        layers: list[nn.Module] = []
        size, prev = self.body_size, 1
        for n, (c, k) in enumerate(zip(channels, kernels, strict=True)):
            layers.append(nn.Conv2d(prev, c, k, padding=k // 2))
            if self.norm != "none":  # no placeholder: module indices stay those of checkpoints saved before norms
                layers.append(norm_layer(self.norm, c))
            layers.append(nn.ReLU(inplace=True))
            if (n + 1) % self.pool_every == 0 and size > 1:
                layers.append(nn.MaxPool2d(2))
                size //= 2
            prev = c
        # channels-last convolutions are ~1.7x faster on CPU (oneDNN) for the small preset at 64 px
        self.features = nn.Sequential(*layers).to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.head = nn.Linear(prev, self.feature_dim) if prev != self.feature_dim else nn.Identity()

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Normalized images (B, 1, l, l) → features (B, F)."""
        x = self.features(x.contiguous(memory_format=torch.channels_last)).mean(dim=(-2, -1))
        return self.head(x)

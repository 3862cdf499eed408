"""Normalization layers by name for the encoder families: "none", "batch" or "group"."""

from __future__ import annotations

from torch import nn

__all__ = ["NORMS", "norm_layer"]

NORMS = ("none", "batch", "group")


def norm_layer(kind: str, channels: int) -> nn.Module:
    """A 2D normalization of ``channels`` feature maps: Identity, BatchNorm2d or GroupNorm (≤ 8 groups).

    Group norm is the default of the residual family: it does not depend on the batch, so data-parallel
    workers (whose batches differ) compute exactly the single-process gradient.
    """
    if kind == "none":
        return nn.Identity()
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        groups = next(g for g in (8, 4, 2, 1) if channels % g == 0)
        return nn.GroupNorm(groups, channels)
    raise ValueError(f"model norm: unknown {kind!r}; choose one of {NORMS}")

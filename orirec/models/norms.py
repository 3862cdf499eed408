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


def conv_stack(name: str, channels, kernels) -> tuple[list[int], list[int]]:
    """Validated (channels, kernels) of conv layers: non-empty, equal length, channels >= 1, odd kernels."""
    channels, kernels = [int(c) for c in channels], [int(k) for k in kernels]
    if not channels or len(channels) != len(kernels):
        raise ValueError(f"{name}: channels {channels} and kernels {kernels} must be non-empty and of equal length")
    if any(c < 1 for c in channels) or any(k < 1 or k % 2 == 0 for k in kernels):
        raise ValueError(f"{name}: channels must be >= 1 and kernels odd, got {channels}, {kernels}")
    return channels, kernels

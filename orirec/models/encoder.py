"""Shared pieces of every Siamese encoder family: input checks, per-image normalization, the optional
anti-aliased Fourier down-sampling front end, and the embedding distance d_p (rad, in [0, π]).

Distances between two embeddings ``e1, e2`` (DESIGN §1.1):

- ``"angle"`` (published): ``d_p = 2·arccos|cos(e1, e2)|`` — invariant to the embeddings' norms.
- ``"euclidean"``: ``d_p = π·tanh(‖e1 − e2‖₂)`` — 0 for equal embeddings, bounded below π, monotone in
  the Euclidean distance; the network learns the scale of its embeddings.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["DISTANCES", "EncoderBase", "embedding_distance", "embedding_distance_np", "fourier_crop"]

DISTANCES = ("angle", "euclidean")
_COS_CLAMP = 1.0 - 1e-6


def embedding_distance(e1: torch.Tensor, e2: torch.Tensor, kind: str = "angle") -> torch.Tensor:
    """Learned distance d_p (rad, in [0, π]) between embeddings (..., F); ``kind`` "angle" or "euclidean".

    For "angle" |cos| is clamped to 1 - 1e-6 so the gradient stays finite for identical embeddings; for
    "euclidean" the norm is smoothed by 1e-12 under the square root for the same reason.
    """
    if kind == "angle":
        cos = F.cosine_similarity(e1, e2, dim=-1, eps=1e-8)
        return 2.0 * torch.arccos(cos.abs().clamp(max=_COS_CLAMP))
    if kind == "euclidean":
        norm = torch.sqrt(((e1 - e2) ** 2).sum(-1) + 1e-12)
        return torch.pi * torch.tanh(norm)
    raise ValueError(f"model distance: unknown {kind!r}; choose one of {DISTANCES}")


def embedding_distance_np(
    emb: np.ndarray, i: np.ndarray, j: np.ndarray, kind: str = "angle", chunk: int = 8192
) -> np.ndarray:
    """d_p (rad, float64) on the edges (i, j) of precomputed embeddings (N, F); numpy twin of the above.

    Edges are taken ``chunk`` at a time, so memory stays O(chunk · F) however many edges there are (gathering
    all 1.7 M edges of a full 1,850-node graph at once took 10 s and several GB).
    """
    emb = np.asarray(emb, dtype=np.float64)
    i, j = np.asarray(i), np.asarray(j)
    if kind not in DISTANCES:
        raise ValueError(f"model distance: unknown {kind!r}; choose one of {DISTANCES}")
    if kind == "angle":
        emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    out = np.empty(len(i), dtype=np.float64)
    for s in range(0, len(i), chunk):
        a, b = emb[i[s : s + chunk]], emb[j[s : s + chunk]]
        if kind == "angle":
            cos = np.abs(np.einsum("ef,ef->e", a, b))
            out[s : s + chunk] = 2.0 * np.arccos(np.clip(cos, 0.0, 1.0))
        else:
            out[s : s + chunk] = np.pi * np.tanh(np.linalg.norm(a - b, axis=1))
    return out


def fourier_crop(x: torch.Tensor, out_px: int) -> torch.Tensor:
    """Anti-aliased down-sampling of (B, C, L, L) images to ``out_px`` by cropping the centred spectrum.

    Frequencies above the new Nyquist are dropped (an ideal low-pass), the pixel size grows by
    ``L / out_px`` and pixel values keep their scale. For white noise of variance σ² per pixel, down-sampling
    by 2 keeps 1/4 of the noise power per output pixel while a smooth particle's signal is kept: about
    4x the per-pixel SNR.
    """
    L = x.shape[-1]
    if out_px >= L:
        return x
    f = torch.fft.fftshift(torch.fft.fft2(x.float()), dim=(-2, -1))
    lo = L // 2 - out_px // 2
    f = f[..., lo : lo + out_px, lo : lo + out_px]
    return torch.fft.ifft2(torch.fft.ifftshift(f, dim=(-2, -1))).real * (out_px / L) ** 2


class EncoderBase(nn.Module):
    """Base of the encoder families: ``forward`` checks, normalizes and down-samples, then ``embed``.

    Args:
        in_size: image box L (px) of the input images (B, L, L) or (B, 1, L, L).
        feature_dim: size F of the embedding.
        distance: "angle" or "euclidean" (module docstring).
        downsample: integer factor of the Fourier down-sampling front end (1 = none); the body sees
            images of ``in_size // downsample`` px.

    Subclasses set ``family`` and ``family_keys`` (the attributes, beyond the common ones, whose values rebuild
    them) and implement ``embed(x)`` on normalized (B, 1, l, l) images.
    """

    family = "base"

    def __init__(self, in_size: int, feature_dim: int, distance: str = "angle", downsample: int = 1) -> None:
        super().__init__()
        if int(in_size) < 1:
            raise ValueError(f"{type(self).__name__}: in_size must be >= 1 px, got {in_size}")
        if int(feature_dim) < 1:
            raise ValueError(f"{type(self).__name__}: feature_dim must be >= 1, got {feature_dim}")
        if distance not in DISTANCES:
            raise ValueError(f"{type(self).__name__}: distance must be one of {DISTANCES}, got {distance!r}")
        if int(downsample) < 1 or int(in_size) // int(downsample) < 4:
            raise ValueError(
                f"{type(self).__name__}: downsample must be >= 1 and leave >= 4 px, got {downsample} for {in_size} px"
            )
        self.in_size, self.feature_dim = int(in_size), int(feature_dim)
        self.distance_kind, self.downsample = str(distance), int(downsample)
        self.body_size = self.in_size // self.downsample

    #: attributes (beyond the common ones) that rebuild a network of the family, saved in checkpoints
    family_keys: tuple[str, ...] = ()

    def _family_config(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, list | tuple) else v for k in self.family_keys for v in [getattr(self, k)]}

    @property
    def config(self) -> dict[str, Any]:
        """Keyword arguments (with ``family``) that rebuild this network (saved in checkpoints)."""
        return {
            "family": self.family,
            "in_size": self.in_size,
            "feature_dim": self.feature_dim,
            "distance": self.distance_kind,
            "downsample": self.downsample,
            **self._family_config(),
        }

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """Check the shape, normalize each image (mean 0, std 1) and apply the down-sampling front end."""
        if x.ndim == 3:
            x = x.unsqueeze(1)
        if x.ndim != 4 or x.shape[1] != 1 or x.shape[-1] != self.in_size or x.shape[-2] != self.in_size:
            raise ValueError(
                f"{type(self).__name__}.forward: expected (B, [1,] {self.in_size}, {self.in_size}), "
                f"got {tuple(x.shape)}"
            )
        x = x.float()
        x = (x - x.mean(dim=(-2, -1), keepdim=True)) / (x.std(dim=(-2, -1), keepdim=True) + 1e-6)
        if self.downsample > 1:
            x = fourier_crop(x, self.body_size)
        return x

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Embed images (B, L, L) or (B, 1, L, L) → features (B, F)."""
        return self.embed(self.prepare(x))

    def distance(self, e1: torch.Tensor, e2: torch.Tensor) -> torch.Tensor:
        """This model's d_p (rad, in [0, π]) between embeddings; see :func:`embedding_distance`."""
        return embedding_distance(e1, e2, self.distance_kind)

    def pair_distance(self, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        """Learned distance d_p (rad, (B,)) between two batches of images, through one shared encoder."""
        e = self.forward(torch.cat([x1, x2], dim=0))
        return self.distance(e[: len(x1)], e[len(x1) :])

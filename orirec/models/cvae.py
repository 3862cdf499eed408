"""Conditional VAE for projections (layer 2): an image encoder to a latent ``z`` and a decoder that
generates a projection from ``z`` and an orientation condition.

The condition is the orientation as a unit quaternion (scalar-first, canonical ``w >= 0``; 4 numbers,
default) or as RELION ZYZ Euler angles given to the net as their cosines and sines (6 numbers). Images are
normalized per image (mean 0, std 1) by the encoder, and the decoder reconstructs that normalized image.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from orirec.geometry import canonicalize, quat_to_euler
from orirec.models.registry import build_model

__all__ = ["CONDITIONS", "ConditionalVAE", "condition_vector", "normalize_images_t"]

CONDITIONS = {"quat": 4, "euler": 6}


def condition_vector(q: np.ndarray, kind: str = "quat") -> np.ndarray:
    """The decoder's condition (n, 4 | 6) float32 for unit quaternions (n, 4): canonical quaternion or
    (cos, sin) of the ZYZ Euler angles (rad)."""
    if kind not in CONDITIONS:
        raise ValueError(f"cVAE condition: unknown {kind!r}; choose one of {sorted(CONDITIONS)}")
    q = canonicalize(np.asarray(q, dtype=np.float64))
    if kind == "quat":
        return q.astype(np.float32)
    e = np.stack(quat_to_euler(q), axis=-1)
    return np.concatenate([np.cos(e), np.sin(e)], axis=-1).astype(np.float32)


def normalize_images_t(x: torch.Tensor) -> torch.Tensor:
    """Per-image mean 0, std 1 of (B, L, L) images (the cVAE's reconstruction target)."""
    x = x.float()
    return (x - x.mean(dim=(-2, -1), keepdim=True)) / (x.std(dim=(-2, -1), keepdim=True) + 1e-6)


class ConditionalVAE(nn.Module):
    """Encoder (a :func:`orirec.models.build_model` encoder, preset ``encoder_preset``) → (μ, log σ²) of a
    ``latent_dim`` latent; decoder: an MLP (two hidden layers of ``width`` units) from
    ``[z, condition features]`` to an L×L image.

    Args:
        in_size: image box L (px).
        latent_dim: size of the latent ``z`` (default 15).
        condition: "quat" (default) or "euler".
        encoder_preset: preset of the encoder ("tiny", "small", "paper").
        width: hidden units of the decoder's two layers.
        latent_dropout: fraction of training images decoded with z = 0 (see :meth:`forward`).
        downsample: Fourier down-sampling factor in front of the encoder (the decoder renders full size).
    """

    def __init__(
        self,
        in_size: int,
        latent_dim: int = 15,
        condition: str = "quat",
        encoder_preset: str = "small",
        width: int = 512,
        latent_dropout: float = 0.5,
        downsample: int = 1,
    ) -> None:
        super().__init__()
        if condition not in CONDITIONS:
            raise ValueError(f"cVAE condition: unknown {condition!r}; choose one of {sorted(CONDITIONS)}")
        if int(latent_dim) < 1 or int(in_size) < 8 or int(width) < 4:
            raise ValueError(f"ConditionalVAE: need latent_dim >= 1, in_size >= 8 px, width >= 4; got "
                             f"{latent_dim}, {in_size}, {width}")  # fmt: skip
        self.in_size, self.latent_dim, self.condition = int(in_size), int(latent_dim), condition
        self.encoder_preset, self.width, self.latent_dropout = encoder_preset, int(width), float(latent_dropout)
        self.downsample = int(downsample)
        self.encoder = build_model({"preset": encoder_preset, "downsample": self.downsample}, self.in_size)
        self.to_stats = nn.Linear(self.encoder.feature_dim, 2 * self.latent_dim)
        n_cond = 10 if condition == "quat" else CONDITIONS[condition]
        self.decoder = nn.Sequential(
            nn.Linear(self.latent_dim + n_cond, self.width), nn.ReLU(),
            nn.Linear(self.width, self.width), nn.ReLU(),
            nn.Linear(self.width, self.in_size * self.in_size),
        )  # fmt: skip

    @property
    def config(self) -> dict[str, Any]:
        """Keyword arguments that rebuild this network."""
        return {
            "in_size": self.in_size,
            "latent_dim": self.latent_dim,
            "condition": self.condition,
            "encoder_preset": self.encoder_preset,
            "width": self.width,
            "latent_dropout": self.latent_dropout,
            "downsample": self.downsample,
        }

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images (B, L, L) → (μ, log σ²), each (B, latent_dim)."""
        mu, logvar = self.to_stats(self.encoder(x)).chunk(2, dim=-1)
        return mu, logvar.clamp(-10, 10)

    def condition_features(self, cond: torch.Tensor) -> torch.Tensor:
        """What the decoder sees of the condition: for quaternions the 10 entries of q qᵀ on and above the
        diagonal (smooth and blind to the sign of q); Euler cosines and sines as they are."""
        cond = cond.float()
        if self.condition != "quat":
            return cond
        q = cond / cond.norm(dim=-1, keepdim=True).clamp_min(1e-8)
        a, b = torch.triu_indices(4, 4)
        return q[:, a] * q[:, b]

    def decode(self, z: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """Latents (B, latent_dim) and conditions (B, 4 | 6) → normalized images (B, L, L) (an MLP)."""
        out = self.decoder(torch.cat([z, self.condition_features(cond)], dim=-1))
        return out.reshape(-1, self.in_size, self.in_size)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Reparameterized pass: returns (reconstruction (B, L, L), μ, log σ²).

        In training, the latent of a random fraction ``latent_dropout`` of the images is replaced by the
        prior mean 0, so the decoder must render a projection from the orientation alone (otherwise the
        latent can carry the orientation and the decoder ignore the condition, which defeats the search).
        """
        mu, logvar = self.encode(x)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
        if self.training and self.latent_dropout > 0:
            keep = (torch.rand(z.shape[0], 1) >= self.latent_dropout).to(z.dtype)
            z = z * keep
        return self.decode(z, cond), mu, logvar

    def loss(self, x: torch.Tensor, cond: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
        """Negative ELBO per image: summed squared error on normalized pixels + β·KL(q(z|x) ‖ N(0, I))."""
        recon, mu, logvar = self(x, cond)
        rec = ((recon - normalize_images_t(x)) ** 2).sum(dim=(-2, -1))
        kl = -0.5 * (1 + logvar - mu**2 - logvar.exp()).sum(-1)
        return (rec + beta * kl).mean()

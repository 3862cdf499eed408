"""Pair model (family "pair"): a learned distance head that sees both images at once, through the
correlation of their central Fourier lines (issue 9, unseen proteins).

Science. By the Fourier slice theorem the 2D Fourier transform of a projection is a central slice of the
3D transform of the density; two slices through the origin intersect in one central line, the *common
line*. Its angle in each image (θ₁ in image 1, θ₂ in image 2) fixes two of the three relative Euler angles
of the two views; the third (the dihedral angle between the slices) and hence ``d_q`` is only partly
fixed by two images, so a distance computed from one independent embedding per image throws away exactly
the information that is shared between them. This family keeps it:

1. ``embed`` turns each image into ``n_angles`` *line tokens*: the centred 2D FFT is sampled on a polar
   grid (``n_radii`` radii from 1 px to a low-pass cutoff of half the body's Nyquist frequency, ``n_angles``
   angles over [0, 2π), bilinear on real and imaginary parts), each radius ring is scaled to unit mean power
   (per image) times a learned per-radius gain, and convolutions along the radius only (kernel (k, 1): each
   central half-line is processed on its own) plus a mean over radius and a linear layer give one
   L2-normalized feature vector per half-line: tokens (B, n_angles, F). An in-plane rotation of the image
   by a multiple of 2π/n_angles is a cyclic shift of its tokens.
2. ``distance`` builds the common-line correlation map ``S = t₁ t₂ᵀ`` (n_angles × n_angles, entry (m, n)
   the similarity of line θ_m of image 1 with line θ_n of image 2), the same map standardized per pair (mean 0,
   std 1: the common-line peak stands out whatever the overall similarity), four coordinate channels (cos/sin
   of θ₁ along rows and of θ₂ along columns: ``d_q`` depends on where the common line lies, not only on how
   well it matches), and a small 2D CNN (3×3, stride 2) with circular padding in both angles, global mean +
   max pooling and an MLP map it to ``d_p = π·sigmoid(·)`` rad in [0, π]. The head is applied to S and to Sᵀ
   and the two outputs are averaged, so ``d(a, b) == d(b, a)`` exactly.

Units: images in px (box ``in_size``), radii in Fourier px of the body (``in_size // downsample``) grid,
angles in rad, distances in rad.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from orirec.models.encoder import DISTANCES, EncoderBase
from orirec.models.norms import conv_stack, norm_layer
from orirec.models.polar import polar_grid_at, polar_spectrum

__all__ = ["HEAD_CHANNELS", "PairNet"]

#: channels of the circular 2D CNN of the distance head (kernel 3, stride 2, ReLU each)
HEAD_CHANNELS = (16, 32, 64)
_HEAD_HIDDEN = 64


class _CircularConv2d(nn.Module):
    """k×k conv (optionally strided) with circular padding along both axes (both are angles of [0, 2π))."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, bias: bool = True) -> None:
        super().__init__()
        self.pad = kernel // 2
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride=stride, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (self.pad,) * 4, mode="circular"))


class PairNet(EncoderBase):
    """Line tokens per image + a learned common-line distance head (module docstring).

    Args:
        in_size: image box L (px).
        channels, kernels: the convolutions along the radius (kernel (k, 1), odd k), as in the presets.
        feature_dim: size F of each line token.
        norm: normalization after each radial conv ("none", "batch", "group").
        distance: ignored (accepted so a default model config builds); this family's d_p is always "pair".
        downsample: Fourier down-sampling factor of the front end (see :class:`EncoderBase`).
        n_radii: radial samples from 1 px to the cutoff (half the body's Nyquist, ``body_size / 4`` Fourier
            px); default one per Fourier px (at least 2).
        n_angles: angular samples (line tokens) over [0, 2π); default 48.
        pair_batch: pairs per chunk of :meth:`distance` (bounded memory at inference), and the most pairs one
            training step supervises (``train_pairs``, read by ``orirec.train.steps.all_pairs_loss``).
    """

    family_keys = ("channels", "kernels", "norm", "n_radii", "n_angles", "pair_batch")
    family = "pair"
    grid: torch.Tensor  # buffers
    coords: torch.Tensor

    def __init__(
        self,
        in_size: int,
        channels: Sequence[int] = (16, 32, 64),
        kernels: Sequence[int] = (3, 3, 3),
        feature_dim: int = 64,
        norm: str = "none",
        distance: str = "pair",
        downsample: int = 1,
        n_radii: int | None = None,
        n_angles: int | None = None,
        pair_batch: int | None = None,
    ) -> None:
        super().__init__(in_size, feature_dim, "angle", downsample)
        if distance not in (*DISTANCES, "pair"):
            raise ValueError(f"PairNet: distance must be 'pair' (or {DISTANCES}, ignored), got {distance!r}")
        self.distance_kind = "pair"
        channels, kernels = conv_stack("PairNet", channels, kernels)
        self.cutoff_px = self.body_size / 4.0  # half the body's Nyquist frequency (Fourier px)
        self.n_radii = int(n_radii or max(int(round(self.cutoff_px)), 2))
        self.n_angles = int(n_angles or 48)
        self.pair_batch = int(pair_batch or 1024)
        if self.n_radii < 1 or self.n_angles < 4 or self.pair_batch < 1:
            raise ValueError(
                f"PairNet: need n_radii >= 1, n_angles >= 4 and pair_batch >= 1, "
                f"got {self.n_radii}, {self.n_angles}, {self.pair_batch}"
            )
        self.train_pairs = self.pair_batch
        self.channels, self.kernels, self.norm = channels, kernels, str(norm)
        radii = torch.linspace(1.0, max(self.cutoff_px, 1.0), self.n_radii)
        self.register_buffer("grid", polar_grid_at(self.body_size, radii, self.n_angles), persistent=False)
        self.radial_gain = nn.Parameter(torch.ones(self.n_radii))
        layers: list[nn.Module] = []
        n_r, prev = self.n_radii, 2
        for c, k in zip(channels, kernels, strict=True):
            layers += [nn.Conv2d(prev, c, (k, 1), padding=(k // 2, 0)), norm_layer(self.norm, c), nn.ReLU(inplace=True)]
            if n_r > 1:
                layers.append(nn.MaxPool2d((2, 1), ceil_mode=True))
                n_r = (n_r + 1) // 2
            prev = c
        self.radial = nn.Sequential(*layers)
        self.token = nn.Linear(prev, self.feature_dim)
        th = torch.arange(self.n_angles, dtype=torch.float64) * (2 * math.pi / self.n_angles)
        rows = torch.stack([torch.cos(th), torch.sin(th)])[:, :, None].expand(2, self.n_angles, self.n_angles)
        cols = torch.stack([torch.cos(th), torch.sin(th)])[:, None, :].expand(2, self.n_angles, self.n_angles)
        self.register_buffer("coords", torch.cat([rows, cols])[None].float().contiguous(), persistent=False)
        # first layer: 2 map channels (raw, standardized) per pair + 4 coordinate channels whose response is the
        # same for every pair (computed once per call, added as a bias map); strided convs, no pooling (speed)
        c1 = HEAD_CHANNELS[0]
        self.head_maps = _CircularConv2d(2, c1, 3, stride=2)
        self.head_coords = _CircularConv2d(4, c1, 3, stride=2, bias=False)
        head: list[nn.Module] = []
        prev = c1
        for c in HEAD_CHANNELS[1:]:
            head += [_CircularConv2d(prev, c, 3, stride=2), nn.ReLU(inplace=True)]
            prev = c
        self.head_cnn = nn.Sequential(*head)
        self.head_mlp = nn.Sequential(
            nn.Linear(2 * prev, _HEAD_HIDDEN), nn.ReLU(inplace=True), nn.Linear(_HEAD_HIDDEN, 1)
        )

    @property
    def embedding_shape(self) -> tuple[int, int]:
        """Shape of one image's embedding: (n_angles, feature_dim) line tokens."""
        return (self.n_angles, self.feature_dim)

    def to_polar_spectrum(self, x: torch.Tensor) -> torch.Tensor:
        """Normalized images (B, 1, l, l) → centred spectrum on the polar grid, real and imaginary parts
        (B, 2, n_radii, n_angles), each radius ring scaled to unit mean power (per image)."""
        p = polar_spectrum(x, self.grid)
        power = p.pow(2).mean(dim=(1, 3), keepdim=True)
        return p * torch.rsqrt(power + 1e-12)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Normalized images (B, 1, l, l) → L2-normalized line tokens (B, n_angles, F)."""
        p = self.to_polar_spectrum(x) * self.radial_gain[None, None, :, None]
        h = self.radial(p).mean(dim=-2)  # mean over radius: (B, C, n_angles)
        return F.normalize(self.token(h.transpose(1, 2)), dim=-1)

    def _head(self, s: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Correlation maps, raw and standardized (P, n_a, n_a) → head output (P,) before the sigmoid."""
        h = F.relu(self.head_maps(torch.stack([s, z], dim=1)) + self.head_coords(self.coords))
        h = self.head_cnn(h)
        return self.head_mlp(torch.cat([h.mean(dim=(-2, -1)), h.amax(dim=(-2, -1))], dim=1))[:, 0]

    def _distance_chunk(self, t1: torch.Tensor, t2: torch.Tensor) -> torch.Tensor:
        # Every quantity is built symmetrically (sums of a term and its swapped twin: float addition commutes),
        # so the maps of (b, a) are bitwise the transposes of those of (a, b) and d(a, b) == d(b, a) exactly.
        s = 0.5 * (t1 @ t2.transpose(1, 2) + (t2 @ t1.transpose(1, 2)).transpose(1, 2)).contiguous()
        st = s.transpose(1, 2).contiguous()
        mu = 0.5 * (s.mean(dim=(1, 2)) + st.mean(dim=(1, 2)))[:, None, None]
        sd = 0.5 * (s.std(dim=(1, 2)) + st.std(dim=(1, 2)))[:, None, None] + 1e-6
        logits = 0.5 * (self._head(s, (s - mu) / sd) + self._head(st, (st - mu) / sd))
        return math.pi * torch.sigmoid(logits)

    def distance(self, e1: torch.Tensor, e2: torch.Tensor) -> torch.Tensor:
        """d_p (rad, (P,), in [0, π]) between line tokens (P, n_angles, F) of two images per pair; symmetric
        in its arguments; computed in chunks of ``pair_batch`` pairs."""
        if e1.ndim != 3 or e1.shape != e2.shape or tuple(e1.shape[1:]) != self.embedding_shape:
            raise ValueError(
                f"PairNet.distance: expected two (P, {self.n_angles}, {self.feature_dim}) token arrays, "
                f"got {tuple(e1.shape)} and {tuple(e2.shape)}"
            )
        if len(e1) <= self.pair_batch:
            return self._distance_chunk(e1, e2)
        b = self.pair_batch
        return torch.cat([self._distance_chunk(e1[s : s + b], e2[s : s + b]) for s in range(0, len(e1), b)])

"""Common-line pair model (family "commonlines"): explicit per-band common-line coherence maps of two images and
a learned head that reads the distance from them (issue 9, unseen proteins).

Science. Two projections share one central line of their 2D Fourier transforms (Fourier slice theorem). Its
angle in each image fixes two of the three relative Euler angles; the third, the dihedral angle β between the
two central slices, shows in how fast the match decays away from the common line: at radius r the slices part by
about ``r · β · Δθ``, so the peak of the line-to-line coherence is wide at low radii and narrows with r, faster
for larger β; the head has to learn to read β from it. ``d_q`` depends on β and on the difference of the two
common-line angles only (rotating both images in-plane by the same angle leaves ``d_q`` unchanged). This family
therefore computes, with no learned front end (nothing protein-specific to learn there):

1. ``embed``: the centred 2D FFT on a polar grid (``n_radii`` radii from 2 Fourier px to 3/8 of the body's box,
   ``n_angles`` angles over [0, 2π)), grouped into bands of ``BAND_WIDTH`` consecutive radii → complex line
   segments (B, K, n_angles, w), each scaled to unit norm (every line and band counts the same), stored as
   real tensors (B, K, n_angles, 2w).
2. ``distance``: per band k the coherence ``C_k(m, n) = |Σ_r F₁(θ_m, r) F₂*(θ_n, r)|`` ∈ [0, 1] of line θ_m of image 1
   with line θ_n of image 2. The modulus of a sum over a narrow band is less sensitive than a plain correlation
   to the image shifts (a linear phase ramp in r) and to CTF sign flips (constant within most bands); still, on
   64-px test images at σ² 0 the CTF and ±2 px shifts cut the pairs whose coherence peaks on the true common line
   from 94 % to 20 % (``benchmarks/commonline_detectability.py``).
   Each map is read along its diagonals δ = n − m: the max and the mean over m, of the raw map and of the
   map standardized per pair and band (4K profiles over δ). A joint in-plane rotation of both images by a
   multiple of 2π/n_angles shifts m only, so the profiles (and d_p) are exactly invariant to it, while δ, the
   difference of the two common-line angles, is kept. The anti-diagonals n + m = σ, where an image meets its
   mirror image (d_q = π), add 4K scalars (their best max and mean over m). Circular 1D convolutions over δ and
   an MLP give ``d_p = π·sigmoid(·)`` rad. The head runs on (1, 2) and on (2, 1) and averages: ``d(a, b) == d(b, a)``.

Units: images in px (box ``in_size``), radii in Fourier px of the body (``in_size // downsample``) grid, angles
in rad, distances in rad.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from orirec.models.encoder import EncoderBase
from orirec.models.polar import polar_grid_at, polar_spectrum

__all__ = ["BAND_WIDTH", "CommonLineNet"]


class CircularConv1d(nn.Module):
    """k-wide conv along an angle axis of [0, 2π) (circular padding)."""

    def __init__(self, c_in: int, c_out: int, kernel: int) -> None:
        super().__init__()
        self.pad = kernel // 2
        self.conv = nn.Conv1d(c_in, c_out, kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (self.pad, self.pad), mode="circular"))


#: radii per band: narrow enough that a ±2 px shift turns the phase by < 1 rad across a band at 64 px
BAND_WIDTH = 3
_HIDDEN = 64


class CommonLineNet(EncoderBase):
    """Per-band common-line coherence maps + a learned distance head (module docstring).

    Args:
        in_size: image box L (px).
        channels: channels of the circular 1D convolutions (width 3) of the head over δ.
        kernels: accepted for preset compatibility; the head's kernels are 3 wide.
        feature_dim: accepted for preset compatibility (the embedding is the band spectrum, not learned).
        norm: accepted for preset compatibility (the head has no normalization layers).
        distance: ignored; this family's d_p is always "pair".
        downsample: Fourier down-sampling factor of the front end (see :class:`EncoderBase`).
        n_radii: radial samples from 2 Fourier px to 3/8 of the body's box (rounded down to whole bands);
            default one per Fourier px.
        n_angles: angular samples over [0, 2π); default 48.
        pair_batch: pairs per chunk of :meth:`distance` and the most pairs one training step supervises.
    """

    family_keys = ("channels", "n_radii", "n_angles", "pair_batch")
    family = "commonlines"
    grid: torch.Tensor  # buffers
    shear: torch.Tensor
    mirror: torch.Tensor

    def __init__(
        self,
        in_size: int,
        channels: Sequence[int] = (16, 32, 64),
        kernels: Sequence[int] | None = None,
        feature_dim: int = 64,
        norm: str = "none",
        distance: str = "pair",
        downsample: int = 1,
        n_radii: int | None = None,
        n_angles: int | None = None,
        pair_batch: int | None = None,
    ) -> None:
        super().__init__(in_size, feature_dim, "angle", downsample)
        self.distance_kind = "pair"
        cutoff = 3.0 * self.body_size / 8.0
        n_r = int(n_radii or max(int(cutoff) - 1, BAND_WIDTH))
        self.n_bands = n_r // BAND_WIDTH
        self.n_radii = self.n_bands * BAND_WIDTH
        self.n_angles = int(n_angles or 48)
        self.pair_batch = int(pair_batch or 1024)
        self.channels = tuple(int(c) for c in channels)
        if self.n_bands < 1 or self.n_angles < 8 or self.pair_batch < 1 or not self.channels:
            raise ValueError(
                f"CommonLineNet: need n_radii >= {BAND_WIDTH}, n_angles >= 8, pair_batch >= 1 and channels, "
                f"got {n_r}, {self.n_angles}, {self.pair_batch}, {list(self.channels)}"
            )
        self.train_pairs = self.pair_batch
        radii = torch.linspace(2.0, max(cutoff, 2.0 + self.n_radii - 1), self.n_radii)
        self.register_buffer("grid", polar_grid_at(self.body_size, radii, self.n_angles), persistent=False)
        m = torch.arange(self.n_angles)
        # flat index of (m, m + δ) in an (n_angles, n_angles) map, laid out (δ, m)
        shear = m[None, :] * self.n_angles + (m[None, :] + m[:, None]) % self.n_angles
        self.register_buffer("shear", shear.flatten(), persistent=False)
        # flat index of (m, σ − m), laid out (σ, m): the anti-diagonals, where an image meets its mirror image
        mirror = m[None, :] * self.n_angles + (m[:, None] - m[None, :]) % self.n_angles
        self.register_buffer("mirror", mirror.flatten(), persistent=False)
        layers: list[nn.Module] = []
        prev = 4 * self.n_bands
        for c in self.channels:
            layers += [CircularConv1d(prev, c, 3), nn.ReLU(inplace=True)]
            prev = c
        self.head_cnn = nn.Sequential(*layers)
        self.head_mlp = nn.Sequential(
            nn.Linear(prev * self.n_angles + 4 * self.n_bands, _HIDDEN), nn.ReLU(inplace=True), nn.Linear(_HIDDEN, 1)
        )

    @property
    def embedding_shape(self) -> tuple[int, int, int]:
        """Shape of one image's embedding: (bands, n_angles, 2 · BAND_WIDTH) unit-norm line segments."""
        return (self.n_bands, self.n_angles, 2 * BAND_WIDTH)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Normalized images (B, 1, l, l) → unit-norm band segments (B, K, n_angles, 2w), real parts then imaginary."""
        p = polar_spectrum(x, self.grid)
        b = p.reshape(x.shape[0], 2, self.n_bands, BAND_WIDTH, self.n_angles)
        b = b.permute(0, 2, 4, 1, 3).reshape(x.shape[0], self.n_bands, self.n_angles, 2 * BAND_WIDTH)
        # unit norm per line segment: a ring-power scale instead lets the strongest lines win every map
        return F.normalize(b, dim=-1, eps=1e-12)

    def coherence(self, e1: torch.Tensor, e2: torch.Tensor) -> torch.Tensor:
        """Per-band coherence maps (P, K, n_angles, n_angles) of embeddings (P, K, n_angles, 2w): entry (k, m, n)
        is ``|Σ_r F₁(θ_m, r) F₂*(θ_n, r)|`` over band k's radii, in [0, 1] (unit-norm segments)."""
        w = BAND_WIDTH
        a_re, a_im, b_re, b_im = e1[..., :w], e1[..., w:], e2[..., :w], e2[..., w:]
        re = a_re @ b_re.transpose(-1, -2) + a_im @ b_im.transpose(-1, -2)
        im = a_im @ b_re.transpose(-1, -2) - a_re @ b_im.transpose(-1, -2)
        return torch.sqrt(re * re + im * im + 1e-12)

    def peak_lines(self, e1: torch.Tensor, e2: torch.Tensor) -> torch.Tensor:
        """Angles (rad, (P, 2)) of the line pair where the band coherence, summed over bands, peaks: the common-line
        estimate of each pair with no learned part (θ in image 1, θ in image 2)."""
        best = self.coherence(e1, e2).sum(1).flatten(1).argmax(1)
        step = 2 * math.pi / self.n_angles
        return torch.stack([(best // self.n_angles) * step, (best % self.n_angles) * step], dim=1)

    def profiles(self, c: torch.Tensor) -> torch.Tensor:
        """Coherence maps (P, K, m, n) → per-band profiles over δ = n − m (P, 4K, n_angles): the max and the mean
        over m of the raw map and of the map standardized per pair and band (mean 0, std 1)."""
        mu = c.mean(dim=(-2, -1), keepdim=True)
        sd = c.std(dim=(-2, -1), keepdim=True) + 1e-6
        p, k, n = c.shape[0], c.shape[1], self.n_angles
        sheared = c.flatten(-2).index_select(-1, self.shear).reshape(p, k, n, n)  # (P, K, δ, m)
        mx, mean = sheared.amax(dim=-1), sheared.mean(dim=-1)
        return torch.cat([mx, mean, (mx - mu[..., 0]) / sd[..., 0], (mean - mu[..., 0]) / sd[..., 0]], dim=1)

    def mirror_scores(self, c: torch.Tensor) -> torch.Tensor:
        """Coherence maps (P, K, m, n) → (P, 4K): per band, the max over anti-diagonals σ = m + n of the max and of
        the mean over m, raw and standardized. Line θ of an image meets line −θ of its mirror image (a view turned
        by π about an in-plane axis, ``d_q`` = π), so the mirror shows on one whole anti-diagonal. The scores are
        unchanged by a joint in-plane rotation (it moves σ, over which they take the max) and by swapping the
        images (σ = m + n is symmetric)."""
        p, k, n = c.shape[0], c.shape[1], self.n_angles
        anti = c.flatten(-2).index_select(-1, self.mirror).reshape(p, k, n, n)  # (P, K, σ, m)
        mx, mean = anti.amax(dim=-1).amax(dim=-1), anti.mean(dim=-1).amax(dim=-1)
        mu, sd = c.mean(dim=(-2, -1)), c.std(dim=(-2, -1)) + 1e-6
        return torch.cat([mx, mean, (mx - mu) / sd, (mean - mu) / sd], dim=1)

    def _head(self, prof: torch.Tensor, mirror: torch.Tensor) -> torch.Tensor:
        """Profiles (P, 4K, δ) and mirror scores (P, 4K) → head output (P,) before the sigmoid."""
        return self.head_mlp(torch.cat([self.head_cnn(prof).flatten(1), mirror], dim=1))[:, 0]

    def _distance_chunk(self, e1: torch.Tensor, e2: torch.Tensor) -> torch.Tensor:
        c = self.coherence(e1, e2)
        prof, mirror = self.profiles(c), self.mirror_scores(c)
        # swapping the images maps the profile at δ to the one at −δ (the max and mean over m are unchanged)
        swapped = torch.roll(prof.flip(-1), 1, dims=-1)
        return math.pi * torch.sigmoid(0.5 * (self._head(prof, mirror) + self._head(swapped, mirror)))

    def distance(self, e1: torch.Tensor, e2: torch.Tensor) -> torch.Tensor:
        """d_p (rad, (P,), in [0, π]) between band spectra (P, K, n_angles, 2w) of two images per pair; symmetric
        in its arguments up to float rounding; computed in chunks of ``pair_batch`` pairs."""
        if e1.ndim != 4 or e1.shape != e2.shape or tuple(e1.shape[1:]) != self.embedding_shape:
            raise ValueError(
                f"CommonLineNet.distance: expected two (P, {', '.join(map(str, self.embedding_shape))}) arrays, "
                f"got {tuple(e1.shape)} and {tuple(e2.shape)}"
            )
        b = self.pair_batch
        if len(e1) <= b:
            return self._distance_chunk(e1, e2)
        return torch.cat([self._distance_chunk(e1[s : s + b], e2[s : s + b]) for s in range(0, len(e1), b)])

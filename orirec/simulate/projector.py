"""Batched Fourier-slice projector (torch): 3D FFT once, one central slice per orientation, inverse 2D FFT.

Convention (DESIGN §2): for a rotation R (particle -> microscope frame), the image is the line
integral along microscope z of the rotated volume, ``img[y, x] = sum_z vol_rot[z, y, x]`` with
``vol_rot(r) = vol(R^T r)``, coordinates in voxels relative to index ``L // 2``. By the Fourier slice
theorem ``FT2(img)(kx, ky) = FT3(vol)(R^T (kx, ky, 0))``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from orirec.geometry import quat_to_matrix

__all__ = [
    "FourierSliceProjector",
    "checked_volume",
    "mass_outside_sphere",
    "project",
    "project_by_slices",
    "slice_frequencies",
]

Sampling = Literal["auto", "image", "padded"]
_CPU_CHUNK = 32  # images per pass on a CPU
_COMPILE_CHUNK = 64  # images per compiled call: one static shape, so the kernel compiles once per box size


def _gridding_correction(n_pad: int, L: int) -> np.ndarray:
    """(L,) sinc^2 apodization per axis: FT of the trilinear kernel on an n_pad grid, over the L-box."""
    s = (np.arange(L) - L // 2) / n_pad
    return np.sinc(s) ** 2


def mass_outside_sphere(volume: torch.Tensor) -> float:
    """Fraction of ``sum |volume|`` farther than ``L / 2`` voxels from the centre index ``L // 2``."""
    L = volume.shape[0]
    g = torch.arange(L, dtype=torch.float64) - L // 2
    r2 = g[:, None, None] ** 2 + g[None, :, None] ** 2 + g[None, None, :] ** 2
    total = float(volume.abs().sum())
    return float(volume.abs()[r2 > (L / 2) ** 2].sum()) / total if total > 0 else 0.0


def checked_volume(volume: np.ndarray | torch.Tensor, sampling: str, who: str) -> tuple[torch.Tensor, str]:
    """A projector's volume as a tensor, and its concrete slice sampling (``auto`` -> ``image`` when less than
    1e-3 of the mass lies outside the inscribed sphere, else ``padded``). ValueError, naming ``who``, for a volume
    that is not cubic or not finite and for an unknown sampling."""
    vol = torch.as_tensor(np.asarray(volume) if not torch.is_tensor(volume) else volume.detach())
    if vol.ndim != 3 or len(set(vol.shape)) != 1:
        raise ValueError(f"{who}: volume must be cubic (L, L, L), got {tuple(vol.shape)}")
    if not torch.isfinite(vol).all():
        raise ValueError(f"{who}: volume contains NaN or inf")
    if sampling not in ("auto", "image", "padded"):
        raise ValueError(f"{who}: sampling must be auto, image or padded, got {sampling!r}")
    if sampling == "auto":
        sampling = "image" if mass_outside_sphere(vol.to(torch.float64)) < 1e-3 else "padded"
    return vol, sampling


def slice_frequencies(n_volume: int, n_out: int) -> torch.Tensor:
    """(n_out, n_out//2+1, 2) float64 ``(kx, ky)`` of the rfft2 half-plane of an ``n_out`` image, in index
    units of an ``n_volume`` Fourier grid (spacing ``n_volume / n_out``): ky in FFT order, kx >= 0."""
    step = n_volume / n_out
    ky = torch.fft.fftfreq(n_out, d=1.0 / n_out, dtype=torch.float64) * step
    kx = torch.arange(n_out // 2 + 1, dtype=torch.float64) * step
    kyy, kxx = torch.meshgrid(ky, kx, indexing="ij")
    return torch.stack([kxx, kyy], -1)


def project_by_slices(
    slices: Callable[[Any], torch.Tensor],
    quaternions: np.ndarray,
    L: int,
    n: int,
    chunk: int | None,
    to_rows: Callable[[np.ndarray], Any] = lambda r: r,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """(B, L, L) float32 images from a projector's central slices, ``chunk`` orientations at a time (None: all).

    ``slices(rows)`` maps the first two rotation rows ((B, 2, 3), after ``to_rows``) of the orientations
    ``quaternions`` ((B, 4), scalar first) to (B, n, n//2+1) rfft2 half-planes of an n x n image whose particle
    centre is at index 0; each is inverted, its centre moved to index ``L // 2`` and the L x L box cropped.
    """
    q = np.asarray(quaternions, dtype=np.float64)
    if q.ndim != 2 or q.shape[1] != 4:
        raise ValueError(f"project: quaternions must have shape (B, 4), got {q.shape}")
    rows = to_rows(quat_to_matrix(q)[:, :2, :])
    out = torch.empty((q.shape[0], L, L), dtype=torch.float32, device=device)
    step = max(1, chunk or q.shape[0])
    for s in range(0, q.shape[0], step):
        img = torch.fft.irfft2(slices(rows[s : s + step]), s=(n, n))
        out[s : s + step] = torch.roll(img, shifts=(L // 2, L // 2), dims=(1, 2))[:, :L, :L]
    return out


def _trilinear_inside(ft: torch.Tensor, pts: torch.Tensor) -> torch.Tensor:
    """Trilinear samples of ``ft`` ((Mz, My, Mx, 2) [z, y, x, re/im]) at ``pts`` ((P, 3) index (x, y, z)); 0 outside.

    Written as gathers so that ``torch.compile`` fuses it into one loop (eager, ``grid_sample`` is faster).
    """
    Mz, My, Mx = ft.shape[:3]
    flat = ft.reshape(-1, 2)
    hi = pts.new_tensor([Mx - 1, My - 1, Mz - 1])
    inside = ((pts >= 0) & (pts <= hi)).all(-1)
    p = torch.minimum(pts.clamp(min=0), hi - 1e-4)
    p0 = p.floor()
    f = p - p0
    i0 = p0.long()
    base = (i0[:, 2] * My + i0[:, 1]) * Mx + i0[:, 0]
    out = torch.zeros_like(pts[:, :2])
    for dz in (0, 1):
        wz = f[:, 2] if dz else 1 - f[:, 2]
        for dy in (0, 1):
            wy = f[:, 1] if dy else 1 - f[:, 1]
            for dx in (0, 1):
                wx = f[:, 0] if dx else 1 - f[:, 0]
                out = out + (wz * wy * wx)[:, None] * flat[base + (dz * My + dy) * Mx + dx]
    return out * inside[:, None]


_COMPILED: list = []  # the one compiled interpolation of this process (compiled once per box size)


def _compiled_trilinear():
    if not _COMPILED:
        _COMPILED.append(torch.compile(_trilinear_inside, dynamic=False))
    return _COMPILED[0]


class FourierSliceProjector:
    """Fourier-slice projector of one cubic volume.

    The volume is divided by the Fourier transform of the trilinear interpolation kernel
    (``sinc^2`` per axis, the gridding pre-correction), zero-padded to ``N = pad * L``, and its centred
    3D FFT is kept. Each projection samples the half-plane of the central slice needed by ``irfft2``
    with trilinear interpolation (frequencies outside the padded cube are zero).

    Args:
        volume: (L, L, L) density indexed ``[z, y, x]`` (numpy or torch), L even or odd.
        pad: padding factor (>= 1; 2 gives < 1% relative error for smooth densities).
        device: torch device for the FFT and the projections.
        gridding_correction: divide by the trilinear kernel's transform (default). It makes projections
            along general directions accurate but over-corrects the few orientations whose slice lies on
            the Fourier grid (beam along a volume axis: ~2% there); without it, axis-aligned projections
            are exact and general ones are off by ~2%.
        sampling: where the slice is sampled. ``"image"``: on the L x L frequency grid of the image
            (spacing 1/L; 4x fewer samples and an L-point inverse FFT) — exact when the particle lies
            within the sphere of diameter L, which makes its projections fit the box; measured relative
            L2 error 0.6% mean / 0.7% max at pad 2, L = 48. ``"padded"``: on the N x N grid, inverse FFT
            and crop to L (0.2% / 0.4%), which also handles density in the corners of the box (its
            projections are cropped, not wrapped around). ``"auto"`` (default): ``"image"`` when less than
            1e-3 of the volume's mass lies outside the sphere of diameter L, else ``"padded"``.
        compile: fuse the interpolation with ``torch.compile`` (about 2x faster at 128 px on a CPU core;
            the first call compiles for 10-30 s). Falls back to eager with a warning when compiling fails.
    """

    def __init__(
        self,
        volume: np.ndarray | torch.Tensor,
        pad: int = 2,
        device: str | torch.device = "cpu",
        gridding_correction: bool = True,
        sampling: Sampling = "auto",
        compile: bool = False,
    ):
        if int(pad) != pad or pad < 1:
            raise ValueError(f"FourierSliceProjector: pad must be an integer >= 1, got {pad}")
        vol, self.sampling = checked_volume(volume, sampling, "FourierSliceProjector")
        self.L = L = int(vol.shape[0])
        self.pad = int(pad)
        self.N = N = self.pad * L
        self.device = torch.device(device)
        w = torch.as_tensor(_gridding_correction(N, L) if gridding_correction else np.ones(L), dtype=torch.float64)
        corrected = vol.to(torch.float64) / (w[:, None, None] * w[None, :, None] * w[None, None, :])
        big = torch.zeros((N, N, N), dtype=torch.float32, device=self.device)
        o = N // 2 - L // 2
        big[o : o + L, o : o + L, o : o + L] = corrected.to(device=self.device, dtype=torch.float32)
        ft = torch.fft.fftshift(torch.fft.fftn(torch.fft.ifftshift(big)))  # zero frequency at index N // 2
        del big
        # Append the periodic copy of the -N/2 planes at +N/2 (index N) on every axis, so that frequencies up
        # to +N/2 (the Nyquist column of irfft2, 90-degree rotations of the grid) are sampled, not zeroed.
        ft = torch.view_as_real(ft)  # (N, N, N, 2) [z, y, x, re/im]
        for dim in (0, 1, 2):
            ft = torch.cat([ft, ft.narrow(dim, 0, 1)], dim=dim)
        # The volume is real, so FT(-k) = conj FT(k): keep only kz >= 0 (half the memory) and sample -k for
        # points with kz < 0, conjugated.
        self._ft = ft[N // 2 :].contiguous()  # (N - N//2 + 1, N+1, N+1, 2); kz = 0 at index 0, kx = ky = 0 at N // 2
        del ft
        self._ft_channels: torch.Tensor | None = None  # (1, 2, ...) view for grid_sample, made on first eager use
        n_out = L if self.sampling == "image" else N
        self._n_out = n_out
        self._k = slice_frequencies(N, n_out).to(device=self.device, dtype=torch.float32)  # (n, n//2+1, 2)
        self._interp: Callable[..., torch.Tensor] | None = None
        if compile:
            self._interp = _compiled_trilinear()

    def _slices(self, rows: torch.Tensor) -> torch.Tensor:
        """(B, n, n//2+1) complex slice samples for the first two rotation rows ``rows`` ((B, 2, 3))."""
        N = self.N
        # Particle-frame frequency R^T (kx, ky, 0) = kx * R[0, :] + ky * R[1, :], in grid index units.
        pts = self._k[None, ..., 0:1] * rows[:, None, None, 0] + self._k[None, ..., 1:2] * rows[:, None, None, 1]
        flip = pts[..., 2] < 0  # Friedel mates: sample -k and conjugate
        pts = torch.where(flip[..., None], -pts, pts)
        pts = pts + pts.new_tensor([N // 2, N // 2, 0])  # (B, n, n//2+1, 3): (x, y, z) indices of the half volume
        conj = 1.0 - 2.0 * flip.to(pts.dtype)
        return self._sample(pts, conj)

    def _sample(self, pts: torch.Tensor, conj: torch.Tensor) -> torch.Tensor:
        """Complex trilinear samples at index coordinates ``pts`` of the half volume, imaginary part times ``conj``."""
        if self._interp is not None:
            try:
                vals = self._compiled_slices(pts)
                return torch.complex(vals[..., 0], vals[..., 1] * conj)
            except Exception as e:  # pragma: no cover - depends on the toolchain
                warnings.warn(f"torch.compile failed ({e}); using the eager projector", stacklevel=2)
                self._interp = None
        if self._ft_channels is None:
            self._ft_channels = self._ft.permute(3, 0, 1, 2)[None].contiguous()
        # align_corners=True: -1 / +1 are the centres of the first / last index on each axis.
        size = pts.new_tensor([self._ft.shape[2] - 1, self._ft.shape[1] - 1, self._ft.shape[0] - 1])
        grid = pts * (2.0 / size) - 1.0
        inside = ((grid >= -1) & (grid <= 1)).all(-1)  # as the compiled path: no partial samples at the edge
        vals = F.grid_sample(self._ft_channels, grid[None], mode="bilinear", padding_mode="zeros", align_corners=True)
        return torch.complex(vals[0, 0], vals[0, 1] * conj) * inside

    def _compiled_slices(self, pts: torch.Tensor) -> torch.Tensor:
        """(B, n, m, 2) real/imaginary samples from the compiled interpolation, in fixed-size chunks."""
        B, shape = pts.shape[0], pts.shape[1:3]
        out = torch.empty((B, *shape, 2), dtype=torch.float32, device=self.device)
        for s in range(0, B, _COMPILE_CHUNK):
            chunk = pts[s : s + _COMPILE_CHUNK]
            n = chunk.shape[0]
            if n < _COMPILE_CHUNK:  # pad to the compiled shape
                chunk = torch.cat([chunk, chunk[:1].expand(_COMPILE_CHUNK - n, *chunk.shape[1:])])
            assert self._interp is not None  # called only when compiled
            vals = self._interp(self._ft, chunk.reshape(-1, 3)).reshape(_COMPILE_CHUNK, *shape, 2)
            out[s : s + n] = vals[:n]
        return out

    def project(self, quaternions: np.ndarray) -> torch.Tensor:
        """Project the volume along the orientations ``quaternions`` ((B, 4) scalar-first).

        Returns:
            (B, L, L) float32 tensor of images indexed ``[y, x]`` (line integrals in voxel units).
        """
        chunk = None if self.device.type != "cpu" else _CPU_CHUNK  # on a CPU, chunks keep temporaries in cache
        to_rows = lambda r: torch.as_tensor(r, dtype=torch.float32, device=self.device)  # noqa: E731
        return project_by_slices(self._slices, quaternions, self.L, self._n_out, chunk, to_rows, self.device)

    __call__ = project


def project(
    volume: np.ndarray | torch.Tensor,
    quaternions: np.ndarray,
    pad: int = 2,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    gridding_correction: bool = True,
    sampling: Sampling = "auto",
) -> np.ndarray:
    """Project ``volume`` ((L, L, L), ``[z, y, x]``) along ``quaternions`` ((B, 4)) -> (B, L, L) float32.

    Convenience wrapper over :class:`FourierSliceProjector` that runs in batches of ``batch_size``.
    """
    if batch_size < 1:
        raise ValueError(f"project: batch_size must be >= 1, got {batch_size}")
    proj = FourierSliceProjector(
        volume, pad=pad, device=device, gridding_correction=gridding_correction, sampling=sampling
    )
    q = np.asarray(quaternions, dtype=np.float64).reshape(-1, 4)
    out = np.empty((q.shape[0], proj.L, proj.L), dtype=np.float32)
    with torch.no_grad():
        for s in range(0, q.shape[0], batch_size):
            out[s : s + batch_size] = proj.project(q[s : s + batch_size]).cpu().numpy()
    return out

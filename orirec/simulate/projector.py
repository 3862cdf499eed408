"""Batched Fourier-slice projector (torch): 3D FFT once, one central slice per orientation, inverse 2D FFT.

Convention (DESIGN §2): for a rotation R (particle -> microscope frame), the image is the line
integral along microscope z of the rotated volume, ``img[y, x] = sum_z vol_rot[z, y, x]`` with
``vol_rot(r) = vol(R^T r)``, coordinates in voxels relative to index ``L // 2``. By the Fourier slice
theorem ``FT2(img)(kx, ky) = FT3(vol)(R^T (kx, ky, 0))``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from orirec.geometry import quat_to_matrix

__all__ = ["FourierSliceProjector", "project"]


def _gridding_correction(n_pad: int, L: int) -> np.ndarray:
    """(L,) sinc^2 apodization per axis: FT of the trilinear kernel on an n_pad grid, over the L-box."""
    s = (np.arange(L) - L // 2) / n_pad
    return np.sinc(s) ** 2


class FourierSliceProjector:
    """Fourier-slice projector of one cubic volume.

    The volume is divided by the Fourier transform of the trilinear interpolation kernel
    (``sinc^2`` per axis, the gridding pre-correction), zero-padded to ``pad * L``, and its centred
    3D FFT is kept (as a 2-channel real tensor). Each projection samples the half-plane of the
    central slice needed by ``irfft2`` with trilinear ``grid_sample``.

    Args:
        volume: (L, L, L) density indexed ``[z, y, x]`` (numpy or torch), L even or odd.
        pad: padding factor (>= 1; 2 gives < 1% relative error for smooth densities).
        device: torch device for the FFT and the projections.
        gridding_correction: divide by the trilinear kernel's transform (default). It makes projections
            along general directions accurate (relative L2 error ~0.4% at pad 2 for a smooth particle of
            radius L/4) but over-corrects the few orientations whose slice lies on the Fourier grid (beam
            along a volume axis: ~2% there, the replicas of the padded volume then add up coherently).
            Without it, axis-aligned projections are exact and general ones are off by ~2%.
    """

    def __init__(
        self,
        volume: np.ndarray | torch.Tensor,
        pad: int = 2,
        device: str | torch.device = "cpu",
        gridding_correction: bool = True,
    ):
        vol = torch.as_tensor(np.asarray(volume) if not torch.is_tensor(volume) else volume)
        if vol.ndim != 3 or len(set(vol.shape)) != 1:
            raise ValueError(f"FourierSliceProjector: volume must be cubic (L, L, L), got {tuple(vol.shape)}")
        if not torch.isfinite(vol).all():
            raise ValueError("FourierSliceProjector: volume contains NaN or inf")
        if int(pad) != pad or pad < 1:
            raise ValueError(f"FourierSliceProjector: pad must be an integer >= 1, got {pad}")
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
        ft = torch.stack([ft.real, ft.imag])
        # Append the periodic copy of the -N/2 planes at +N/2 (index N) on every axis, so that frequencies up
        # to +N/2 (the Nyquist column of irfft2, 90-degree rotations of the grid) are sampled, not zeroed.
        for dim in (1, 2, 3):
            ft = torch.cat([ft, ft.narrow(dim, 0, 1)], dim=dim)
        self._ft = ft[None].contiguous()  # (1, 2, N+1, N+1, N+1); frequency 0 at index N // 2
        # Frequencies (index units, 1/N cycles per voxel) of the rfft2 half-plane: ky in fft order, kx >= 0.
        ky = torch.fft.fftfreq(N, d=1.0 / N, dtype=torch.float64)
        kx = torch.arange(N // 2 + 1, dtype=torch.float64)
        kyy, kxx = torch.meshgrid(ky, kx, indexing="ij")
        self._k = torch.stack([kxx, kyy], -1).to(device=self.device, dtype=torch.float32)  # (N, N//2+1, 2)

    def project(self, quaternions: np.ndarray) -> torch.Tensor:
        """Project the volume along the orientations ``quaternions`` ((B, 4) scalar-first).

        Returns:
            (B, L, L) float32 tensor of images indexed ``[y, x]`` (line integrals in voxel units).
        """
        q = np.asarray(quaternions, dtype=np.float64)
        if q.ndim != 2 or q.shape[1] != 4:
            raise ValueError(f"project: quaternions must have shape (B, 4), got {q.shape}")
        B, N, L = q.shape[0], self.N, self.L
        if B == 0:
            return torch.zeros((0, L, L), dtype=torch.float32, device=self.device)
        # Particle-frame frequency R^T (kx, ky, 0) = kx * R[0, :] + ky * R[1, :] (rows of R), mapped to
        # grid_sample's normalized coordinates with align_corners=True: -1 / +1 are the centres of indices
        # 0 / N (the grid has N + 1 samples per axis), and the zero frequency sits at index N // 2.
        scale = 2.0 / N
        rows = torch.as_tensor(quat_to_matrix(q)[:, :2, :] * scale, dtype=torch.float32, device=self.device)
        grid = torch.matmul(self._k, rows[:, None]) + (N // 2) * scale - 1.0  # (B, N, N//2+1, 3): (x, y, z)
        vals = F.grid_sample(self._ft, grid[None], mode="bilinear", padding_mode="zeros", align_corners=True)
        slices = torch.complex(vals[0, 0], vals[0, 1])  # (B, N, N//2+1)
        img = torch.fft.irfft2(slices, s=(N, N))  # origin (particle centre) at index 0
        img = torch.roll(img, shifts=(L // 2, L // 2), dims=(1, 2))  # particle centre to index L // 2
        return img[:, :L, :L].contiguous()

    __call__ = project


def project(
    volume: np.ndarray | torch.Tensor,
    quaternions: np.ndarray,
    pad: int = 2,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    gridding_correction: bool = True,
) -> np.ndarray:
    """Project ``volume`` ((L, L, L), ``[z, y, x]``) along ``quaternions`` ((B, 4)) -> (B, L, L) float32.

    Convenience wrapper over :class:`FourierSliceProjector` that runs in batches of ``batch_size``.
    """
    if batch_size < 1:
        raise ValueError(f"project: batch_size must be >= 1, got {batch_size}")
    proj = FourierSliceProjector(volume, pad=pad, device=device, gridding_correction=gridding_correction)
    q = np.asarray(quaternions, dtype=np.float64).reshape(-1, 4)
    out = np.empty((q.shape[0], proj.L, proj.L), dtype=np.float32)
    with torch.no_grad():
        for s in range(0, q.shape[0], batch_size):
            out[s : s + batch_size] = proj.project(q[s : s + batch_size]).cpu().numpy()
    return out

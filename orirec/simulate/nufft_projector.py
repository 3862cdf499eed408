"""Fourier-slice projector whose central slices are type-2 NUFFT samples (``finufft``, CPU).

Same convention and output as :class:`orirec.simulate.projector.FourierSliceProjector` (DESIGN §2): for a
rotation R (particle -> microscope), ``FT2(img)(kx, ky) = FT3(vol)(R^T (kx, ky, 0))`` with coordinates
relative to index ``L // 2``. Here FT3 is the exact discrete-time Fourier transform of the voxels, to the
NUFFT tolerance ``eps`` (relative), inside the volume's Nyquist cube and 0 outside it (the band-limited
density the voxels sample), instead of a trilinear interpolation of a padded grid.

The upsampled, deconvolved grid of the volume is transformed once at construction; each batch of
projections then costs only finufft's sorted, vectorized kernel interpolation (its ``spreadinterponly``
mode) and one inverse 2D FFT per image. Numbers: ``benchmarks/results/simulate_throughput.json``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from orirec.simulate.projector import Sampling, checked_volume, project_by_slices, slice_frequencies

__all__ = ["NufftProjector", "cpu_projector", "cpu_projector_factory", "finufft_available"]

_CHUNK = 256  # images per interpolation call: amortizes the point sorting, bounds the temporaries


def finufft_available() -> bool:
    """True when the ``finufft`` package imports."""
    try:
        import finufft  # noqa: F401
    except ImportError:
        return False
    return True


def _kernel_transform(n_fine: int, modes: np.ndarray, eps: float, upsampfac: float, nthreads: int) -> np.ndarray:
    """(len(modes),) complex128 DFT, on an ``n_fine`` grid, of finufft's 3D spreading kernel along one axis.

    The kernel is read off finufft itself (one unit point at the origin spread onto a small grid), so the
    deconvolution matches the interpolation it undoes whatever kernel finufft picks for ``eps``.
    """
    import finufft

    n0 = 64
    plan = finufft.Plan(1, (n0, n0, n0), eps=eps, dtype="complex64", spreadinterponly=1, upsampfac=upsampfac,
                        nthreads=nthreads)  # fmt: skip
    zero = np.zeros(1, np.float32)
    plan.setpts(zero, zero.copy(), zero.copy())
    grid = plan.execute(np.ones(1, np.complex64)).astype(np.complex128)
    c = n0 // 2
    line = grid[c, c, :] / grid[c, c, c] ** (2.0 / 3.0)  # phi(m) phi(0)^2 / phi(0)^2: one axis' kernel
    offsets = np.arange(n0) - c
    return (line[None, :] * np.exp(-2j * np.pi * modes[:, None] * offsets[None, :] / n_fine)).sum(1)


def _fine_size(L: int, upsampfac: float) -> int:
    """Side (voxels, even) of finufft's upsampled grid for an L box."""
    n = int(np.ceil(upsampfac * L))
    return n + n % 2


class NufftProjector:
    """Fourier-slice projector of one cubic volume with type-2 NUFFT slices (CPU, needs ``finufft``).

    Args:
        volume: (L, L, L) density indexed ``[z, y, x]`` (numpy or torch), L even or odd.
        eps: relative NUFFT tolerance (1e-3: measured relative L2 error ~1e-3 against the exact DTFT).
        upsampfac: finufft's grid oversampling (1.25: a 1.25 L cube, the fastest at these sizes).
        sampling: ``"image"`` (slices on the L x L image grid; exact when the particle lies within the
            inscribed sphere), ``"padded"`` (on a 2L x 2L grid, inverse FFT and crop: density in the box
            corners is cropped, not wrapped around) or ``"auto"`` (image unless more than 1e-3 of the mass
            lies outside that sphere), as for :class:`FourierSliceProjector`.
        nthreads: threads of the interpolation (default: ``torch.get_num_threads()``).
    """

    def __init__(
        self,
        volume: np.ndarray | torch.Tensor,
        eps: float = 1e-3,
        upsampfac: float = 1.25,
        sampling: Sampling = "auto",
        nthreads: int | None = None,
    ):
        import finufft

        if not 1e-5 <= eps < 0.1:
            raise ValueError(f"NufftProjector: eps must be in [1e-5, 0.1), got {eps}")
        vol, self.sampling = checked_volume(volume, sampling, "NufftProjector")
        vol = vol.cpu()
        self.L = L = int(vol.shape[0])
        self.device = torch.device("cpu")
        self._nthreads = int(nthreads or torch.get_num_threads())
        n_fine = _fine_size(L, upsampfac)
        modes = np.arange(L) - L // 2
        phi = _kernel_transform(n_fine, modes, eps, upsampfac, self._nthreads)
        deconv = torch.as_tensor(1.0 / phi)
        coeffs = vol.to(torch.complex128) * deconv[:, None, None] * deconv[None, :, None] * deconv[None, None, :]
        # Modes k at index k mod n_fine; finufft's interpolation grid has its origin at index n_fine // 2.
        grid = torch.zeros((n_fine,) * 3, dtype=torch.complex64)
        idx = torch.as_tensor(modes % n_fine)
        grid[idx[:, None, None], idx[None, :, None], idx[None, None, :]] = coeffs.to(torch.complex64)
        self._grid = torch.fft.fftshift(torch.fft.fftn(grid)).numpy()
        self._plan = finufft.Plan(2, (n_fine,) * 3, eps=eps, dtype="complex64", spreadinterponly=1,
                                  upsampfac=upsampfac, nthreads=self._nthreads)  # fmt: skip
        self._n_out = L if self.sampling == "image" else 2 * L
        self._k = slice_frequencies(L, self._n_out).numpy().astype(np.float32)  # (n, n//2+1, 2) (kx, ky)

    @staticmethod
    def grid_bytes(L: int, upsampfac: float = 1.25) -> int:
        """Memory (bytes) of the transformed grid a projector of an L box holds (complex64)."""
        return _fine_size(L, upsampfac) ** 3 * 8

    def _slices(self, rows: np.ndarray) -> torch.Tensor:
        """(B, n, n//2+1) complex64 slice samples for the first two rotation rows ``rows`` ((B, 2, 3)).

        Frequencies outside the volume's Nyquist cube (any component beyond half a cycle per voxel) are 0, as
        in the trilinear projector: the samples represent a band-limited density, and the transform of the
        voxels there is an aliased copy of lower frequencies (measured: 0.62 % mean relative L2 error against
        exact line integrals at 128 px with those copies, 0.19 % without).
        """
        kx, ky = self._k[..., 0].ravel(), self._k[..., 1].ravel()
        r = (rows * (2.0 * np.pi / self.L)).astype(np.float32)
        limit = np.float32(np.pi * (1 + 1e-6))
        # R^T (kx, ky, 0) in radians per voxel, one (B, n * m) array per axis; finufft's first axis is the volume's z.
        pts = [kx[None] * r[:, 0, a, None] + ky[None] * r[:, 1, a, None] for a in (2, 1, 0)]
        inside = np.abs(pts[0]) <= limit
        inside &= np.abs(pts[1]) <= limit
        inside &= np.abs(pts[2]) <= limit
        self._plan.setpts(*(p[inside] for p in pts))
        vals = np.zeros(inside.shape, dtype=np.complex64)
        vals[inside] = self._plan.execute(self._grid)
        return torch.from_numpy(vals.reshape(rows.shape[0], *self._k.shape[:2]))

    def project(self, quaternions: np.ndarray) -> torch.Tensor:
        """Project the volume along the orientations ``quaternions`` ((B, 4) scalar-first).

        Returns:
            (B, L, L) float32 tensor of images indexed ``[y, x]`` (line integrals in voxel units).
        """
        return project_by_slices(self._slices, quaternions, self.L, self._n_out, _CHUNK)

    __call__ = project


def cpu_projector_factory(box_px: int, pad: int = 2) -> tuple[Callable[[np.ndarray | torch.Tensor], Any], int]:
    """The best CPU projector installed for volumes of ``box_px``, and the memory (bytes) each one holds:
    :class:`NufftProjector` with finufft, else the trilinear
    :class:`~orirec.simulate.projector.FourierSliceProjector` at ``pad`` (half a padded spectrum of complex64)."""
    if finufft_available():
        return NufftProjector, NufftProjector.grid_bytes(box_px)
    from orirec.simulate.projector import FourierSliceProjector

    side = int(pad) * int(box_px)
    return (lambda vol: FourierSliceProjector(vol, pad=int(pad))), side * side * (side // 2 + 1) * 8


def cpu_projector(volume: np.ndarray | torch.Tensor, pad: int = 2):
    """The best CPU projector installed for ``volume`` (see :func:`cpu_projector_factory`)."""
    make, _ = cpu_projector_factory(int(np.shape(volume)[0]), pad)
    return make(volume)

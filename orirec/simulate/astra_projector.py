"""ASTRA's 3D GPU line-integral projector as a second backend (the published study's simulator).

Guarded: every 3D ASTRA call needs CUDA — without a GPU it kills the process (SIGFPE) instead of raising —
so :class:`AstraProjector` refuses to start unless :func:`astra_gpu_available` is true, and only then
touches ``astra``'s 3D functions. Same convention as :class:`orirec.simulate.projector.FourierSliceProjector`:
``R`` maps particle to microscope, the image integrates along microscope z, voxel/pixel ``L // 2`` is the
origin, images are ``[y, x]`` in voxel units.
"""

from __future__ import annotations

import numpy as np

from orirec.geometry import quat_to_matrix

__all__ = ["AstraProjector", "astra_gpu_available", "astra_vectors"]


def astra_gpu_available() -> bool:
    """True when the ``astra`` package is importable and reports CUDA (no 3D call is made to find out)."""
    try:
        import astra
    except ImportError:
        return False
    try:
        return bool(astra.use_cuda())
    except Exception:
        return False


def astra_vectors(quaternions: np.ndarray, box_px: int) -> np.ndarray:
    """(B, 12) ``parallel3d_vec`` rows (ray, detector centre d, u, v) in voxel units for orientations ``q``.

    In the particle frame the beam runs along ``R^T e_z`` (row 2 of R), the detector's columns along
    ``R^T e_x`` and its rows along ``R^T e_y``. ASTRA's ``d`` is the detector's geometric centre; pixel
    ``(row, col)`` must sit at ``(col - L//2) u + (row - L//2) v``, hence ``d = ((L-1)/2 - L//2) (u + v)``.
    """
    R = quat_to_matrix(np.asarray(quaternions, dtype=np.float64).reshape(-1, 4))
    off = (box_px - 1) / 2 - box_px // 2
    u, v, ray = R[:, 0, :], R[:, 1, :], R[:, 2, :]
    return np.concatenate([ray, off * (u + v), u, v], axis=1)


class AstraProjector:
    """Line-integral projections of one cubic volume with ASTRA's ``FP3D_CUDA`` (GPU only).

    Args:
        volume: (L, L, L) density ``[z, y, x]``.
        gpu_index: CUDA device for ASTRA.

    Raises:
        RuntimeError: when ASTRA has no CUDA (before any 3D call, which would kill the process).
    """

    def __init__(self, volume: np.ndarray, gpu_index: int = 0):
        if not astra_gpu_available():
            raise RuntimeError(
                "AstraProjector: ASTRA's 3D projector needs a CUDA GPU (astra.use_cuda() is False here); "
                "use the torch projector (FourierSliceProjector) instead"
            )
        vol = np.ascontiguousarray(volume, dtype=np.float32)
        if vol.ndim != 3 or len(set(vol.shape)) != 1:
            raise ValueError(f"AstraProjector: volume must be cubic (L, L, L), got {vol.shape}")
        self.L = L = vol.shape[0]
        self.gpu_index = gpu_index
        lo = -(L // 2) - 0.5  # voxel i spans [lo + i, lo + i + 1]: its centre is at i - L // 2
        import astra

        self._astra = astra
        self._vol_geom = astra.create_vol_geom(L, L, L, lo, lo + L, lo, lo + L, lo, lo + L)
        self._vol_id = astra.data3d.create("-vol", self._vol_geom, vol)

    def project(self, quaternions: np.ndarray) -> np.ndarray:
        """(B, L, L) float32 projections ``[y, x]`` along ``quaternions`` ((B, 4), scalar-first)."""
        astra, L = self._astra, self.L
        geom = astra.create_proj_geom("parallel3d_vec", L, L, astra_vectors(quaternions, L))
        sino_id, sino = astra.create_sino3d_gpu(self._vol_id, geom, self._vol_geom, gpuIndex=self.gpu_index)
        astra.data3d.delete(sino_id)
        return np.ascontiguousarray(np.transpose(sino, (1, 0, 2)), dtype=np.float32)  # (rows, B, cols) -> (B, y, x)

    def close(self) -> None:
        """Free the GPU copy of the volume."""
        if getattr(self, "_vol_id", None) is not None:
            self._astra.data3d.delete(self._vol_id)
            self._vol_id = None

    def __del__(self):  # pragma: no cover - GPU only
        try:
            self.close()
        except Exception:
            pass

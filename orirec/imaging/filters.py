"""Image formation after projection in one Fourier pass: sub-pixel shift and CTF on a zero-padded grid.

``apply_formation`` zero-pads each clean projection to ``pad * L``, multiplies its real FFT by the
shift's phase ramp and the CTF (both evaluated on the padded half-plane, in float32), and crops
the centre back: one forward and one inverse FFT per image instead of one pair per effect. On the
padded grid the CTF's delocalised signal and the shifted content leave the box instead of wrapping
around (as when a particle is extracted from a micrograph); with ``pad = 2`` the result equals
``apply_ctf(apply_shifts(...), ctf_from_params(params, 2L, px), pad=2)`` inside the particle's disk.
"""

from __future__ import annotations

import numpy as np
import torch

from orirec.imaging.ctf import ctf_on_grid

__all__ = ["apply_formation", "formation_filter"]

_CHUNK = 32  # images per Fourier pass


def formation_filter(
    n_px: int,
    pixel_size_A: float,
    shifts_px: np.ndarray | None = None,
    ctf_params: np.ndarray | None = None,
    device: str | torch.device = "cpu",
) -> torch.Tensor | None:
    """(B, n, n//2+1) complex64 filter on the rfft2 grid of an ``n_px`` box: shift ramp x CTF; None if neither.

    ``shifts_px`` (B, 2) are ``(dx, dy)`` in px (content moves towards +x/+y); ``ctf_params`` (B, 7) rows in
    the store's CTF column order (RELION sign convention, :mod:`orirec.imaging.ctf`).
    """
    if shifts_px is None and ctf_params is None:
        return None
    ky = torch.fft.fftfreq(n_px, dtype=torch.float32, device=device)[:, None]  # cycles / px
    kx = torch.fft.rfftfreq(n_px, dtype=torch.float32, device=device)[None, :]
    filt = None
    if shifts_px is not None:
        s = torch.as_tensor(np.asarray(shifts_px, dtype=np.float32), device=device).reshape(-1, 2)
        # The ramp is separable: exp(-2πi (dx kx + dy ky)) = exp(-2πi dx kx) * exp(-2πi dy ky).
        px_ = -2.0 * np.pi * s[:, 0, None, None] * kx
        py_ = -2.0 * np.pi * s[:, 1, None, None] * ky
        filt = torch.polar(torch.ones_like(px_), px_) * torch.polar(torch.ones_like(py_), py_)
    if ctf_params is not None:
        ctf = ctf_on_grid(kx / pixel_size_A, ky / pixel_size_A, ctf_params).to(torch.complex64)
        filt = ctf if filt is None else filt * ctf
    return filt


def apply_formation(
    images: torch.Tensor | np.ndarray,
    pixel_size_A: float,
    shifts_px: np.ndarray | None = None,
    ctf_params: np.ndarray | None = None,
    pad: int = 2,
) -> torch.Tensor:
    """Shift and CTF-modulate clean projections ((B, L, L) ``[y, x]``) -> (B, L, L) float32 tensor.

    Either effect may be None (skipped); with neither the images come back unchanged.
    """
    img = torch.as_tensor(images, dtype=torch.float32)
    if img.ndim != 3 or img.shape[-1] != img.shape[-2]:
        raise ValueError(f"apply_formation: images must be (B, L, L), got {tuple(img.shape)}")
    if int(pad) != pad or pad < 1:
        raise ValueError(f"apply_formation: pad must be an integer >= 1, got {pad}")
    B, L = img.shape[0], img.shape[-1]
    for name, arr, cols in (("shifts_px", shifts_px, 2), ("ctf_params", ctf_params, 7)):
        if arr is not None and np.shape(arr) != (B, cols):
            raise ValueError(f"apply_formation: {name} must be ({B}, {cols}), got {np.shape(arr)}")
    if shifts_px is None and ctf_params is None:
        return img
    P, o = int(pad) * L, (int(pad) * L - L) // 2
    out = torch.empty_like(img)
    for s in range(0, B, _CHUNK):  # chunks keep the (chunk, P, P/2+1) temporaries in cache
        sl = slice(s, s + _CHUNK)
        filt = formation_filter(
            P,
            pixel_size_A,
            None if shifts_px is None else np.asarray(shifts_px)[sl],
            None if ctf_params is None else np.asarray(ctf_params)[sl],
            device=img.device,
        )
        x = torch.zeros((img[sl].shape[0], P, P), dtype=torch.float32, device=img.device)
        x[:, o : o + L, o : o + L] = img[sl]
        out[sl] = torch.fft.irfft2(torch.fft.rfft2(x) * filt, s=(P, P))[:, o : o + L, o : o + L]
    return out

"""Fourier shell correlation (FSC) between two volumes and the resolution at a threshold."""

from __future__ import annotations

import numpy as np

__all__ = ["fsc", "fsc_report", "fsc_resolution"]


def fsc(v1: np.ndarray, v2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """FSC of two cubic (L, L, L) volumes.

    Shell ``k`` (k = 0 .. L//2 - 1) holds the Fourier voxels with ``round(|k_vec|) == k``, where
    ``|k_vec|`` is in index units; its frequency is ``k / L`` cycles per pixel (1/px).
    Returns (freq_per_px (L//2,), fsc (L//2,)); a shell with no power in either map gets 0.
    """
    a = np.asarray(v1, dtype=np.float64)
    b = np.asarray(v2, dtype=np.float64)
    if a.ndim != 3 or len(set(a.shape)) != 1 or a.shape != b.shape or a.shape[0] < 2:
        raise ValueError(f"fsc: expected two cubic volumes of equal shape, got {a.shape} and {b.shape}")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("fsc: volumes contain NaN or inf")
    L = a.shape[0]
    fa = np.fft.fftn(a)
    fb = np.fft.fftn(b)
    k = np.fft.fftfreq(L, d=1.0 / L)
    r = np.sqrt(k[:, None, None] ** 2 + k[None, :, None] ** 2 + k[None, None, :] ** 2)
    shell = np.rint(r).astype(np.int64).ravel()
    n = L // 2
    inside = shell < n
    sh = shell[inside]
    fa = fa.ravel()[inside]
    fb = fb.ravel()[inside]
    num = np.bincount(sh, weights=np.real(fa * np.conj(fb)), minlength=n)
    p1 = np.bincount(sh, weights=np.abs(fa) ** 2, minlength=n)
    p2 = np.bincount(sh, weights=np.abs(fb) ** 2, minlength=n)
    den = np.sqrt(p1 * p2)
    curve = np.divide(num, den, out=np.zeros(n), where=den > 0)
    return np.arange(n) / L, curve


def fsc_resolution(freq_per_px: np.ndarray, curve: np.ndarray, threshold: float, pixel_size_A: float) -> float:
    """Resolution (Å) where the FSC curve first falls below ``threshold``.

    The crossing frequency is linearly interpolated between the last shell at or above the
    threshold and the first shell below it (shell 0, the mean, is never the crossing); the
    resolution is ``pixel_size_A / f``. If the curve never drops below the threshold the
    resolution is limited by the sampling and the Nyquist resolution ``2 * pixel_size_A`` is
    returned; if it is already below at shell 1 the crossing may be near f = 0 and is returned
    as is (``inf`` at f = 0).
    """
    f = np.asarray(freq_per_px, dtype=np.float64)
    c = np.asarray(curve, dtype=np.float64)
    if f.shape != c.shape or f.ndim != 1 or f.size < 2:
        raise ValueError(f"fsc_resolution: freq and curve must be 1-D of equal length >= 2, got {f.shape}, {c.shape}")
    if pixel_size_A <= 0:
        raise ValueError(f"fsc_resolution: pixel_size_A must be > 0, got {pixel_size_A}")
    below = np.flatnonzero(c[1:] < threshold)
    if below.size == 0:
        return 2.0 * float(pixel_size_A)
    k = int(below[0]) + 1
    c0, c1 = c[k - 1], c[k]
    t = 0.0 if c0 == c1 else (c0 - threshold) / (c0 - c1)
    fc = f[k - 1] + float(np.clip(t, 0.0, 1.0)) * (f[k] - f[k - 1])
    return float(pixel_size_A / fc) if fc > 0 else float("inf")


def fsc_report(v1: np.ndarray, v2: np.ndarray, pixel_size_A: float) -> dict:
    """FSC curve and resolutions at 0.5 and 0.143 (Å) of two volumes with voxel size ``pixel_size_A``.

    Returns ``dict(fsc_05_A, fsc_0143_A, freq, freq_per_A, curve)``: ``freq`` in 1/px (as from
    :func:`fsc`), ``freq_per_A`` in 1/Å.
    """
    freq, curve = fsc(v1, v2)
    return {
        "fsc_05_A": fsc_resolution(freq, curve, 0.5, pixel_size_A),
        "fsc_0143_A": fsc_resolution(freq, curve, 0.143, pixel_size_A),
        "freq": freq,
        "freq_per_A": freq / float(pixel_size_A),
        "curve": curve,
    }

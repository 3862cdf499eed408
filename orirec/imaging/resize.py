"""Fourier resizing (crop or zero-pad of the centred spectrum) and real-space windowing of image batches (B, L, L).

Both keep the centre pixel at index ``L // 2`` (DESIGN §2). Cropping the spectrum from L to ``box_px`` grows the
pixel size by ``L / box_px`` (Å per px).
"""

from __future__ import annotations

import numpy as np

__all__ = ["fourier_downsample", "fourier_resize", "window"]


def fourier_downsample(images: np.ndarray, box_px: int) -> np.ndarray:
    """Crop the centred 2D spectrum of (B, L, L) images to ``box_px`` (keeps the pixel values' scale).

    The pixel size grows by ``L / box_px``; the centre pixel stays at index ``box_px // 2``.
    """
    L = images.shape[-1]
    if box_px >= L:
        return np.asarray(images, dtype=np.float32)
    f = np.fft.fftshift(np.fft.fft2(np.asarray(images, dtype=np.float64)), axes=(-2, -1))
    lo = L // 2 - box_px // 2
    f = f[..., lo : lo + box_px, lo : lo + box_px]
    out = np.fft.ifft2(np.fft.ifftshift(f, axes=(-2, -1))).real * (box_px / L) ** 2
    return out.astype(np.float32)


def fourier_resize(images: np.ndarray, size_px: int) -> np.ndarray:
    """Crop or zero-pad the centred 2D spectrum of (B, L, L) images to ``size_px`` (pixel values' scale kept)."""
    L = images.shape[-1]
    if size_px == L:
        return np.asarray(images, dtype=np.float32)
    if size_px < L:
        return fourier_downsample(images, size_px)
    f = np.fft.fftshift(np.fft.fft2(np.asarray(images, dtype=np.float64)), axes=(-2, -1))
    out = np.zeros((*images.shape[:-2], size_px, size_px), dtype=np.complex128)
    lo = size_px // 2 - L // 2
    out[..., lo : lo + L, lo : lo + L] = f
    img = np.fft.ifft2(np.fft.ifftshift(out, axes=(-2, -1))).real * (size_px / L) ** 2
    return img.astype(np.float32)


def window(images: np.ndarray, box_px: int) -> np.ndarray:
    """Centred real-space crop or zero-pad of (B, L, L) images to ``box_px`` (centre pixel ``L // 2`` kept)."""
    L = images.shape[-1]
    if box_px == L:
        return images
    out = np.zeros((images.shape[0], box_px, box_px), dtype=np.float32)
    src, dst = max(0, L // 2 - box_px // 2), max(0, box_px // 2 - L // 2)
    n = min(L, box_px)
    out[:, dst : dst + n, dst : dst + n] = images[:, src : src + n, src : src + n]
    return out

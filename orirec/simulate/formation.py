"""Image formation after projection: sub-pixel shifts, additive white noise at a relative level, SNR measures.

Noise convention (DESIGN §2): ``sigma2`` is the noise variance relative to the variance of the clean image
over the whole frame, per image (sigma2 = 16 <=> SNR 1/16). :func:`snr_disk` gives the other common
convention: mean signal energy inside the inscribed disk over the noise variance.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["add_noise", "apply_shifts", "inscribed_disk", "sample_shifts", "snr_disk", "snr_frame"]


def _as_tensor(x: np.ndarray | torch.Tensor) -> tuple[torch.Tensor, bool]:
    if torch.is_tensor(x):
        return x, True
    return torch.from_numpy(np.ascontiguousarray(x)), False


def apply_shifts(images: np.ndarray | torch.Tensor, shifts_px: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """Shift images by sub-pixel amounts with a Fourier phase ramp (periodic boundary).

    A positive shift moves the content towards +x / +y: ``out[y, x] = img[y - dy, x - dx]``; for
    integer shifts this equals ``np.roll(img, (dy, dx), axis=(-2, -1))``.

    Args:
        images: (B, L, L) or (L, L) images indexed ``[y, x]`` (numpy or torch).
        shifts_px: (B, 2) or (2,) shifts ``(dx, dy)`` in pixels.

    Returns:
        Shifted images, same type, shape and float dtype as the input (float32 for integer input).
    """
    img, was_tensor = _as_tensor(images)
    single = img.ndim == 2
    if single:
        img = img[None]
    if img.ndim != 3:
        raise ValueError(f"apply_shifts: images must be (B, L, L) or (L, L), got {tuple(img.shape)}")
    dtype = img.dtype if img.is_floating_point() else torch.float32
    sh = torch.as_tensor(np.asarray(shifts_px) if not torch.is_tensor(shifts_px) else shifts_px)
    sh = sh.to(device=img.device, dtype=torch.float64).reshape(-1, 2)
    if sh.shape[0] != img.shape[0]:
        raise ValueError(f"apply_shifts: {sh.shape[0]} shifts for {img.shape[0]} images")
    H, W = img.shape[-2:]
    ky = torch.fft.fftfreq(H, dtype=torch.float64, device=img.device)
    kx = torch.fft.fftfreq(W, dtype=torch.float64, device=img.device)
    phase = -2.0 * np.pi * (sh[:, 0, None, None] * kx[None, None, :] + sh[:, 1, None, None] * ky[None, :, None])
    ramp = torch.polar(torch.ones_like(phase), phase)
    out = torch.fft.ifft2(torch.fft.fft2(img.to(torch.float64)) * ramp).real.to(dtype)
    if single:
        out = out[0]
    return out if was_tensor else out.numpy()


def sample_shifts(n: int, seed: int, max_shift_px: float | None = None, std_px: float | None = None) -> np.ndarray:
    """Draw ``n`` in-plane shifts ``(dx, dy)`` in pixels (float64, (n, 2)).

    - ``max_shift_px`` only: uniform over the disk of that radius;
    - ``std_px`` only: isotropic Gaussian with that standard deviation per axis;
    - both: the Gaussian truncated to the disk (redrawn until inside).
    """
    if n < 0:
        raise ValueError(f"sample_shifts: n must be >= 0, got {n}")
    if max_shift_px is None and std_px is None:
        raise ValueError("sample_shifts: give max_shift_px or std_px")
    if max_shift_px is not None and max_shift_px < 0:
        raise ValueError(f"sample_shifts: max_shift_px must be >= 0, got {max_shift_px}")
    if std_px is not None and std_px < 0:
        raise ValueError(f"sample_shifts: std_px must be >= 0, got {std_px}")
    rng = np.random.default_rng(seed)
    if std_px is None:
        r = max_shift_px * np.sqrt(rng.random(n))
        a = rng.random(n) * 2.0 * np.pi
        return np.stack([r * np.cos(a), r * np.sin(a)], axis=1)
    out = rng.normal(scale=std_px, size=(n, 2))
    if max_shift_px is not None:
        bad = np.hypot(out[:, 0], out[:, 1]) > max_shift_px
        while bad.any():
            out[bad] = rng.normal(scale=std_px, size=(int(bad.sum()), 2))
            bad = np.hypot(out[:, 0], out[:, 1]) > max_shift_px
    return out


def add_noise(
    images: np.ndarray | torch.Tensor, sigma2: float | np.ndarray, seed: int
) -> tuple[np.ndarray | torch.Tensor, np.ndarray]:
    """Add white Gaussian noise whose variance is ``sigma2`` times each clean image's variance (whole frame).

    Args:
        images: (B, L, L) clean images (numpy or torch).
        sigma2: relative noise level, scalar or (B,) (>= 0; 0 = no noise).
        seed: random seed (numpy ``default_rng``).

    Returns:
        (noisy, noise_var): noisy images (same type, float32) and the (B,) float64 noise variances used.
    """
    img, was_tensor = _as_tensor(images)
    if img.ndim != 3:
        raise ValueError(f"add_noise: images must be (B, L, L), got {tuple(img.shape)}")
    s2 = np.broadcast_to(np.asarray(sigma2, dtype=np.float64), (img.shape[0],))
    if np.any(~np.isfinite(s2)) or np.any(s2 < 0):
        raise ValueError(f"add_noise: sigma2 must be finite and >= 0, got {sigma2}")
    clean = img.detach().cpu().numpy().astype(np.float64)
    noise_var = s2 * clean.reshape(clean.shape[0], -1).var(axis=1)
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(clean.shape) * np.sqrt(noise_var)[:, None, None]
    noisy = (clean + noise).astype(np.float32)
    if was_tensor:
        return torch.from_numpy(noisy).to(img.device), noise_var
    return noisy, noise_var


def inscribed_disk(L: int) -> np.ndarray:
    """(L, L) boolean mask of the disk of radius L/2 centred on pixel (L//2, L//2)."""
    g = np.arange(L) - L // 2
    return (g[:, None] ** 2 + g[None, :] ** 2) <= (L / 2.0) ** 2


def snr_disk(clean: np.ndarray | torch.Tensor, noise_var: float | np.ndarray) -> np.ndarray:
    """(B,) SNR: mean signal energy (mean of clean^2) inside the inscribed disk / noise variance (inf if noiseless)."""
    c = np.asarray(clean.detach().cpu() if torch.is_tensor(clean) else clean, dtype=np.float64)
    if c.ndim == 2:
        c = c[None]
    mask = inscribed_disk(c.shape[-1])
    energy = (c[:, mask] ** 2).mean(axis=1)
    with np.errstate(divide="ignore"):
        return energy / np.asarray(noise_var, dtype=np.float64)


def snr_frame(clean: np.ndarray | torch.Tensor, noise_var: float | np.ndarray) -> np.ndarray:
    """(B,) SNR in orirec's convention: clean-image variance over the frame / noise variance (= 1/sigma2)."""
    c = np.asarray(clean.detach().cpu() if torch.is_tensor(clean) else clean, dtype=np.float64)
    if c.ndim == 2:
        c = c[None]
    return c.reshape(c.shape[0], -1).var(axis=1) / np.asarray(noise_var, dtype=np.float64)

"""Contrast transfer function (CTF) of the electron microscope: evaluation, application, sampling.

Model (weak-phase object, RELION/CTFFIND parametrisation; positive defocus = underfocus)::

    defocus(θ) = 0.5 * (du + dv + (du - dv) * cos(2 (θ - astig))),   θ = atan2(ky, kx)
    γ(k)       = π λ defocus(θ) k² - (π/2) Cs λ³ k⁴ + phase_shift          (Cs in Å = mm * 1e7)
    CTF(k)     = s * [sqrt(1 - A²) sin γ + A cos γ] * exp(-B k² / 4)

with ``k`` the spatial frequency in 1/Å, ``λ`` the relativistic electron wavelength in Å, ``A`` the
amplitude contrast and ``B`` the B-factor in Å².

Sign convention (``s``). RELION's ``CTF::getCTF`` stores the *negated* defocus internally
(``defocus_average = -(DeltafU + DeltafV)/2``, ``K1 = π λ``, ``K2 = (π/2) Cs λ³``,
``K3 = atan(Q0 / sqrt(1 - Q0²))``) and returns ``-sin(K1·deltaf·k² + K2·k⁴ - K5 - K3)``, which equals
``+sin(γ + K3) = +[sqrt(1 - A²) sin γ + A cos γ]``: in RELION, CTF(0) = **+A** and the first lobe is
positive. That sign goes with RELION's particle convention (particles *white* on a dark background,
i.e. after the contrast inversion done at extraction), under which a projection of a positive density
times the CTF gives the image. orirec projects positive densities and writes RELION-convention STAR
files (DESIGN §2), so the default here is ``convention="relion"`` (``s = +1``, CTF(0) = +A): simulated
stacks can be refined by RELION-convention tools without inverting them.

``convention="micrograph"`` (``s = -1``, CTF(0) = -A) gives the contrast of a raw micrograph (dark
particles at low frequency); this is also the sign used by cryoDRGN's ``compute_ctf`` (which therefore
inverts RELION stacks by default).

Frequency grid: the *unshifted* FFT grid of an ``L × L`` image, ``np.fft.fftfreq(L, d=pixel_size_A)``
(1/Å), ``kx`` along the last axis (x) and ``ky`` along axis -2 (y) — images are indexed ``[y, x]`` as
in :mod:`orirec.imaging.formation`. The astigmatism angle is measured from +x towards +y.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import overload

import numpy as np
import torch

from orirec.store.schema import CTF_COLUMNS

__all__ = [
    "apply_ctf",
    "ctf_2d",
    "ctf_on_grid",
    "ctf_from_params",
    "electron_wavelength_A",
    "phase_flip",
    "phase_flip_by_params",
    "sample_ctf_params",
]

# CODATA 2018 exact / recommended values (SI).
_H = 6.62607015e-34  # Planck constant, J s
_M0 = 9.1093837015e-31  # electron rest mass, kg
_E = 1.602176634e-19  # elementary charge, C
_C = 299792458.0  # speed of light, m/s

_CONVENTIONS = {"relion": 1.0, "micrograph": -1.0}


def electron_wavelength_A(voltage_kV: float) -> float:
    """Relativistic electron wavelength in Å for an accelerating voltage in kV.

    ``λ = h / sqrt(2 m0 e V (1 + e V / (2 m0 c²)))``; 300 kV -> 0.019687 Å, 200 kV -> 0.025079 Å.
    """
    v = float(voltage_kV)
    if not np.isfinite(v) or v <= 0:
        raise ValueError(f"electron_wavelength_A: voltage_kV must be finite and > 0, got {voltage_kV}")
    volts = v * 1e3
    lam_m = _H / np.sqrt(2.0 * _M0 * _E * volts * (1.0 + _E * volts / (2.0 * _M0 * _C**2)))
    return float(lam_m * 1e10)


def _check_convention(convention: str) -> float:
    if convention not in _CONVENTIONS:
        raise ValueError(f"convention must be one of {sorted(_CONVENTIONS)}, got {convention!r}")
    return _CONVENTIONS[convention]


def ctf_2d(
    box_px: int,
    pixel_size_A: float,
    defocus_u_A: float | np.ndarray,
    defocus_v_A: float | np.ndarray,
    astigmatism_rad: float | np.ndarray,
    voltage_kV: float | np.ndarray = 300.0,
    cs_mm: float | np.ndarray = 2.7,
    amp_contrast: float | np.ndarray = 0.1,
    bfactor_A2: float | np.ndarray = 0.0,
    phase_shift_rad: float | np.ndarray = 0.0,
    convention: str = "relion",
) -> np.ndarray:
    """CTFs on the unshifted FFT grid of a ``box_px × box_px`` image (see the module docstring).

    Per-image parameters are scalars or (B,) arrays, broadcast against each other.

    Args:
        box_px: image side L in pixels (>= 1).
        pixel_size_A: pixel size in Å (> 0).
        defocus_u_A, defocus_v_A: defoci in Å along the astigmatism angle and perpendicular to it
            (positive = underfocus).
        astigmatism_rad: angle of the defocus_u axis from +x towards +y, radians.
        voltage_kV: accelerating voltage, kV (> 0).
        cs_mm: spherical aberration, mm.
        amp_contrast: amplitude contrast fraction A, in [0, 1).
        bfactor_A2: B-factor in Å² of the envelope ``exp(-B k² / 4)`` (0 = none).
        phase_shift_rad: extra phase shift (phase plate), radians.
        convention: ``"relion"`` (CTF(0) = +A, default) or ``"micrograph"`` (CTF(0) = -A).

    Returns:
        (B, L, L) float32 CTF values, ``[b, iy, ix]`` at ``(ky, kx) = (fftfreq(L)[iy], fftfreq(L)[ix]) / pixel_size_A``.
        The grid is centrosymmetric, ``c[(-iy) % L, (-ix) % L] == c[iy, ix]``, so that filtering a real
        image gives a real image: for even L the Nyquist row and column (where ``±1/(2 px)`` alias to
        one sample, and an oblique astigmatic CTF differs between the two) hold the mean of the values
        at ``+1/(2 px)`` and ``-1/(2 px)``; every other sample is the exact model value.
    """
    sign = _check_convention(convention)
    if int(box_px) != box_px or box_px < 1:
        raise ValueError(f"ctf_2d: box_px must be a positive integer, got {box_px}")
    if not np.isfinite(pixel_size_A) or pixel_size_A <= 0:
        raise ValueError(f"ctf_2d: pixel_size_A must be finite and > 0, got {pixel_size_A}")
    params = np.broadcast_arrays(
        *(
            np.atleast_1d(np.asarray(p, dtype=np.float64))
            for p in (
                defocus_u_A,
                defocus_v_A,
                astigmatism_rad,
                voltage_kV,
                cs_mm,
                amp_contrast,
                bfactor_A2,
                phase_shift_rad,
            )
        )
    )
    if params[0].ndim != 1:
        raise ValueError(f"ctf_2d: per-image parameters must be scalars or (B,) arrays, got shape {params[0].shape}")
    du, dv, ang, kv, cs, amp, bfac, ps = params
    names = ("defocus_u_A", "defocus_v_A", "astigmatism_rad", "voltage_kV", "cs_mm", "amp_contrast", "bfactor_A2")
    for name, p in zip((*names, "phase_shift_rad"), params, strict=True):
        if not np.all(np.isfinite(p)):
            raise ValueError(f"ctf_2d: {name} must be finite, got {p}")
    if np.any(kv <= 0):
        raise ValueError(f"ctf_2d: voltage_kV must be > 0, got {kv}")
    if np.any(amp < 0) or np.any(amp >= 1):
        raise ValueError(f"ctf_2d: amp_contrast must be in [0, 1), got {amp}")

    L = int(box_px)
    k = torch.fft.fftfreq(L, d=float(pixel_size_A), dtype=torch.float64)
    ctf = ctf_on_grid(k[None, :], k[:, None], np.stack(params[:7], axis=1), sign, phase_shift_rad=ps).numpy()
    if L % 2 == 0:
        # fftfreq puts -1/(2 px) at index L/2, which is also +1/(2 px) (aliased). Average the two values
        # along the Nyquist row and column so that c(k) = c(-k) on the periodic grid (see Returns).
        r, m = L // 2, (-np.arange(L)) % L
        ctf[:, r, :] = 0.5 * (ctf[:, r, :] + ctf[:, r, m])
        ctf[:, :, r] = 0.5 * (ctf[:, :, r] + ctf[:, m, r])
    return ctf.astype(np.float32)


def ctf_on_grid(
    kx: torch.Tensor, ky: torch.Tensor, params: np.ndarray, sign: float = 1.0, phase_shift_rad: np.ndarray | None = None
) -> torch.Tensor:
    """CTF values of the model above at frequencies ``(kx, ky)`` (1/Å, broadcastable 2D tensors) -> (B, *grid).

    ``params`` are (B, 7) rows in ``CTF_COLUMNS`` order (defocus u/v Å, astigmatism rad, kV, Cs mm, amplitude
    contrast, B-factor Å²); the result has the dtype of ``kx`` (float32 is accurate to ~1e-5 rad in γ).
    """
    dt, dev = kx.dtype, kx.device
    p = np.asarray(params, dtype=np.float64).reshape(-1, 7)
    lam_A = np.array([electron_wavelength_A(float(v)) for v in p[:, 3]])
    # Per-image coefficients of γ = c1 * defocus(θ) * k² - c2 * k⁴ + phase shift, combined in float64.
    c1 = np.pi * lam_A
    c2 = 0.5 * np.pi * (p[:, 4] * 1e7) * lam_A**3
    # sqrt(1 - A²) sin γ + A cos γ = sin(γ + asin A): one transcendental per sample (RELION's K3).
    per_image = np.stack(
        [0.5 * c1 * (p[:, 0] + p[:, 1]), 0.5 * c1 * (p[:, 0] - p[:, 1]), np.cos(2 * p[:, 2]), np.sin(2 * p[:, 2]),
         c2, np.arcsin(p[:, 5]), p[:, 6]]
    )  # fmt: skip
    mean_term, astig_term, c2a, s2a, c2, amp_phase, bfac = (
        torch.as_tensor(c, device=dev).to(dt)[:, None, None] for c in per_image
    )
    k2 = kx**2 + ky**2
    safe = torch.where(k2 > 0, k2, torch.ones_like(k2))
    cos2t = torch.where(k2 > 0, (kx**2 - ky**2) / safe, torch.ones_like(k2))  # cos(2θ)
    sin2t = torch.where(k2 > 0, 2.0 * kx * ky / safe, torch.zeros_like(k2))  # sin(2θ)
    # π λ defocus(θ) with cos(2(θ - a)) = cos2θ cos2a + sin2θ sin2a
    c1_defocus = mean_term + astig_term * (cos2t * c2a + sin2t * s2a)
    gamma = (c1_defocus - c2 * k2) * k2 + amp_phase
    if phase_shift_rad is not None:
        gamma = gamma + torch.as_tensor(np.asarray(phase_shift_rad, dtype=np.float64), device=dev).to(dt)[:, None, None]
    ctf = sign * torch.sin(gamma)
    if bool((bfac != 0).any()):
        ctf = ctf * torch.exp(-bfac * k2 / 4.0)
    return ctf.to(dt)


def ctf_from_params(params: np.ndarray, box_px: int, pixel_size_A: float, convention: str = "relion") -> np.ndarray:
    """CTFs for rows of the store's ``ctf`` array (columns ``CTF_COLUMNS``), (n, L, L) float32.

    A row that is entirely NaN (the store's "no CTF") gives an all-ones CTF; a partly NaN row is an error.
    No phase shift is stored, so it is 0.
    """
    p = np.asarray(params, dtype=np.float64)
    if p.ndim == 1:
        p = p[None]
    if p.ndim != 2 or p.shape[1] != len(CTF_COLUMNS):
        raise ValueError(
            f"ctf_from_params: params must be (n, {len(CTF_COLUMNS)}) with columns {CTF_COLUMNS}, got {p.shape}"
        )
    nan = np.isnan(p)
    none = nan.all(axis=1)
    if np.any(nan.any(axis=1) & ~none):
        raise ValueError("ctf_from_params: a row is partly NaN (use an all-NaN row for 'no CTF')")
    L = int(box_px)
    out = np.ones((p.shape[0], L, L), dtype=np.float32)
    if np.any(~none):
        du, dv, ast, kv, cs, amp, bf = p[~none].T  # the CTF_COLUMNS, in order
        out[~none] = ctf_2d(L, pixel_size_A, du, dv, ast, kv, cs, amp, bf, convention=convention)
    return out


def _as_tensor(x: np.ndarray | torch.Tensor) -> tuple[torch.Tensor, bool]:
    if torch.is_tensor(x):
        return x, True
    return torch.from_numpy(np.ascontiguousarray(x)), False


def _fourier_multiply(images, ctf, pad: int, name: str, flip: bool):
    img, was_tensor = _as_tensor(images)
    single = img.ndim == 2
    if single:
        img = img[None]
    if img.ndim != 3 or img.shape[-1] != img.shape[-2]:
        raise ValueError(f"{name}: images must be (B, L, L) or (L, L), got {tuple(img.shape)}")
    if int(pad) != pad or pad < 1:
        raise ValueError(f"{name}: pad must be an integer >= 1, got {pad}")
    pad = int(pad)
    B, L = img.shape[0], img.shape[-1]
    P = pad * L
    c = torch.as_tensor(np.asarray(ctf) if not torch.is_tensor(ctf) else ctf)
    c = c.to(device=img.device, dtype=torch.float64)
    if c.ndim == 2:
        c = c[None]
    if c.ndim != 3 or c.shape[-2:] != (P, P) or c.shape[0] not in (1, B):
        raise ValueError(
            f"{name}: ctf must be (B, {P}, {P}) or ({P}, {P}) for {B} images of {L} px with pad={pad} "
            f"(compute it with ctf_2d({P}, pixel_size_A, ...)), got {tuple(c.shape)}"
        )
    if flip:
        c = torch.where(c < 0, -1.0, 1.0).to(torch.float64)
    dtype = img.dtype if img.is_floating_point() else torch.float32
    x = img.to(torch.float64)
    if pad > 1:
        o = (P - L) // 2
        xp = torch.zeros((B, P, P), dtype=torch.float64, device=img.device)
        xp[:, o : o + L, o : o + L] = x
        x = xp
    # A ctf_2d grid is real and centrosymmetric, so the half-plane product is Hermitian: irfft2 is exact
    # (equal to the full complex product). For a grid that is not, irfft2 takes the Hermitian part.
    f = torch.fft.rfft2(x) * c[..., : P // 2 + 1]
    out = torch.fft.irfft2(f, s=(P, P))
    if pad > 1:
        out = out[:, o : o + L, o : o + L]
    out = out.to(dtype)
    if single:
        out = out[0]
    return out if was_tensor else out.numpy()


@overload
def apply_ctf(images: np.ndarray, ctf: np.ndarray | torch.Tensor, pad: int = 1) -> np.ndarray: ...
@overload
def apply_ctf(images: torch.Tensor, ctf: np.ndarray | torch.Tensor, pad: int = 1) -> torch.Tensor: ...
def apply_ctf(
    images: np.ndarray | torch.Tensor, ctf: np.ndarray | torch.Tensor, pad: int = 1
) -> np.ndarray | torch.Tensor:
    """Multiply images by a CTF in Fourier space (real FFT; periodic boundary unless padded).

    Args:
        images: (B, L, L) or (L, L) images indexed ``[y, x]`` (numpy or torch).
        ctf: CTF on the unshifted FFT grid of the (padded) box, from :func:`ctf_2d` /
            :func:`ctf_from_params`: (B, P, P) or (P, P) with ``P = pad * L`` (same pixel size).
        pad: 1 = no padding (periodic wrap-around); ``pad = 2`` zero-pads each image to ``2L``
            (centred), applies the ``2L``-grid CTF and crops the centre ``L × L`` back, which reduces
            the wrap-around of the CTF's delocalisation.

    Returns:
        CTF-modulated images, same type, shape and float dtype as the input (float32 for integer input).
    """
    return _fourier_multiply(images, ctf, pad, "apply_ctf", flip=False)


@overload
def phase_flip(images: np.ndarray, ctf: np.ndarray | torch.Tensor, pad: int = 1) -> np.ndarray: ...
@overload
def phase_flip(images: torch.Tensor, ctf: np.ndarray | torch.Tensor, pad: int = 1) -> torch.Tensor: ...
def phase_flip(
    images: np.ndarray | torch.Tensor, ctf: np.ndarray | torch.Tensor, pad: int = 1
) -> np.ndarray | torch.Tensor:
    """Phase flipping: multiply images by ``sign(CTF)`` in Fourier space (``sign(0) = +1``, as RELION).

    Same arguments and return as :func:`apply_ctf`. With ``pad = 1``, ``phase_flip`` applied twice
    with the same CTF is the identity.
    """
    return _fourier_multiply(images, ctf, pad, "phase_flip", flip=True)


def phase_flip_by_params(images: np.ndarray, params: np.ndarray | None, pixel_size_A: float) -> np.ndarray:
    """``images`` (n, L, L; ``pixel_size_A`` Å/px) phase-flipped with the CTFs of ``params`` (rows of the store's
    ``ctf`` array; see :func:`ctf_from_params`), or as they are when ``params`` is None."""
    if params is None:
        return images
    return np.asarray(phase_flip(images, ctf_from_params(np.asarray(params), images.shape[-1], pixel_size_A)))


def sample_ctf_params(
    n: int,
    seed: int | Sequence[int],
    defocus_range_A: tuple[float, float] = (10000.0, 25000.0),
    astigmatism_A: tuple[float, float] = (0.0, 500.0),
    voltage_kV: float = 300.0,
    cs_mm: float = 2.7,
    amp_contrast: float = 0.1,
    bfactor_range_A2: tuple[float, float] = (0.0, 0.0),
) -> np.ndarray:
    """Draw ``n`` CTF parameter rows, (n, 7) float64 in ``CTF_COLUMNS`` order.

    ``defocus_u`` is uniform in ``defocus_range_A`` (Å), ``defocus_v = defocus_u - astig`` with
    ``astig`` uniform in ``astigmatism_A`` (Å, >= 0, so ``du >= dv``), the astigmatism angle uniform in
    [0, π) rad, the B-factor uniform in ``bfactor_range_A2`` (Å²); voltage (kV), Cs (mm) and amplitude
    contrast are constant. Uses ``np.random.default_rng(seed)``.
    """
    if n < 0:
        raise ValueError(f"sample_ctf_params: n must be >= 0, got {n}")
    for name, (lo, hi) in (
        ("defocus_range_A", defocus_range_A),
        ("astigmatism_A", astigmatism_A),
        ("bfactor_range_A2", bfactor_range_A2),
    ):
        if not (np.isfinite(lo) and np.isfinite(hi)) or lo > hi:
            raise ValueError(f"sample_ctf_params: {name} must be finite (lo, hi) with lo <= hi, got {(lo, hi)}")
    if astigmatism_A[0] < 0:
        raise ValueError(f"sample_ctf_params: astigmatism_A must be >= 0, got {astigmatism_A}")
    if not np.isfinite(voltage_kV) or voltage_kV <= 0:
        raise ValueError(f"sample_ctf_params: voltage_kV must be > 0, got {voltage_kV}")
    if not 0 <= amp_contrast < 1:
        raise ValueError(f"sample_ctf_params: amp_contrast must be in [0, 1), got {amp_contrast}")
    if not np.isfinite(cs_mm):
        raise ValueError(f"sample_ctf_params: cs_mm must be finite, got {cs_mm}")
    rng = np.random.default_rng(seed)
    du = rng.uniform(*defocus_range_A, size=n)
    astig = rng.uniform(*astigmatism_A, size=n)
    ang = rng.uniform(0.0, np.pi, size=n)
    bfac = rng.uniform(*bfactor_range_A2, size=n)
    out = np.empty((n, len(CTF_COLUMNS)), dtype=np.float64)
    out[:, 0] = du
    out[:, 1] = du - astig
    out[:, 2] = ang
    out[:, 3] = voltage_kV
    out[:, 4] = cs_mm
    out[:, 5] = amp_contrast
    out[:, 6] = bfac
    return out

"""Tests of orirec.imaging.ctf: wavelength, CTF model and conventions, application, sampling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from orirec.imaging.ctf import (
    apply_ctf,
    ctf_2d,
    ctf_from_params,
    electron_wavelength_A,
    phase_flip,
    sample_ctf_params,
)
from orirec.store.schema import CTF_COLUMNS

L, PX = 64, 1.5


def _ctf_1d(k, defocus, voltage=300.0, cs=2.7, amp=0.1, bfac=0.0):
    """Independent 1-D evaluation, RELION sign (CTF(0) = +A)."""
    lam = electron_wavelength_A(voltage)
    g = np.pi * lam * defocus * k**2 - 0.5 * np.pi * cs * 1e7 * lam**3 * k**4
    return (np.sqrt(1 - amp**2) * np.sin(g) + amp * np.cos(g)) * np.exp(-bfac * k**2 / 4)


def _relion_get_ctf(x, y, du, dv, ang_deg, kv, cs, q0, bfac):
    """Transcription of RELION's CTF::initialise + CTF::getCTF (x, y in 1/Å)."""
    local_cs, local_kv = cs * 1e7, kv * 1e3
    lam = 12.2643247 / np.sqrt(local_kv * (1.0 + local_kv * 0.978466e-6))
    avg, dev = -(du + dv) * 0.5, -(du - dv) * 0.5
    k1, k2 = np.pi * lam, np.pi / 2 * local_cs * lam**3
    k3, k4 = np.arctan(q0 / np.sqrt(1 - q0 * q0)), -bfac / 4.0
    u2 = x * x + y * y
    deltaf = avg + dev * np.cos(2 * (np.arctan2(y, x) - np.deg2rad(ang_deg)))
    arg = k1 * deltaf * u2 + k2 * u2 * u2 - k3
    return -np.sin(arg) * np.exp(k4 * u2)


def test_wavelength():
    assert electron_wavelength_A(300) == pytest.approx(0.019687, rel=1e-4)
    assert electron_wavelength_A(200) == pytest.approx(0.025079, rel=1e-4)


def test_ctf_at_zero_and_convention():
    c = ctf_2d(L, PX, [12000.0, 20000.0], [11000.0, 20000.0], 0.3, amp_contrast=[0.07, 0.1])
    assert c.shape == (2, L, L) and c.dtype == np.float32
    np.testing.assert_allclose(c[:, 0, 0], [0.07, 0.1], atol=1e-7)
    m = ctf_2d(L, PX, 12000.0, 11000.0, 0.3, amp_contrast=0.07, convention="micrograph")
    assert m[0, 0, 0] == pytest.approx(-0.07, abs=1e-7)
    np.testing.assert_allclose(m[0], -c[0], atol=1e-7)


def test_matches_relion_get_ctf():
    du, dv, ang, kv, cs, q0, b = 15000.0, 14200.0, 0.7, 200.0, 2.0, 0.1, 50.0
    c = ctf_2d(L, PX, du, dv, ang, kv, cs, q0, b)[0]
    k = np.fft.fftfreq(L, d=PX)
    ref = _relion_get_ctf(k[None, :], k[:, None], du, dv, np.rad2deg(ang), kv, cs, q0, b)
    inner = np.r_[0 : L // 2, L // 2 + 1 : L]  # all but the (symmetrised) Nyquist row and column
    # RELION's wavelength formula differs from CODATA at ~1e-6 relative
    np.testing.assert_allclose(c[np.ix_(inner, inner)], ref[np.ix_(inner, inner)], atol=2e-4)


@pytest.mark.parametrize("n", [L, L - 1])
def test_grid_centrosymmetric(n):
    c = ctf_2d(n, PX, [15000.0, 9000.0], [14000.0, 8000.0], [0.7, 2.0])
    m = (-np.arange(n)) % n
    np.testing.assert_array_equal(c, c[:, m][:, :, m])


def test_first_zero_analytic():
    df, amp, cs, kv = 10000.0, 0.1, 2.7, 300.0
    c = ctf_2d(L, PX, df, df, 0.0, kv, cs, amp)[0]
    lam = electron_wavelength_A(kv)
    g0 = np.pi - np.arctan(amp / np.sqrt(1 - amp**2))
    a2, a1 = 0.5 * np.pi * cs * 1e7 * lam**3, np.pi * lam * df  # a2 u^2 - a1 u + g0 = 0, u = k^2
    k_zero = np.sqrt((a1 - np.sqrt(a1**2 - 4 * a2 * g0)) / (2 * a2))
    k = np.fft.fftfreq(L, d=PX)[: L // 2]
    prof = c[0, : L // 2]  # along +x
    i = int(np.argmax(np.sign(prof[:-1]) != np.sign(prof[1:])))
    assert prof[0] > 0 and prof[i] > 0 and prof[i + 1] < 0
    assert k[i] <= k_zero <= k[i + 1]


@pytest.mark.parametrize("ang", [0.0, np.pi / 4])
def test_astigmatism_axes(ang):
    du, dv = 18000.0, 15000.0
    c = ctf_2d(L, PX, du, dv, ang)[0]
    k = np.fft.fftfreq(L, d=PX)
    idx = np.arange(1, L // 2)
    if ang == 0.0:  # theta = 0 along +x, theta = pi/2 along +y
        along_u, along_v = c[0, idx], c[idx, 0]
        ku = kv = k[idx]
    else:  # theta = pi/4: (ky, kx) = (k, k); theta = 3pi/4: (ky, kx) = (k, -k)
        along_u, along_v = c[idx, idx], c[idx, L - idx]
        ku = kv = np.sqrt(2) * k[idx]
    np.testing.assert_allclose(along_u, _ctf_1d(ku, du), atol=1e-5)
    np.testing.assert_allclose(along_v, _ctf_1d(kv, dv), atol=1e-5)
    assert not np.allclose(along_u, along_v, atol=1e-2)


def test_bfactor_envelope():
    b = 80.0
    c0 = ctf_2d(L, PX, 12000.0, 11500.0, 0.4)[0]
    cb = ctf_2d(L, PX, 12000.0, 11500.0, 0.4, bfactor_A2=b)[0]
    k = np.fft.fftfreq(L, d=PX)
    iy, ix = 5, 9
    k2 = k[iy] ** 2 + k[ix] ** 2
    assert abs(c0[iy, ix]) > 0.05
    assert abs(cb[iy, ix]) / abs(c0[iy, ix]) == pytest.approx(np.exp(-b * k2 / 4), rel=1e-5)


def test_apply_ctf_identity_and_full_fft():
    rng = np.random.default_rng(0)
    img = rng.standard_normal((2, L, L)).astype(np.float32)
    ones = np.ones((2, L, L), dtype=np.float32)
    np.testing.assert_allclose(apply_ctf(img, ones), img, atol=1e-5)
    np.testing.assert_allclose(apply_ctf(img, np.ones((2 * L, 2 * L)), pad=2), img, atol=1e-5)
    t = apply_ctf(torch.from_numpy(img), torch.from_numpy(ones))
    assert torch.is_tensor(t) and t.dtype == torch.float32
    np.testing.assert_allclose(t.numpy(), img, atol=1e-5)
    for n in (L, L - 1):  # even and odd boxes: the real-FFT product equals the full complex one
        x = rng.standard_normal((2, n, n))
        c = ctf_2d(n, PX, [12000.0, 20000.0], [10000.0, 19000.0], [0.3, 2.0])
        ref = np.fft.ifft2(np.fft.fft2(x) * c).real
        np.testing.assert_allclose(apply_ctf(x, c), ref, atol=1e-10)


def test_apply_ctf_pad_shape_error():
    with pytest.raises(ValueError, match="pad=2"):
        apply_ctf(np.zeros((1, L, L)), np.ones((1, L, L)), pad=2)


def test_phase_flip_involution():
    rng = np.random.default_rng(1)
    img = rng.standard_normal((2, L, L))
    c = ctf_2d(L, PX, [12000.0, 20000.0], [11000.0, 19500.0], [0.1, 1.2])
    once = phase_flip(img, c)
    assert not np.allclose(once, img)
    np.testing.assert_allclose(phase_flip(once, c), img, atol=1e-10)
    # flipping then applying |CTF| equals applying the CTF
    np.testing.assert_allclose(apply_ctf(phase_flip(img, c), np.abs(c)), apply_ctf(img, c), atol=1e-10)


def test_sample_ctf_params():
    p = sample_ctf_params(200, seed=3, bfactor_range_A2=(0.0, 100.0))
    assert p.shape == (200, len(CTF_COLUMNS))
    np.testing.assert_array_equal(p, sample_ctf_params(200, seed=3, bfactor_range_A2=(0.0, 100.0)))
    assert not np.array_equal(p, sample_ctf_params(200, seed=4, bfactor_range_A2=(0.0, 100.0)))
    du, dv, ang, kv, cs, amp, b = p.T
    assert np.all((du >= 10000) & (du <= 25000))
    assert np.all((du - dv >= 0) & (du - dv <= 500))
    assert np.all((ang >= 0) & (ang < np.pi))
    assert np.all(kv == 300) and np.all(cs == 2.7) and np.all(amp == 0.1)
    assert np.all((b >= 0) & (b <= 100))


def test_ctf_from_params():
    p = sample_ctf_params(3, seed=0)
    p[1] = np.nan
    c = ctf_from_params(p, L, PX)
    assert c.shape == (3, L, L)
    np.testing.assert_array_equal(c[1], 1.0)
    np.testing.assert_array_equal(c[[0, 2]], ctf_2d(L, PX, *p[[0, 2]].T))
    p[0, 3] = np.nan
    with pytest.raises(ValueError, match="partly NaN"):
        ctf_from_params(p, L, PX)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"pixel_size_A": 0.0}, "pixel_size_A"),
        ({"pixel_size_A": -1.0}, "pixel_size_A"),
        ({"voltage_kV": 0.0}, "voltage_kV"),
        ({"voltage_kV": -300.0}, "voltage_kV"),
        ({"amp_contrast": 1.0}, "amp_contrast"),
        ({"amp_contrast": -0.1}, "amp_contrast"),
        ({"convention": "xmipp"}, "convention"),
    ],
)
def test_errors(kwargs, match):
    args = {"box_px": L, "pixel_size_A": PX, "defocus_u_A": 1e4, "defocus_v_A": 1e4, "astigmatism_rad": 0.0}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        ctf_2d(**args)


def test_wavelength_and_sampler_errors():
    with pytest.raises(ValueError, match="voltage_kV"):
        electron_wavelength_A(0)
    with pytest.raises(ValueError, match="amp_contrast"):
        sample_ctf_params(2, seed=0, amp_contrast=1.0)
    with pytest.raises(ValueError, match="voltage_kV"):
        sample_ctf_params(2, seed=0, voltage_kV=-1)


def test_apply_ctf_pad_matches_manual():
    rng = np.random.default_rng(2)
    img = rng.standard_normal((1, L, L))
    c2 = ctf_2d(2 * L, PX, 20000.0, 18000.0, 0.5)
    big = np.zeros((1, 2 * L, 2 * L))
    o = L // 2
    big[:, o : o + L, o : o + L] = img
    ref = apply_ctf(big, c2)[:, o : o + L, o : o + L]
    np.testing.assert_allclose(apply_ctf(img, c2, pad=2), ref, atol=1e-12)
    assert not np.allclose(ref, apply_ctf(img, ctf_2d(L, PX, 20000.0, 18000.0, 0.5)), atol=1e-3)

"""Image formation: Fourier shifts, relative-level noise, SNR conventions, determinism by seed."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from orirec.imaging.formation import add_noise, apply_shifts, inscribed_disk, sample_shifts, snr_disk, snr_frame


def _bandlimited(n, L, seed):
    """Random images with no energy at or near Nyquist (a Gaussian low-pass of white noise)."""
    rng = np.random.default_rng(seed)
    f = np.fft.fft2(rng.normal(size=(n, L, L)))
    k = np.fft.fftfreq(L)
    f *= np.exp(-(k[:, None] ** 2 + k[None, :] ** 2) / (2 * 0.08**2))
    return np.fft.ifft2(f).real.astype(np.float32)


@settings(max_examples=20, deadline=None)
@given(dx=st.floats(-7.5, 7.5), dy=st.floats(-7.5, 7.5))
def test_shift_round_trip(dx, dy):
    img = _bandlimited(1, 32, 0)
    s = np.array([[dx, dy]])
    back = apply_shifts(apply_shifts(img, s), -s)
    np.testing.assert_allclose(back, img, atol=1e-5 * np.abs(img).max())


@pytest.mark.parametrize("shift", [(1, 0), (0, 1), (3, -2), (-5, 7)])
def test_integer_shift_is_roll(shift):
    img = np.random.default_rng(1).normal(size=(24, 24)).astype(np.float32)  # not band-limited: exact anyway
    out = apply_shifts(img, np.array(shift, float))
    np.testing.assert_allclose(out, np.roll(img, (shift[1], shift[0]), axis=(0, 1)), atol=1e-5)


def test_positive_shift_moves_content_towards_plus_x_y():
    g = np.arange(32)
    img = np.exp(-((g[None, :, None] - 11.5) ** 2 + (g[None, None, :] - 11.5) ** 2) / 8.0).astype(np.float32)
    out = apply_shifts(torch.from_numpy(img), torch.tensor([[2.5, -1.25]]))
    assert isinstance(out, torch.Tensor)
    w = out[0].numpy()
    cx, cy = (w.sum(0) * g).sum() / w.sum(), (w.sum(1) * g).sum() / w.sum()
    assert cx == pytest.approx(11.5 + 2.5, abs=1e-3) and cy == pytest.approx(11.5 - 1.25, abs=1e-3)


def test_sample_shifts():
    a = sample_shifts(4000, seed=3, max_shift_px=5.0)
    np.testing.assert_array_equal(a, sample_shifts(4000, seed=3, max_shift_px=5.0))
    assert not np.allclose(a, sample_shifts(4000, seed=4, max_shift_px=5.0))
    r = np.hypot(a[:, 0], a[:, 1])
    assert r.max() <= 5.0 and np.mean(r < 2.5) == pytest.approx(0.25, abs=0.03)  # uniform over the disk
    g = sample_shifts(4000, seed=3, std_px=2.0)
    assert g.std(0) == pytest.approx([2.0, 2.0], rel=0.06)
    t = sample_shifts(500, seed=3, std_px=2.0, max_shift_px=3.0)
    assert np.hypot(t[:, 0], t[:, 1]).max() <= 3.0
    with pytest.raises(ValueError, match="max_shift_px or std_px"):
        sample_shifts(3, seed=0)


@pytest.mark.parametrize("sigma2", [0.5, 16.0])
def test_noise_variance_matches_request(sigma2):
    clean = _bandlimited(8, 64, 2) * np.arange(1, 9, dtype=np.float32)[:, None, None]  # different scales
    noisy, noise_var = add_noise(clean, sigma2, seed=7)
    measured = (noisy - clean).reshape(8, -1).var(1)
    np.testing.assert_allclose(noise_var, sigma2 * clean.reshape(8, -1).var(1), rtol=1e-6)
    np.testing.assert_allclose(measured / noise_var, 1.0, rtol=0.05)  # 4096 samples: ~2% std
    np.testing.assert_allclose(snr_frame(clean, noise_var), 1.0 / sigma2, rtol=1e-6)


def test_noise_determinism_and_types():
    clean = _bandlimited(3, 16, 0)
    a, va = add_noise(clean, 4.0, seed=1)
    b, _ = add_noise(torch.from_numpy(clean), 4.0, seed=1)
    c, _ = add_noise(clean, 4.0, seed=2)
    assert isinstance(b, torch.Tensor) and a.dtype == np.float32 and va.shape == (3,)
    np.testing.assert_array_equal(a, b.numpy())
    assert not np.allclose(a, c)
    np.testing.assert_array_equal(add_noise(clean, 0.0, seed=1)[0], clean)
    with pytest.raises(ValueError, match="sigma2"):
        add_noise(clean, -1.0, seed=0)


def test_snr_disk():
    L = 32
    assert inscribed_disk(L).sum() == pytest.approx(np.pi * (L / 2) ** 2, rel=0.03)
    clean = np.zeros((2, L, L), np.float32)
    clean[:, inscribed_disk(L)] = 2.0  # energy 4 inside the disk
    np.testing.assert_allclose(snr_disk(clean, np.array([1.0, 8.0])), [4.0, 0.5])
    # a compact particle: the disk convention gives a higher SNR than the whole-frame variance convention.
    blob = _bandlimited(1, L, 5) * inscribed_disk(L)
    assert snr_disk(blob, 1.0)[0] > snr_frame(blob, 1.0)[0]

"""The fused Fourier-space formation (shift x CTF on a padded grid) against the separate reference steps."""

import numpy as np
import pytest

from orirec.imaging.ctf import apply_ctf, ctf_from_params, sample_ctf_params
from orirec.imaging.filters import apply_formation
from orirec.imaging.formation import apply_shifts

L, PX = 32, 2.0


def _blob_images(n: int) -> np.ndarray:
    """Compact random images (Gaussian blobs well inside the inscribed disk)."""
    rng = np.random.default_rng(0)
    g = np.arange(L) - L // 2
    out = np.zeros((n, L, L))
    for b in range(n):
        for _ in range(5):
            cx, cy = rng.uniform(-5, 5, 2)
            out[b] += np.exp(-((g[None, :] - cx) ** 2 + (g[:, None] - cy) ** 2) / (2 * 1.5**2))
    return out.astype(np.float32)


def test_formation_matches_separate_steps():
    imgs = _blob_images(6)
    shifts = np.random.default_rng(1).uniform(-3, 3, (6, 2)).astype(np.float32)
    params = sample_ctf_params(6, seed=2, bfactor_range_A2=(0.0, 50.0))
    ref = apply_ctf(apply_shifts(imgs, shifts), ctf_from_params(params, 2 * L, PX), pad=2)
    out = apply_formation(imgs, PX, shifts, params, pad=2).numpy()
    assert np.abs(out - ref).max() < 2e-3 * np.abs(ref).max()
    # each effect alone, and neither
    np.testing.assert_allclose(apply_formation(imgs, PX, shifts, None).numpy(), apply_shifts(imgs, shifts), atol=1e-4)
    np.testing.assert_allclose(apply_formation(imgs, PX).numpy(), imgs)
    only_ctf = apply_ctf(imgs, ctf_from_params(params, 2 * L, PX), pad=2)
    assert np.abs(apply_formation(imgs, PX, None, params).numpy() - only_ctf).max() < 2e-3 * np.abs(only_ctf).max()


def test_formation_shape_errors():
    with pytest.raises(ValueError, match="shifts_px"):
        apply_formation(np.zeros((2, L, L)), PX, np.zeros((3, 2)))
    with pytest.raises(ValueError, match="images"):
        apply_formation(np.zeros((L, L)), PX)

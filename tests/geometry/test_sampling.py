"""Orientation samplers (preferred orientations: a von Mises-Fisher mixture) and shift distributions."""

import numpy as np
import pytest
from scipy.stats import kstest

from orirec.geometry import (
    preferred_quaternions,
    quat_to_euler,
    sample_vmf_directions,
    viewing_direction,
)
from orirec.imaging.formation import draw_shift_components


def _mean_resultant_length(kappa: float) -> float:
    """E<x, mu> for the von Mises-Fisher distribution on S^2: coth(kappa) - 1/kappa."""
    return 1.0 / np.tanh(kappa) - 1.0 / kappa


@pytest.mark.parametrize("kappa", [0.5, 4.0, 30.0])
def test_vmf_mean_resultant_length_matches_theory(kappa):
    mu = np.array([0.3, -0.5, 0.8])
    mu /= np.linalg.norm(mu)
    x = sample_vmf_directions(40000, mu, kappa, seed=7)
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-12)
    w = x @ mu
    # standard error of the mean of w is < 0.6 / sqrt(n) = 0.003
    assert abs(w.mean() - _mean_resultant_length(kappa)) < 0.01
    # the marginal of w has CDF (exp(kappa w) - exp(-kappa)) / (exp(kappa) - exp(-kappa))
    cdf = lambda t: np.expm1(kappa * (t + 1)) / np.expm1(2 * kappa)  # noqa: E731
    assert kstest(w, cdf).statistic < 0.01
    # the direction of the mean resultant is mu
    assert np.dot(x.mean(0) / np.linalg.norm(x.mean(0)), mu) > 0.999


def test_preferred_orientations_concentrate_as_requested():
    directions = [(0.4, 1.0), (2.0, -2.0)]  # (tilt, rot) rad
    mus = np.array([[np.sin(t) * np.cos(r), np.sin(t) * np.sin(r), np.cos(t)] for t, r in directions])
    kappa, f = 12.0, 0.25
    q = preferred_quaternions(30000, seed=3, directions=directions, kappa=kappa, uniform_fraction=f)
    v = viewing_direction(q)
    nearest = np.argmax(v @ mus.T, axis=1)
    # each direction gets half of the vMF draws (plus its share of the uniform ones)
    assert abs(np.mean(nearest == 0) - 0.5) < 0.02
    # for a single direction, E<v, mu> = (1 - f) A(kappa) (the uniform part has mean 0)
    q1 = preferred_quaternions(30000, seed=4, directions=[(0.4, 1.0)], kappa=kappa, uniform_fraction=f)
    w = viewing_direction(q1) @ mus[0]
    assert abs(w.mean() - (1 - f) * _mean_resultant_length(kappa)) < 0.012
    # the in-plane angle psi is uniform and independent of the direction
    _, _, psi = quat_to_euler(q1)
    assert kstest(np.mod(psi, 2 * np.pi), "uniform", args=(0, 2 * np.pi)).statistic < 0.015


def test_preferred_is_deterministic_and_vectors_equal_angles():
    a = preferred_quaternions(500, seed=1, directions=[(np.pi / 2, 0.0)], kappa=5.0)
    b = preferred_quaternions(500, seed=1, directions=[(1.0, 0.0, 0.0)], kappa=5.0)  # same direction as a vector
    np.testing.assert_allclose(a, b, atol=1e-12)
    assert not np.allclose(a, preferred_quaternions(500, seed=2, directions=[(np.pi / 2, 0.0)], kappa=5.0))
    # kappa = 0 is uniform on SO(3): the viewing direction's z is uniform on [-1, 1]
    z = viewing_direction(preferred_quaternions(20000, seed=5, kappa=0.0))[:, 2]
    assert kstest(z, "uniform", args=(-1, 2)).statistic < 0.015


@pytest.mark.parametrize(
    "kw",
    [
        {"directions": []},
        {"directions": [(1.0,)]},
        {"kappa": -1.0},
        {"uniform_fraction": 1.5},
        {"directions": [(0, 0, 0)]},
    ],
)
def test_preferred_refuses_bad_parameters(kw):
    with pytest.raises(ValueError):
        preferred_quaternions(10, seed=0, **kw)


@pytest.mark.parametrize(
    ("distribution", "std_per_scale", "bounded"),
    [("uniform", 1 / np.sqrt(3), True), ("triangular", 1 / np.sqrt(6), True), ("gaussian", 1.0, False)],
)
def test_shift_distributions_have_the_documented_statistics(distribution, std_per_scale, bounded):
    scale = 2.5
    s = draw_shift_components(40000, [0, 1], scale, distribution)
    assert s.shape == (40000, 2) and s.dtype == np.float32
    np.testing.assert_allclose(s.mean(0), 0, atol=0.03)
    np.testing.assert_allclose(s.std(0), std_per_scale * scale, rtol=0.02)
    assert (np.abs(s).max() <= scale + 1e-6) == bounded
    if distribution == "triangular":  # density (1 - |x|/scale)/scale: check the CDF
        cdf = lambda x: np.where(x < 0, (1 + x / scale) ** 2 / 2, 1 - (1 - x / scale) ** 2 / 2)  # noqa: E731
        assert kstest(s[:, 0], cdf).statistic < 0.01
    np.testing.assert_array_equal(s, draw_shift_components(40000, [0, 1], scale, distribution))
    np.testing.assert_array_equal(draw_shift_components(5, 0, 0.0, distribution), 0)


def test_shift_distribution_refuses_unknown_names():
    with pytest.raises(ValueError, match="uniform, gaussian or triangular"):
        draw_shift_components(5, 0, 1.0, "laplace")

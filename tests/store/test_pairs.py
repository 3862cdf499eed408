"""Pair sampling: within one protein, d_q near uniform on [0, π], deterministic by seed."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import kstest

from orirec.geometry import quat_distance, uniform_quaternions
from orirec.store.pairs import sample_random_pairs, sample_uniform_pairs


@pytest.fixture(scope="module")
def two_proteins():
    q = uniform_quaternions(4000, seed=3)
    protein = np.repeat(np.array([0, 1], dtype=np.int32), 2000)
    return q, protein


def test_uniform_pairs_ks_close_to_uniform_while_natural_is_not(two_proteins):
    q, protein = two_proteins
    _, _, d_nat = sample_random_pairs(q, protein, 20000, seed=1)
    i, j, d = sample_uniform_pairs(q, protein, 20000, seed=1)
    ks_nat = kstest(d_nat, "uniform", args=(0, np.pi)).statistic
    ks_uni = kstest(d, "uniform", args=(0, np.pi)).statistic
    # measured: natural 0.32 (theory 1/pi), uniform sampler 0.05 (shortfall only below ~0.3 rad)
    assert ks_nat > 0.28
    assert ks_uni < 0.08
    hist = np.histogram(d, bins=8, range=(0, np.pi))[0] / len(d)
    assert np.all(np.abs(hist[1:] - 1 / 8) < 0.04)  # every bin but the first within 4 points of 12.5 %
    assert hist[0] > 0.06  # the natural distribution puts 0.4 % there
    np.testing.assert_allclose(d, quat_distance(q[i], q[j]), atol=1e-12)


def test_restricted_max_distance(two_proteins):
    q, protein = two_proteins
    _, _, d = sample_uniform_pairs(q, protein, 5000, seed=2, max_distance=2.0)
    assert d.max() < 2.0 + 0.05  # tolerance 0.02 rad of the last target
    assert kstest(d, "uniform", args=(0, 2.0)).statistic < 0.1  # measured 0.065


def test_pairs_never_cross_proteins_and_never_self():
    rng = np.random.default_rng(0)
    q = uniform_quaternions(600, seed=0)
    protein = rng.integers(0, 5, 600).astype(np.int32)
    for sampler in (sample_uniform_pairs, sample_random_pairs):
        i, j, d = sampler(q, protein, 3000, 7)
        assert np.all(protein[i] == protein[j])
        assert np.all(i != j)
        np.testing.assert_allclose(d, quat_distance(q[i], q[j]), atol=1e-12)  # the pairs' own distances


def test_deterministic_by_seed(two_proteins):
    q, protein = two_proteins
    a = sample_uniform_pairs(q, protein, 1000, seed=5)
    b = sample_uniform_pairs(q, protein, 1000, seed=5)
    c = sample_uniform_pairs(q, protein, 1000, seed=6)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], c[0])


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(2, 40),
    n_prot=st.integers(1, 4),
    seed=st.integers(0, 2**31),
)
def test_property_within_protein(n, n_prot, seed):
    q = uniform_quaternions(n, seed=seed)
    protein = np.random.default_rng(seed).integers(0, n_prot, n)
    if np.bincount(protein).max() < 2:
        with pytest.raises(ValueError, match="protein"):
            sample_uniform_pairs(q, protein, 10, seed)
        return
    i, j, _ = sample_uniform_pairs(q, protein, 50, seed, n_candidates=4, max_rounds=3)
    assert np.all(protein[i] == protein[j]) and np.all(i != j)
    assert np.all(np.bincount(protein)[protein[i]] >= 2)


def test_bad_input():
    q = uniform_quaternions(10, seed=0)
    with pytest.raises(ValueError, match="quaternions"):
        sample_uniform_pairs(q[:, :3], np.zeros(10), 5, 0)
    with pytest.raises(ValueError, match="protein"):
        sample_uniform_pairs(q, np.zeros(9), 5, 0)
    with pytest.raises(ValueError, match="max_distance"):
        sample_uniform_pairs(q, np.zeros(10), 5, 0, max_distance=4.0)
    with pytest.raises(ValueError, match="n_pairs"):
        sample_uniform_pairs(q, np.zeros(10), -1, 0)

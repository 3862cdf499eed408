"""Synthetic proteins of random shape and size: extra training diversity for models meant for unseen proteins.

:func:`~orirec.structures.pseudo.pseudo_protein` always has the same four-domain layout; these draw the number,
sizes and places of their domains, helical arms and an overall stretch from the seed, and their size from the
range of the test split, so that a model trained on them sees shapes that no real training structure has.
"""

from __future__ import annotations

import numpy as np

from orirec.structures.atoms import Atoms
from orirec.structures.pseudo import CARBON_MASS, CARBON_Z, _confined_walk, _helix

__all__ = ["PSEUDO_RANDOM", "expand_pseudo_random", "pseudo_random_seed", "random_pseudo_protein"]

PSEUDO_RANDOM = "pseudo-random:"
"""Source prefix: ``pseudo-random:SEED`` is one protein, ``pseudo-random:FIRST-LAST`` the seeds in between."""

ATOMS_RANGE = (1_000, 40_000)  # the test split spans 1,026 to 46,228 atoms
ATOMS_PER_RESIDUE = 7.8


def _rg_A(n_atoms: int) -> float:
    """Radius of gyration (Å) of a compact globular protein of ``n_atoms`` heavy atoms: 2.2 Å × N_res^0.38."""
    return 2.2 * (n_atoms / ATOMS_PER_RESIDUE) ** 0.38


def random_pseudo_protein(seed: int) -> Atoms:
    """A synthetic protein of random shape and size (carbon-like atoms), the same for the same ``seed``.

    Atoms: log-uniform in :data:`ATOMS_RANGE`. One to six globular domains (persistent random-walk chains of
    3.8 Å steps) of random shares, each touching one placed before it in a random direction; up to two
    alpha-helical arms; then a random stretch along one axis (aspect up to 1.8) and a scale that gives a radius
    of gyration 1.0–1.3 times that of a compact protein of the same size (:func:`_rg_A`: 2.2 Å × N_res^0.38).
    """
    rng = np.random.default_rng([seed, 0x5E0D])  # not the stream of pseudo_protein(seed)
    n_atoms = int(np.exp(rng.uniform(*np.log(ATOMS_RANGE))))
    n_domains = int(rng.integers(1, 7))
    n_arms = int(rng.integers(0, 3))
    arm_atoms = [int(rng.integers(8, 30)) for _ in range(n_arms)]
    shares = rng.dirichlet(np.full(n_domains, 2.0))
    counts = np.maximum(20, np.floor(shares * (n_atoms - sum(arm_atoms)))).astype(int)
    radii = 3.0 * counts ** (1 / 3)  # Å, about the packing of a chain of 3.8 Å steps
    centres = [np.zeros(3)]
    for k in range(1, n_domains):
        j = int(rng.integers(0, k))
        d = rng.normal(size=3)
        centres.append(centres[j] + 0.85 * (radii[j] + radii[k]) * d / np.linalg.norm(d))
    parts = [_confined_walk(rng, int(c), centre, r) for c, centre, r in zip(counts, centres, radii, strict=True)]
    for n in arm_atoms:
        k = int(rng.integers(0, n_domains))
        d = rng.normal(size=3)
        d /= np.linalg.norm(d)
        parts.append(_helix(n, centres[k] + 0.9 * radii[k] * d, d))
    coords = np.concatenate(parts)
    coords -= coords.mean(0)
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    coords += (rng.uniform(1.0, 1.8) - 1.0) * np.outer(coords @ axis, axis)
    rg = np.sqrt((coords**2).sum(1).mean())
    coords *= rng.uniform(1.0, 1.3) * _rg_A(len(coords)) / rg
    n = len(coords)
    return Atoms(coords, np.full(n, CARBON_Z), np.full(n, CARBON_MASS))


def _seed_range(item: str) -> tuple[int, int]:
    """(FIRST, LAST) of ``pseudo-random:FIRST-LAST`` (both SEED for ``pseudo-random:SEED``)."""
    first, _, last = item[len(PSEUDO_RANDOM) :].partition("-")
    try:
        lo, hi = int(first), int(last or first)
    except ValueError:
        raise ValueError(f"{item}: expected '{PSEUDO_RANDOM}SEED' or '{PSEUDO_RANDOM}FIRST-LAST'") from None
    if hi < lo or lo < 0:
        raise ValueError(f"{item}: need 0 <= FIRST <= LAST")
    return lo, hi


def expand_pseudo_random(item: str) -> list[str]:
    """``pseudo-random:SEED`` → [it]; ``pseudo-random:FIRST-LAST`` → one source per seed (inclusive)."""
    lo, hi = _seed_range(item)
    return [f"{PSEUDO_RANDOM}{s}" for s in range(lo, hi + 1)]


def pseudo_random_seed(source: str) -> int:
    """The seed of one ``pseudo-random:SEED`` source (a range is an error here: it names several proteins)."""
    lo, hi = _seed_range(source)
    if lo != hi:
        raise ValueError(f"{source}: one protein expected here; expand '{PSEUDO_RANDOM}FIRST-LAST' first")
    return lo

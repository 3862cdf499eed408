"""A deterministic, asymmetric synthetic protein for tests and the embedded default (no files needed)."""

from __future__ import annotations

import numpy as np

from orirec.structures.atoms import Atoms

__all__ = ["pseudo_protein"]

CA_STEP_A = 3.8  # CA-CA distance (Å)
CARBON_Z, CARBON_MASS = 6, 12.011

# Domains in units of radius_A: centre (x, y, z), radius, share of the globular atoms.
# Different sizes, no two on a symmetry axis of the others, so the object has no symmetry.
_DOMAINS = (
    ((-0.30, -0.12, 0.05), 0.50, 0.45),
    ((0.42, -0.05, -0.18), 0.36, 0.27),
    ((0.05, 0.48, 0.22), 0.30, 0.18),
    ((0.22, -0.42, 0.40), 0.22, 0.10),
)
_ARM_LENGTH = 0.3  # helical arm length in units of radius_A
_LAYOUT_SCALE = 1.14


def _confined_walk(rng: np.random.Generator, n: int, centre: np.ndarray, radius: float) -> np.ndarray:
    """Persistent random walk of ``n`` CA-like steps (3.8 Å) kept inside a ball (reflecting back inwards)."""
    out = np.empty((n, 3))
    pos = centre + rng.normal(size=3) * 0.2 * radius
    d = rng.normal(size=3)
    d /= np.linalg.norm(d)
    for i in range(n):
        out[i] = pos
        for _ in range(20):
            trial = d + 0.9 * rng.normal(size=3)  # persistence: new direction close to the old one
            trial /= np.linalg.norm(trial)
            nxt = pos + CA_STEP_A * trial
            if np.linalg.norm(nxt - centre) <= radius:
                break
            trial = (centre - pos) / max(float(np.linalg.norm(centre - pos)), 1e-9) + 0.5 * rng.normal(size=3)
            trial /= np.linalg.norm(trial)
            nxt = pos + CA_STEP_A * trial
        d, pos = trial, nxt
    return out


def _helix(n: int, start: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """Ideal alpha helix (1.5 Å rise, 2.3 Å radius, 100° per residue) of ``n`` CA atoms along ``axis``."""
    axis = axis / np.linalg.norm(axis)
    u = np.cross(axis, [0.0, 0.0, 1.0])
    if np.linalg.norm(u) < 1e-6:
        u = np.cross(axis, [0.0, 1.0, 0.0])
    u /= np.linalg.norm(u)
    v = np.cross(axis, u)
    t = np.arange(n)
    phi = np.deg2rad(100.0) * t
    return start + 1.5 * t[:, None] * axis + 2.3 * (np.cos(phi)[:, None] * u + np.sin(phi)[:, None] * v)


def pseudo_protein(seed: int, n_atoms: int = 2000, radius_A: float = 25.0) -> Atoms:
    """Build a synthetic, clearly asymmetric protein of carbon-like atoms.

    Four globular domains of different sizes at asymmetric positions, each filled by a persistent
    random-walk chain with CA-like 3.8 Å steps, plus a straight alpha-helical arm. The result is
    centred on its centre of mass and scaled so that the farthest atom lies exactly ``radius_A``
    from it (steps stay close to 3.8 Å for the default sizes). Same arguments -> same coordinates.

    Args:
        seed: random seed (chain paths and small perturbations of the domain layout).
        n_atoms: number of atoms (>= 50).
        radius_A: particle radius (Å), > 0.

    Returns:
        :class:`Atoms` with Z = 6 and carbon mass.
    """
    if n_atoms < 50:
        raise ValueError(f"pseudo_protein: n_atoms must be >= 50, got {n_atoms}")
    if not radius_A > 0:
        raise ValueError(f"pseudo_protein: radius_A must be > 0, got {radius_A}")
    rng = np.random.default_rng(seed)
    size = _LAYOUT_SCALE * radius_A  # layout size that makes the final rescaling close to 1
    n_arm = min(max(6, int(round(_ARM_LENGTH * size / 1.5))), n_atoms // 5)
    n_glob = n_atoms - n_arm
    shares = np.array([d[2] for d in _DOMAINS])
    counts = np.floor(shares / shares.sum() * n_glob).astype(int)
    counts[0] += n_glob - counts.sum()
    parts = []
    for (centre, rad, _), cnt in zip(_DOMAINS, counts, strict=True):
        c = (np.asarray(centre) + rng.normal(size=3) * 0.02) * size
        parts.append(_confined_walk(rng, int(cnt), c, rad * size))
    # Helical arm leaving the largest domain towards -y, +z (away from the others).
    arm_dir = np.array([-0.25, -0.6, 0.75]) + rng.normal(size=3) * 0.03
    arm_start = np.asarray(_DOMAINS[0][0]) * size + 0.4 * size * arm_dir / np.linalg.norm(arm_dir)
    parts.append(_helix(n_arm, arm_start, arm_dir))
    coords = np.concatenate(parts)
    coords -= coords.mean(0)
    coords *= radius_A / np.linalg.norm(coords, axis=1).max()
    n = coords.shape[0]
    return Atoms(coords, np.full(n, CARBON_Z), np.full(n, CARBON_MASS))

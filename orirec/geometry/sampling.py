"""Random orientations: Haar-uniform on SO(3), and the published "uniform Euler angles in a box" sampler."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from orirec.geometry.euler import euler_to_quat
from orirec.geometry.quaternions import canonicalize

__all__ = ["uniform_euler_quaternions", "uniform_quaternions"]

Array = NDArray[np.float64]


def _check_n(n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
        raise ValueError(f"n: expected a non-negative integer, got {n!r}")
    return int(n)


def uniform_quaternions(n: int, seed: int | None) -> Array:
    """``n`` canonical unit quaternions (n, 4) uniform on SO(3) (Haar measure).

    Normalized 4-D standard Gaussians are uniform on S^3, hence Haar-uniform rotations; the rotation angle
    then has density ``(1 - cos theta)/pi`` on [0, pi]. Deterministic given ``seed``.
    """
    n = _check_n(n)
    rng = np.random.default_rng(seed)
    g = rng.standard_normal((n, 4))
    while n and np.any(bad := np.linalg.norm(g, axis=1) < 1e-12):  # practically never
        g[bad] = rng.standard_normal((int(bad.sum()), 4))
    return canonicalize(g) if n else np.zeros((0, 4))


def _check_range(name: str, r: tuple[float, float]) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in r)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a (low, high) pair in rad, got {r!r}") from None
    if not (np.isfinite(lo) and np.isfinite(hi)) or lo > hi:
        raise ValueError(f"{name}: expected finite low <= high in rad, got {r!r}")
    return lo, hi


def uniform_euler_quaternions(
    n: int,
    seed: int | None,
    rot_range: tuple[float, float] = (0.0, 2 * np.pi),
    tilt_range: tuple[float, float] = (0.0, np.pi),
    psi_range: tuple[float, float] = (0.0, 2 * np.pi),
) -> Array:
    """``n`` canonical quaternions (n, 4) from RELION ZYZ angles drawn uniformly in a box (rad).

    This is the "uniform Euler angles with a coverage box" sampler of the published study (e.g.
    ``tilt_range=(0, pi/2)`` for a half sphere of viewing directions). It is NOT uniform on SO(3): tilt is
    uniform in angle rather than in ``cos tilt``, so viewing directions cluster at the poles. Use
    ``uniform_quaternions`` for Haar-uniform orientations. Draw order: rot, tilt, psi (deterministic given
    ``seed``).
    """
    n = _check_n(n)
    rot_lo, rot_hi = _check_range("rot_range", rot_range)
    tilt_lo, tilt_hi = _check_range("tilt_range", tilt_range)
    psi_lo, psi_hi = _check_range("psi_range", psi_range)
    if tilt_lo < 0 or tilt_hi > np.pi + 1e-12:
        raise ValueError(f"tilt_range: must lie within [0, pi] rad, got {tilt_range!r}")
    rng = np.random.default_rng(seed)
    rot = rng.uniform(rot_lo, rot_hi, n)
    tilt = rng.uniform(tilt_lo, tilt_hi, n)
    psi = rng.uniform(psi_lo, psi_hi, n)
    if n == 0:
        return np.zeros((0, 4))
    return euler_to_quat(rot, tilt, psi)

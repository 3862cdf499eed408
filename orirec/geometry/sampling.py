"""Random orientations: Haar-uniform on SO(3), and the published "uniform Euler angles in a box" sampler."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from orirec.geometry.euler import euler_to_quat
from orirec.geometry.quaternions import canonicalize

__all__ = [
    "global_rotation_grid",
    "local_rotation_grid",
    "tilt_rotation_grid",
    "preferred_quaternions",
    "sample_vmf_directions",
    "uniform_euler_quaternions",
    "uniform_quaternions",
]

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


def _as_directions(directions) -> Array:
    """(k, 3) unit vectors from a list mixing (tilt, rot) pairs in rad and 3-vectors (normalized)."""
    items = list(np.asarray(directions, dtype=np.float64)) if isinstance(directions, np.ndarray) else list(directions)
    if items and np.isscalar(items[0]):  # a single direction
        items = [items]
    if not items:
        raise ValueError("preferred_directions: expected a non-empty list of (tilt, rot) pairs in rad or 3-vectors")
    out = np.empty((len(items), 3))
    for i, item in enumerate(items):
        try:
            d = np.asarray(item, dtype=np.float64).ravel()
        except (TypeError, ValueError):
            d = np.empty(0)
        if d.shape not in ((2,), (3,)) or not np.all(np.isfinite(d)):
            raise ValueError(f"preferred_directions[{i}]: expected (tilt, rot) in rad or a 3-vector, got {item!r}")
        if len(d) == 2:
            tilt, rot = d
            out[i] = np.sin(tilt) * np.cos(rot), np.sin(tilt) * np.sin(rot), np.cos(tilt)
        elif np.linalg.norm(d) < 1e-12:
            raise ValueError(f"preferred_directions[{i}]: a zero vector has no direction")
        else:
            out[i] = d / np.linalg.norm(d)
    return out


def sample_vmf_directions(n: int, mean_direction, kappa: float, seed) -> Array:
    """``n`` unit vectors (n, 3) from the von Mises-Fisher distribution on S^2 (density ∝ exp(kappa <mu, x>)).

    Exact inversion of the marginal of ``w = <mu, x>`` (Wood 1994, closed form on S^2):
    ``w = 1 + log(u + (1 - u) exp(-2 kappa)) / kappa``, uniform azimuth about ``mu``. ``kappa = 0`` is
    uniform on the sphere. The mean resultant length is ``coth(kappa) - 1/kappa``.
    """
    n = _check_n(n)
    if not np.isfinite(kappa) or kappa < 0:
        raise ValueError(f"kappa: expected a finite concentration >= 0, got {kappa!r}")
    mu = _as_directions([mean_direction])[0]
    rng = np.random.default_rng(seed)
    u = rng.random(n)
    phi = rng.uniform(0.0, 2 * np.pi, n)
    if kappa < 1e-8:
        w = 2.0 * u - 1.0
    else:
        w = 1.0 + np.log(u + (1.0 - u) * np.exp(-2.0 * kappa)) / kappa
    w = np.clip(w, -1.0, 1.0)
    # an orthonormal frame (e1, e2) perpendicular to mu
    helper = np.array([1.0, 0.0, 0.0]) if abs(mu[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    e1 = np.cross(mu, helper)
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(mu, e1)
    s = np.sqrt(1.0 - w * w)
    return w[:, None] * mu + s[:, None] * (np.cos(phi)[:, None] * e1 + np.sin(phi)[:, None] * e2)


def preferred_quaternions(
    n: int,
    seed: int | None,
    directions=((0.0, 0.0),),
    kappa: float = 10.0,
    uniform_fraction: float = 0.0,
) -> Array:
    """``n`` canonical quaternions (n, 4) with a preferred-orientation distribution of viewing directions.

    Each image's viewing direction (:func:`orirec.geometry.viewing_direction`, the beam axis in the particle
    frame) comes, with probability ``uniform_fraction``, from the uniform distribution on the sphere, and
    otherwise from a von Mises-Fisher distribution of concentration ``kappa`` about one of ``directions``
    (chosen with equal probability) — an equal-weight vMF mixture, as for particles that stick to the air-water
    interface in a few poses. The in-plane angle psi is uniform on [0, 2 pi). ``directions`` are (tilt, rot)
    pairs in rad (RELION angles of the viewing direction) or 3-vectors. With ``uniform_fraction = 1`` or
    ``kappa = 0`` this is Haar-uniform on SO(3). Deterministic given ``seed``.
    """
    n = _check_n(n)
    mus = _as_directions(directions)
    if not 0.0 <= float(uniform_fraction) <= 1.0:
        raise ValueError(f"uniform_fraction: expected a value in [0, 1], got {uniform_fraction!r}")
    if not np.isfinite(kappa) or kappa < 0:
        raise ValueError(f"kappa: expected a finite concentration >= 0, got {kappa!r}")
    rng = np.random.default_rng(seed)
    uniform = rng.random(n) < uniform_fraction
    component = rng.integers(0, len(mus), n)
    psi = rng.uniform(0.0, 2 * np.pi, n)
    dirs = np.empty((n, 3))
    child = rng.spawn(len(mus) + 1)
    for c, mu in enumerate(mus):
        rows = np.flatnonzero(~uniform & (component == c))
        dirs[rows] = sample_vmf_directions(len(rows), mu, kappa, child[c])
    rows = np.flatnonzero(uniform)
    dirs[rows] = sample_vmf_directions(len(rows), mus[0], 0.0, child[-1])
    if n == 0:
        return np.zeros((0, 4))
    tilt = np.arccos(np.clip(dirs[:, 2], -1.0, 1.0))
    rot = np.arctan2(dirs[:, 1], dirs[:, 0])
    return euler_to_quat(rot, tilt, psi)


def local_rotation_grid(radius_deg: float, step_deg: float) -> Array:
    """Small rotations (K, 4) around the identity: the rotation vectors on a cubic grid of spacing
    ``step_deg`` (°) inside the ball of radius ``radius_deg`` (°), identity included.

    ``q ∘ grid`` are the candidates of a local search around ``q``; their spacing in rotation angle
    is ``step_deg``. K grows as ``(radius / step)³``: 123 for a radius of 3 steps.
    """
    if not (radius_deg >= 0 and step_deg > 0):
        raise ValueError(f"local_rotation_grid: need radius >= 0 and step > 0 (°), got {radius_deg}, {step_deg}")
    m = int(np.floor(radius_deg / step_deg + 1e-9))
    g = np.arange(-m, m + 1) * float(step_deg)
    v = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
    v = np.radians(v[np.linalg.norm(v, axis=1) <= radius_deg + 1e-9])
    theta = np.linalg.norm(v, axis=1, keepdims=True)
    axis = v / np.maximum(theta, 1e-12)
    return np.concatenate([np.cos(theta / 2), np.sin(theta / 2) * axis], axis=1)


def tilt_rotation_grid(radius_deg: float, step_deg: float) -> Array:
    """Small rotations (K, 4) about in-plane axes (x, y) around the identity: the rotation vectors ``(a, b, 0)`` on a
    square grid of spacing ``step_deg`` (°) inside the disk of radius ``radius_deg`` (°), identity included.

    ``R_z(ψ) R_t R`` (ψ in steps of ``step_deg`` within ±radius, ``t`` in this grid) covers the ball of
    :func:`local_rotation_grid` around ``R``; since ``R_z(ψ)`` only turns the image, a local search needs the
    projections at ``R_t R`` alone (29 for a radius of 3 steps, against 123 rotations in the ball).
    """
    if not (radius_deg >= 0 and step_deg > 0):
        raise ValueError(f"tilt_rotation_grid: need radius >= 0 and step > 0 (°), got {radius_deg}, {step_deg}")
    m = int(np.floor(radius_deg / step_deg + 1e-9))
    g = np.arange(-m, m + 1) * float(step_deg)
    v = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    v = np.radians(v[np.linalg.norm(v, axis=1) <= radius_deg + 1e-9])
    theta = np.linalg.norm(v, axis=1, keepdims=True)
    axis = v / np.maximum(theta, 1e-12)
    return np.concatenate([np.cos(theta / 2), np.sin(theta / 2) * axis, np.zeros_like(theta)], axis=1)


def global_rotation_grid(step_deg: float) -> Array:
    """A deterministic, nearly uniform grid (K, 4) over all of SO(3) with spacing about ``step_deg`` (°).

    Viewing directions on a Fibonacci sphere (one per ``step²`` of solid angle, about ``4π / step²``), each
    with ``round(360 / step)`` in-plane angles psi; the candidates of a global orientation search.
    K grows as ``step⁻³``: 4,416 at 15°, 34,992 at 7.5°.
    """
    if not 0 < step_deg <= 90:
        raise ValueError(f"global_rotation_grid: need a step in (0, 90] degrees, got {step_deg}")
    step = np.radians(float(step_deg))
    n_dir = max(2, int(round(4 * np.pi / step**2)))
    n_psi = max(1, int(round(2 * np.pi / step)))
    k = np.arange(n_dir) + 0.5
    tilt = np.arccos(1 - 2 * k / n_dir)
    rot = np.remainder(np.pi * (1 + 5**0.5) * k, 2 * np.pi)
    psi = np.arange(n_psi) * (2 * np.pi / n_psi)
    return canonicalize(euler_to_quat(np.repeat(rot, n_psi), np.repeat(tilt, n_psi), np.tile(psi, n_dir)))

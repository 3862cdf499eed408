"""Point-group symmetry (C1, Cn, Dn) as unit quaternions, and the symmetry-aware orientation distance.

Convention (RELION's): the n-fold axis is the particle z axis; for Dn one 2-fold axis is the particle
x axis (the others lie in the xy plane at multiples of pi/n rad). A symmetric particle is invariant under
each group element ``g`` acting in the **particle** frame, ``V(g x) = V(x)``. Since ``R`` maps particle to
microscope coordinates, the image of ``R`` is the line integral of ``V(R^T y)``, and the image of ``R g``
is that of ``V(g^T R^T y) = V(R^T y)``: the orientations ``q`` and ``q * g`` (right product) give the same
image. The distance between two orientations of a symmetric particle is therefore
``min_g d_q(q1, q2 * g)``; it is unchanged when either argument is right-multiplied by a group element.
"""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np
from numpy.typing import ArrayLike, NDArray

from orirec.geometry.quaternions import as_quaternions, canonicalize, multiply, normalize

__all__ = ["group_quaternions", "parse_symmetry", "symmetric_quat_distance", "symmetry_name", "symmetry_order"]

Array = NDArray[np.float64]

_PATTERN = re.compile(r"^\s*([CcDd])\s*(\d+)\s*$")


def parse_symmetry(name: str | None) -> tuple[str, int]:
    """``"C1"``, ``"c4"``, ``"D7"`` -> (``"C"``/``"D"``, n); empty or None is C1. ValueError otherwise.

    Only the cyclic and dihedral groups are supported (no T, O, I); ``D1`` is refused (write ``C2``
    with the axis along z instead).
    """
    if name is None or str(name).strip() == "":
        return "C", 1
    m = _PATTERN.match(str(name))
    if not m:
        raise ValueError(f"symmetry: expected a point group Cn or Dn (e.g. C1, C2, D7), got {name!r}")
    kind, n = m.group(1).upper(), int(m.group(2))
    if n < 1 or (kind == "D" and n < 2):
        raise ValueError(f"symmetry: {name!r} is not a valid group (Cn needs n >= 1, Dn needs n >= 2)")
    return kind, n


def symmetry_name(name: str | None) -> str:
    """Canonical spelling of a group (``"c2"`` -> ``"C2"``, ``""`` -> ``"C1"``)."""
    kind, n = parse_symmetry(name)
    return f"{kind}{n}"


def symmetry_order(name: str | None) -> int:
    """Number of elements of the group (n for Cn, 2n for Dn)."""
    kind, n = parse_symmetry(name)
    return n if kind == "C" else 2 * n


@lru_cache(maxsize=64)
def _group(kind: str, n: int) -> Array:
    half = np.pi * np.arange(n) / n  # half of the rotation angle 2 pi k / n
    cyclic = np.stack([np.cos(half), np.zeros(n), np.zeros(n), np.sin(half)], axis=1)
    if kind == "C":
        return canonicalize(cyclic)
    # pi rotations about in-plane axes at angles pi k / n: (0, cos a, sin a, 0) = cyclic_k * x-flip
    flips = np.stack([np.zeros(n), np.cos(half), np.sin(half), np.zeros(n)], axis=1)
    return canonicalize(np.concatenate([cyclic, flips]))


def group_quaternions(name: str | None) -> Array:
    """The elements of the group as canonical unit quaternions (order, 4); the identity comes first."""
    out = _group(*parse_symmetry(name))
    return out.copy()


def symmetric_quat_distance(q1: ArrayLike, q2: ArrayLike, group: str | None = "C1") -> Array:
    """``min_g d_q(q1, q2 * g)`` (rad, in [0, pi]) over the elements ``g`` of ``group`` (broadcast).

    The geodesic distance between the orientations of a particle with that point-group symmetry: the
    smallest rotation taking one orientation to any orientation that gives the same image. For C1 it is
    :func:`orirec.geometry.quat_distance`.
    """
    a = normalize(as_quaternions(q1, "q1"))
    b = normalize(as_quaternions(q2, "q2"))
    a, b = np.broadcast_arrays(a, b)
    G = _group(*parse_symmetry(group))
    bg = multiply(b[..., None, :], G)  # (..., |G|, 4)
    # the best element maximizes |<q1, q2 g>|; its distance in the chord form stays accurate near 0
    best = np.argmax(np.abs(np.sum(a[..., None, :] * bg, axis=-1)), axis=-1)
    b_best = np.take_along_axis(bg, best[..., None, None], axis=-2)[..., 0, :]
    s = np.where(np.sum(a * b_best, axis=-1, keepdims=True) < 0, -1.0, 1.0)
    return 4.0 * np.arctan2(np.linalg.norm(a - s * b_best, axis=-1), np.linalg.norm(a + s * b_best, axis=-1))

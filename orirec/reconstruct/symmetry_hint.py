"""Point-group hint: does a map look Cn (n = 2..8) or Dn (n = 2..6) self-similar, and about which axis?

A C1 ab initio map of a (pseudo-)symmetric particle, e.g. a pseudo-C2 homodimer whose images were split
between the two copies, resembles itself turned about an axis. :func:`point_group_hint` measures that and
says which group the map appears to have, so the user can treat it as symmetric or look for a
pseudo-symmetric complex. It is a hint, not a proof: a pseudo-symmetric map is *meant* to be reported.

Method. The map is Fourier-cropped to at most :data:`WORK_BOX_PX` px, band-passed (Gaussian low-pass of
0.7 working px minus one of 1.5 px: the particle's envelope, which any two turned copies of an elongated blob
share, is removed), and scored inside a sphere about its centre of mass (every symmetry axis passes through
it) holding 99% of its density above a floor (10% of the peak above the median, so that noise does not
inflate the sphere). A score is the normalized correlation of the map with its copy turned 360°/n about an
axis (trilinear ``map_coordinates``). The orientation of an ab initio map is arbitrary, so the axis is
searched: a Fibonacci grid of the hemisphere (6° apart for n = 2, coarser for higher n, up to 15°; on every
7th scored voxel), then a 3x3 pattern search at 3, 1.5 and 0.75°. For Dn the 2-fold is scanned every 3° in
the plane perpendicular to the Cn axis, then refined. Axes are unit vectors (x, y, z) in the map's frame
(the volume is indexed ``[z, y, x]``; rotations act about the centre of mass).

Choice. The largest n whose Cn and every C(divisor of n) reach the threshold (C4 implies C2, C6 implies C2
and C3), among those within 0.05 of the best passing Cn score (a ring of copies is a little C(n+1) too);
then Dn if its 2-fold also passes. A Dn beyond ``max_dihedral_n`` (e.g. D7) is reported as Cn.

Measured correlations (best score over the tested groups for asymmetric maps, the true group's otherwise):

- Real structures, ../shared/data (Gaussian-atom maps, 64 px at 1.7 x max extent / 64 Å/px, turned at random;
  "clean" at the default 4.5 px resolution, "degraded" at 9 px plus white noise of the map's std):

  ============================================  ===========  ===========
  maps                                          clean        degraded
  ============================================  ===========  ===========
  14 C2 homodimers (DIPS), exact                0.96 - 1.00  0.95 - 0.99
  the same, one chain hinged 6° (pseudo-C2)     0.92 - 0.99  0.93 - 0.98
  22 asymmetric (16 BM5.5 complexes, 6 pseudo)  0.44 - 0.74  0.58 - 0.84
  ============================================  ===========  ===========

  1bxn and 1exb (C4) 0.99, 2cg9 (C2) 0.98, 5a1a (D2) 1.00 and 3j9i (D7: C7 found) 0.99; 5j0n's map (an
  asymmetric complex) 0.27. All 131 DIPS, BM5.5 and pseudo maps above got the right group (pseudo-C2 as
  C2) at the threshold.
- Synthetic maps of the tests (32 px Gaussian-blob clouds about a tilted axis): exact C2, C3, C4, C6, D2,
  D3 1.00; asymmetric clouds 0.45 - 0.67; a copy turned 177° 0.99, 174° (with or without 0.3 px jitter)
  0.90 - 0.97, 170° 0.90 - 0.93, 165° 0.79 - 0.86, 160° 0.67 - 0.78; an exact C2 plus white noise of the
  map's std 0.90.

Threshold. :data:`DEFAULT_THRESHOLD` = 0.88 lies halfway between the highest asymmetric score (0.84, a
degraded BM5.5 complex) and the lowest symmetric or pseudo-symmetric real score (0.92): a pseudo-C2 up to
about 10° off passes, a copy turned 165° or less does not. Of the band-passes tried (low-pass / envelope
sigma, working px), 0.7 / 1.5 keeps the symmetric scores high with a gap of 0.08; 1.0 / 3.0 and 1.0 / 2.0
left gaps of 0.03 and 0.05 (smooth asymmetric maps score high), 0.6 / 1.2 a gap of 0.09 with the symmetric
scores down to 0.87 (more sensitive to noise). The density floor raised a noisy exact C2 from 0.78 to 0.90.

Runtime: 0.5 - 1 s on one core for a 32³ or 64³ map (1,830 coarse rotations on 1/7 of the scored voxels,
about 630 on all of them; each a trilinear ``map_coordinates`` pass over a few thousand to 14,000 voxels).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter, map_coordinates

from orirec.geometry import parse_symmetry, quat_to_matrix

__all__ = ["DEFAULT_THRESHOLD", "WORK_BOX_PX", "SymmetryHint", "group_frame", "point_group_hint", "symmetry_axes"]

#: A group is reported when its correlations reach this value (chosen from the measurements above).
DEFAULT_THRESHOLD = 0.88

#: Edge (px) of the box the map is Fourier-cropped to before the search.
WORK_BOX_PX = 32

#: Band-pass of the working map (working px): Gaussian low-pass minus a wider Gaussian (the envelope).
_LOWPASS_SIGMA_PX = 0.7
_ENVELOPE_SIGMA_PX = 1.5
#: sigma (px) of the Gaussian whose transfer is 1/2 at 1 / (resolution in px): sqrt(ln 2 / 2) / pi.
_SIGMA_PER_RESOLUTION = 0.187

_MASS_FLOOR = 0.1
_CYCLIC_TOLERANCE = 0.05
_COARSE_STEP_DEG = 6.0
_MAX_COARSE_STEP_DEG = 15.0
_COARSE_STRIDE = 7
_REFINE_STEPS_DEG = (3.0, 1.5, 0.75)
_FLIP_STEP_DEG = 3.0
_CHUNK = 32


@dataclass(frozen=True)
class SymmetryHint:
    """The point group a map appears to have.

    Attributes:
        group: ``"C1"``, ``"Cn"`` or ``"Dn"``: the largest tested group whose correlations reach ``threshold``
            (the rule: the module docstring, "Choice").
        scores: correlation (1 = exact) per tested group (``"C2"`` .. ``"D6"``): for Cn that of the map with
            its copy turned 360°/n about the best axis found; for Dn the smaller of the Cn score and that of
            the best 2-fold perpendicular to the Cn axis.
        axis: (3,) unit vector (x, y, z) in the map's frame (the volume is indexed ``[z, y, x]``): the n-fold
            axis of ``group``, or, for C1, the axis of the best-scoring Cn (the closest miss).
        two_fold_axis: (3,) unit (x, y, z) 2-fold perpendicular to ``axis`` for a Dn group, else None.
        threshold: the correlation a group had to reach.
    """

    group: str
    scores: dict[str, float]
    axis: np.ndarray
    two_fold_axis: np.ndarray | None = None
    threshold: float = DEFAULT_THRESHOLD

    def message(self) -> str:
        """One line for a user: the group found and what to do about it."""
        if self.group == "C1":
            best = max(self.scores, key=lambda g: self.scores[g])
            return (
                f"the map shows no point-group self-similarity (best {best}: correlation "
                f"{self.scores[best]:.2f} < {self.threshold:.2f}); C1 is consistent"
            )
        n = int(self.group[1:])
        turn = f"{360 / n:.0f}° turn about {_fmt(self.axis)}"
        if self.two_fold_axis is not None:
            turn += f" and a 180° turn about {_fmt(self.two_fold_axis)}"
        return (
            f"the map looks {self.group} (correlation {self.scores[self.group]:.2f} after a {turn}); if the "
            f"particle is not {self.group}, it may be pseudo-symmetric and C1 ab initio may have split its images "
            f"between the copies; if it is, run again with --symmetry {self.group}"
        )


def _fmt(v: np.ndarray) -> str:
    return "(" + ", ".join(f"{x:.2f}" for x in v) + ")"


@dataclass(frozen=True)
class _Work:
    """The band-passed working map and the voxels scored: ``points`` (3, M) (x, y, z) offsets (px) from
    ``centre`` (the centre of mass, (x, y, z) voxel index) inside the particle's sphere, ``values`` (M,)
    the map there, mean-subtracted and of unit norm."""

    volume: np.ndarray
    centre: np.ndarray
    points: np.ndarray
    values: np.ndarray

    def subsampled(self, stride: int) -> _Work:
        """Every ``stride``-th scored voxel (a cheaper, noisier correlation for the coarse scan)."""
        values = self.values[::stride] - self.values[::stride].mean()
        values /= max(float(np.linalg.norm(values)), 1e-30)
        return _Work(self.volume, self.centre, self.points[:, ::stride], values)


def _fourier_crop(volume: np.ndarray, box_px: int) -> np.ndarray:
    """Crop the centred 3D spectrum of an (L, L, L) map to ``box_px`` (pixel size grows by L / box_px)."""
    L = volume.shape[0]
    if box_px >= L:
        return volume.astype(np.float64)
    f = np.fft.fftshift(np.fft.fftn(volume.astype(np.float64)))
    lo = L // 2 - box_px // 2
    f = f[lo : lo + box_px, lo : lo + box_px, lo : lo + box_px]
    return np.fft.ifftn(np.fft.ifftshift(f)).real


def _prepare(volume: np.ndarray, box_px: int, lowpass_px: float) -> _Work:
    """Crop, band-pass (low-pass sigma ``lowpass_px``, working px), and pick the voxels of the particle's
    sphere about its centre of mass."""
    v = _fourier_crop(volume, box_px)
    low = gaussian_filter(v, lowpass_px)
    band = low - gaussian_filter(v, lowpass_px * _ENVELOPE_SIGMA_PX / _LOWPASS_SIGMA_PX)
    floor = np.median(low)
    w = np.clip(low - floor - _MASS_FLOOR * (low.max() - floor), 0.0, None)
    idx = np.indices(v.shape).reshape(3, -1)[::-1].astype(np.float64)  # (x, y, z) voxel index
    centre = (idx * w.ravel()).sum(1) / max(w.sum(), 1e-30)
    d = idx - centre[:, None]
    r = np.sqrt((d * d).sum(0))
    order = np.argsort(r)
    cum = np.cumsum(w.ravel()[order])
    radius = r[order][np.searchsorted(cum, 0.99 * cum[-1])] + 2 * lowpass_px
    radius = min(radius, float(np.min(np.concatenate([centre, v.shape[0] - 1 - centre]))))
    inside = r <= radius
    values = band.ravel()[inside]
    values = values - values.mean()
    values /= max(float(np.linalg.norm(values)), 1e-30)
    return _Work(band, centre, d[:, inside], values)


def _turns(axes: np.ndarray, angle_rad: float) -> np.ndarray:
    """Rotations (K, 3, 3) by ``angle_rad`` about unit axes (K, 3) (x, y, z)."""
    half = angle_rad / 2
    q = np.concatenate([np.full((len(axes), 1), np.cos(half)), np.sin(half) * axes], axis=1)
    return quat_to_matrix(q)


def _correlations(work: _Work, rotations: np.ndarray) -> np.ndarray:
    """(K,) normalized correlations of the map with its copies turned by rotations (K, 3, 3) about the centre."""
    out = np.empty(len(rotations))
    M = work.points.shape[1]
    for s in range(0, len(rotations), _CHUNK):
        R = rotations[s : s + _CHUNK]
        src = np.einsum("kji,jm->kim", R, work.points) + work.centre[None, :, None]  # R^T p + c, (k, 3, M)
        coords = src[:, ::-1].transpose(1, 0, 2).reshape(3, -1)  # (z, y, x) index
        b = map_coordinates(work.volume, coords, order=1, mode="constant", cval=0.0).reshape(len(R), M)
        b -= b.mean(1, keepdims=True)
        out[s : s + len(R)] = (b @ work.values) / np.maximum(np.linalg.norm(b, axis=1), 1e-30)
    return out


def _hemisphere(step_deg: float) -> np.ndarray:
    """Unit axes (K, 3) on a Fibonacci grid of the upper hemisphere, about ``step_deg`` (°) apart."""
    n = max(8, int(round(2 * np.pi / np.radians(step_deg) ** 2)))
    k = np.arange(n) + 0.5
    z = k / n
    phi = np.pi * (1 + 5**0.5) * k
    s = np.sqrt(1 - z**2)
    return np.stack([s * np.cos(phi), s * np.sin(phi), z], axis=1)


def _basis(axis: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two unit vectors perpendicular to ``axis`` and to each other."""
    e1 = np.cross(axis, [1.0, 0.0, 0.0] if abs(axis[0]) < 0.9 else [0.0, 1.0, 0.0])
    e1 /= np.linalg.norm(e1)
    return e1, np.cross(axis, e1)


def _refine_axis(work: _Work, axis: np.ndarray, angle_rad: float, score: float) -> tuple[np.ndarray, float]:
    """Pattern search of the axis: 3x3 tilts of each step (°) in ``_REFINE_STEPS_DEG``, moving to the best."""
    for step in np.radians(_REFINE_STEPS_DEG):
        e1, e2 = _basis(axis)
        u = np.array([-1.0, 0.0, 1.0]) * np.tan(step)
        trial = axis + u[:, None, None] * e1 + u[None, :, None] * e2
        trial = trial.reshape(-1, 3) / np.linalg.norm(trial.reshape(-1, 3), axis=1, keepdims=True)
        cc = _correlations(work, _turns(trial, angle_rad))
        if cc.max() > score:
            axis, score = trial[int(np.argmax(cc))], float(cc.max())
    return axis, score


def _coarse_step_deg(n: int) -> float:
    """Axis grid spacing (°) for a 360°/n turn: a tilt of the axis by d moves a voxel at radius r by about
    2 sin(π/n) r d, so higher orders tolerate a coarser grid (same displacement as the C2 grid's)."""
    return min(_COARSE_STEP_DEG / np.sin(np.pi / n), _MAX_COARSE_STEP_DEG)


def _best_axis(work: _Work, coarse: _Work, n: int) -> tuple[np.ndarray, float]:
    """The axis of best Cn correlation (coarse grid on the subsampled voxels, then refined) and that correlation."""
    angle = 2 * np.pi / n
    grid = _hemisphere(_coarse_step_deg(n))
    cc = _correlations(coarse, _turns(grid, angle))
    axis = grid[int(np.argmax(cc))]
    return _refine_axis(work, axis, angle, float(_correlations(work, _turns(axis[None], angle))[0]))


def _best_two_fold(work: _Work, axis: np.ndarray) -> tuple[np.ndarray, float]:
    """The 2-fold perpendicular to ``axis`` with the best correlation: a scan of its angle, then refined
    (tilts away from perpendicular allowed, as for any axis)."""
    e1, e2 = _basis(axis)
    phi = np.radians(np.arange(0.0, 180.0, _FLIP_STEP_DEG))
    cand = np.cos(phi)[:, None] * e1 + np.sin(phi)[:, None] * e2
    cc = _correlations(work, _turns(cand, np.pi))
    i = int(np.argmax(cc))
    return _refine_axis(work, cand[i], np.pi, float(cc[i]))


def _divisors(n: int) -> list[int]:
    return [d for d in range(2, n + 1) if n % d == 0]


def _cyclic_order(scores: dict[str, float], threshold: float) -> int:
    """The largest n whose Cn passes, along with C(d) for every divisor d of n, and scores within
    :data:`_CYCLIC_TOLERANCE` of the best passing Cn (a ring of copies looks a little C(n+1) too); 1 if none."""
    cyclic = {int(g[1:]): s for g, s in scores.items() if g[0] == "C"}
    passed = [n for n in cyclic if all(cyclic[d] >= threshold for d in _divisors(n))]
    if not passed:
        return 1
    best = max(cyclic[n] for n in passed)
    return max(n for n in passed if cyclic[n] >= best - _CYCLIC_TOLERANCE)


def _canonical(axis: np.ndarray) -> np.ndarray:
    """The unit axis with its largest component positive (an axis and its opposite are the same)."""
    a = axis / np.linalg.norm(axis)
    return a if a[int(np.argmax(np.abs(a)))] > 0 else -a


def _lowpass_px(pixel_size_A: float, shape: int, box: int, resolution_A: float | None) -> float:
    """Low-pass sigma (working px): the default, or coarser to match ``resolution_A`` (Å)."""
    if not pixel_size_A > 0:
        raise ValueError(f"point_group_hint: need pixel_size_A > 0 (Å), got {pixel_size_A}")
    if resolution_A is None:
        return _LOWPASS_SIGMA_PX
    if not resolution_A > 0:
        raise ValueError(f"point_group_hint: need resolution_A > 0 (Å), got {resolution_A}")
    work_px_A = float(pixel_size_A) * shape / box
    return max(_LOWPASS_SIGMA_PX, _SIGMA_PER_RESOLUTION * float(resolution_A) / work_px_A)


def _search(work: _Work, max_n: int, max_dihedral_n: int) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Scores and axes of every tested group: ``axes["Cn"]`` the n-fold, ``axes["Dn"]`` its perpendicular 2-fold."""
    coarse = work.subsampled(_COARSE_STRIDE)
    scores: dict[str, float] = {}
    axes: dict[str, np.ndarray] = {}
    for n in range(2, max_n + 1):
        axis, scores[f"C{n}"] = _best_axis(work, coarse, n)
        axes[f"C{n}"] = _canonical(axis)
    for n in range(2, min(max_dihedral_n, max_n) + 1):
        axis, cc = _best_two_fold(work, axes[f"C{n}"])
        axes[f"D{n}"], scores[f"D{n}"] = _canonical(axis), min(cc, scores[f"C{n}"])
    return scores, axes


def _work(volume: np.ndarray, pixel_size_A: float, resolution_A: float | None) -> _Work:
    """The checked map, cropped to the working box and band-passed."""
    v = np.asarray(volume)
    if v.ndim != 3 or len(set(v.shape)) != 1 or v.shape[0] < 8:
        raise ValueError(f"point_group_hint: expected a cubic (L, L, L) map with L >= 8, got shape {v.shape}")
    if not np.all(np.isfinite(v)) or not np.any(v != v.flat[0]):
        raise ValueError("point_group_hint: the map holds NaN or inf, or is constant")
    box = min(v.shape[0], WORK_BOX_PX)
    return _prepare(v, box, _lowpass_px(pixel_size_A, v.shape[0], box, resolution_A))


def symmetry_axes(
    volume: np.ndarray, pixel_size_A: float, group: str, *, resolution_A: float | None = None
) -> tuple[np.ndarray, np.ndarray | None, float]:
    """The axes of the point group ``group`` (Cn or Dn, n >= 2) that fit ``volume`` best, searched as
    :func:`point_group_hint` searches them: the n-fold axis, the Dn 2-fold perpendicular to it (None for Cn),
    unit (x, y, z) in the map's frame through the particle's centre of mass, and the correlation (for Dn, the
    smaller of the two)."""
    kind, n = parse_symmetry(group)
    if n < 2 and kind == "C":
        raise ValueError(f"symmetry_axes: {group} has no axis (need Cn or Dn with n >= 2)")
    work = _work(volume, pixel_size_A, resolution_A)
    axis, score = _best_axis(work, work.subsampled(_COARSE_STRIDE), n)
    if kind == "C":
        return _canonical(axis), None, score
    two_fold, cc = _best_two_fold(work, axis)
    return _canonical(axis), _canonical(two_fold), min(score, cc)


def group_frame(axis: np.ndarray, two_fold: np.ndarray | None = None) -> np.ndarray:
    """The (3, 3) rotation whose rows are the group's x, y, z in the map's frame: it takes the n-fold ``axis`` to
    z and a Dn ``two_fold`` (made perpendicular to the axis) to x (for Cn, any perpendicular)."""
    x = _basis(axis)[0] if two_fold is None else two_fold - axis * (two_fold @ axis)
    x = x / np.linalg.norm(x)
    return np.stack([x, np.cross(axis, x), axis])


def point_group_hint(
    volume: np.ndarray,
    pixel_size_A: float,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    max_n: int = 8,
    max_dihedral_n: int = 6,
    resolution_A: float | None = None,
) -> SymmetryHint:
    """Test a map for Cn (n = 2 .. ``max_n``) and Dn (n = 2 .. ``max_dihedral_n``) self-similarity.

    Each n-fold axis is searched over the hemisphere (the map's orientation is arbitrary), the Dn 2-fold
    perpendicular to the best Cn axis; see the module docstring for the method, the measured correlations
    and the choice of ``threshold``. Deterministic; about 0.5-1 s on a 32³ map on one core.

    Args:
        volume: (L, L, L) density indexed ``[z, y, x]`` (any orientation; the particle anywhere in the box,
            ideally about 1.5-2x smaller than it).
        pixel_size_A: its pixel size (Å).
        threshold: correlation a group must reach to be reported.
        max_n: largest cyclic order tested (>= 2).
        max_dihedral_n: largest dihedral order tested (capped at ``max_n``; 1 tests no Dn).
        resolution_A: resolution (Å) of the map, if known: detail finer than it (noise) is filtered out.
            Default: none beyond the test's own low-pass (0.7 px of the at most 32 px working box).

    Returns:
        The :class:`SymmetryHint`: the group, every score, the main axis (x, y, z) in the map's frame.
    """
    if max_n < 2:
        raise ValueError(f"point_group_hint: max_n must be >= 2, got {max_n}")
    work = _work(volume, pixel_size_A, resolution_A)
    scores, axes = _search(work, max_n, max_dihedral_n)
    n = _cyclic_order(scores, threshold)
    if n == 1:
        best = max((g for g in scores if g[0] == "C"), key=lambda g: scores[g])
        return SymmetryHint("C1", scores, axes[best], None, threshold)
    if scores.get(f"D{n}", 0.0) >= threshold:
        return SymmetryHint(f"D{n}", scores, axes[f"C{n}"], axes[f"D{n}"], threshold)
    return SymmetryHint(f"C{n}", scores, axes[f"C{n}"], None, threshold)

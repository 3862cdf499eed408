"""Ab initio orientations of a set of images of one unknown particle, by stochastic global projection matching.

No training and no pairs: every iteration reconstructs one map from all images at their current
orientations, projects it at every rotation of a global grid (:func:`~orirec.geometry.global_rotation_grid`),
and gives every image a new orientation drawn from the softmax of its masked NCC with those projections.
The map pools the signal of all images, which is what a pair of images at SNR 1/16 lacks (the common line
of two small-protein images is at chance from σ² 4 on; ``benchmarks/commonline_detectability.py``).

The draw is annealed: early iterations are nearly random among the good candidates (as in cryoSPARC's
stochastic ab initio), so the map is not frozen in the first blob's local optimum; the last iteration takes
every image's best candidate. The resolution goes from ``resolution_start_A`` to ``resolution_end_A``, with
the images Fourier-cropped so that Nyquist equals the current resolution. Several restarts run from different
random starts; those that agree are registered onto one another and averaged per image
(:mod:`~orirec.estimators.ab_initio.consensus`), which removes much of the global grid's quantization. The
handedness of the result is arbitrary (projections cannot tell a map from its mirror image). Deterministic
given ``seed``.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from orirec.config.estimators import AbInitioConfig
from orirec.estimators.ab_initio.checkpoint import checkpoint_key, load_restarts, save_restarts
from orirec.estimators.ab_initio.consensus import AGREE_DEG, combine_restarts
from orirec.estimators.projection_matching import best_shifts, matching_box
from orirec.geometry import (
    global_rotation_grid,
    local_rotation_grid,
    matrix_to_quat,
    multiply,
    quat_distance,
    quat_to_matrix,
    symmetry_order,
    uniform_quaternions,
)
from orirec.imaging.formation import apply_shifts
from orirec.imaging.ncc import MaskedNCC
from orirec.imaging.resize import fourier_downsample
from orirec.reconstruct.fourier import FourierSums, insert_images, reconstruct, volume_from_sums
from orirec.reconstruct.symmetry_hint import group_frame, symmetry_axes
from orirec.simulate.nufft_projector import cpu_projector

__all__ = [
    "AbInitioResult",
    "ab_initio",
    "check_particle_size",
    "estimate_particle_radius_A",
    "masked_volume",
    "sphere_radius_px",
]

_SCORE_CHUNK = 512  # images scored against the whole grid at once
# weight of the running map's older minibatches at each new one (0.5 and 0.8: more single runs fell into wrong maps)
MINIBATCH_DECAY = 0.25


@dataclass
class AbInitioResult:
    """Orientations (n, 4), the last map (box ``box_px``, pixel ``pixel_size_A`` Å), the shifts (n, 2) (dx, dy)
    found in the images (px of the input) and one summary per iteration."""

    quaternions: np.ndarray
    volume: np.ndarray
    shifts_px: np.ndarray
    box_px: int
    pixel_size_A: float
    iterations: list[dict] = field(default_factory=list)
    restart_scores: list[float] = field(default_factory=list)  # final mean best NCC of each restart
    restart: int = 0  # the reference: the one kept alone, or the one the others were registered onto
    members: list[int] = field(default_factory=list)  # the restarts averaged (reference first)
    votes: np.ndarray | None = None  # (n,) restarts each image's mean took (None: one restart kept as it was)
    restarts_read_back: int = 0  # restarts read from the checkpoint, not run (their time is not in this call's)
    symmetry_score: float | None = None  # with a point group: its axes' correlation in the C1 map


_SAVED = ("quaternions", "volume", "shifts_px", "box_px", "pixel_size_A", "iterations")  # one restart, on disk


def _geometric(iteration: int, iterations: int, start: float, end: float) -> float:
    """The value at ``iteration`` (0-based) of a geometric ramp from ``start`` to ``end`` over ``iterations``."""
    t = iteration / max(1, iterations - 1)
    return float(start * (end / start) ** t)


_DEFAULTS = AbInitioConfig()  # the only source of these defaults (orirec.config.estimators)


def ab_initio(
    images: np.ndarray,
    pixel_size_A: float,
    *,
    iterations: int = _DEFAULTS.iterations,
    resolution_start_A: float = _DEFAULTS.resolution_start_A,
    resolution_end_A: float = _DEFAULTS.resolution_end_A,  # 15 Å: better on some σ² 16 test proteins, worse on others
    step_deg: float = _DEFAULTS.step_deg,
    sharpness_start: float = _DEFAULTS.sharpness_start,
    sharpness_end: float = _DEFAULTS.sharpness_end,
    particle_radius_A: float | None = _DEFAULTS.particle_radius_A,
    max_shift_px: float = 0.0,
    seed: int = _DEFAULTS.seed,
    pad: int = _DEFAULTS.pad,
    wiener: float = _DEFAULTS.wiener,
    restarts: int = _DEFAULTS.restarts,
    consensus: bool = _DEFAULTS.consensus,
    minibatch: tuple[int, int] | None = _DEFAULTS.minibatch,
    symmetry: str = _DEFAULTS.symmetry,
    agree_deg: float = AGREE_DEG,
    progress: Callable[[int, int], None] | None = None,
    checkpoint: str | Path | None = None,
) -> AbInitioResult:
    """Orientations of ``images`` (n, L, L; ``pixel_size_A`` Å/px; centred, phase-flipped if they carry a CTF).

    ``step_deg``: spacing of the global grid (°); each image's draw is jittered within the grid cell.
    ``sharpness``: the softmax's inverse temperature, in units of the spread of an image's scores over the
    grid, rising geometrically from ``sharpness_start`` to ``sharpness_end``. ``particle_radius_A``: radius (Å)
    of the spherical mask applied to each map and of the disk the NCC is computed in (default: 0.45 × box).
    ``max_shift_px`` > 0 (px of ``images``): after each draw, every image's in-plane shift is found within that
    radius against the projection at its new orientation
    (:func:`~orirec.estimators.projection_matching.best_shifts`, on a grid of at most 1 px of ``images``, not
    the coarse box's) and undone for the next map; without it, shifts of even ±1 px leave the map a blob
    (chance on the test particle). ``restarts``: independent
    runs from different random starts. With ``consensus``, the restarts that agree (median angle apart below
    ``agree_deg`` once registered) are averaged per image and the map is made again from the mean
    (:mod:`~orirec.estimators.ab_initio.consensus`); otherwise, or when no two agree, the one whose images
    match their projections best (the highest final mean NCC) is kept. No ground truth is read either way.
    ``minibatch`` (first, last): each iteration but the last draws the orientations of a random minibatch only,
    growing geometrically from ``first`` to ``last`` images, against a running map (so that its cost does not grow
    with the number of images); the last iteration is one pass over every image. ``progress(done, total)``
    counts iterations over all restarts. ``symmetry`` (Cn, Dn): the restarts run without it, as RELION and
    cryoSPARC do; then the final map's axes of that group are found
    (:func:`~orirec.reconstruct.symmetry_hint.symmetry_axes`), the orientations are expressed in the frame where
    they lie on the group's (n-fold on z, a Dn 2-fold on x), and the map is made again with the group (each image
    inserted at each of its equivalent orientations); ``symmetry_score`` is the axes' correlation. Each
    iteration's summary holds the resolution (Å), box (px), mean best NCC (``score``) and the median change of
    orientation (``change_median_deg``). ``checkpoint``: an ``.npz`` written after every restart; a rerun with
    the same images, seed and settings reads the finished restarts back instead of running them again
    (:mod:`~orirec.estimators.ab_initio.checkpoint`).
    """
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 3 or images.shape[1] != images.shape[2]:
        raise ValueError(f"ab initio: need images (n, L, L), got shape {images.shape}")
    if len(images) < 10:
        raise ValueError(f"ab initio: need at least 10 images, got {len(images)}")
    if iterations < 1 or not 0 < resolution_end_A <= resolution_start_A:
        raise ValueError("ab initio: need iterations >= 1 and 0 < resolution_end_A <= resolution_start_A")
    if restarts < 1:
        raise ValueError(f"ab initio: need restarts >= 1, got {restarts}")
    settings = dict(iterations=iterations, resolution=(resolution_start_A, resolution_end_A), step_deg=step_deg,
                    sharpness=(sharpness_start, sharpness_end), particle_radius_A=particle_radius_A,
                    max_shift_px=max_shift_px, pad=pad, wiener=wiener)  # fmt: skip
    if minibatch is not None:  # (absent otherwise: checkpoints of full-set runs keep their key)
        settings["minibatch"] = (int(minibatch[0]), int(minibatch[1]))
    path = None if checkpoint is None else Path(checkpoint)
    key = 0 if path is None else checkpoint_key(images, pixel_size_A, seed, settings)  # hashes every image
    finished = {} if path is None else load_restarts(path, key)
    runs: list[AbInitioResult] = []
    read_back = sum(k in finished for k in range(restarts))
    for k, child in enumerate(np.random.SeedSequence(seed).spawn(restarts)):

        def tick(done: int, total: int, k: int = k) -> None:
            if progress is not None:
                progress(k * iterations + done, restarts * iterations)

        if k in finished:
            res = AbInitioResult(**finished[k])
            tick(iterations, iterations)
        else:
            res = _run(images, pixel_size_A, np.random.default_rng(child), tick, **settings)
            if path is not None:
                finished[k] = {name: getattr(res, name) for name in _SAVED}
                save_restarts(path, key, finished)
        runs.append(res)
    scores = [r.iterations[-1]["score"] for r in runs]
    ref = int(np.argmax(scores))  # the first of equal scores
    c = None
    if consensus and restarts > 1:
        c = combine_restarts([r.quaternions for r in runs], [r.shifts_px for r in runs], scores, agree_deg)
        c, ref = (c, c.reference) if len(c.members) > 1 else (None, ref)
    best = runs[ref]
    best.restart, best.restart_scores, best.restarts_read_back = ref, scores, read_back
    best.members = [ref] if c is None else c.members
    if c is not None:
        best.votes, best.quaternions, best.shifts_px = c.votes, c.quaternions, c.shifts_px
        best.volume = _final_map(images, best, particle_radius_A, pad, wiener)
    if symmetry_order(symmetry) > 1:
        best.quaternions, best.volume, best.symmetry_score = _impose(images, best, symmetry, particle_radius_A, pad,
                                                                     wiener)  # fmt: skip
    return best


def _impose(images, res: AbInitioResult, symmetry: str, particle_radius_A, pad: int, wiener: float):
    """``res``'s orientations in the frame where its map's ``symmetry`` axes lie on the group's (the n-fold on z,
    a Dn 2-fold on x), the map made again with that point group, and the axes' correlation in the C1 map."""
    axis, two_fold, score = symmetry_axes(res.volume, res.pixel_size_A, symmetry)
    to_group = group_frame(axis, two_fold)  # rows: the new x, y, z in the map's frame
    # V_new(r) = V(A^T r) gives the image of R A^T that V gave at R
    q = matrix_to_quat(quat_to_matrix(res.quaternions) @ to_group.T)
    aligned = AbInitioResult(q, res.volume, res.shifts_px, res.box_px, res.pixel_size_A, res.iterations)
    return q, _final_map(images, aligned, particle_radius_A, pad, wiener, symmetry), score


def _final_map(images, res: AbInitioResult, particle_radius_A, pad: int, wiener: float,
               symmetry: str | None = None) -> np.ndarray:  # fmt: skip
    """The map of ``res``'s orientations and shifts at its last box (with point group ``symmetry``), masked as in
    the iterations."""
    L = images.shape[1]
    small = fourier_downsample(images, res.box_px) if res.box_px != L else images
    return _masked_map(small, res.quaternions, res.shifts_px * res.box_px / L, res.pixel_size_A, particle_radius_A,
                       pad, wiener, symmetry)  # fmt: skip


def _masked_map(small, q, shifts_small, px: float, particle_radius_A, pad: int, wiener: float,
                symmetry: str | None = None) -> np.ndarray:  # fmt: skip
    """The map of ``small`` (n, B, B; ``px`` Å/px) at orientations ``q`` with shifts (px of ``small``) undone,
    with point group ``symmetry``, inside a sphere of ``particle_radius_A`` (default 0.45 × box)."""
    sh = shifts_small if np.any(shifts_small) else None
    vol = reconstruct(small, q, sh, pad=pad, wiener=wiener, symmetry=symmetry)
    return _mask(vol, px, particle_radius_A)


def _mask(vol: np.ndarray, px: float, particle_radius_A) -> np.ndarray:
    """``vol`` (B, B, B; ``px`` Å/px) inside a sphere of ``particle_radius_A`` (default 0.45 × box)."""
    box = vol.shape[0]
    zz, yy, xx = np.mgrid[:box, :box, :box] - box // 2
    return vol * (zz**2 + yy**2 + xx**2 <= sphere_radius_px(box, px, particle_radius_A) ** 2)


def sphere_radius_px(box: int, px: float, particle_radius_A) -> float:
    """The mask's radius (px of a ``box``-px map of ``px`` Å/px): ``particle_radius_A``, else 0.45 × box."""
    return 0.45 * box if particle_radius_A is None else min(particle_radius_A / px, box / 2 - 1)


def masked_volume(sums: FourierSums, px: float, particle_radius_A, wiener: float) -> np.ndarray:
    """The map of Fourier insertion ``sums`` (``px`` Å/px) inside the sphere of ``particle_radius_A``."""
    return _mask(volume_from_sums(sums, wiener), px, particle_radius_A)


def _minibatch_rows(it: int, iterations: int, n: int, minibatch, rng) -> np.ndarray | slice:
    """The images of iteration ``it``: every image without ``minibatch`` and in the last iteration (the full
    pass); else a random minibatch growing geometrically from ``minibatch[0]`` to ``minibatch[1]`` images."""
    if minibatch is None or it == iterations - 1:
        return slice(None)
    size = int(round(_geometric(it, iterations - 1, minibatch[0], minibatch[1])))  # last at it = iterations - 2
    return np.sort(rng.choice(n, size=min(size, n), replace=False))


def _run(images, pixel_size_A, rng, progress, *, iterations, resolution, step_deg, sharpness, particle_radius_A,
         max_shift_px, pad, wiener, minibatch=None) -> AbInitioResult:  # fmt: skip
    """One ab initio run from a random start (see :func:`ab_initio`).

    Without ``minibatch`` every iteration makes the map from every image and draws every image's orientation.
    With it, an iteration draws the orientations of a minibatch only, against the running map: Fourier insertion
    sums of the previous minibatches at their new orientations, each older one weighted by ``MINIBATCH_DECAY``
    (so an iteration's cost does not grow with the number of images); the last iteration is one pass over every
    image (the best rotation of the global grid, then its shift).
    """
    (resolution_start_A, resolution_end_A), (sharpness_start, sharpness_end) = resolution, sharpness
    n, L = images.shape[0], images.shape[1]
    if minibatch is not None and minibatch[0] >= n:
        minibatch = None  # a minibatch as large as the set: every image every iteration
    grid = global_rotation_grid(step_deg)
    jitter = local_rotation_grid(step_deg / 2, step_deg / 4)
    q = uniform_quaternions(n, rng)
    shifts = np.zeros((n, 2))  # px of the input images
    history: list[dict] = []
    cache: dict[int, np.ndarray] = {}
    sums: FourierSums | None = None  # the running map's insertion sums (minibatch mode)
    rows: np.ndarray | slice = slice(None)
    for it in range(iterations):
        t0 = time.perf_counter()
        res = _geometric(it, iterations, resolution_start_A, resolution_end_A)
        box = matching_box(L, pixel_size_A, res)
        px = pixel_size_A * L / box
        if box not in cache:
            cache[box] = fourier_downsample(images, box) if box != L else images
        small = cache[box]
        to_small = box / L
        if minibatch is None:
            vol = _masked_map(small, q, shifts * to_small, px, particle_radius_A, pad, wiener)
        else:
            next_rows = _minibatch_rows(it, iterations, n, minibatch, rng)
            if sums is None or sums.box_px != box:  # the start: the first minibatch at its random orientations;
                seed_rows = next_rows if sums is None else rows  # a finer box: the last minibatch again
                sums = insert_images(small[seed_rows], q[seed_rows], shifts[seed_rows] * to_small, pad=pad)
            vol = masked_volume(sums, px, particle_radius_A, wiener)
            rows = next_rows
        radius_px = sphere_radius_px(box, px, particle_radius_A)
        match = MaskedNCC(box, max(1, int(box // 2 - np.ceil(radius_px + 1))), px, res)
        projector = cpu_projector(vol, pad=pad)
        mine, mine_shifts = small[rows], shifts[rows]
        with torch.no_grad():
            refs = match(projector.project(grid))
            feats = match(apply_shifts(mine, -mine_shifts * to_small) if mine_shifts.any() else mine)
        kappa = _geometric(it, iterations, sharpness_start, sharpness_end)
        last = it == iterations - 1
        m = len(feats)
        pick, best = np.empty(m, dtype=np.int64), np.empty(m)
        for c in range(0, m, _SCORE_CHUNK):
            with torch.no_grad():
                s = (feats[c : c + _SCORE_CHUNK] @ refs.T).double()
            top, arg = s.max(1)
            best[c : c + len(s)] = top.numpy()
            if last:
                pick[c : c + len(s)] = arg.numpy()
            else:
                z = (s - top[:, None]) / s.std(1, keepdim=True).clamp_min(1e-12)
                p = torch.softmax(kappa * z, 1).numpy()
                u = rng.random(len(s))[:, None]
                pick[c : c + len(s)] = np.minimum((np.cumsum(p, 1) < u).sum(1), p.shape[1] - 1)
        new = grid[pick]
        if not last:
            new = multiply(new, jitter[rng.integers(0, len(jitter), len(new))])
        change = np.degrees(quat_distance(q[rows], new))
        q[rows] = new
        if max_shift_px > 0:
            with torch.no_grad():
                proj = projector.project(new)
            # on a grid of at most 1 px of the input images (not the coarse box's), so that the disk of
            # max_shift_px holds many candidates and not just the centre and its 8 neighbours clipped to the rim
            up = int(np.ceil(L / box))
            radius = max(1.5 / up, max_shift_px * to_small)
            found = best_shifts(torch.from_numpy(np.ascontiguousarray(mine)), proj, match.lowpass, radius, up)
            norm = np.linalg.norm(found, axis=1, keepdims=True) / to_small
            shifts[rows] = found / to_small * np.minimum(1.0, max_shift_px / np.maximum(norm, 1e-12))
        if minibatch is not None and not last:
            fresh = insert_images(small[rows], q[rows], shifts[rows] * to_small, pad=pad)
            sums = fresh if sums is None else sums.scaled(MINIBATCH_DECAY) + fresh
        history.append(
            {
                "iteration": it + 1,
                "resolution_A": float(res),
                "box_px": int(box),
                "images": int(m),
                "sharpness": kappa,
                "score": float(best.mean()),
                "change_median_deg": float(np.median(change)),
                "time_s": time.perf_counter() - t0,
            }
        )
        progress(it + 1, iterations)
    return AbInitioResult(q, vol, shifts, box, px, history)


#: apparent particle diameters (Å) outside this range point to a wrong pixel size: a macromolecule imaged for
#: single-particle analysis spans more than ~20 Å and, short of the largest viruses, less than ~1,500 Å
PLAUSIBLE_DIAMETER_A = (20.0, 1500.0)


def check_particle_size(radius_A: float, pixel_size_A: float) -> str | None:
    """A warning (also issued with :func:`warnings.warn`) when the particle's apparent diameter, ``2 × radius_A``
    as read off the images at ``pixel_size_A`` (Å/px), is implausible for a macromolecule; None otherwise.

    Ab initio's resolution schedule is absolute (30 → 20 Å): a stack whose header gives 1 Å/px instead of 6 Å/px
    shows a 6× smaller particle, matched at a 6× coarser resolution than the schedule means, and its
    orientations quietly lose accuracy.
    """
    lo, hi = PLAUSIBLE_DIAMETER_A
    diameter = 2.0 * float(radius_A)
    if lo <= diameter <= hi:
        return None
    msg = (
        f"the particle looks {diameter:.0f} Å across at {pixel_size_A:g} Å/px (from the images' variance profile), "
        f"outside the {lo:.0f}-{hi:.0f} Å of macromolecules: check the pixel size (--pixel-size at import); "
        "ab initio's resolution schedule is in Å"
    )
    warnings.warn(msg, stacklevel=2)
    return msg


def estimate_particle_radius_A(images: np.ndarray, pixel_size_A: float, fraction: float = 0.1) -> float:
    """The particle's radius (Å) seen in a set of centred images (n, L, L) of one particle, without a model.

    The signal adds variance across images inside the particle and nothing outside: the radial profile of
    the per-pixel variance, less its level in the outer ring (the noise), falls below ``fraction`` of its
    peak at the particle's edge (blurred by shifts and by the CTF's spread). At least 2 px.
    """
    images = np.asarray(images, dtype=np.float64)
    L = images.shape[-1]
    var = images.var(0)
    yy, xx = np.mgrid[:L, :L] - L // 2
    r = np.sqrt(xx**2 + yy**2).round().astype(int)
    profile = np.bincount(r.ravel(), var.ravel()) / np.bincount(r.ravel())
    outer = profile[int(0.42 * L) : L // 2].mean()
    excess = profile[: L // 2] - outer
    inside = np.flatnonzero(excess > fraction * excess.max())
    return float(max(2, inside.max() + 1 if len(inside) else L // 4) * pixel_size_A)

"""Passes over every image of a dataset, one shard at a time: map-reduce tasks of dataset-scale ab initio.

A task reads the images of one shard (:class:`StoreImages`: rows of a Zarr store, phase-flipped with their CTF;
:class:`ArrayImages`: rows of an array in memory), poses them against a map it is given, and returns their
poses, scores and shifts with the Fourier insertion sums of its images in each of the two half-sets
(:class:`ShardResult`). The driver (:mod:`~orirec.estimators.ab_initio.dataset`) adds the sums up into the
half-maps of the next pass. A task holds one shard's images, never the dataset's, and is deterministic: the
same shard gives the same result on any worker.

- :class:`GlobalPass`: the best rotation of the global grid for every image, its rotations ranked over a few
  trial shifts and its shift then searched finely for its best ``candidates`` rotations only.
- :class:`LocalRound`: one round of gold-standard local refinement: each image's shift and then its rotation
  within a ball, against the map of the **other** half-set (as
  :func:`~orirec.estimators.projection_matching.refine_projection_matching` does in memory).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Protocol

import numpy as np
import torch

from orirec.estimators.projection_matching import best_shifts
from orirec.geometry import global_rotation_grid, multiply, rotate_about_z, tilt_rotation_grid
from orirec.imaging.ctf import phase_flip_by_params
from orirec.imaging.formation import apply_shifts
from orirec.imaging.inplane import rotate_inplane
from orirec.imaging.ncc import MaskedNCC
from orirec.imaging.resize import fourier_downsample
from orirec.reconstruct.fourier import FourierSums, insert_images
from orirec.simulate.nufft_projector import cpu_projector
from orirec.simulate.projector import FourierSliceProjector
from orirec.store import open_store

__all__ = [
    "ArrayImages",
    "GlobalPass",
    "ImageSource",
    "LocalRound",
    "MatchGeometry",
    "Shard",
    "ShardResult",
    "StoreImages",
    "projector_on",
]

_SCORE_CHUNK = 512  # images scored against the whole grid at once
_SHIFT_CHUNK = 512  # images whose upsampled cross-correlations are held at once (about 65 MB at 90 px)
_ROUND_CHUNK = 64  # images of a local round at once (each with its turned copies and tilted projections)


class ImageSource(Protocol):
    """Rows (sorted store indices) → images (n, L, L) float32, centred as stored and phase-flipped."""

    def __call__(self, rows: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class StoreImages:
    """The images of a projection store, phase-flipped where it holds CTF parameters. Picklable: the store is
    opened in the process that reads (a worker on another node needs the same path, or a shared filesystem)."""

    path: str

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        """The images ``rows``; ValueError naming the store and the rows when they cannot be read or are not
        finite (a corrupt or missing chunk, NaN)."""
        s = open_store(self.path)
        span = f"images {rows[0]}-{rows[-1]}" if len(rows) else "no images"
        try:
            images = s.load_images(rows)
        except Exception as e:  # zarr and its codecs raise many types for a damaged chunk
            raise ValueError(f"{self.path}: {span} cannot be read ({type(e).__name__}: {e})") from e
        bad = ~np.isfinite(images).all(axis=(1, 2))
        if bad.any():
            raise ValueError(f"{self.path}: image {rows[np.argmax(bad)]} (and {bad.sum() - 1} more) holds NaN or inf")
        return phase_flip_by_params(images, s.ctf_params(rows), s.pixel_size_A)


@dataclass(frozen=True)
class ArrayImages:
    """Images already in memory (n, L, L), phase-flipped if they carry a CTF; row r is ``images[r]``."""

    images: np.ndarray

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        return np.asarray(self.images[rows], dtype=np.float32)


def projector_on(volume: np.ndarray, device: str, pad: int = 2):
    """The projector of ``volume``: finufft's on the CPU (the fastest there), the torch Fourier-slice one on
    another torch device (``"cuda"``, ``"cuda:1"``)."""
    volume = np.array(volume, dtype=np.float32)  # a writable copy (a worker's shared map is read-only)
    if torch.device(device).type == "cpu":
        return cpu_projector(volume, pad=pad)
    return FourierSliceProjector(volume, pad=pad, device=device)


@dataclass(frozen=True)
class MatchGeometry:
    """How images of ``box_in_px`` (``pixel_size_A`` Å/px) are matched: Fourier-cropped to ``box_px`` (pixel =
    ``resolution_A`` / 2), low-passed to ``resolution_A`` inside a disk of ``radius_px`` (px of ``box_px``),
    shifts searched within ``max_shift_px`` (px of the input), maps inserted with Fourier padding ``pad`` and
    point group ``symmetry``, on the torch ``device``."""

    box_in_px: int
    pixel_size_A: float
    box_px: int
    resolution_A: float
    radius_px: float
    max_shift_px: float
    pad: int = 2
    device: str = "cpu"
    symmetry: str = "C1"

    @property
    def to_small(self) -> float:
        """Input px → matching-box px."""
        return self.box_px / self.box_in_px

    @property
    def upsample(self) -> int:
        """The shift search's grid: at most 1 px of the input images."""
        return int(np.ceil(self.box_in_px / self.box_px))

    @cached_property
    def ncc(self) -> MaskedNCC:
        px = self.pixel_size_A / self.to_small
        margin = max(1, int(self.box_px // 2 - np.ceil(self.radius_px + 1)))  # the disk just holds the particle
        return MaskedNCC(self.box_px, margin, px, self.resolution_A)

    def small(self, images: np.ndarray) -> np.ndarray:
        """``images`` Fourier-cropped to the matching box."""
        return fourier_downsample(images, self.box_px) if self.box_px != images.shape[-1] else images

    def shifts_at(self, small: np.ndarray, proj: torch.Tensor, radius_px: float | None = None) -> np.ndarray:
        """(n, 2) shifts (px of the input) that best move ``proj`` onto ``small`` (both at the matching box),
        within ``radius_px`` (px of the input; default ``max_shift_px``)."""
        limit = self.max_shift_px if radius_px is None else radius_px
        radius = max(1.5 / self.upsample, limit * self.to_small)
        images, proj = torch.from_numpy(np.ascontiguousarray(small)), proj.cpu()
        found = np.concatenate([
            best_shifts(images[c : c + _SHIFT_CHUNK], proj[c : c + _SHIFT_CHUNK], self.ncc.lowpass, radius,
                        self.upsample)
            for c in range(0, len(images), _SHIFT_CHUNK)
        ]) / self.to_small  # fmt: skip
        norm = np.linalg.norm(found, axis=1, keepdims=True)
        return found * np.minimum(1.0, limit / np.maximum(norm, 1e-12))

    @cached_property
    def trial_shifts_px(self) -> np.ndarray:
        """(m, 2) shifts (px of the input) within ``max_shift_px``, on a square grid of half a matching-box pixel
        (at most 7 per axis): a global search ranks each image's rotations by their best score over these. Ranked
        unshifted instead, the true rotation of an image off by 2 px of 64 is among the best 8 of the 15° grid for
        58 % of images at σ² 16, against 85 % with its shift known."""
        if self.max_shift_px <= 0:
            return np.zeros((1, 2))
        step = max(0.5 / self.to_small, self.max_shift_px / 3)
        a = np.arange(-np.floor(self.max_shift_px / step + 1e-9), np.floor(self.max_shift_px / step + 1e-9) + 1) * step
        xy = np.stack(np.meshgrid(a, a), -1).reshape(-1, 2)
        return xy[np.linalg.norm(xy, axis=1) <= self.max_shift_px + 1e-9]

    def features(self, small: np.ndarray, shifts_px: np.ndarray) -> torch.Tensor:
        """The NCC features of ``small`` with their ``shifts_px`` (px of the input) undone."""
        centred = apply_shifts(small, -shifts_px * self.to_small) if np.any(shifts_px) else small
        return self.ncc(torch.as_tensor(np.ascontiguousarray(centred), device=self.device))


@dataclass
class Shard:
    """One task's images: ``rows`` (store indices, sorted), their half-set (0/1) and, where known, their
    current orientations (n, 4) and shifts (n, 2, px)."""

    index: int
    rows: np.ndarray
    half: np.ndarray
    quaternions: np.ndarray
    shifts_px: np.ndarray


@dataclass
class ShardResult:
    """A task's answer: its images' poses (n, 4), shifts (n, 2; px of the input), NCC scores (n,) and the
    Fourier insertion sums of each half-set's images at those poses (``sums[h]``; None when it has none)."""

    index: int
    quaternions: np.ndarray
    shifts_px: np.ndarray
    scores: np.ndarray
    sums: tuple[FourierSums | None, FourierSums | None]


def _half_sums(geometry: MatchGeometry, small, q, shifts_px, half) -> tuple[FourierSums | None, FourierSums | None]:
    out: list[FourierSums | None] = []
    for h in (0, 1):
        m = half == h
        sh = shifts_px[m] * geometry.to_small
        if m.any():  # on the CPU: the driver adds and checkpoints them
            sums = insert_images(small[m], q[m], sh, pad=geometry.pad, device=geometry.device,
                                 symmetry=geometry.symmetry)  # fmt: skip
            out.append(FourierSums(sums.num.cpu(), sums.wgt.cpu(), sums.box_px, sums.pad))
        else:
            out.append(None)
    return out[0], out[1]


@dataclass(frozen=True)
class GlobalPass:
    """Poses every image of a shard on the global grid of ``step_deg`` against one map (see the module)."""

    images: ImageSource
    geometry: MatchGeometry
    step_deg: float
    candidates: int = 4
    keep_better: bool = False  # an image keeps its current pose (and shift) where that matches the map better

    def references(self, volume: np.ndarray) -> torch.Tensor:
        """The NCC features of the map's projections at every rotation of the grid (computed once per pass)."""
        with torch.no_grad():
            proj = projector_on(volume, self.geometry.device, self.geometry.pad).project(self.grid)
            return self.geometry.ncc(proj)

    @cached_property
    def grid(self) -> np.ndarray:
        return global_rotation_grid(self.step_deg)

    def __call__(self, shard: Shard, shared: tuple[np.ndarray, torch.Tensor]) -> ShardResult:
        volume, refs = shared
        g = self.geometry
        small = g.small(self.images(shard.rows))
        around = shard.shifts_px if self.keep_better else None  # a re-pose knows the shifts roughly
        q, shifts, scores = self._search(small, volume, refs, around)
        if self.keep_better:
            now = self._current_scores(small, shard.quaternions, shard.shifts_px, volume)
            stay = now >= scores
            q[stay], shifts[stay], scores[stay] = shard.quaternions[stay], shard.shifts_px[stay], now[stay]
        return ShardResult(shard.index, q, shifts, scores, _half_sums(g, small, q, shifts, shard.half))

    def _current_scores(self, small: np.ndarray, q: np.ndarray, shifts_px: np.ndarray, volume: np.ndarray):
        """The NCC of each image (its shift undone) with the map's projection at its current pose."""
        g = self.geometry
        with torch.no_grad():
            proj = projector_on(volume, g.device, g.pad).project(q)
            return torch.einsum("np,np->n", g.features(small, shifts_px), g.ncc(proj)).cpu().numpy()

    def _ranked(self, small: np.ndarray, refs: torch.Tensor, k: int, around: np.ndarray | None):
        """The ``k`` best grid rotations of each image (n, k), by their best score over the trial shifts (or at
        the shifts ``around`` (n, 2) px, when given), and the best score (n,)."""
        best = None
        trials = [np.tile(t, (len(small), 1)) for t in self.geometry.trial_shifts_px] if around is None else [around]
        for shifts in trials:
            s = self.geometry.features(small, shifts) @ refs.T
            best = s if best is None else torch.maximum(best, s)
        assert best is not None
        top = best.topk(k, 1)
        return top.indices, top.values[:, 0]

    def _search(self, small: np.ndarray, volume: np.ndarray, refs: torch.Tensor, around: np.ndarray | None):
        """Best grid rotation (and shift) of each image: the top ``candidates`` rotations by their best score
        over the trial shifts, then each one's shift searched finely, then the best of them with its shift."""
        g = self.geometry
        k = 1 if g.max_shift_px <= 0 else min(self.candidates, len(self.grid))
        with torch.no_grad():
            chunks = range(0, len(small), _SCORE_CHUNK)
            ranked = [self._ranked(small[c : c + _SCORE_CHUNK], refs, k, None if around is None else
                                   around[c : c + _SCORE_CHUNK]) for c in chunks]  # fmt: skip
        cand = torch.cat([i for i, _ in ranked]).cpu().numpy()  # (n, k) grid indices, best first
        if k == 1:
            return self.grid[cand[:, 0]], np.zeros((len(small), 2)), torch.cat([s for _, s in ranked]).cpu().numpy()
        project = projector_on(volume, g.device, g.pad).project
        n = len(small)
        rep = np.repeat(small, k, 0)
        with torch.no_grad():
            proj = project(self.grid[cand.reshape(-1)])
            shifts = g.shifts_at(rep, proj)
            score = torch.einsum("np,np->n", g.features(rep, shifts), g.ncc(proj)).cpu().numpy().reshape(n, k)
        pick = score.argmax(1)
        chosen = cand[np.arange(n), pick]
        return self.grid[chosen], shifts.reshape(n, k, 2)[np.arange(n), pick], score[np.arange(n), pick]


@dataclass(frozen=True)
class LocalRound:
    """One gold-standard local refinement round over a shard, against the other half-set's map: each image's shift
    at its current pose, then its best rotation ``R_z(ψ) R_t R`` within ``radius_deg`` (grid ``step_deg``: ``t`` a
    small tilt about an in-plane axis, ψ a turn about the beam); then its insertion, at the new pose, into its own
    half-set's sums. Only the tilts need projections (:func:`~orirec.geometry.tilt_rotation_grid`): a turn ψ of
    the pose is the image turned by -ψ, done on the input-size image before it is Fourier-cropped (so that the
    turned copies are as sharp as the unturned one at the matching resolution)."""

    images: ImageSource
    geometry: MatchGeometry
    radius_deg: float
    step_deg: float

    def __call__(self, shard: Shard, shared: tuple[np.ndarray, np.ndarray]) -> ShardResult:
        g = self.geometry
        full = self.images(shard.rows)
        small = g.small(full)
        q, shifts = shard.quaternions.copy(), shard.shifts_px.copy()
        scores = np.empty(len(q))
        for h in (0, 1):
            rows = np.flatnonzero(shard.half == h)
            if not len(rows):
                continue
            project = projector_on(shared[1 - h], g.device, g.pad).project  # the other half-set's map
            with torch.no_grad():
                if g.max_shift_px > 0:
                    shifts[rows] = g.shifts_at(small[rows], project(q[rows]))
                for c in range(0, len(rows), _ROUND_CHUNK):
                    r = rows[c : c + _ROUND_CHUNK]
                    q[r], scores[r] = self._best(full[r], q[r], shifts[r], project)
        return ShardResult(shard.index, q, shifts, scores, _half_sums(g, small, q, shifts, shard.half))

    def _best(self, full: np.ndarray, q: np.ndarray, shifts_px: np.ndarray, project) -> tuple[np.ndarray, np.ndarray]:
        """The best candidate ``R_z(ψ) R_t R`` of each image (input size, with its shift) and its NCC."""
        g = self.geometry
        tilts = tilt_rotation_grid(self.radius_deg, self.step_deg)
        m = int(np.floor(self.radius_deg / self.step_deg + 1e-9))
        psis = np.radians(np.arange(-m, m + 1) * self.step_deg)
        n, T, P = len(q), len(tilts), len(psis)
        centred = apply_shifts(full, -shifts_px) if np.any(shifts_px) else full
        turned = rotate_inplane(np.repeat(centred, P, 0), np.tile(-psis, n))  # image i turned by -ψ_p
        feats = g.ncc(torch.as_tensor(g.small(turned), device=g.device)).reshape(n, P, -1)
        tilted = multiply(np.tile(tilts, (n, 1)), np.repeat(q, T, 0))  # R_t R, image-major
        refs = g.ncc(project(tilted)).reshape(n, T, -1)
        s = torch.einsum("npf,ntf->npt", feats, refs).reshape(n, -1)
        best, k = s.max(1)
        p, t = np.divmod(k.cpu().numpy(), T)
        new = rotate_about_z(tilted.reshape(n, T, 4)[np.arange(n), t], psis[p])
        return new, best.cpu().numpy()

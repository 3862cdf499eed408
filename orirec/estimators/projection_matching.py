"""Local projection-matching refinement of orientations, with gold-standard halves and no ground truth.

The images are split once into two fixed halves. Every round reconstructs a map from each half, then
each image tries the local rotations ``q ∘ δ`` of a grid inside a ball (radius and step of the round's
schedule entry) and keeps the one whose projection of the **other** half's map has the best masked
normalized cross-correlation with it. Images and projections are Fourier-cropped to a small box and
low-passed to ``resolution_A``. Matching against an image's own half-map would change nothing: each
image matches its own contribution best at its current orientation.

Every round is checkpointed (``.npz``, written whole or not at all), so an interrupted refinement
resumes after its last completed round.
"""

from __future__ import annotations

import json
import math
import time
import warnings
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from orirec.geometry import local_rotation_grid, multiply, quat_distance
from orirec.imaging.formation import apply_shifts
from orirec.imaging.ncc import MaskedNCC
from orirec.imaging.resize import fourier_downsample
from orirec.reconstruct.fourier import half_split, reconstruct
from orirec.reconstruct.fsc import fsc_report
from orirec.simulate.nufft_projector import cpu_projector
from orirec.store.atomic import save_npz_atomic

__all__ = [
    "DEFAULT_SCHEDULE",
    "RefinementResult",
    "best_shifts",
    "match_local",
    "matching_box",
    "refine_projection_matching",
]

DEFAULT_SCHEDULE: tuple[tuple[float, float], ...] = ((12.0, 4.0), (4.0, 4.0 / 3.0), (6.0, 2.0), (2.0, 2.0 / 3.0))
"""(ball radius, grid step) in degrees per round: 123 candidates each; coarse, fine, then again. The first
ball reaches 12°: from starts about 10° off (5j0n, σ² 16), a 9° ball left 46 % of the images on its surface."""

PX_PER_RESOLUTION = 2.0  # cropped pixel = resolution / 2, Nyquist = the matching resolution (5j0n: 38 px beat 58 px)
_PROJECTIONS_PER_BATCH = 2048


def matching_box(box_px: int, pixel_size_A: float, resolution_A: float) -> int:
    """The smallest even box (px, at most ``box_px``) whose pixel is at most ``resolution_A / 2`` (Nyquist at the
    matching resolution: finer pixels only cost time)."""
    need = 2 * math.ceil(box_px * pixel_size_A * PX_PER_RESOLUTION / resolution_A / 2)
    return int(min(box_px, max(need, 16)))


@dataclass
class RefinementResult:
    """Refined quaternions (n, 4) and one summary per round (see :func:`refine_projection_matching`)."""

    quaternions: np.ndarray
    rounds: list[dict] = field(default_factory=list)
    shifts_px: np.ndarray | None = None  # (n, 2) in-plane shifts (dx, dy) found in the images (px of the input)
    box_px: int = 0
    resumed_rounds: int = 0


def _fingerprint(q0: np.ndarray, settings: dict) -> int:
    blob = np.ascontiguousarray(q0, dtype=np.float64).tobytes() + json.dumps(settings, sort_keys=True).encode()
    return zlib.crc32(blob)


def _load(path: Path, fingerprint: int) -> tuple[np.ndarray, list[dict], np.ndarray] | None:
    if not path.is_file():
        return None
    try:
        with np.load(path) as z:
            fp, q, rounds = int(z["fingerprint"]), z["quaternions"], json.loads(str(z["rounds"]))
            shifts = z["shifts_px"]
    except Exception as e:
        raise ValueError(f"{path}: not a readable refinement checkpoint ({e}); delete it to start over") from e
    if fp != fingerprint:
        warnings.warn(f"{path}: checkpoint of other orientations or settings; refining from the start", stacklevel=3)
        return None
    return q, rounds, shifts


def _save(path: Path, fingerprint: int, q: np.ndarray, rounds: list[dict], shifts: np.ndarray) -> None:
    save_npz_atomic(path, fingerprint=fingerprint, quaternions=q, rounds=json.dumps(rounds), shifts_px=shifts)


def match_local(q, rows, local, project, feats, match, progress=None) -> tuple[np.ndarray, np.ndarray]:
    """Best local candidate ``q[i] ∘ δ`` (δ in ``local``, (k, 4)) of every image ``i`` in ``rows``: the one whose
    projection (``project``, matched by ``match``) has the highest dot product with ``feats[i]``; returns (its
    quaternion, its NCC), each in the order of ``rows``. ``progress(k)`` counts matched images."""
    best_q, best_s = np.empty((len(rows), 4)), np.empty(len(rows))
    step = max(1, _PROJECTIONS_PER_BATCH // len(local))
    for c in range(0, len(rows), step):
        ii = rows[c : c + step]
        cand = multiply(np.repeat(q[ii], len(local), 0), np.tile(local, (len(ii), 1)))
        with torch.no_grad():
            proj = match(project(cand)).reshape(len(ii), len(local), -1)
            scores = torch.einsum("bkp,bp->bk", proj, feats[ii])
            s, k = scores.max(1)
        best_q[c : c + len(ii)] = cand.reshape(len(ii), len(local), 4)[np.arange(len(ii)), k.cpu().numpy()]
        best_s[c : c + len(ii)] = s.cpu().numpy()
        if progress is not None:
            progress(len(ii))
    return best_q, best_s


def best_shifts(
    images: torch.Tensor, proj: torch.Tensor, lowpass: torch.Tensor | None, max_px: float, upsample: int = 1
) -> np.ndarray:
    """(n, 2) shifts (dx, dy) in px, within ``max_px``, that best move ``proj`` onto ``images``: the peak of their
    low-passed cross-correlation, refined to a fraction of a pixel by a parabola through the peak on each axis.

    ``upsample`` > 1 evaluates the cross-correlation on a grid that many times finer (its spectrum zero-padded)
    before the search, so that a coarse (Fourier-cropped) box still resolves shifts of a fraction of its pixel
    and the ``max_px`` disk holds more than its few integer points."""
    cc_ft = torch.fft.fft2(images) * torch.conj(torch.fft.fft2(proj))
    if lowpass is not None:
        cc_ft = cc_ft * lowpass
    if upsample > 1:
        cc_ft = _zero_pad_spectrum(cc_ft, upsample * cc_ft.shape[-1])
    cc = torch.fft.fftshift(torch.fft.ifft2(cc_ft).real, dim=(-2, -1))  # zero shift at index L // 2
    L = cc.shape[-1]
    max_px = max_px * upsample
    yy, xx = np.mgrid[:L, :L] - L // 2
    cc[:, torch.from_numpy(xx**2 + yy**2 > max_px**2)] = -torch.inf
    flat = cc.reshape(len(cc), -1).argmax(1)
    iy, ix = (flat // L).numpy(), (flat % L).numpy()
    out = np.stack([ix, iy], 1).astype(np.float64) - L // 2
    c = cc.numpy()
    for axis, (i0, i1) in enumerate(((ix, iy), (iy, ix))):  # x: neighbours along the last axis, y: the one before
        lo, hi = np.clip(i0 - 1, 0, L - 1), np.clip(i0 + 1, 0, L - 1)
        pick = (lambda a, b: c[np.arange(len(c)), b, a]) if axis == 0 else (lambda a, b: c[np.arange(len(c)), a, b])
        f0, fm, fp = pick(i0, i1), pick(lo, i1), pick(hi, i1)
        den = fm - 2 * f0 + fp
        ok = np.isfinite(fm) & np.isfinite(fp) & (den < 0)
        out[ok, axis] += np.clip(0.5 * (fm[ok] - fp[ok]) / den[ok], -0.5, 0.5)
    return out / upsample


def _zero_pad_spectrum(ft: torch.Tensor, size: int) -> torch.Tensor:
    """(..., B, B) unshifted spectra placed in the centre of (..., size, size) zeros (unshifted again): the same
    band-limited signal on a grid ``size / B`` times finer."""
    B = ft.shape[-1]
    out = torch.zeros((*ft.shape[:-2], size, size), dtype=ft.dtype)
    lo = size // 2 - B // 2
    out[..., lo : lo + B, lo : lo + B] = torch.fft.fftshift(ft, dim=(-2, -1))
    return torch.fft.ifftshift(out, dim=(-2, -1))


def _half_maps(images, q, shifts_px, halves, pad: int, wiener: float) -> list[np.ndarray]:
    """One map per half, the images' shifts (px) undone."""
    sh = shifts_px if np.any(shifts_px) else None
    return [reconstruct(images[h], q[h], None if sh is None else sh[h], pad=pad, wiener=wiener) for h in halves]


def refine_projection_matching(
    images: np.ndarray,
    quaternions: np.ndarray,
    pixel_size_A: float,
    *,
    rounds: int = len(DEFAULT_SCHEDULE),
    schedule: Sequence[tuple[float, float]] = DEFAULT_SCHEDULE,
    resolution_A: float = 20.0,
    box_px: int | None = None,
    seed: int = 0,
    pad: int = 2,
    wiener: float = 1e-3,
    max_shift_px: float = 0.0,
    checkpoint: Path | str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> RefinementResult:
    """Refine ``quaternions`` (n, 4) of ``images`` (n, L, L; pixel ``pixel_size_A`` Å) by local projection matching.

    Round r searches the ball of ``schedule[r]`` = (radius, step) in degrees (the last entry repeats when
    ``rounds`` exceeds the schedule). ``box_px`` (default :func:`matching_box`) is the Fourier-cropped box;
    ``seed`` fixes the halves (the split of :func:`~orirec.reconstruct.fourier.reconstruct_half_maps`).
    ``checkpoint``: ``.npz`` written after every round; an existing one for the same start and settings
    (any ``rounds``) resumes the refinement, or extends a finished one. ``progress(done, total)`` counts
    matched images over all rounds.

    Each round's summary holds the mean NCC of the chosen candidates (``score``), the median change of
    orientation (``change_median_deg``), the fraction of images whose best candidate lies on the ball's
    surface (``at_edge``: the search was too narrow for them) and the half-maps' FSC 0.143 resolution (Å) at
    the cropped box, before and after the round; no ground truth is read.

    ``max_shift_px`` > 0 (px of ``images``, 2D norm) also finds every image's in-plane shift before each round's
    rotation search (the cross-correlation peak against its projection at the current orientation); the
    round's half-maps and matching then use the images with their shifts undone. Without it, a particle
    off-centre pulls its orientation instead: on small proteins with ±2 px shifts, matching without shifts
    made orientations worse.
    """
    images = np.asarray(images, dtype=np.float32)
    q = np.asarray(quaternions, dtype=np.float64)
    if images.ndim != 3 or images.shape[1] != images.shape[2] or len(images) != len(q) or q.shape[1:] != (4,):
        raise ValueError(f"refine: need images (n, L, L) and quaternions (n, 4), got {images.shape} and {q.shape}")
    if len(q) < 4:
        raise ValueError(f"refine: need at least 4 images for two half-maps, got {len(q)}")
    if not schedule and rounds:
        raise ValueError("refine: empty schedule")
    L = images.shape[1]
    box = matching_box(L, pixel_size_A, resolution_A) if box_px is None else int(min(box_px, L))
    px = pixel_size_A * L / box
    small = fourier_downsample(images, box) if box != L else images
    match = MaskedNCC(box, 2, px, resolution_A)
    halves = half_split(len(q), seed)
    settings = {"schedule": [list(map(float, s)) for s in schedule], "resolution_A": resolution_A}
    settings |= {"box": box, "seed": seed, "pad": pad, "wiener": wiener, "n": len(q)}
    # shift_grid_px: the search's grid (at most 1 input px); checkpoints of the older coarse-grid search start over
    settings |= {"max_shift_px": float(max_shift_px), "shift_grid_px": 1.0} if max_shift_px else {}
    fp = _fingerprint(q, settings)
    path = None if checkpoint is None else Path(checkpoint)
    stored = None if path is None else _load(path, fp)
    q, history = (q.copy(), []) if stored is None else (stored[0].copy(), stored[1])
    shifts = np.zeros((len(q), 2)) if stored is None else stored[2].copy()  # px of the input images
    to_small = box / L
    up = int(np.ceil(L / box))  # the shift search's grid: at most 1 px of the input images
    resumed = len(history)
    count = [resumed * len(q), rounds * len(q)]  # images matched so far, in all

    def tick(k: int) -> None:
        count[0] += k
        if progress is not None:
            progress(count[0], count[1])

    for r in range(resumed, rounds):
        t0 = time.perf_counter()
        radius, step = schedule[min(r, len(schedule) - 1)]
        local = local_rotation_grid(radius, step)
        maps = _half_maps(small, q, shifts * to_small, halves, pad, wiener)
        fsc_before = fsc_report(maps[0], maps[1], px)["fsc_0143_A"]
        if max_shift_px > 0:  # shifts first, at the current orientations, then the maps of the centred images
            for h, other in ((halves[0], maps[1]), (halves[1], maps[0])):
                with torch.no_grad():
                    proj = cpu_projector(other, pad=pad).project(q[h])
                found = best_shifts(torch.from_numpy(small[h]), proj, match.lowpass, max_shift_px * to_small, up)
                shifts[h] = found / to_small
            maps = _half_maps(small, q, shifts * to_small, halves, pad, wiener)
        feats = match(apply_shifts(small, -shifts * to_small) if shifts.any() else small)
        new, score = q.copy(), np.empty(len(q))
        for h, other in ((halves[0], maps[1]), (halves[1], maps[0])):
            project = cpu_projector(other, pad=pad).project
            new[h], score[h] = match_local(q, h, local, project, feats, match, tick)
        change = np.degrees(quat_distance(q, new))
        q = new
        history.append(
            {
                "round": r + 1,
                "radius_deg": float(radius),
                "step_deg": float(step),
                "candidates": len(local),
                "score": float(score.mean()),
                "change_median_deg": float(np.median(change)),
                "at_edge": float(np.mean(change >= radius - step / 2)),
                "fsc_half_0143_A_before": fsc_before,
                "shift_median_px": float(np.median(np.linalg.norm(shifts, axis=1))),
                "time_s": time.perf_counter() - t0,
            }
        )
        if path is not None:
            _save(path, fp, q, history, shifts)
    if history:
        maps = _half_maps(small, q, shifts * to_small, halves, pad, wiener)
        history[-1]["fsc_half_0143_A_after"] = fsc_report(maps[0], maps[1], px)["fsc_0143_A"]
    return RefinementResult(q, history, shifts_px=shifts, box_px=box, resumed_rounds=resumed)

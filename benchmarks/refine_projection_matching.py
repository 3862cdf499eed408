"""Experiment (candidate stage, not yet in the pipeline): local projection-matching refinement after recovery.

Starts from a recovery's gauge-resolved ``orientations.csv`` and uses no ground truth. Each round splits the images
into two fixed halves and reconstructs a map from each half. It Fourier-crops the images to ``--box`` px and
low-passes images and projections to ``--resolution`` Å. Then every image tries the local rotations on a grid
inside a ball (``q ∘ exp(δ)``, |δ| ≤ radius) and keeps the one with the best masked normalized
cross-correlation against the projection of the **other** half's map. Matching against an image's own half-map
changes nothing: the image matches its own contribution best at its current orientation. Ground truth is read
only to report err_rot / err_o4 after each round.

Reproduce (session 15's 5j0n σ² 16 recovery, 1,650 images):
    python benchmarks/refine_projection_matching.py runs/i7/p16.zarr runs/s15/r_tpaper/orientations.csv \
        --out benchmarks/results/refine_projection_matching.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from orirec.evaluate.metrics import orientation_metrics
from orirec.geometry import multiply
from orirec.reconstruct.fourier import reconstruct
from orirec.simulate.inplane import fourier_downsample
from orirec.simulate.projector import FourierSliceProjector
from orirec.store import open_store
from orirec.store.orientations import read_orientations

SCHEDULE = ((9.0, 3.0), (3.0, 1.0), (6.0, 2.0), (2.0, 2.0 / 3.0))  # (ball radius, grid step) per round, degrees
KEYS = ("err_rot_median", "err_rot_mean", "err_o4_median", "acc10", "acc20")


def local_rotations(radius_deg: float, step_deg: float) -> np.ndarray:
    """Quaternions (K, 4) of the rotation vectors on a cubic grid (step, degrees) inside a ball (radius, degrees)."""
    g = np.arange(-radius_deg, radius_deg + 1e-9, step_deg)
    v = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
    v = np.radians(v[np.linalg.norm(v, axis=1) <= radius_deg + 1e-9])
    th = np.linalg.norm(v, axis=1, keepdims=True)
    axis = v / np.maximum(th, 1e-12)
    return np.concatenate([np.cos(th / 2), np.sin(th / 2) * axis], axis=1)


class _Matcher:
    """Low-pass, disk mask and unit norm, so a dot product is the masked normalized cross-correlation."""

    def __init__(self, box: int, pixel_size_A: float, resolution_A: float) -> None:
        yy, xx = np.mgrid[:box, :box] - box // 2
        self.disk = torch.from_numpy((xx**2 + yy**2 <= (box // 2 - 2) ** 2).reshape(-1))
        f = np.fft.fftfreq(box)
        k = np.sqrt(f[:, None] ** 2 + f[None, :] ** 2) / pixel_size_A  # 1/Å
        self.lowpass = torch.from_numpy((k <= 1.0 / resolution_A).astype(np.float32))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.fft.ifft2(torch.fft.fft2(x) * self.lowpass).real.reshape(len(x), -1)[:, self.disk]
        x = x - x.mean(1, keepdim=True)
        return x / (x.norm(dim=1, keepdim=True) + 1e-9)


def refine_round(images: np.ndarray, q: np.ndarray, half: np.ndarray, local: np.ndarray, match: _Matcher) -> np.ndarray:
    """One round: every image of each half against the projections of the other half's map at q ∘ local."""
    feats, out = match(torch.from_numpy(images)), q.copy()
    for h in (half, ~half):
        projector = FourierSliceProjector(reconstruct(images[~h], q[~h]), pad=2)
        idx = np.flatnonzero(h)
        for c in range(0, len(idx), 16):
            ii = idx[c : c + 16]
            cand = multiply(np.repeat(q[ii], len(local), 0), np.tile(local, (len(ii), 1)))
            with torch.no_grad():
                proj = match(projector.project(cand)).reshape(len(ii), len(local), -1)
            best = torch.einsum("bkp,bp->bk", proj, feats[ii]).argmax(1).numpy()
            out[ii] = cand.reshape(len(ii), len(local), 4)[np.arange(len(ii)), best]
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("store", type=Path)
    p.add_argument("orientations", type=Path, help="a recovery's orientations.csv (store rows, quaternions)")
    p.add_argument("--box", type=int, default=58, help="images Fourier-cropped to this box (px)")
    p.add_argument("--resolution", type=float, default=20.0, help="low-pass of the matching (Å)")
    p.add_argument("--rounds", type=int, default=len(SCHEDULE))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/refine_projection_matching.json"))
    args = p.parse_args()
    torch.set_num_threads(2)
    store = open_store(args.store)
    rows, q = read_orientations(args.orientations)
    q_true = store.quaternions[rows]
    images = fourier_downsample(store.load_images(rows), args.box)
    match = _Matcher(args.box, store.pixel_size_A * store.box_px / args.box, args.resolution)
    half = np.random.default_rng(args.seed).permutation(len(rows)) < len(rows) // 2
    m = orientation_metrics(q, q_true)
    out = [{"round": 0, "time_s": 0.0, **{k: m[k] for k in KEYS}}]
    print(json.dumps(out[-1]), flush=True)
    for r, (radius, step) in enumerate(SCHEDULE[: args.rounds], start=1):
        t0 = time.time()
        local = local_rotations(radius, step)
        q = refine_round(images, q, half, local, match)
        m = orientation_metrics(q, q_true)
        out.append({"round": r, "radius_deg": radius, "step_deg": step, "candidates": len(local)})
        out[-1].update({"time_s": round(time.time() - t0, 1), **{k: m[k] for k in KEYS}})
        print(json.dumps(out[-1]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "store": str(args.store),
                "orientations": str(args.orientations),
                "n_images": len(rows),
                "box_px": args.box,
                "resolution_A": args.resolution,
                "machine": platform.processor() or platform.machine(),
                "rounds": out,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()

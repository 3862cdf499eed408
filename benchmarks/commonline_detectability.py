"""Benchmark: can a single pair of images show its common line? (issue 9, why unseen proteins are hard)

For each store, the first ``--n`` images of each of ``--proteins`` are compared pairwise: the band coherence maps
of :class:`orirec.models.commonlines.CommonLineNet` (no learned part), summed over bands, peak at a line pair that
is scored against the true common line (:func:`orirec.geometry.common_line_error`; hit: both angles within 10°,
either sense; for a point group, the nearest of the symmetry copies). Rows per store and image preparation:

- ``clean``: the store's reference volume re-projected at the same orientations (no CTF, shift or noise);
- ``raw``: the stored images (CTF, shifts, noise as simulated);
- ``phase_flipped``: multiplied by sign(CTF) with the stored CTF parameters;
- ``unshifted``: the stored shifts undone;
- ``phase_flipped_unshifted``: both.

Chance: about 2·(20°/360°)² ≈ 0.6 % of pairs.

Reproduce (stores from docs/guide/compare.md, "unseen proteins", at σ² 0, 4 and 16):
    python benchmarks/commonline_detectability.py runs/i9/test0.zarr runs/i9/test4.zarr runs/i9/test16.zarr \
        --out benchmarks/results/commonline_detectability.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from orirec.geometry import common_line_error
from orirec.imaging.ctf import ctf_from_params, phase_flip
from orirec.imaging.formation import apply_shifts
from orirec.models import build_model
from orirec.simulate.projector import project
from orirec.store import open_store
from orirec.store.reader import reference_volume

HIT_DEG = 10.0


def _score(images: np.ndarray, q: np.ndarray, n_angles: int, symmetry: str) -> dict:
    net = build_model({"family": "commonlines", "preset": "tiny", "n_angles": n_angles}, images.shape[-1]).eval()
    i, j = np.triu_indices(len(images), 1)
    with torch.no_grad():
        e = net(torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)))
        peak = net.peak_lines(e[i], e[j]).double().numpy()
    err = np.degrees(common_line_error(peak[:, 0], peak[:, 1], q[i], q[j], symmetry))
    return {
        "pairs": int(len(err)),
        "median_error_deg": float(np.median(err)),
        "hit_rate": float(np.mean(err < HIT_DEG)),
    }


def _prepared(store, rows: np.ndarray, protein: int) -> dict[str, np.ndarray]:
    raw = store.load_images(rows)
    ctf, shifts = store.ctf[rows], store.shifts[rows]
    flip = lambda x: np.asarray(phase_flip(x, ctf_from_params(ctf, store.box_px, store.pixel_size_A)))  # noqa: E731
    unshift = lambda x: np.asarray(apply_shifts(x, -shifts))  # noqa: E731
    return {
        "clean": project(reference_volume(store.group, protein), store.quaternions[rows]),
        "raw": raw,
        "phase_flipped": flip(raw),
        "unshifted": unshift(raw),
        "phase_flipped_unshifted": unshift(flip(raw)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("stores", nargs="+", type=Path)
    ap.add_argument("--proteins", type=int, nargs="+", default=[0, 8, 57])
    ap.add_argument("--n", type=int, default=60, help="images per protein (pairs: n(n-1)/2)")
    ap.add_argument("--n-angles", type=int, default=96, help="polar angles over [0, 2π) (3.75° apart)")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/commonline_detectability.json"))
    args = ap.parse_args()
    torch.set_num_threads(2)
    t0, rows_out = time.time(), []
    for path in args.stores:
        store = open_store(path)
        for p in args.proteins:
            rows = np.nonzero(store.protein == p)[0][: args.n]
            sym = store.symmetry(p)
            for prep, images in _prepared(store, rows, p).items():
                row = {"store": str(path), "sigma2": store.sigma2, "protein": int(p), "symmetry": sym}
                row["preparation"] = prep
                row.update(_score(images, store.quaternions[rows], args.n_angles, sym))
                rows_out.append(row)
                print(json.dumps(row))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "hit_deg": HIT_DEG,
                "n_angles": args.n_angles,
                "images_per_protein": args.n,
                "machine": platform.processor() or platform.machine(),
                "wall_s": round(time.time() - t0, 1),
                "rows": rows_out,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()

"""Projection-matching refinement after recovery (``orirec.estimators.projection_matching``): the error against the
ground truth after every round, and the time per round.

The refinement itself reads no ground truth; this benchmark reads it only to score each round. It runs
the refinement one round at a time, each call extending the previous one through the checkpoint.

Reproduce (session 15's 5j0n σ² 16 recovery, 1,650 images; the store and the recovery as in docs/research-log.md):
    python benchmarks/refine_projection_matching.py runs/i7/p16.zarr runs/s15/r_tpaper/orientations.csv \
        --out benchmarks/results/refine_projection_matching.json
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import torch

from orirec.estimators.projection_matching import DEFAULT_SCHEDULE, refine_projection_matching
from orirec.evaluate.metrics import orientation_metrics
from orirec.store import open_store
from orirec.store.orientations import read_orientations

KEYS = ("err_rot_median", "err_rot_mean", "err_o4_median", "acc10", "acc20")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("store", type=Path)
    p.add_argument("orientations", type=Path, help="a recovery's orientations.csv (store rows, quaternions)")
    p.add_argument("--box", type=int, default=None, help="matching box (px); default: pixel = resolution / 2")
    p.add_argument("--resolution", type=float, default=20.0, help="low-pass of the matching (Å)")
    p.add_argument("--rounds", type=int, default=len(DEFAULT_SCHEDULE))
    p.add_argument("--schedule", default=None, help="RADIUS:STEP per round (°), e.g. 9:3,3:1,6:2")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/refine_projection_matching.json"))
    args = p.parse_args()
    torch.set_num_threads(2)
    schedule = DEFAULT_SCHEDULE
    if args.schedule:
        schedule = tuple(tuple(float(x) for x in e.split(":")) for e in args.schedule.split(","))
    store = open_store(args.store)
    rows, q0 = read_orientations(args.orientations)
    q_true = store.quaternions[rows]
    images = store.load_images(rows)
    m = orientation_metrics(q0, q_true)
    out = [{"round": 0, **{k: m[k] for k in KEYS}}]
    print(json.dumps(out[-1]), flush=True)
    box = None
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(1, args.rounds + 1):
            t0 = time.perf_counter()
            res = refine_projection_matching(
                images, q0, store.pixel_size_A, rounds=r, schedule=schedule, resolution_A=args.resolution,
                box_px=args.box, seed=args.seed, checkpoint=Path(tmp) / "refine.npz",
            )  # fmt: skip
            m = orientation_metrics(res.quaternions, q_true)
            out.append({**res.rounds[-1], "wall_s": round(time.perf_counter() - t0, 1), **{k: m[k] for k in KEYS}})
            box = res.box_px
            print(json.dumps(out[-1]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    summary = {"store": str(args.store), "orientations": str(args.orientations), "n_images": len(rows)}
    summary |= {"box_px": box, "resolution_A": args.resolution, "schedule_deg": schedule, "torch_threads": 2}
    summary |= {"machine": platform.processor() or platform.machine(), "rounds": out}
    args.out.write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()

"""Benchmark: ab initio on every image each iteration against growing minibatches, as the image count grows.

Reproduce: python benchmarks/ab_initio_minibatch.py --out benchmarks/results/ab_initio_minibatch.json
One test protein (default 1nca, 6,404 atoms) simulated at 64 px, 4.7 Å, CTF, ±2 px shifts, σ² 16 (the unseen-
protein setting); for each N: ab initio (restarts and consensus as `orirec ab-initio`), without and with
minibatches, in this process. Rows: wall time, per-iteration time of the minibatch iterations and of the last
(full) pass, peak RSS of the process so far (MB), err_rot median and acc@20 against the truth.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
from _meta import ROOT, run_meta, simulate_unseen_protein

from orirec.estimators.ab_initio import ab_initio
from orirec.evaluate.metrics import orientation_metrics
from orirec.imaging.ctf import ctf_from_params, phase_flip
from orirec.store import open_store


def _images(source: str, n: int, folder: Path):
    simulate_unseen_protein(source, n, folder / "s.zarr", seed=1)
    s = open_store(folder / "s.zarr")
    rows = np.arange(s.n_images)
    images = s.load_images(rows)
    flipped = np.asarray(phase_flip(images, ctf_from_params(s.ctf_params(rows), s.box_px, s.pixel_size_A)))
    return flipped, s.quaternions[rows], s.pixel_size_A, float(s.max_shift_px or 0.0)


def _row(images, q_true, px, max_shift, minibatch, restarts: int, seed: int) -> dict:
    t0 = time.perf_counter()
    res = ab_initio(images, px, max_shift_px=max_shift, restarts=restarts, minibatch=minibatch, seed=seed)
    wall = time.perf_counter() - t0
    m = orientation_metrics(res.quaternions, q_true)
    its = res.iterations
    return {
        "n": len(images),
        "minibatch": minibatch,
        "restarts": restarts,
        "wall_s": wall,
        "iteration_s_median": float(np.median([h["time_s"] for h in its[:-1]])),
        "full_pass_s": float(its[-1]["time_s"]),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "err_rot_median": m["err_rot_median"],
        "acc20": m["acc20"],
        "restarts_averaged": len(res.members),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", default=str(ROOT.parent / "shared" / "data" / "structures" / "1nca.cif.gz"))
    p.add_argument("--sizes", type=int, nargs="+", default=[1500, 10000])
    p.add_argument("--minibatch", type=int, nargs=2, default=[200, 2000], help="first and last minibatch (images)")
    p.add_argument("--full-max", type=int, default=1500, help="largest N also run on every image each iteration")
    p.add_argument("--restarts", type=int, default=6)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/ab_initio_minibatch.json"))
    a = p.parse_args()
    meta, rows = run_meta(), []
    for n in a.sizes:
        with tempfile.TemporaryDirectory(prefix="orirec-bench-ai-") as tmp:
            images, q, px, shift = _images(a.source, n, Path(tmp))
        modes = ([None] if n <= a.full_max else []) + [tuple(a.minibatch)]
        for mb in modes:
            rows.append(_row(images, q, px, shift, mb, a.restarts, a.seed))
            print(json.dumps(rows[-1]), flush=True)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps({"meta": meta, "source": a.source, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""Benchmark: orientation recovery from exact (and noisy) distances — time and accuracy vs N and noise.

Reproduce: python benchmarks/recover_oracle.py --out benchmarks/results/recover_oracle.json
Each row is one `orirec recover --oracle` run (full graph up to --max-full, kNN graph above).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from _meta import run_meta

from orirec.config import RecoverConfig
from orirec.studies.oracle import oracle_recover

KEYS = ("n", "n_edges", "distance_noise_rad", "time_recover_s", "time_gauge_s", "time_total_s", "err_o4_median",
        "err_rot_median", "err_dir_median", "acc10")  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--sizes", type=int, nargs="+", default=[200, 1650])
    p.add_argument("--noise", type=float, nargs="+", default=[0.0, 0.2, 0.4, 0.8], help="σ of d (rad)")
    p.add_argument("--noise-n", type=int, default=1650, help="N of the noise-sensitivity rows")
    p.add_argument("--max-full", type=int, default=3000, help="largest N on a full graph")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/recover_oracle.json"))
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    meta = {**run_meta(), "threads": a.threads}
    rows = []
    plan = [(n, 0.0) for n in a.sizes] + [(a.noise_n, s) for s in a.noise if s > 0]
    for n, sigma in plan:
        cfg = RecoverConfig(graph="full" if n <= a.max_full else "knn")
        t0 = time.perf_counter()
        res = oracle_recover(n, seed=a.seed, distance_noise_rad=sigma, cfg=cfg)
        row = {k: res.get(k) for k in KEYS} | {"graph": cfg.graph, "wall_s": time.perf_counter() - t0}
        rows.append(row)
        print(json.dumps(row), flush=True)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()

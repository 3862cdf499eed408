"""Benchmark: recovery time vs N and edges, whole-graph vs partitioned, 1 vs 2 workers (oracle distances).

Reproduce: python benchmarks/recover_scaling.py --out benchmarks/results/recover_scaling.json
Rows: N = 1650 on the full graph in one process; N = 10,000 and 100,000 on a kNN graph (of the oracle's
sign-invariant orientation features) with the whole-graph solver, and partitioned (k-means parts,
block-Jacobi rounds) on 1 worker (in-process) and 2 workers (Ray actors). Exact distances; the gauge is
resolved from in-plane copies as in a real run, so err_rot is honest. The load average of the machine is
recorded before and after each row (other jobs on the machine slow the timings down).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

from orirec.config import RecoverConfig
from orirec.studies.oracle import oracle_recover

KEYS = ("n", "n_edges", "partitions", "num_workers", "time_graph_s", "time_recover_s", "time_gauge_s",
        "time_total_s", "l_or", "err_o4_median", "err_rot_median", "err_dir_median", "acc10")  # fmt: skip


def plan(sizes: list[int], max_full: int, parts: int) -> list[tuple[int, str, int, int]]:
    """(n, graph, partitions, num_workers) per row."""
    rows = []
    for n in sizes:
        if n <= max_full:
            rows.append((n, "full", 1, 1))
        else:
            rows += [(n, "knn", 1, 1), (n, "knn", parts, 1), (n, "knn", parts, 2)]
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[1650, 10_000, 100_000])
    p.add_argument("--max-full", type=int, default=3000, help="largest N on a full graph")
    p.add_argument("--knn-k", type=int, default=20)
    p.add_argument("--random-edges", type=int, default=5, help="random long-range edges per image")
    p.add_argument("--partitions", type=int, default=4)
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--skip-whole-above", type=int, default=None, help="no whole-graph kNN row above this N")
    p.add_argument("--no-gauge", action="store_true", help="skip gauge resolution (err_rot is then meaningless)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/recover_scaling.json"))
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    rows = []
    for n, graph, parts, workers in plan(a.sizes, a.max_full, a.partitions):
        if graph == "knn" and parts == 1 and a.skip_whole_above is not None and n > a.skip_whole_above:
            continue
        cfg = RecoverConfig(
            graph=graph, knn_k=a.knn_k, n_random_edges=a.random_edges, partitions=parts, num_workers=workers,
            rounds=a.rounds, gauge=not a.no_gauge,
        )  # fmt: skip
        load0 = os.getloadavg()[0]
        t0 = time.perf_counter()
        res = oracle_recover(n, seed=a.seed, cfg=cfg)
        row = {k: res.get(k) for k in KEYS} | {
            "graph": graph,
            "rounds": a.rounds if parts > 1 else None,
            "wall_s": time.perf_counter() - t0,
            "load_avg_1min_before_after": [load0, os.getloadavg()[0]],
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    if any(r["num_workers"] > 1 for r in rows):
        import ray

        ray.shutdown()
    a.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "threads": a.threads,
        "torch": torch.__version__,
        "knn_k": a.knn_k,
        "random_edges": a.random_edges,
        "command": " ".join(["python", *sys.argv]),
    }
    a.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()

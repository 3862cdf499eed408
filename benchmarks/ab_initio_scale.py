"""Benchmark: ab initio at dataset scale (restarts on a subset, then passes over every image), as N grows.

Reproduce: python benchmarks/ab_initio_scale.py --out benchmarks/results/ab_initio_scale.json
(100,000 images, 2 workers: add ``--sizes 100000 --workers 2 --append``.)
One test protein (default 1nca, 6,404 atoms) simulated at 64 px, 4.7 Å, CTF, ±2 px shifts, σ² 16 (the unseen-
protein setting). For each N, ``orirec ab-initio`` (6 restarts on a 1,500-image subset, a global pass over the
others, 4 local rounds over all) runs as a child process, first with 1 worker, then with 2 Ray workers reading
the same finished restarts back (so its passes alone are timed). Rows: wall time of the subset stage, of the
global pass and of the passes after it (local rounds and the re-pose), peak memory of the whole process tree
(the sum of its processes' PSS, sampled every 0.2 s; Ray's own processes included), then ``orirec evaluate``:
err_rot median and acc@20 after the global pass and after the rounds, and the FSC 0.5 (Å) of the map against
the reference.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
from _meta import ROOT, run_meta, simulate_unseen_protein

ORIREC = str(Path(sys.executable).parent / "orirec")  # the console script of this environment


def _peak_rss_mb(cmd: list[str]) -> tuple[float, float]:
    """Run ``cmd``; return (wall s, peak memory in MB of its whole process tree: the sum of the processes'
    proportional set sizes, so that pages they share, Ray's object store and libraries, count once)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd)
    peak, top = [0.0], psutil.Process(proc.pid)

    def sample() -> None:
        while proc.poll() is None:
            try:
                tree = [top, *top.children(recursive=True)]
                peak[0] = max(peak[0], sum(p.memory_full_info().pss for p in tree if p.is_running()) / 2**20)
            except psutil.Error:
                pass
            time.sleep(0.2)

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    if proc.wait() != 0:
        raise SystemExit(f"{' '.join(cmd)}: exit {proc.returncode}")
    watcher.join()
    return time.perf_counter() - t0, peak[0]


def _run(store: Path, out: Path, workers: int, a) -> dict:
    cmd = [ORIREC, "ab-initio", str(store), "--out", str(out), "--subset",
           str(a.subset), "--restarts", str(a.restarts), "--refine-rounds", str(a.rounds), "--num-workers",
           str(workers), "--no-track", "--no-progress"]  # fmt: skip
    wall, rss = _peak_rss_mb(cmd)
    res = json.loads((out / "ab_initio_result.json").read_text())
    passes = res["ab_initio_passes"]
    ev = out / "evaluate"
    subprocess.run([ORIREC, "evaluate", str(store), "--orientations",
                    str(out / "orientations.csv"), "--out", str(ev)], check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    m = json.loads((ev / "metrics.json").read_text())
    return {
        "n": res["n_images"],
        "workers": workers,
        "subset": a.subset,
        "wall_s": wall,
        "subset_s": None if res["ab_initio_restarts_read_back"] else passes[0].get("subset_s"),
        "global_pass_s": passes[0]["time_s"],
        "local_rounds_s": sum(p["time_s"] for p in passes[1:]),
        "peak_rss_mb": rss,
        "err_rot_median_global": m.get("unrefined_err_rot_median"),
        "err_rot_median": m["err_rot_median"],
        "acc20": m["acc20"],
        "fsc_05_A": m.get("fsc_ref_recovered_05_A"),  # the map of these orientations (registered) vs the reference
        "fsc_05_A_true_poses": m.get("fsc_ref_true_05_A"),  # the same images at their true orientations
        "fsc_half_0143_A": res.get("refine_fsc_half_0143_A"),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", default=str(ROOT.parent / "shared" / "data" / "structures" / "1nca.cif.gz"))
    p.add_argument("--sizes", type=int, nargs="+", default=[1500, 10000])
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--subset", type=int, default=1500)
    p.add_argument("--restarts", type=int, default=6)
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/ab_initio_scale.json"))
    p.add_argument("--append", action="store_true", help="add the rows to --out's (its meta kept)")
    a = p.parse_args()
    meta, rows, earlier = run_meta(), [], []
    if a.append and a.out.is_file():
        old = json.loads(a.out.read_text())
        rows, earlier = old["rows"], [*old.get("earlier_meta", []), old["meta"]]
    for n in a.sizes:
        with tempfile.TemporaryDirectory(prefix="orirec-bench-scale-") as tmp:
            store = Path(tmp) / "s.zarr"
            simulate_unseen_protein(a.source, n, store, a.seed)
            for k, w in enumerate(a.workers):
                out = Path(tmp) / f"w{w}"
                if k:  # the same restarts, read back: this run times the passes
                    out.mkdir()
                    shutil.copy(Path(tmp) / f"w{a.workers[0]}" / "ab_initio_checkpoint.npz", out)
                rows.append(_run(store, out, w, a))
                print(json.dumps(rows[-1]), flush=True)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    out = {"meta": meta, "source": a.source, "rows": rows} | ({"earlier_meta": earlier} if earlier else {})
    a.out.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()

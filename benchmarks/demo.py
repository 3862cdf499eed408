"""Benchmark: the main job (`orirec demo`, `make demo`) — orientation errors before and after refinement, and time.

Reproduce: python benchmarks/demo.py            (a fresh run folder each time; ~7 min on 2 cores)
           python benchmarks/docs.py            (then: the README's demo numbers, regenerated from the JSON)
Writes benchmarks/results/demo.json: the config, the numbers `orirec demo` prints, stage times, and provenance.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from _meta import run_meta

from orirec.pipeline.demo import demo_config, demo_summary
from orirec.pipeline.run import run_all


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="small", help="the demo's preset (small: what `make demo` runs)")
    p.add_argument("--run-dir", type=Path, default=None, help="run folder (default: a fresh temporary one)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/demo.json"))
    a = p.parse_args()
    meta = run_meta()
    cfg = demo_config(a.preset, name="demo", tracking=False)
    with tempfile.TemporaryDirectory(prefix="orirec-bench-demo-") as tmp:
        run_dir = a.run_dir or Path(tmp) / "demo"
        res = run_all(cfg, run_dir, train_progress=False)
    summary = demo_summary(res)
    out = {"meta": meta, "preset": a.preset, "command": "orirec demo", "config": cfg.model_dump(mode="json"),
           **summary}  # fmt: skip
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps({k: out[k] for k in ("before_refinement", "after_refinement", "total_time_s")}, indent=2))


if __name__ == "__main__":
    sys.exit(main())

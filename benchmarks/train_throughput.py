"""Benchmark: distance-learning training throughput per encoder family, and 1 vs 2 Ray Train workers.

Reproduce (the σ² = 16 store of the down-sampling rows first):
    orirec simulate pseudo:0 pseudo:1 --n-per-structure 600 --box 64 --pixel-size 2.0 --sigma2 16 --out /tmp/s16.zarr
    python benchmarks/train_throughput.py --ray --downsample-study /tmp/s16.zarr \
        --out benchmarks/results/train_throughput.json

Rows:
- ``step``: one all-pairs optimizer step (orirec.train.steps.all_pairs_loss, forward + backward + Adam) on
  random images, 1 torch thread, per family ("small" preset) and box (64, 116 px). ``pairs_per_s`` counts the
  sampled pairs of a step (batch_size, as the loop's ``pairs_per_s``); ``supervised_pairs_per_s`` counts every
  within-protein pair that enters the loss (m(m-1)/2 for m distinct images).
- ``ray`` (with --ray): the training loop on a small simulated store through Ray Train with 1 and 2 workers
  of 1 CPU (gloo DDP), the loop's own pairs/s of the last epoch (global) and per worker, and the wall time
  with Ray start-up.

- ``downsample`` (with --downsample-study STORE): validation MAE (rad) of the vgg "small" encoder after 5 short
  epochs on a σ² = 16 store, without and with the 2x Fourier down-sampling front end (``model.downsample``).

The machine is shared: the JSON records the load average before and after each row.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from orirec.models import build_model
from orirec.train.steps import all_pairs_loss, make_loss


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _one_step(net, opt, pair_loss, batch) -> None:
    opt.zero_grad(set_to_none=True)
    all_pairs_loss(net, pair_loss, *batch).backward()
    opt.step()


def step_rows(families: list[str], boxes: list[int], batch_size: int, steps: int, preset: str) -> list[dict]:
    torch.set_num_threads(1)
    rows = []
    pair_loss = make_loss("l2", reduction="none")
    for box in boxes:
        for family in families:
            torch.manual_seed(0)
            net = build_model({"family": family, "preset": preset}, box)
            opt = torch.optim.Adam(net.parameters(), lr=1e-3)
            m = batch_size  # batch_size/2 pairs -> up to batch_size distinct images
            x = torch.randn(m, box, box)
            q = torch.nn.functional.normalize(torch.randn(m, 4, dtype=torch.float64), dim=1)
            prot = torch.zeros(m, dtype=torch.int64)
            load_before = _load()

            batch = (x, q, prot)
            _one_step(net, opt, pair_loss, batch)  # warm-up (oneDNN kernels)
            t0 = time.perf_counter()
            for _ in range(steps):
                _one_step(net, opt, pair_loss, batch)
            dt = (time.perf_counter() - t0) / steps
            rows.append(
                {
                    "family": family,
                    "preset": preset,
                    "box_px": box,
                    "batch_size": batch_size,
                    "s_per_step": round(dt, 4),
                    "pairs_per_s": round(batch_size / dt, 1),
                    "images_per_s": round(m / dt, 1),
                    "supervised_pairs_per_s": round(m * (m - 1) / 2 / dt, 1),
                    "n_params": sum(p.numel() for p in net.parameters()),
                    "threads": 1,
                    "load_before": load_before,
                    "load_after": _load(),
                }
            )
            print(rows[-1], flush=True)
    return rows


def ray_rows(workers: list[int], box: int, epochs: int) -> list[dict]:
    from orirec.config import SimulateConfig
    from orirec.distributed.ray_train import train_with_ray
    from orirec.distributed.runtime import ensure_ray
    from orirec.simulate.to_store import simulate_to_store

    ensure_ray(num_cpus=max(workers))  # one local cluster big enough for every row (Ray is started once)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "s.zarr"
        simulate_to_store(SimulateConfig(inputs=["pseudo:0"], n_per_structure=512, box_px=box, sigma2=1.0), store)
        for n in workers:
            cfg = {
                "store": str(store),
                "out_dir": str(Path(tmp) / f"w{n}"),
                "model": {"preset": "small"},
                "epochs": epochs,
                "batch_size": 64,
                "pairs_per_epoch": 1280,
                "val_pairs": 256,
                "optimizer": "adam",
            }
            load_before = _load()
            t0 = time.perf_counter()
            metrics = train_with_ray(cfg, n)
            wall = time.perf_counter() - t0
            pps = float(metrics.get("pairs_per_s", float("nan")))
            rows.append(
                {
                    "workers": n,
                    "box_px": box,
                    "pairs_per_s_global": round(pps, 1),
                    "pairs_per_s_per_worker": round(pps / n, 1),
                    "wall_s_with_startup": round(wall, 1),
                    "epochs": epochs,
                    "load_before": load_before,
                    "load_after": _load(),
                }
            )
            print(rows[-1], flush=True)
    return rows


def downsample_rows(store: Path, factors: list[int]) -> list[dict]:
    from orirec.train import train_loop_per_worker

    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for ds in factors:
            t0, load_before = time.perf_counter(), _load()
            cfg = {
                "store": str(store),
                "out_dir": str(Path(tmp) / f"ds{ds}"),
                "model": {"family": "vgg", "preset": "small", "downsample": ds},
                "epochs": 5,
                "batch_size": 64,
                "pairs_per_epoch": 3200,
                "val_pairs": 2000,
                "optimizer": "adam",
                "seed": 0,
                "num_threads": 1,  # as set above (the loop's default is TrainConfig's, 2)
            }
            r = train_loop_per_worker(cfg)
            rows.append(
                {
                    "downsample": ds,
                    "store": str(store),
                    "best_val_mae_rad": round(r["best_val_mae"], 4),
                    "val_mae_per_epoch": [round(h["val_mae"], 4) for h in r["history"]],
                    "pairs_per_s": round(r["pairs_per_s"], 1),
                    "wall_s": round(time.perf_counter() - t0, 1),
                    "load_before": load_before,
                    "load_after": _load(),
                }
            )
            print(rows[-1], flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/train_throughput.json"))
    ap.add_argument("--families", default="vgg,resnet,polar")
    ap.add_argument("--boxes", default="64,116")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--preset", default="small")
    ap.add_argument("--ray", action="store_true", help="also time Ray Train with 1 and 2 workers")
    ap.add_argument("--ray-box", type=int, default=48)
    ap.add_argument("--ray-epochs", type=int, default=2)
    ap.add_argument("--downsample-study", type=Path, default=None, help="σ² = 16 store for the down-sampling rows")
    a = ap.parse_args()
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    result = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__},
        "note": "shared 2-core machine; other jobs ran at the same time (see load averages per row)",
        "step": step_rows(a.families.split(","), [int(b) for b in a.boxes.split(",")], a.batch_size, a.steps, a.preset),
    }
    if a.ray:
        result["ray"] = ray_rows([1, 2], a.ray_box, a.ray_epochs)
    if a.downsample_study:
        result["downsample"] = downsample_rows(a.downsample_study, [1, 2])
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()

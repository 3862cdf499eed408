"""Benchmark: simulation speed (projections/s per CPU core) and projector accuracy.

Reproduce: python benchmarks/simulate_throughput.py --out benchmarks/results/simulate_throughput.json

Rows:
- ``projector``: the projector alone, 1 thread: trilinear Fourier slices (backend torch) per (box, pad,
  sampling, compile), and type-2 NUFFT slices (backend nufft, eps 1e-3, the CPU default).
- ``formation``: a whole shard (256 images) as the simulator makes it, per backend (projection + sub-pixel
  shift + CTF + noise at σ² = 16 + SNR), 1 thread, for a ~5,000-atom and a ~50,000-atom structure of
  ../shared/data (the atom count changes the density step only; the pixel size is chosen so the particle
  fits the box).
- ``store``: ``orirec simulate`` end to end into a Zarr store with 1 and 2 Ray workers (1 thread each).
- ``accuracy``: relative L2 error against the analytic line integral of Gaussian atoms.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from orirec.config import SimulateConfig
from orirec.geometry import quat_to_matrix, uniform_quaternions
from orirec.simulate.nufft_projector import NufftProjector
from orirec.simulate.projector import FourierSliceProjector
from orirec.simulate.shards import ShardSimulator
from orirec.simulate.to_store import simulate_to_store
from orirec.structures import atoms_to_density, pseudo_protein, read_atoms

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "structures"
STRUCTURES = {"5k_atoms": "3mj9.cif.gz", "50k_atoms": "4v4r_30s.cif.gz"}
EXTENT_A = {"5k_atoms": 103.3, "50k_atoms": 240.2}  # max extent (Å), from the manifest


class _Prepared(Exception):
    """Raised by :func:`_prepare_only` to stop ``simulate_to_store`` once the store and volumes exist."""


def _prepare_only(*_args) -> None:
    raise _Prepared


def _prepare(cfg: SimulateConfig, store: Path) -> None:
    """Create the store and its reference volumes without simulating any shard (outside the timings)."""
    try:
        simulate_to_store(cfg, store, overwrite=True, run_shards=_prepare_only)
    except _Prepared:
        pass


def _rate(fn, n_images: int, repeats: int = 3) -> float:
    """Best images/s over ``repeats`` calls of ``fn`` (after one warm-up call)."""
    fn()
    best = min(_timed(fn) for _ in range(repeats))
    return n_images / best


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _projector(vol, backend: str, pad: int, sampling: str, compile_: bool):
    if backend == "nufft":
        return NufftProjector(vol, sampling=sampling)
    return FourierSliceProjector(vol, pad=pad, sampling=sampling, compile=compile_)


def bench_projector(box: int, backend: str, pad: int, sampling: str, compile_: bool, batch: int) -> dict:
    atoms = pseudo_protein(0, n_atoms=2000, radius_A=box * 2.0 / 4)
    proj = _projector(atoms_to_density(atoms, box, 2.0), backend, pad, sampling, compile_)
    q = uniform_quaternions(batch, seed=1)
    with torch.no_grad():
        rate = _rate(lambda: proj.project(q), batch)
    return {
        "kind": "projector",
        "backend": backend,
        "box_px": box,
        "pad": pad if backend == "torch" else None,
        "sampling": proj.sampling,
        "compile": compile_,
        "img_per_s_per_core": round(rate, 1),
    }


def bench_formation(name: str, box: int, n: int, backend: str, tmp: Path, compile_: str = "off") -> dict:
    px = EXTENT_A[name] / (0.8 * box)
    src = SHARED / STRUCTURES[name]
    t0 = time.perf_counter()
    atoms = read_atoms(src)
    atoms_to_density(atoms, box, px)
    t_density = time.perf_counter() - t0
    cfg = SimulateConfig(
        inputs=[str(src)],
        n_per_structure=n,
        box_px=box,
        pixel_size_A=px,
        sigma2=16.0,
        shift_px=2.0,
        ctf=True,
        backend=backend,
        shard_size=n,
        compile=compile_,
    )
    store = tmp / f"{name}_{box}.zarr"
    _prepare(cfg, store)
    sim = ShardSimulator(store, cfg)
    rate = _rate(lambda: sim.simulate(0), n)
    return {
        "kind": "formation",
        "structure": src.name,
        "n_atoms": len(atoms.atomic_number),
        "box_px": box,
        "pixel_size_A": round(px, 3),
        "backend": backend,
        "pad": cfg.pad if backend == "torch" else None,
        "compile": compile_ if backend == "torch" else None,
        "ctf": True,
        "sigma2": 16.0,
        "shift_px": 2.0,
        "density_time_s": round(t_density, 2),
        "img_per_s_per_core": round(rate, 1),
    }


def bench_store(workers: int, box: int, n_structures: int, n: int, tmp: Path) -> dict:
    from orirec.distributed.simulate import ray_shard_runner

    cfg = SimulateConfig(
        inputs=[f"pseudo:{i}" for i in range(n_structures)],
        n_per_structure=n,
        box_px=box,
        pixel_size_A=2.0,
        sigma2=16.0,
        shift_px=2.0,
        ctf=True,
        shard_size=256,
    )
    store = tmp / f"store_{workers}.zarr"
    _prepare(cfg, store)
    runner = None
    if workers > 1:
        from orirec.distributed.runtime import ensure_ray

        ensure_ray(num_cpus=workers)  # Ray's start-up (~8 s) is outside the timing; actor creation is inside
        runner = ray_shard_runner(workers)
    t0 = time.perf_counter()
    simulate_to_store(cfg, store, run_shards=runner)
    wall = time.perf_counter() - t0
    total = n * n_structures
    return {
        "kind": "store",
        "workers": workers,
        "box_px": box,
        "n_images": total,
        "wall_s": round(wall, 2),
        "img_per_s": round(total / wall, 1),
        "note": "Ray already started; includes actor creation" if workers > 1 else "in-process",
    }


def bench_accuracy(box: int, backend: str, pad: int, sampling: str) -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    px, sig = 1.5, 1.0
    atoms = pseudo_protein(0, n_atoms=800, radius_A=box * px / 4)
    vol = atoms_to_density(atoms, box, px, resolution_A=sig * px / 0.225)
    q = uniform_quaternions(24, seed=5)
    imgs = _projector(vol, backend, pad, sampling, False).project(q).numpy()
    from reference_projection import analytic_projection, rel_l2

    errs = [
        rel_l2(img, analytic_projection(atoms, R, box, px, sig)) for img, R in zip(imgs, quat_to_matrix(q), strict=True)
    ]
    return {
        "kind": "accuracy",
        "backend": backend,
        "box_px": box,
        "pad": pad if backend == "torch" else None,
        "sampling": sampling,
        "rel_l2_mean": round(float(np.mean(errs)), 5),
        "rel_l2_max": round(float(np.max(errs)), 5),
        "mass_ratio": round(float(imgs.sum((1, 2)).mean() / vol.sum()), 5),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--boxes", type=int, nargs="+", default=[64, 128])
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--skip-compile", action="store_true", help="leave out the torch.compile rows")
    p.add_argument("--skip-store", action="store_true", help="leave out the Ray end-to-end rows")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/simulate_throughput.json"))
    a = p.parse_args()
    torch.set_num_threads(1)
    os.environ["ORIREC_CACHE"] = "off"  # time the density step, not the cache
    rows = []
    for box in a.boxes:
        for backend, pad, sampling in (("torch", 2, "padded"), ("torch", 2, "image"), ("torch", 3, "image"),
                                       ("nufft", None, "image"), ("nufft", None, "padded")):  # fmt: skip
            rows.append(bench_accuracy(box, backend, pad, sampling))
            for compile_ in (False,) if a.skip_compile or backend == "nufft" else (False, True):
                rows.append(bench_projector(box, backend, pad, sampling, compile_, a.batch))
            print(rows[-1], flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        if SHARED.exists():
            for name in STRUCTURES:
                for box in a.boxes:
                    runs = [("nufft", "off"), ("torch", "off")] + ([] if a.skip_compile else [("torch", "on")])
                    for backend, compile_ in runs:
                        rows.append(bench_formation(name, box, a.batch, backend, Path(tmp), compile_))
                        print(rows[-1], flush=True)
        if not a.skip_store:
            for workers in (1, 2):
                rows.append(bench_store(workers, 64, 8, 4096, Path(tmp)))
                print(rows[-1], flush=True)
    meta = {
        "machine": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "threads_per_worker": 1,
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()

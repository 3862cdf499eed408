"""Provenance of a benchmark result: commit, date, machine (shared by the benchmarks that write JSON)."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run_meta() -> dict:
    """Commit SHA (with ``+dirty`` when the tree has uncommitted changes), UTC date, CPU, cores, load, torch."""
    import torch

    sha = _git("rev-parse", "HEAD")
    dirty = bool(_git("status", "--porcelain", "--untracked-files=no"))
    return {
        "commit": sha + ("+dirty" if dirty and sha else ""),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def simulate_unseen_protein(source: str, n: int, path: Path, seed: int = 1) -> None:
    """A store of ``n`` projections of ``source`` at the unseen-protein setting of the ab initio benchmarks:
    64 px, 4.7 Å, CTF, ±2 px shifts, σ² 16, shards of 1,024 images."""
    from orirec.config import SimulateConfig
    from orirec.simulate.to_store import simulate_to_store

    cfg = SimulateConfig(inputs=[source], n_per_structure=n, box_px=64, pixel_size_A=4.7, ctf=True, shift_px=2.0,
                         sigma2=16.0, seed=seed, shard_size=1024)  # fmt: skip
    simulate_to_store(cfg, path)

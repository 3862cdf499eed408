"""Small synthetic data shared by tests in several folders (importable: tests/ is on sys.path)."""

import shutil
from pathlib import Path

import numpy as np

from orirec.geometry import quat_to_matrix


def blob_projections(q: np.ndarray, box: int, seed: int) -> np.ndarray:
    """Projections (N, box, box) of five 3D Gaussian blobs rotated by q (a protein per seed)."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(-0.35, 0.35, (5, 3)) * box
    weights, widths = rng.uniform(0.5, 1.5, 5), rng.uniform(1.5, 3.0, 5)
    p = np.einsum("nij,kj->nki", quat_to_matrix(q), centres)
    ax = np.arange(box) - box // 2
    gx = np.exp(-((ax[None, None, :] - p[..., 0:1]) ** 2) / (2 * widths[:, None] ** 2))
    gy = np.exp(-((ax[None, None, :] - p[..., 1:2]) ** 2) / (2 * widths[:, None] ** 2))
    return np.einsum("k,nky,nkx->nyx", weights, gy, gx).astype(np.float32)


def short_run(store, out_dir, model: dict) -> dict:
    """A 6-epoch training config (32-image batches, adam 3e-3, seed 3) for a pair-distance family on ``store``."""
    return {
        "store": str(store),
        "out_dir": str(out_dir),
        "model": model,
        "epochs": 6,
        "batch_size": 32,
        "pairs_per_epoch": 768,
        "val_pairs": 64,
        "val_fraction": 0.2,
        "optimizer": "adam",
        "lr": 3e-3,
        "seed": 3,
    }


def copy_and_export(store: Path, root: Path) -> Path:
    """A copy ``root/s.zarr`` of ``store`` (the session's ``tiny_store``: 30 images of pseudo:1, 24 px, 3 Å) and its
    export ``root/exp/p.star`` + ``p.mrcs``; returns ``root``. Tests may change the copy, never the shared store."""
    from orirec.pipeline.particles import export_particles

    shutil.copytree(store, root / "s.zarr")
    export_particles(root / "s.zarr", root / "exp" / "p.star")
    return root

"""Small synthetic data shared by tests in several folders (importable: tests/ is on sys.path)."""

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


def simulate_and_export(root: Path, source: str = "pseudo:1") -> Path:
    """A simulated store ``root/s.zarr`` (30 images of ``source``, 24 px, 3 Å) and its export ``root/exp/p.star``
    + ``p.mrcs``; returns ``root``."""
    from orirec.config import SimulateConfig
    from orirec.pipeline.particles import export_particles
    from orirec.simulate.to_store import simulate_to_store

    cfg = SimulateConfig(inputs=[source], n_per_structure=30, box_px=24, pixel_size_A=3.0, shard_size=16)
    simulate_to_store(cfg, root / "s.zarr")
    export_particles(root / "s.zarr", root / "exp" / "p.star")
    return root

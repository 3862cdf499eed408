"""Compute and write whole shards of a projection store: the unit of work of one writer.

Everything random is drawn from the seed for all N images (orientations, shifts, CTF parameters)
or from ``(seed, shard)`` (noise), so any process can compute any shard and a resumed or
distributed run writes exactly the images of an uninterrupted local one.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

from orirec.config import SimulateConfig
from orirec.geometry import uniform_euler_quaternions, uniform_quaternions
from orirec.simulate.ctf import apply_ctf, ctf_from_params, sample_ctf_params
from orirec.simulate.formation import add_noise, apply_shifts, snr_disk
from orirec.simulate.projector import FourierSliceProjector
from orirec.store import StoreWriter, reference_volume, shard_rows

__all__ = ["ShardSimulator", "sample_ctf", "sample_orientations", "sample_shifts"]


def sample_orientations(cfg: SimulateConfig, n: int) -> np.ndarray:
    """(n, 4) quaternions from the configured orientation distribution."""
    if cfg.orientations == "uniform":
        return uniform_quaternions(n, seed=cfg.seed)
    return uniform_euler_quaternions(n, seed=cfg.seed, tilt_range=tuple(cfg.tilt_range_rad))


def sample_shifts(cfg: SimulateConfig, n: int) -> np.ndarray:
    """(n, 2) shifts in px, uniform in [-shift_px, shift_px] per axis (zeros when shift_px is 0)."""
    if cfg.shift_px == 0:
        return np.zeros((n, 2), dtype=np.float32)
    rng = np.random.default_rng([cfg.seed, 1])
    return rng.uniform(-cfg.shift_px, cfg.shift_px, size=(n, 2)).astype(np.float32)


def sample_ctf(cfg: SimulateConfig, n: int) -> np.ndarray | None:
    """(n, 7) CTF parameters (store column order) or None when the config applies no CTF."""
    if not cfg.ctf:
        return None
    return sample_ctf_params(
        n,
        seed=[cfg.seed, 3],
        defocus_range_A=tuple(cfg.defocus_range_A),
        astigmatism_A=tuple(cfg.astigmatism_A),
        voltage_kV=cfg.voltage_kV,
        cs_mm=cfg.cs_mm,
        amp_contrast=cfg.amp_contrast,
        bfactor_range_A2=tuple(cfg.bfactor_range_A2),
    )


class ShardSimulator:
    """Simulates shards of the store at ``path`` (created by ``orirec.simulate.to_store``); one per writer.

    Holds the Fourier transforms of at most ``max_volumes`` structures at a time (least recently
    used first out), read from the store's reference volumes.
    """

    def __init__(self, path: str | Path, cfg: SimulateConfig, max_volumes: int = 4):
        self.writer = StoreWriter(path)
        self.cfg = cfg
        n = self.writer.n_images
        self.quats = sample_orientations(cfg, n)
        self.shifts = sample_shifts(cfg, n)
        self.ctf = sample_ctf(cfg, n)
        self.protein = np.repeat(np.arange(n // cfg.n_per_structure, dtype=np.int32), cfg.n_per_structure)
        self.max_volumes = max_volumes
        self._projectors: OrderedDict[int, FourierSliceProjector] = OrderedDict()

    def _projector(self, p: int) -> FourierSliceProjector:
        if p in self._projectors:
            self._projectors.move_to_end(p)
        else:
            if len(self._projectors) >= self.max_volumes:
                self._projectors.popitem(last=False)
            volume = reference_volume(self.writer.group, p)
            self._projectors[p] = FourierSliceProjector(volume, pad=self.cfg.pad)
        return self._projectors[p]

    def simulate(self, k: int) -> dict[str, np.ndarray]:
        """The arrays of shard ``k`` (images after projection, shift, CTF and noise; and their metadata)."""
        cfg = self.cfg
        start, stop = shard_rows(k, self.writer.n_images, self.writer.shard_size)
        prot = self.protein[start:stop]
        clean = np.empty((stop - start, cfg.box_px, cfg.box_px), dtype=np.float32)
        for p in np.unique(prot):
            rows = np.flatnonzero(prot == p)
            with torch.no_grad():
                clean[rows] = self._projector(int(p)).project(self.quats[start + rows]).cpu().numpy()
        clean = np.asarray(apply_shifts(clean, self.shifts[start:stop]), dtype=np.float32)
        ctf = None if self.ctf is None else self.ctf[start:stop]
        if ctf is not None:
            grid = ctf_from_params(ctf, 2 * cfg.box_px, cfg.pixel_size_A)
            clean = np.asarray(apply_ctf(clean, grid, pad=2), dtype=np.float32)
        noisy, noise_var = add_noise(clean, cfg.sigma2, seed=[cfg.seed, 2, k])
        out = {
            "images": noisy,
            "quaternions": self.quats[start:stop],
            "shifts": self.shifts[start:stop],
            "protein": prot,
            "noise_var": noise_var,
            "snr_disk": snr_disk(clean, noise_var),
        }
        if ctf is not None:
            out["ctf"] = ctf
        return out

    def run(self, k: int) -> int:
        """Simulate shard ``k`` and write it whole (then it is marked complete); returns ``k``."""
        self.writer.write_shard(k, **self.simulate(k))
        return k

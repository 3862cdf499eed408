"""Compute and write whole shards of a projection store: the unit of work of one writer.

Everything random is drawn from the seed for all N images (orientations, shifts, CTF parameters)
or from ``(seed, shard)`` (noise), so any process can compute any shard and a resumed or
distributed run writes exactly the images of an uninterrupted local one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from orirec.config import SimulateConfig
from orirec.geometry import preferred_quaternions, uniform_euler_quaternions, uniform_quaternions
from orirec.imaging.ctf import sample_ctf_params
from orirec.imaging.filters import apply_formation
from orirec.imaging.formation import (
    add_noise,
    background_radius_px,
    draw_shift_components,
    normalize_background,
    snr_disk,
)
from orirec.simulate.nufft_projector import NufftProjector, finufft_available
from orirec.simulate.projector import FourierSliceProjector
from orirec.simulate.volume_cache import ProjectorCache
from orirec.store import StoreWriter, shard_rows

COMPILE_MIN_IMAGES = 20_000  # below this the 10-30 s compilation per process does not pay

__all__ = [
    "ShardSimulator",
    "check_device",
    "make_projector",
    "resolve_backend",
    "shard_memory_bytes",
    "sample_ctf",
    "sample_orientations",
    "sample_shifts",
]


def sample_orientations(cfg: SimulateConfig, n: int) -> np.ndarray:
    """(n, 4) quaternions from the configured orientation distribution (uniform, uniform_euler, preferred)."""
    if cfg.orientations == "uniform":
        return uniform_quaternions(n, seed=cfg.seed)
    if cfg.orientations == "preferred":
        return preferred_quaternions(
            n,
            seed=cfg.seed,
            directions=[tuple(d) for d in cfg.preferred_directions],
            kappa=cfg.preferred_kappa,
            uniform_fraction=cfg.preferred_uniform_fraction,
        )
    return uniform_euler_quaternions(n, seed=cfg.seed, tilt_range=cfg.tilt_range_rad)


def sample_shifts(cfg: SimulateConfig, n: int) -> np.ndarray:
    """(n, 2) shifts in px from ``cfg.shift_distribution`` with scale ``cfg.shift_px`` (zeros when 0).

    uniform / triangular: on [-shift_px, shift_px] per axis; gaussian: standard deviation shift_px per axis.
    """
    return draw_shift_components(n, [cfg.seed, 1], cfg.shift_px, cfg.shift_distribution)


def sample_ctf(cfg: SimulateConfig, n: int) -> np.ndarray | None:
    """(n, 7) CTF parameters (store column order) or None when the config applies no CTF."""
    if not cfg.ctf:
        return None
    return sample_ctf_params(
        n,
        seed=[cfg.seed, 3],
        defocus_range_A=cfg.defocus_range_A,
        astigmatism_A=cfg.astigmatism_A,
        voltage_kV=cfg.voltage_kV,
        cs_mm=cfg.cs_mm,
        amp_contrast=cfg.amp_contrast,
        bfactor_range_A2=cfg.bfactor_range_A2,
    )


def resolve_backend(cfg: SimulateConfig) -> SimulateConfig:
    """``cfg`` with a concrete projector: ``auto`` is nufft on a CPU device when finufft imports, else torch.

    Raises ValueError for a nufft backend that cannot run (finufft missing, or a GPU device). The resolution does
    not need the device to be there (a CPU machine resolves a GPU run's settings); :func:`check_device` does.
    """
    backend = cfg.backend
    on_cpu = torch.device(cfg.device).type == "cpu"
    if backend == "auto":
        backend = "nufft" if on_cpu and finufft_available() else "torch"
    elif backend == "nufft" and not on_cpu:
        raise ValueError(f"backend nufft runs on a CPU only (device {cfg.device!r}); use --backend torch on a GPU")
    elif backend == "nufft" and not finufft_available():
        raise ValueError("backend nufft needs the finufft package (pip install finufft), or use --backend torch")
    return cfg if backend == cfg.backend else cfg.model_copy(update={"backend": backend})


def check_device(device: str) -> None:
    """ValueError (one line) when the torch ``device`` cannot be used here: no CUDA GPU, no such GPU index, no MPS."""
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"--device {device}: no CUDA GPU is available here (torch.cuda.is_available() is False); "
                "use --device cpu"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA GPU(s)")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"--device {device}: Apple MPS is not available here; use --device cpu")


def shard_memory_bytes(cfg: SimulateConfig, n_images: int, n_structures: int, max_volumes: int = 4) -> int:
    """About how much memory (bytes) one :class:`ShardSimulator` holds: the orientations, shifts and CTF of all
    ``n_images`` (and their draws), a shard's images through image formation (padded Fourier transforms), and the
    projectors of up to ``max_volumes`` structures (a padded 3D transform each). A lower estimate, for a refusal
    up front."""
    L = cfg.box_px
    per_image = 3 * (4 + 2 + 7) * 8 + 4  # float64 draws (and their temporaries) + protein index
    shard = cfg.shard_size * L * L * 4 * 24  # clean, noisy, CTF/shift on 2x padded complex grids
    pad = 2 if cfg.backend == "nufft" else cfg.pad
    volumes = min(n_structures, max_volumes) * (pad * L) ** 3 * 8  # complex64 padded transforms
    return int(n_images) * per_image + shard + volumes


def make_projector(volume: np.ndarray, cfg: SimulateConfig, compile: bool = False):
    """The configured projector of ``volume``: ``.project(q)`` -> (B, L, L) images (tensor or array)."""
    cfg = resolve_backend(cfg)
    if cfg.backend == "astra":
        from orirec.simulate.astra_projector import AstraProjector

        return AstraProjector(volume)
    if cfg.backend == "nufft":
        return NufftProjector(volume, eps=cfg.nufft_eps, sampling=cfg.sampling)
    return FourierSliceProjector(volume, pad=cfg.pad, sampling=cfg.sampling, compile=compile, device=cfg.device)


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
        self._compile = cfg.compile == "on" or (cfg.compile == "auto" and n >= COMPILE_MIN_IMAGES)
        self._projector = ProjectorCache(
            self.writer.group, lambda vol: make_projector(vol, cfg, compile=self._compile), max_volumes
        )

    def simulate(self, k: int) -> dict[str, np.ndarray]:
        """The arrays of shard ``k`` (images after projection, shift, CTF and noise; and their metadata)."""
        cfg = self.cfg
        start, stop = shard_rows(k, self.writer.n_images, self.writer.shard_size)
        prot = self.protein[start:stop]
        clean = np.empty((stop - start, cfg.box_px, cfg.box_px), dtype=np.float32)
        for p in np.unique(prot):
            rows = np.flatnonzero(prot == p)
            with torch.no_grad():
                imgs = self._projector(int(p)).project(self.quats[start + rows])
                clean[rows] = imgs.cpu().numpy() if torch.is_tensor(imgs) else imgs
        ctf = None if self.ctf is None else self.ctf[start:stop]
        shifts = self.shifts[start:stop] if np.any(self.shifts[start:stop]) else None
        clean = apply_formation(clean, cfg.pixel_size_A, shifts, ctf, pad=2).numpy()
        noisy, noise_var = add_noise(clean, cfg.sigma2, seed=[cfg.seed, 2, k])
        snr = snr_disk(clean, noise_var)  # a ratio: unchanged by the normalization's scaling
        if cfg.normalize:
            noisy, scale = normalize_background(noisy, background_radius_px(cfg.box_px, cfg.normalize_radius_px))
            noise_var = noise_var * scale**2
        out = {
            "images": noisy,
            "quaternions": self.quats[start:stop],
            "shifts": self.shifts[start:stop],
            "protein": prot,
            "noise_var": noise_var,
            "snr_disk": snr,
        }
        if ctf is not None:
            out["ctf"] = ctf
        return out

    def run(self, k: int) -> int:
        """Simulate shard ``k`` and write it whole (then it is marked complete); returns ``k``."""
        self.writer.write_shard(k, **self.simulate(k))
        return k

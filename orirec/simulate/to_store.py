"""Simulate projections of one or more structures into a projection store (DESIGN §4).

Every input is turned into a volume before the store is created, so bad input fails before
anything is written. Rows are ordered structure by structure; orientations and shifts are
drawn once from the seed, and the noise of shard ``k`` from ``(seed, k)``, so a resumed run
writes exactly the images an uninterrupted one would. Each shard is written whole by one
writer and then marked complete.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import zarr

from orirec.config import SimulateConfig
from orirec.geometry import uniform_euler_quaternions, uniform_quaternions
from orirec.simulate.formation import add_noise, apply_shifts, snr_disk
from orirec.simulate.projector import FourierSliceProjector
from orirec.store import StoreWriter, create_store, shard_rows
from orirec.structures.inputs import expand_inputs
from orirec.structures.load import load_volume


@dataclass
class SimulationResult:
    """What a simulation run did."""

    store: Path
    n_images: int
    shards_written: int
    shards_skipped: int


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


def config_fingerprint(cfg: SimulateConfig, sources: list[str]) -> str:
    """A canonical JSON of what determines the images (to refuse a mismatched resume)."""
    return json.dumps({"config": cfg.model_dump(mode="json"), "sources": sources}, sort_keys=True)


def simulate_to_store(
    cfg: SimulateConfig,
    out: str | Path,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
    split: str | None = None,
) -> SimulationResult:
    """Simulate ``cfg`` into the store ``out``; resume an interrupted run of the same config.

    ``progress(done, total)`` is called after each shard. A store written with another config
    is refused unless ``overwrite``.
    """
    out = Path(out)
    sources = expand_inputs(cfg.inputs, split)
    fingerprint = config_fingerprint(cfg, sources)
    writer = _existing_writer(out, fingerprint, overwrite)
    if writer is not None and not writer.missing_shards():
        if progress:
            progress(writer.n_shards, writer.n_shards)
        return SimulationResult(out, writer.n_images, 0, writer.n_shards)

    # Every input becomes a volume before anything is written: bad input fails with no store.
    volumes, infos = [], []
    for src in sources:
        vol, info = load_volume(src, cfg.box_px, cfg.pixel_size_A, cfg.resolution_A, seed=cfg.seed)
        volumes.append(vol)
        infos.append(info)
    if writer is None:
        attrs = {
            "fingerprint": fingerprint,
            "simulation": cfg.model_dump(mode="json"),
            "seed": cfg.seed,
            "sigma2": cfg.sigma2,
            "sources": sources,
        }
        writer = create_store(
            out,
            cfg.n_per_structure * len(sources),
            cfg.box_px,
            cfg.pixel_size_A,
            shard_size=cfg.shard_size,
            attrs=attrs,
            overwrite=overwrite,
        )
    if "proteins" not in writer.group.attrs:
        _write_references(writer, volumes, infos, cfg)
    todo = writer.missing_shards()
    total = writer.n_shards
    if progress:
        progress(total - len(todo), total)

    n = writer.n_images
    quats = sample_orientations(cfg, n)
    shifts = sample_shifts(cfg, n)
    protein = np.repeat(np.arange(len(sources), dtype=np.int32), cfg.n_per_structure)
    projectors: dict[int, FourierSliceProjector] = {}
    for k in todo:
        start, stop = shard_rows(k, n, writer.shard_size)
        clean = np.empty((stop - start, cfg.box_px, cfg.box_px), dtype=np.float32)
        for p in np.unique(protein[start:stop]):
            rows = np.flatnonzero(protein[start:stop] == p)
            if p not in projectors:
                projectors = {p: FourierSliceProjector(volumes[p], pad=cfg.pad)}  # keep one volume's FT
            with torch.no_grad():
                clean[rows] = projectors[p].project(quats[start + rows]).cpu().numpy()
        clean = np.asarray(apply_shifts(clean, shifts[start:stop]), dtype=np.float32)
        noisy, noise_var = add_noise(clean, cfg.sigma2, seed=[cfg.seed, 2, k])
        writer.write_shard(
            k,
            images=noisy,
            quaternions=quats[start:stop],
            shifts=shifts[start:stop],
            protein=protein[start:stop],
            noise_var=noise_var,
            snr_disk=snr_disk(clean, noise_var),
        )
        if progress:
            progress(total - len(writer.missing_shards()), total)
    writer.finalize()
    return SimulationResult(out, n, len(todo), total - len(todo))


def _existing_writer(out: Path, fingerprint: str, overwrite: bool) -> StoreWriter | None:
    """The writer of a store of the same config at ``out`` (to resume), None when there is none."""
    if not out.exists() or overwrite:
        return None
    try:
        existing = zarr.open_group(str(out), mode="r").attrs.get("fingerprint")
    except Exception as e:
        raise ValueError(f"{out}: exists and is not an orirec store; choose another --out or --overwrite") from e
    if existing != fingerprint:
        raise ValueError(f"{out}: exists with a different simulation config; use --overwrite to replace it")
    return StoreWriter(out)


def _write_references(writer: StoreWriter, volumes: list[np.ndarray], infos: list[dict], cfg: SimulateConfig) -> None:
    """Store each structure's reference volume (``volumes/<index>``) and the protein table."""
    group = writer.group.require_group("volumes")
    for p, vol in enumerate(volumes):
        arr = group.create_array(str(p), shape=vol.shape, dtype="float32", chunks=vol.shape, overwrite=True)
        arr[:] = vol.astype(np.float32)
    proteins = [{**_jsonable(info), "pixel_size_A": cfg.pixel_size_A, "box_px": cfg.box_px} for info in infos]
    writer.group.attrs["proteins"] = proteins


def _jsonable(info: dict) -> dict:
    return {k: (v if isinstance(v, (str, int, float, bool)) or v is None else str(v)) for k, v in info.items()}


def reference_volume(store_group: zarr.Group, protein: int = 0) -> np.ndarray:
    """The reference volume of ``protein`` saved by the simulation (Å scale: the store's pixel size)."""
    if "volumes" not in store_group or str(protein) not in store_group["volumes"]:
        raise ValueError(f"store has no reference volume for protein {protein}")
    return store_group["volumes"][str(protein)][:]

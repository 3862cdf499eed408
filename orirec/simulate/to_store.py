"""Simulate projections of one or more structures into a projection store (DESIGN §4).

Every input is turned into a volume before the store is created, so bad input fails before
anything is written. Rows are ordered structure by structure. The shards themselves are computed
by :class:`orirec.simulate.shards.ShardSimulator` (deterministic per shard), here one after the
other; ``orirec.distributed.simulate`` hands them to a pool of Ray actors instead. Each shard is
written whole by one writer and then marked complete.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zarr

from orirec.config import SimulateConfig
from orirec.simulate.shards import ShardSimulator
from orirec.store import StoreWriter, create_store
from orirec.structures.inputs import expand_inputs
from orirec.structures.load import load_volume


@dataclass
class SimulationResult:
    """What a simulation run did."""

    store: Path
    n_images: int
    shards_written: int
    shards_skipped: int


ShardRunner = Callable[[Path, SimulateConfig, list[int], Callable[[], None]], None]


def run_shards_locally(store: Path, cfg: SimulateConfig, shards: list[int], advance: Callable[[], None]) -> None:
    """Write ``shards`` one after the other in this process."""
    sim = ShardSimulator(store, cfg)
    for k in shards:
        sim.run(k)
        advance()


def config_fingerprint(cfg: SimulateConfig, sources: list[str]) -> str:
    """A canonical JSON of what determines the images (to refuse a mismatched resume)."""
    return json.dumps({"config": cfg.model_dump(mode="json"), "sources": sources}, sort_keys=True)


def simulate_to_store(
    cfg: SimulateConfig,
    out: str | Path,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
    split: str | None = None,
    run_shards: ShardRunner | None = None,
) -> SimulationResult:
    """Simulate ``cfg`` into the store ``out``; resume an interrupted run of the same config.

    ``progress(done, total)`` is called after each shard. A store written with another config
    is refused unless ``overwrite``. ``run_shards(store, cfg, shards, advance)`` computes and writes
    the missing shards (default: :func:`run_shards_locally`; a Ray actor pool in
    ``orirec.distributed.simulate``) and calls ``advance()`` after each.
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

    done = total - len(todo)

    def advance() -> None:
        nonlocal done
        done += 1
        if progress:
            progress(done, total)

    (run_shards or run_shards_locally)(out, cfg, todo, advance)
    writer.finalize()
    return SimulationResult(out, writer.n_images, len(todo), total - len(todo))


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

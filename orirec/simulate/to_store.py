"""Simulate projections of one or more structures into a projection store (DESIGN §4).

Every input is turned into a volume before the store is created, so bad input fails before
anything is written. Rows are ordered structure by structure. The shards themselves are computed
by :class:`orirec.simulate.shards.ShardSimulator` (deterministic per shard), here one after the
other; ``orirec.distributed.simulate`` hands them to a pool of Ray actors instead. Each shard is
written whole by one writer and then marked complete.

Each structure carries a point group (``cfg.symmetry``, overridden per structure by a manifest's
``symmetry_hint`` column), recorded in ``attrs["proteins"][p]["symmetry"]`` for symmetry-aware distances.
A structure with a group other than C1 is rotated into that group's frame (n-fold axis on particle z, a
2-fold on x for Dn; :func:`orirec.structures.symmetry_frame.align_to_symmetry`) before it is stored and
projected; the rotation applied is ``proteins[p]["symmetry_frame"]`` (new = R @ old particle coordinates),
and a declared group the density does not have is refused, naming the file.
"""

from __future__ import annotations

import csv
import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from orirec.config import SimulateConfig
from orirec.geometry import symmetry_name
from orirec.imaging.formation import background_radius_px
from orirec.simulate.astra_projector import astra_gpu_available
from orirec.simulate.shards import ShardSimulator, check_device, resolve_backend, shard_memory_bytes
from orirec.store import StoreWriter, create_store, writer_to_resume
from orirec.store.lock import store_lock
from orirec.store.safety import check_fits_in_memory, check_fits_on_disk, store_attrs, store_state
from orirec.store.writer import store_bytes
from orirec.structures.inputs import expand_inputs
from orirec.structures.load import file_sha256, load_volume, source_kind
from orirec.structures.symmetry_frame import align_to_symmetry

#: Bumped whenever the same config would give different images (projector, formation, noise draws), so that a
#: store written by an older orirec is refused for resume instead of being completed with different images.
IMAGE_MODEL_VERSION = 2


@dataclass
class SimulationResult:
    """What a simulation run did."""

    store: Path
    n_images: int
    shards_written: int
    shards_skipped: int


ShardRunner = Callable[[Path, SimulateConfig, list[int], Callable[[], None]], None]


class ShardsFailedError(RuntimeError):
    """Some shards could not be written (e.g. a worker was killed); the others are complete and kept.

    ``failed`` maps shard index -> reason. Re-running the same command writes exactly the missing shards.
    """

    def __init__(self, store: Path, failed: dict[int, str], not_started: list[int] | None = None):
        self.store, self.failed, self.not_started = Path(store), dict(failed), list(not_started or [])
        first = next(iter(self.failed.values()), "")
        extra = f", {len(self.not_started)} more not started (no worker left)" if self.not_started else ""
        super().__init__(
            f"{store}: shard(s) {sorted(self.failed)} failed ({first}){extra}; the completed shards are kept, "
            "re-run the same command to write the missing ones"
        )


def run_shards_locally(store: Path, cfg: SimulateConfig, shards: list[int], advance: Callable[[], None]) -> None:
    """Write ``shards`` one after the other in this process."""
    sim = ShardSimulator(store, cfg)
    for k in shards:
        sim.run(k)
        advance()


def config_fingerprint(cfg: SimulateConfig, sources: list[str], symmetries: list[str] | None = None) -> str:
    """A canonical JSON of what determines the store (to refuse a mismatched resume).

    Every ``SimulateConfig`` field (orientation distribution, shift distribution, normalization, symmetry,
    ...), the expanded sources, their contents (size and SHA-256 of each file: a file changed in place since
    the store was started is another input) and their point groups.
    """
    # How the images are computed (compiled or not, which device) does not change them beyond rounding.
    # The NUFFT tolerance only matters to that backend (so stores of the other backends keep the fingerprint
    # they had before it existed, and resume).
    unused = {"compile", "device"} | ({"nufft_eps"} if cfg.backend != "nufft" else set())
    config = cfg.model_dump(mode="json", exclude=unused)
    doc: dict[str, Any] = {
        "config": config,
        "sources": sources,
        "symmetries": symmetries,
        "images": IMAGE_MODEL_VERSION,
    }
    doc["contents"] = [_content(src) for src in sources]
    return json.dumps(doc, sort_keys=True)


def _fingerprint_to_resume(out: Path, cfg: SimulateConfig, sources: list[str], symmetries: list[str]) -> str:
    """The fingerprint a store at ``out`` must carry to be resumed: :func:`config_fingerprint`, or for a store
    written before fingerprints held the files' contents its older form, when the store's protein table records
    the same bytes (SHA-256) for every file (or no table yet: no image was made from them)."""
    current = config_fingerprint(cfg, sources, symmetries)
    attrs = store_attrs(out) or {}
    recorded = attrs.get("fingerprint")
    doc = json.loads(current)
    contents = doc.pop("contents")
    if recorded == current or recorded != json.dumps(doc, sort_keys=True):
        return current
    proteins = attrs.get("proteins")
    if proteins is None:
        return recorded
    if len(proteins) != len(contents):
        return current
    for content, protein in zip(contents, proteins, strict=True):
        if content is not None and protein.get("sha256") != content["sha256"]:
            return current
    return recorded


def _content(source: str) -> dict | None:
    """Size and SHA-256 of a structure file (None for a synthetic source, which its name determines)."""
    if source_kind(source) == "pseudo":
        return None
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"structure file not found: {path}")
    return {"bytes": path.stat().st_size, "sha256": file_sha256(path)}


def _input_paths(cfg: SimulateConfig, sources: list[str]) -> list[Path]:
    """The files and folders the run reads (which ``--out`` must not be, hold or lie in)."""
    items = [*cfg.inputs, *sources]
    return [Path(i) for i in dict.fromkeys(items) if not i.startswith("pseudo") and Path(i).exists()]


def _check_resources(cfg: SimulateConfig, out: Path, n_structures: int) -> None:
    """Refuse up front a store larger than the free disk, or a run larger than the available memory."""
    n = cfg.n_per_structure * n_structures
    check_fits_in_memory(
        shard_memory_bytes(cfg, n, n_structures),
        f"the draws of {n} images, a shard of {cfg.shard_size} images of {cfg.box_px} px and the projectors",
        out,
    )
    if store_state(out) == "store":
        return  # resumed or replaced: create_store checks the disk when it makes a new one (counting the old)
    volumes = n_structures * cfg.box_px**3 * 4
    check_fits_on_disk(out, store_bytes(n, cfg.box_px) + volumes, f"{n} images of {cfg.box_px}x{cfg.box_px} px")


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
    (any field of ``cfg``, or other sources) is refused unless ``overwrite``. ``run_shards(store, cfg,
    shards, advance)`` computes and writes the missing shards (default: :func:`run_shards_locally`; a Ray
    actor pool in ``orirec.distributed.simulate``) and calls ``advance()`` after each. A runner whose workers
    fail raises :class:`ShardsFailedError` naming the failed shards; the store then stays incomplete (the
    written shards are kept) and re-running the same call writes exactly the missing shards.

    An unreadable structure anywhere in the set stops the run cleanly: every input is turned into a volume
    before the store is created, so the error (a ValueError naming the file and the reason) comes before
    anything is written and no store is left behind. We stop rather than skip it because the row layout
    and the fingerprint depend on the set of structures: a store silently missing one would not be the
    dataset that was asked for, and a later rerun with the file fixed could not resume it. Fix or remove
    the file and run again.

    Everything is checked before the store is touched: the config's values, the device, the inputs, the disk space
    and memory the run needs. The run holds the store's lock (:mod:`orirec.store.lock`) throughout, so a second run
    into the same store (to resume or to ``overwrite`` it) is refused while this one writes. ``overwrite`` replaces
    only an orirec store (or an empty folder), never another folder nor one holding the inputs
    (:mod:`orirec.store.safety`).
    """
    out = Path(out)
    check_device(cfg.device)  # before anything is written: a missing GPU is a one-line error, not a half-made store
    cfg = resolve_backend(cfg)  # the store records (and a resume checks) the projector that made it
    if cfg.backend == "astra" and not astra_gpu_available():
        raise ValueError("backend astra: ASTRA's 3D projector needs a CUDA GPU, and astra.use_cuda() is False here")
    sources = expand_inputs(cfg.inputs, split)
    symmetries, hinted = _symmetries(cfg, sources)
    recorded = list(symmetries)  # what each protein is stored as (a manifest hint not found -> C1)
    if cfg.normalize:
        if cfg.sigma2 == 0:
            raise ValueError("normalize: background normalization needs noise (sigma2 > 0); the background is flat")
        background_radius_px(cfg.box_px, cfg.normalize_radius_px)  # a radius leaving no background fails here
    _check_resources(cfg, out, len(sources))
    with store_lock(out):
        return _simulate_locked(cfg, out, overwrite, progress, run_shards, sources, (symmetries, hinted, recorded))


def _simulate_locked(
    cfg: SimulateConfig,
    out: Path,
    overwrite: bool,
    progress: Callable[[int, int], None] | None,
    run_shards: ShardRunner | None,
    sources: list[str],
    groups: tuple[list[str], set[str], list[str]],
) -> SimulationResult:
    """The body of :func:`simulate_to_store`, run holding the store's lock. ``groups``: the point group of each
    source, the sources whose group came from a manifest hint, and what each is recorded as."""
    symmetries, hinted, recorded = groups
    fingerprint = _fingerprint_to_resume(out, cfg, sources, symmetries)
    inputs = _input_paths(cfg, sources)
    writer = writer_to_resume(out, fingerprint, overwrite, "a different simulation config (or input files)", inputs)
    if writer is not None and not writer.missing_shards():
        if progress:
            progress(writer.n_shards, writer.n_shards)
        return SimulationResult(out, writer.n_images, 0, writer.n_shards)

    # Every input becomes a volume before anything is written: bad input fails with no store.
    volumes: list[np.ndarray] = []
    infos: list[dict[str, Any]] = []
    for src in sources:
        try:
            vol, info = load_volume(src, cfg.box_px, cfg.pixel_size_A, cfg.resolution_A, seed=cfg.seed)
        except FileNotFoundError:
            raise
        except Exception as e:  # gemmi/mrcfile/gzip raise many types; name the file in one clear line
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            msg = reason if src in reason else f"{src}: cannot use this structure ({reason})"
            raise ValueError(msg) from e
        k = len(volumes)
        if symmetries[k] != "C1":  # rotate the density into its group's frame (n-fold on z)
            try:
                vol, frame, cc = align_to_symmetry(vol, symmetries[k], name=src)
                info = {**info, "symmetry_frame": frame.round(12).tolist(), "symmetry_cc": cc}
            except ValueError as e:
                if src not in hinted:  # declared by the user: refuse
                    raise
                # A manifest's hint is advice: at a coarse pixel size a pseudo-symmetric complex may not show it.
                warnings.warn(f"{e}; recording it as C1", stacklevel=2)
                info = {**info, "symmetry_hint_rejected": symmetries[k]}
                recorded[k] = "C1"
        volumes.append(vol)
        infos.append(info)
    if writer is None:
        attrs = {
            "fingerprint": fingerprint,
            "simulation": cfg.model_dump(mode="json"),
            "seed": cfg.seed,
            "sigma2": cfg.sigma2,
            "sources": sources,
            "normalization": _normalization(cfg),
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
        _write_references(writer, volumes, infos, cfg, recorded)
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


def _normalization(cfg: SimulateConfig) -> dict | None:
    """What the per-image normalization did (None when off), recorded in the store attributes."""
    if not cfg.normalize:
        return None
    radius = background_radius_px(cfg.box_px, cfg.normalize_radius_px)
    return {"method": "background mean 0, std 1 (RELION)", "background": "outside disk", "radius_px": radius}


def _symmetries(cfg: SimulateConfig, sources: list[str]) -> tuple[list[str], set[str]]:
    """Point group per source (a manifest's ``symmetry_hint`` where given, else ``cfg.symmetry``), and the
    sources whose group came from a hint."""
    hints: dict[str, str] = {}
    for item in cfg.inputs:
        path = Path(item)
        if path.suffix.lower() != ".csv" or not path.is_file():
            continue
        with open(path, newline="") as f:
            for row_no, row in enumerate(csv.DictReader(f), start=2):
                hint = (row.get("symmetry_hint") or "").strip()
                if hint and row.get("file"):
                    try:
                        hints[str(path.parent / row["file"])] = symmetry_name(hint)
                    except ValueError as e:
                        raise ValueError(f"{path}, line {row_no}: {e}") from None
    default = symmetry_name(cfg.symmetry)
    return [hints.get(src, default) for src in sources], set(hints)


def _write_references(
    writer: StoreWriter, volumes: list[np.ndarray], infos: list[dict], cfg: SimulateConfig, symmetries: list[str]
) -> None:
    """Store each structure's reference volume (``volumes/<index>``) and the protein table (with symmetry)."""
    group = writer.group.require_group("volumes")
    for p, vol in enumerate(volumes):
        arr = group.create_array(str(p), shape=vol.shape, dtype="float32", chunks=vol.shape, overwrite=True)
        arr[:] = vol.astype(np.float32)
    proteins = [
        {**_jsonable(info), "pixel_size_A": cfg.pixel_size_A, "box_px": cfg.box_px, "symmetry": sym}
        | ({"symmetry_frame": info["symmetry_frame"]} if "symmetry_frame" in info else {})
        for info, sym in zip(infos, symmetries, strict=True)
    ]
    writer.group.attrs["proteins"] = proteins


def _jsonable(info: dict) -> dict:
    return {k: (v if isinstance(v, (str, int, float, bool)) or v is None else str(v)) for k, v in info.items()}

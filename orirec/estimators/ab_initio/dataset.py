"""Ab initio at dataset scale: restarts on a subset, then passes over every image, shard by shard.

1. **Subset.** The restarts and their consensus (:func:`~orirec.estimators.ab_initio.search.ab_initio`) run
   on a random subset of ``subset`` images, held in memory; they give the first map.
2. **Global pass.** Every image, the subset's too, gets the best rotation of the global grid against that map:
   its rotations ranked over a few trial shifts, its shift then searched for the best few rotations only
   (:class:`~orirec.estimators.ab_initio.passes.GlobalPass`). On 1nca at σ² 16 this leaves 91 % of the subset's
   images within 20°, against 89 % for the restarts' own consensus poses, and the local rounds do better from it.
3. **Local refinement.** Gold-standard rounds over every image
   (:class:`~orirec.estimators.ab_initio.passes.LocalRound`), each against the half-maps the previous pass
   inserted.

Passes 2 and 3 are map-reduces over shards: a :class:`ShardMapper` runs one task per shard (in this process
with :class:`SerialMapper`, on Ray actors with :class:`orirec.distributed.shards.RayShardMapper`); the driver
adds the shards' Fourier sums, in shard order, into the next half-maps. So memory holds one shard's images per
worker plus, on the driver, the subset's images and 7 numbers per image (pose, shift, score); the result does
not depend on the number of workers. The passes run at ab initio's final matching box. After every pass the
state is written to ``checkpoint`` (``.npz``): a rerun resumes after the last finished pass, and the subset's
restarts resume from their own checkpoint.
"""

from __future__ import annotations

import json
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from orirec.config.estimators import AbInitioConfig
from orirec.estimators.ab_initio.passes import GlobalPass, ImageSource, LocalRound, MatchGeometry, Shard, ShardResult
from orirec.estimators.ab_initio.search import AbInitioResult, ab_initio, masked_volume, sphere_radius_px
from orirec.geometry import quat_distance
from orirec.reconstruct.fourier import FourierSums, half_split
from orirec.reconstruct.fsc import fsc_report
from orirec.store.atomic import save_npz_atomic

__all__ = ["DatasetAbInitioResult", "SerialMapper", "ShardMapper", "ab_initio_dataset", "pass_plan", "shards_of"]

Progress = Callable[[int, int], None]
_PASSES_VERSION = 2  # in the checkpoint's key: a checkpoint of passes that posed differently is not resumed
_DEFAULTS = AbInitioConfig()  # the only source of the search's defaults (orirec.config.estimators)


class ShardMapper(Protocol):
    """Runs ``fn(task, shared)`` for every task and yields the results in task order, as they are ready (so that
    the driver holds few at a time); ``progress(k)`` is called with each finished task's number of images."""

    def map(
        self, fn: Callable, tasks: Sequence[Shard], shared: Any, progress: Callable[[int], None] | None
    ) -> Iterable:
        """The results of ``fn(task, shared)``, in task order."""


class SerialMapper:
    """Every task in this process, one after the other."""

    def map(self, fn, tasks, shared, progress=None) -> Iterator:
        for t in tasks:
            out = fn(t, shared)
            if progress is not None:
                progress(len(t.rows))
            yield out


def shards_of(rows: np.ndarray, shard_size: int) -> list[np.ndarray]:
    """Positions in ``rows`` (sorted store indices) grouped by the store shard (of ``shard_size`` rows) they fall
    in: a task reads whole store shards, the unit a store is written and read in."""
    keys = np.asarray(rows) // int(shard_size)
    cuts = np.flatnonzero(np.diff(keys)) + 1
    return np.split(np.arange(len(rows)), cuts)


@dataclass
class DatasetAbInitioResult:
    """Poses of every image (n, 4), shifts (n, 2; px of the input), the last pass's NCC scores (n,), the final
    map and half-maps (box ``box_px``, ``pixel_size_A`` Å/px), the subset's ab initio result, the subset's
    positions, and one summary per pass."""

    quaternions: np.ndarray
    shifts_px: np.ndarray
    scores: np.ndarray
    volume: np.ndarray
    half_maps: tuple[np.ndarray, np.ndarray] | None
    box_px: int
    pixel_size_A: float
    subset: AbInitioResult
    subset_positions: np.ndarray
    passes: list[dict] = field(default_factory=list)
    passes_read_back: int = 0
    global_quaternions: np.ndarray | None = None  # (n, 4) after the global pass, before the local rounds


def _subset_only(sub: AbInitioResult, subset_pos: np.ndarray) -> DatasetAbInitioResult:
    """The result when the subset is every image and no round follows: the restarts' own."""
    n = len(subset_pos)
    return DatasetAbInitioResult(sub.quaternions, sub.shifts_px, np.full(n, np.nan), sub.volume, None, sub.box_px,
                                 sub.pixel_size_A, sub, subset_pos, global_quaternions=sub.quaternions)  # fmt: skip


def ab_initio_dataset(
    images: ImageSource,
    rows: np.ndarray,
    box_in_px: int,
    pixel_size_A: float,
    *,
    shard_size: int,
    subset: int,
    settings: dict[str, Any],
    schedule: Sequence[tuple[float, float]],
    refine_resolution_A: float,
    max_shift_px: float,
    particle_radius_A: float,
    seed: int = 0,
    mapper: ShardMapper | None = None,
    device: str = "cpu",
    checkpoint: Path | None = None,
    progress: Progress | None = None,
    pass_progress: Progress | None = None,
) -> DatasetAbInitioResult:
    """Poses of the images ``rows`` of ``images`` (see the module). ``settings`` go to
    :func:`~orirec.estimators.ab_initio.search.ab_initio` on the subset (with ``max_shift_px``,
    ``particle_radius_A`` and ``seed``; ``checkpoint`` there is the restarts' file). ``schedule``: (radius, step)
    in degrees of each local round; ``refine_resolution_A``: their low-pass. ``progress(done, total)`` counts the
    subset's iterations; ``pass_progress(done, total)`` the images posed over all passes."""
    rows = np.asarray(rows, dtype=np.int64)
    n = len(rows)
    mapper = mapper or SerialMapper()
    rng = np.random.default_rng(np.random.SeedSequence([seed, 1]))
    subset_pos = np.sort(rng.choice(n, size=min(int(subset), n), replace=False))
    t0 = time.perf_counter()
    sub = ab_initio(images(rows[subset_pos]), pixel_size_A, max_shift_px=max_shift_px, seed=seed,
                    particle_radius_A=particle_radius_A, progress=progress, **settings)  # fmt: skip
    subset_s = time.perf_counter() - t0
    if len(subset_pos) == n and not schedule:
        return _subset_only(sub, subset_pos)
    box, px = sub.box_px, sub.pixel_size_A
    pad, wiener = int(settings.get("pad", _DEFAULTS.pad)), float(settings.get("wiener", _DEFAULTS.wiener))
    radius_px = sphere_radius_px(box, px, particle_radius_A)

    def geometry(resolution_A: float) -> MatchGeometry:
        return MatchGeometry(box_in_px, pixel_size_A, box, resolution_A, radius_px, max_shift_px, pad, device,
                             settings.get("symmetry", _DEFAULTS.symmetry))  # fmt: skip

    groups = shards_of(rows, shard_size)
    half = np.zeros(n, dtype=np.int8)
    half[half_split(n, seed)[1]] = 1
    key = _key(rows, subset_pos, sub, settings, schedule, refine_resolution_A, max_shift_px, particle_radius_A, seed)
    state = _load(checkpoint, key)
    q = np.tile([1.0, 0.0, 0.0, 0.0], (n, 1)) if state is None else state["quaternions"]  # identity until posed
    shifts = np.zeros((n, 2)) if state is None else state["shifts_px"]
    scores = np.full(n, np.nan) if state is None else state["scores"]
    sums: list[FourierSums] = [] if state is None else state["sums"]
    q_global = None if state is None else state["global_quaternions"]
    history: list[dict] = [] if state is None else state["passes"]
    read_back = len(history)
    plan = pass_plan(schedule)
    count = [read_back * n, len(plan) * n]

    def tick(k: int) -> None:
        count[0] += k
        if pass_progress is not None:
            pass_progress(count[0], count[1])

    for p in range(read_back, len(plan)):
        t1 = time.perf_counter()
        kind, radius, step = plan[p]
        task: Callable
        shared: Any
        if kind == "global":
            first = GlobalPass(
                images, geometry(settings.get("resolution_end_A", _DEFAULTS.resolution_end_A)), sub_step(settings)
            )
            task, shared = first, (sub.volume, first.references(sub.volume))
        elif kind == "repose":  # every image again, on a finer grid, against the map of all: the better pose stays
            full_map = masked_volume(sums[0] + sums[1], px, particle_radius_A, wiener)
            again = GlobalPass(images, geometry(refine_resolution_A), sub_step(settings) / 2, keep_better=True)
            task, shared = again, (full_map, again.references(full_map))
        else:
            task = LocalRound(images, geometry(refine_resolution_A), radius, step)
            shared = tuple(masked_volume(s, px, particle_radius_A, wiener) for s in sums)
        tasks = [Shard(i, rows[g], half[g], q[g], shifts[g]) for i, g in enumerate(groups)]
        q_new, sums = _gather(mapper.map(task, tasks, shared, tick), groups, q, shifts, scores)
        change = np.degrees(quat_distance(q, q_new))
        q = q_new
        q_global = q if p == 0 else q_global
        history.append(_summary(plan, p, scores, change, time.perf_counter() - t1))
        if checkpoint is not None:
            _save(checkpoint, key, q, shifts, scores, sums, history, q_global)
    maps = tuple(masked_volume(s, px, particle_radius_A, wiener) for s in sums)
    volume = masked_volume(sums[0] + sums[1], px, particle_radius_A, wiener)
    fsc = fsc_report(maps[0], maps[1], px)
    if history:
        history[-1] |= {"fsc_half_05_A": fsc["fsc_05_A"], "fsc_half_0143_A": fsc["fsc_0143_A"]}
        history[0]["subset_s"] = subset_s
    return DatasetAbInitioResult(q, shifts, scores, volume, (maps[0], maps[1]), box, px, sub, subset_pos, history,
                                 read_back, q_global)  # fmt: skip


def sub_step(settings: dict[str, Any]) -> float:
    """The global grid's spacing (°) of the subset's ab initio, used again by the global pass."""
    return float(settings.get("step_deg", _DEFAULTS.step_deg))


def _gather(results: Iterable[ShardResult], groups, q, shifts, scores) -> tuple[np.ndarray, list[FourierSums]]:
    """The shards' poses written into the driver's arrays (new orientations returned, shifts and scores in place)
    and their half-set sums added in shard order as they come (the same total whatever worker ran which shard)."""
    q_new = q.copy()
    sums: list[FourierSums | None] = [None, None]
    for i, (g, r) in enumerate(zip(groups, results, strict=True)):
        if r.index != i:
            raise RuntimeError(f"ab initio passes: shard {r.index}'s result came in place of shard {i}'s")
        q_new[g], shifts[g], scores[g] = r.quaternions, r.shifts_px, r.scores
        for h in (0, 1):
            part = r.sums[h]
            if part is not None:
                sums[h] = part if sums[h] is None else sums[h] + part  # type: ignore[operator]
    if sums[0] is None or sums[1] is None:
        raise ValueError("ab initio passes: a half-set has no image (need at least 2 images)")
    return q_new, [sums[0], sums[1]]  # type: ignore[list-item]


def pass_plan(schedule: Sequence[tuple[float, float]]) -> list[tuple[str, float, float]]:
    """The passes over every image: (kind, radius °, step °). The global pass; the first local round; then, when
    more rounds follow, a **re-pose**: every image searched again on a grid twice as fine against the map of all
    images, keeping its pose where that matches better (the subset's map poses the other images coarsely, and an
    image more than a round's reach from its true pose stays there); then the other rounds."""
    local = [("local", float(r), float(s)) for r, s in schedule]
    return [("global", 0.0, 0.0), *local[:1], *([("repose", 0.0, 0.0)] if len(local) > 1 else []), *local[1:]]


def _summary(plan, p: int, scores, change, time_s: float) -> dict:
    kind, radius, step = plan[p]
    rounds = sum(k == "local" for k, _, _ in plan[: p + 1])
    name = f"local {rounds}" if kind == "local" else kind
    out = {"pass": name, "images_posed": len(scores), "time_s": time_s}
    if kind == "local":
        out |= {"radius_deg": radius, "step_deg": step}
    out["score"] = float(np.nanmean(scores))
    out["change_median_deg"] = float(np.median(change)) if p else float("nan")
    return out


def _key(rows, subset_pos, sub: AbInitioResult, *settings) -> int:
    meta = json.dumps([_PASSES_VERSION, *(repr(s) for s in settings)], sort_keys=True).encode()
    blob = rows.tobytes() + subset_pos.tobytes() + np.ascontiguousarray(sub.quaternions).tobytes()
    return zlib.crc32(meta, zlib.crc32(blob))


def _save(path: Path, key: int, q, shifts, scores, sums: list[FourierSums], history: list[dict], q_global) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {f"{n}{h}": getattr(s, n).numpy() for h, s in enumerate(sums) for n in ("num", "wgt")}
    meta = {"passes": history, "box_px": sums[0].box_px, "pad": sums[0].pad}
    save_npz_atomic(path, key=np.int64(key), quaternions=q, shifts_px=shifts, scores=scores,
                    global_quaternions=q_global, meta=json.dumps(meta, default=float), **arrays)  # fmt: skip


def _load(path: Path | None, key: int) -> dict[str, Any] | None:
    """The state after the last finished pass of the run with this ``key``; None without one (or for another
    run's, which is started over)."""
    if path is None or not Path(path).is_file():
        return None
    try:
        with np.load(path) as z:
            if int(z["key"]) != key:
                return None
            meta = json.loads(str(z["meta"]))
            sums = [FourierSums(torch.from_numpy(z[f"num{h}"]), torch.from_numpy(z[f"wgt{h}"]), meta["box_px"],
                                meta["pad"]) for h in (0, 1)]  # fmt: skip
            return {"quaternions": z["quaternions"], "shifts_px": z["shifts_px"], "scores": z["scores"],
                    "sums": sums, "passes": meta["passes"], "global_quaternions": z["global_quaternions"]}  # fmt: skip
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not a readable ab initio passes checkpoint ({e}); delete it to start over") from e

"""Simulation fan-out on Ray: a pool of actors, each holding a few volumes' Fourier transforms and
owning whole shards (one writer per shard; DESIGN §4, §5)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orirec.config import SimulateConfig
from orirec.distributed.runtime import ensure_ray
from orirec.simulate.shards import ShardSimulator
from orirec.simulate.to_store import ShardsFailedError

#: ``on_dispatch(shard, actor)``: called in the driver right after ``shard`` was handed to ``actor``.
DispatchHook = Callable[[int, Any], None]


def ray_shard_runner(num_workers: int, max_volumes: int = 4, on_dispatch: DispatchHook | None = None):
    """A ``run_shards`` for :func:`orirec.simulate.to_store.simulate_to_store` that uses ``num_workers`` actors.

    Each shard goes to exactly one actor (a work queue: an idle actor takes the next shard), which writes
    it whole and marks it complete. When a shard fails (its actor died or was killed, or the task raised),
    the runner records it and keeps going with the remaining actors: the other shards are still written,
    a dead actor gets no more work, and at the end :class:`ShardsFailedError` names every failed shard
    (and those left unstarted when no actor survived). A failed shard is not retried on another actor: a
    shard that killed one worker (e.g. out of memory) would likely kill the next, and the store already
    records what is done, so re-running the same command writes exactly the missing shards (a shard left
    half-written is not marked complete and is rewritten whole).

    ``on_dispatch(shard, actor)`` is a hook for monitoring and tests (a test kills an actor through it).
    """

    def run(store: Path, cfg: SimulateConfig, shards: list[int], advance: Callable[[], None]) -> None:
        import ray
        from ray.exceptions import RayActorError, RayTaskError

        ensure_ray(num_cpus=num_workers)
        actor_cls = ray.remote(num_cpus=1, max_restarts=0)(_SimulationActor)
        idle: deque[Any] = deque(
            actor_cls.remote(str(Path(store).resolve()), cfg.model_dump(mode="json"), max_volumes)
            for _ in range(min(num_workers, len(shards)))
        )
        actors = list(idle)
        todo = deque(shards)
        in_flight: dict[Any, tuple[int, Any]] = {}
        failed: dict[int, str] = {}
        try:
            while todo or in_flight:
                while todo and idle:
                    k, actor = todo.popleft(), idle.popleft()
                    in_flight[actor.run.remote(k)] = (k, actor)
                    if on_dispatch is not None:
                        on_dispatch(k, actor)
                if not in_flight:  # no actor left alive
                    break
                [ref], _ = ray.wait(list(in_flight), num_returns=1)
                k, actor = in_flight.pop(ref)
                try:
                    ray.get(ref)
                except RayActorError as e:  # the actor is gone: its shard failed, it gets no more work
                    failed[k] = f"worker died: {type(e).__name__}"
                    continue
                except RayTaskError as e:  # the shard raised; the actor is still usable
                    failed[k] = f"{type(e.cause).__name__ if e.cause else 'error'}: {str(e.cause or e).splitlines()[0]}"
                else:
                    advance()
                idle.append(actor)
        finally:
            for a in actors:
                ray.kill(a)
        if failed or todo:
            raise ShardsFailedError(store, failed, sorted(todo))

    return run


class _SimulationActor:
    def __init__(self, store: str, cfg: dict, max_volumes: int):
        import torch

        torch.set_num_threads(1)
        self.sim = ShardSimulator(store, SimulateConfig.model_validate(cfg), max_volumes=max_volumes)

    def run(self, k: int) -> int:
        return self.sim.run(k)

"""Map-reduce over image shards on Ray actors: the passes of dataset-scale ab initio (and any task of the same
shape, ``fn(shard, shared) -> result``).

Each actor takes whole shards, one at a time, from the driver's queue: it reads the shard's images itself (from
the store's path, so a cluster needs the store on a shared filesystem or object store) and receives the pass's
map through the object store, put once per pass (``ray.put``). A shard whose actor dies is given to a fresh
actor and run again from the start; its result is kept once, by shard index, so nothing is lost or counted
twice. Each actor uses 1 torch thread (``num_cpus=1``) and, with ``num_gpus_per_worker``, a GPU.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from orirec.distributed.runtime import ensure_ray

__all__ = ["RayShardMapper", "ShardTaskError"]

MAX_TRIES = 3  # runs of one shard before the pass gives up (an actor died each time)


class ShardTaskError(RuntimeError):
    """A shard failed (an exception in its task, or its actor died ``MAX_TRIES`` times)."""


class RayShardMapper:
    """Runs the tasks of a pass on ``num_workers`` Ray actors (see the module); ``address`` (or ``RAY_ADDRESS``)
    joins a running cluster. Actors live across passes until :meth:`close`."""

    def __init__(self, num_workers: int = 2, address: str | None = None, num_gpus_per_worker: float = 0.0):
        if int(num_workers) < 1:
            raise ValueError(f"num_workers: expected >= 1, got {num_workers}")
        self.num_workers, self.address, self.num_gpus = int(num_workers), address, float(num_gpus_per_worker)
        self.actors: list = []
        self.restarted = 0  # actors replaced after dying, over the mapper's life

    @property
    def resources(self) -> dict[str, float]:
        """Ray resources each actor asks for."""
        return {"num_cpus": 1.0, "num_gpus": self.num_gpus}

    def _actor(self):
        import ray

        return ray.remote(max_restarts=0, **self.resources)(_ShardActor).remote()

    def _start(self) -> None:
        if not self.actors:
            import ray

            ensure_ray(num_cpus=max(self.num_workers, os.cpu_count() or 1), address=self.address)
            have = ray.cluster_resources().get("CPU", 0)
            if have < self.num_workers and not (self.address or os.environ.get("RAY_ADDRESS")):
                # on a local Ray started earlier with fewer CPUs, the extra actors would wait forever
                raise ValueError(f"--num-workers {self.num_workers}: this Ray instance has {have:g} CPUs")
            self.actors = [self._actor() for _ in range(self.num_workers)]

    def map(
        self, fn: Callable, tasks: Sequence[Any], shared: Any, progress: Callable[[int], None] | None = None
    ) -> Iterator:
        """``fn(task, shared)`` for every task, yielded in task order as soon as the next one is ready (results
        that finish early wait in a buffer, the driver holds no more)."""
        import ray

        self._start()
        fn_ref, shared_ref = ray.put(fn), ray.put(shared)
        queue, ready, tries, nxt = list(range(len(tasks))), {}, [0] * len(tasks), 0
        running: dict = {}  # future -> (task index, actor slot)
        idle = list(range(len(self.actors)))
        while queue or running:
            while queue and idle:
                i, slot = queue.pop(0), idle.pop(0)
                tries[i] += 1
                running[self.actors[slot].run.remote(fn_ref, tasks[i], shared_ref)] = (i, slot)
            [done], _ = ray.wait(list(running), num_returns=1)
            i, slot = running.pop(done)
            idle.append(slot)
            try:
                ready[i] = ray.get(done)
            except ray.exceptions.RayActorError as e:
                if tries[i] >= MAX_TRIES:
                    raise ShardTaskError(f"shard {i}: its actor died {tries[i]} times ({_cause(e)})") from e
                self.actors[slot] = self._actor()  # a fresh actor; the shard is run again from the start
                self.restarted += 1
                queue.insert(0, i)
                continue
            except ray.exceptions.RayTaskError as e:
                raise ShardTaskError(f"shard {i}: {_cause(e)}") from e
            if progress is not None:
                progress(len(getattr(tasks[i], "rows", ())))
            while nxt in ready:
                yield ready.pop(nxt)
                nxt += 1

    def close(self) -> None:
        """Kill the actors (idempotent)."""
        if self.actors:
            import ray

            for a in self.actors:
                ray.kill(a)
        self.actors = []


def _cause(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[-1] if text else type(e).__name__


class _ShardActor:
    """Runs shard tasks with 1 torch thread."""

    def __init__(self) -> None:
        import torch

        torch.set_num_threads(1)

    def run(self, fn: Callable, task: Any, shared: Any) -> Any:
        return fn(task, shared)

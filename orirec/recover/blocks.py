"""Block-coordinate (partitioned) orientation recovery: the 1-worker reference of distributed recovery.

The pair graph is split into parts (``partition.py``). One *round* refines every part's orientations
for ``block_steps`` L-BFGS steps on the part's internal and boundary edges with the same objective as
``refine.refine``, the outside ends of the boundary edges held fixed. Updates are Jacobi-style: every
part starts from the previous round's orientations, so the parts of one round are independent and can
run on different workers (``orirec.distributed.recover``) with the same numbers as :class:`LocalBlockRunner`.

Initialization: one spectral initialization on the whole graph (``spectral_init``: dense for
n <= 6000, a sparse eigendecomposition above; memory O(edges)), which fixes one gauge for all parts.
The orientations and the round number are checkpointed to an ``.npz`` after every round, so an
interrupted run resumes from its last completed round.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from orirec.config import RecoverConfig
from orirec.geometry import canonicalize
from orirec.store.atomic import save_npz_atomic

from .api import RecoveryResult
from .graph import validate_graph, validate_weights
from .partition import split_graph
from .spectral import spectral_init
from .sphere import descend_on_sphere, l_or_value

_DEFAULTS = RecoverConfig()  # the recovery's defaults live in orirec.config


class RecoveryRoundError(RuntimeError):
    """A part failed during a round of partitioned recovery (the checkpoint holds the last completed round)."""


@dataclass
class BlockProblem:
    """One part's share of the problem, in local indices.

    part: the part's number. nodes: global ids it owns (local 0..len(nodes)-1). halo_pos: positions in
    the broadcast boundary array of its fixed outside neighbours (local len(nodes)..). i, j, d, w: its
    internal + boundary edges in local indices, distances (rad) and weights (None = uniform).
    """

    part: int
    nodes: np.ndarray
    halo_pos: np.ndarray
    i: np.ndarray
    j: np.ndarray
    d: np.ndarray
    w: np.ndarray | None


@dataclass(frozen=True)
class BlockOptions:
    """How a part is refined each round: L-BFGS ``steps``, robust ``loss`` ('l2', 'huber', 'cauchy'), its
    ``delta`` (rad), the torch ``seed`` and ``relax`` in (0, 1]: the part moves that fraction of the way
    to its refined orientations (< 1 damps the Jacobi oscillation of parts that move against each other)."""

    steps: int = _DEFAULTS.block_steps
    loss: str = _DEFAULTS.loss
    delta: float = 0.2
    seed: int = 0
    relax: float = _DEFAULTS.relax


def block_problems(labels: np.ndarray, i: np.ndarray, j: np.ndarray, d: np.ndarray, w: np.ndarray | None):
    """Split a validated graph by node ``labels``; returns (problems, boundary ids) for the runners.

    ``boundary`` (sorted global ids) is every node that is some other part's fixed neighbour; its
    orientations are what the driver broadcasts each round.
    """
    parts = split_graph(labels, i, j)
    boundary = np.unique(np.concatenate([p.halo for p in parts]))
    problems = []
    for k, p in enumerate(parts):
        local = np.concatenate([p.nodes, p.halo])
        order = np.argsort(local, kind="stable")
        li = order[np.searchsorted(local, i[p.edges], sorter=order)]
        lj = order[np.searchsorted(local, j[p.edges], sorter=order)]
        problems.append(
            BlockProblem(
                part=k,
                nodes=p.nodes,
                halo_pos=np.searchsorted(boundary, p.halo),
                i=li.astype(np.int64),
                j=lj.astype(np.int64),
                d=d[p.edges],
                w=None if w is None else w[p.edges],
            )
        )
    return problems, boundary


def refine_block(problem: BlockProblem, q_owned: np.ndarray, q_boundary: np.ndarray, opts: BlockOptions) -> np.ndarray:
    """One round for one part: refine its owned orientations (m, 4) with its halo fixed; returns them updated."""
    m = problem.nodes.size
    if problem.i.size == 0:  # an isolated part: nothing constrains it
        return q_owned
    q_local = np.concatenate([q_owned, q_boundary[problem.halo_pos]])
    fixed = np.zeros(q_local.shape[0], dtype=bool)
    fixed[m:] = True
    q, _ = descend_on_sphere(
        q_local, problem.i, problem.j, problem.d, weights=problem.w, steps=opts.steps, loss=opts.loss,
        delta=opts.delta, seed=opts.seed, fixed=fixed,
    )  # fmt: skip
    if opts.relax == 1.0:
        return q[:m]
    new = q[:m] * np.sign(np.sum(q[:m] * q_owned, axis=1, keepdims=True) + 1e-300)  # same hemisphere as before
    mixed = (1.0 - opts.relax) * q_owned + opts.relax * new
    return mixed / np.linalg.norm(mixed, axis=1, keepdims=True)


class BlockRunner(Protocol):
    """Runs the parts of one round; owns each part's orientations between rounds."""

    def start(self, problems: list[BlockProblem], q_owned: list[np.ndarray], opts: BlockOptions) -> None: ...

    def run_round(self, q_boundary: np.ndarray, round_index: int) -> list[np.ndarray]: ...

    def close(self) -> None: ...


class LocalBlockRunner:
    """The 1-worker path: every part refined in turn in this process (Jacobi: all from the same round)."""

    def start(self, problems: list[BlockProblem], q_owned: list[np.ndarray], opts: BlockOptions) -> None:
        self.problems, self.q_owned, self.opts = problems, [q.copy() for q in q_owned], opts

    def run_round(self, q_boundary: np.ndarray, round_index: int) -> list[np.ndarray]:
        new = []
        for p, q in zip(self.problems, self.q_owned, strict=True):
            try:
                new.append(refine_block(p, q, q_boundary, self.opts))
            except Exception as e:
                raise RecoveryRoundError(f"recovery part {p.part} failed in round {round_index}: {e}") from e
        self.q_owned = new
        return new

    def close(self) -> None:
        self.problems, self.q_owned = [], []


def _fingerprint(n: int, labels: np.ndarray, i: np.ndarray, j: np.ndarray, d: np.ndarray) -> int:
    crc = zlib.crc32(np.asarray([n, i.size], dtype=np.int64).tobytes())
    for a in (labels, i, j, d):
        crc = zlib.crc32(np.ascontiguousarray(a).tobytes(), crc)
    return crc


def _load_checkpoint(path: Path, fingerprint: int, n: int) -> tuple[np.ndarray, int] | None:
    if not path.is_file():
        return None
    try:
        with np.load(path) as z:
            q, done, fp = z["quaternions"], int(z["round"]), int(z["fingerprint"])
    except Exception as e:
        raise ValueError(f"{path}: not a readable recovery checkpoint ({e}); delete it to start over") from e
    if fp != fingerprint or q.shape != (n, 4):
        raise ValueError(f"{path}: checkpoint of a different graph or partition; delete it or use another path")
    return q, done


def _save_checkpoint(path: Path, q: np.ndarray, done: int, fingerprint: int, history: list[float]) -> None:
    """Write whole or not at all: a temporary file renamed over the checkpoint."""
    save_npz_atomic(path, quaternions=q, round=done, fingerprint=fingerprint, history=np.asarray(history))


def recover_partitioned(
    n: int,
    i: np.ndarray,
    j: np.ndarray,
    d: np.ndarray,
    labels: np.ndarray,
    weights: np.ndarray | None = None,
    rounds: int = _DEFAULTS.rounds,
    block_steps: int = _DEFAULTS.block_steps,
    relax: float = _DEFAULTS.relax,
    n_starts: int = _DEFAULTS.n_starts,
    seed: int = _DEFAULTS.seed,
    loss: str = _DEFAULTS.loss,
    q0: np.ndarray | None = None,
    checkpoint: Path | str | None = None,
    runner: BlockRunner | None = None,
    progress: Callable[[int, float], None] | None = None,
) -> RecoveryResult:
    """Recover ``n`` orientations from distances ``d`` (rad) on edges (i, j) by rounds of per-part refinement.

    labels: (n,) part of each node (e.g. ``partition.balanced_kmeans`` of the embeddings).
    rounds / block_steps: Jacobi rounds, and L-BFGS steps per part per round.
    relax: fraction of each part's move taken per round (see :class:`BlockOptions`).
    q0: initial quaternions (default: ``spectral_init`` on the whole graph with ``n_starts``, ``seed``).
    checkpoint: ``.npz`` written after every round; if it exists (same graph and labels) the run resumes
        after its last completed round.
    runner: where the parts run (default :class:`LocalBlockRunner`; ``orirec.distributed.recover`` has
        the Ray one, which gives the same numbers up to float reduction order).
    progress: ``progress(round, l_or)`` after each round.

    Returns a :class:`RecoveryResult` whose ``loss_history`` holds L_OR (rad^2) after each round
    (entry 0: the initialization). A failing part raises :class:`RecoveryRoundError` naming it and
    the round; the checkpoint then holds the last completed round.
    """
    t0 = time.perf_counter()
    if int(n) < 2:
        raise ValueError(f"n: need at least 2 images, got {n}")
    n = int(n)
    i, j, d = validate_graph(n, i, j, d)
    w = validate_weights(weights, i.size)
    labels = np.asarray(labels, dtype=np.int64).ravel()
    if labels.size != n:
        raise ValueError(f"labels: expected {n} part labels (one per node), got {labels.size}")
    if rounds < 0 or block_steps < 1 or not 0.0 < relax <= 1.0:
        raise ValueError(f"need rounds >= 0, block_steps >= 1 and 0 < relax <= 1, got {rounds}, {block_steps}, {relax}")
    opts = BlockOptions(steps=int(block_steps), loss=loss, seed=seed, relax=float(relax))
    problems, boundary = block_problems(labels, i, j, d, w)
    fp = _fingerprint(n, labels, i, j, d)
    path = None if checkpoint is None else Path(checkpoint)
    stored = None if path is None else _load_checkpoint(path, fp, n)
    history: list[float]
    if stored is not None and path is not None:
        q, done = stored
        with np.load(path) as z:
            history = [float(x) for x in z["history"]]
    else:
        q = spectral_init(n, i, j, d, weights=w, n_starts=n_starts, seed=seed) if q0 is None else np.array(q0, float)
        if q.shape != (n, 4):
            raise ValueError(f"q0: expected shape ({n}, 4), got {q.shape}")
        done, history = 0, [l_or_value(q, i, j, d, w)]
        if path is not None:
            _save_checkpoint(path, q, done, fp, history)
    runner = runner or LocalBlockRunner()
    runner.start(problems, [q[p.nodes] for p in problems], opts)
    try:
        for r in range(done, int(rounds)):
            parts_q = runner.run_round(q[boundary], r)
            q = q.copy()
            for p, qp in zip(problems, parts_q, strict=True):
                q[p.nodes] = qp
            history.append(l_or_value(q, i, j, d, w))
            if path is not None:
                _save_checkpoint(path, q, r + 1, fp, history)
            if progress is not None:
                progress(r, history[-1])
    finally:
        runner.close()
    return RecoveryResult(
        quaternions=canonicalize(q / np.linalg.norm(q, axis=1, keepdims=True)),
        loss_history=history,
        l_or=float(history[-1]),
        wall_time_s=time.perf_counter() - t0,
    )

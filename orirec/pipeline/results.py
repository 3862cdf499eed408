"""Typed results of the stages (simulate, train, recover, reconstruct, evaluate, refine, ab initio).

Each result is a dataclass with typed fields, and reads as the JSON summary it is written as: ``dict(result)``,
``result["n_images"]`` and ``result.items()`` give its fields, with the open-ended groups (gauge, refinement,
per-epoch and evaluation metrics, whose keys depend on the run) merged in at the top level. That flat view is what
``*_result.json``, the done markers of ``orirec run`` and MLflow see.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

__all__ = [
    "AbInitioStageResult",
    "EvaluateResult",
    "ReconstructResult",
    "RecoverStageResult",
    "RefineStageResult",
    "SimulateResult",
    "StageResult",
    "TrainResult",
]

_MERGED = {"merged": True}  # a dict field whose keys join the result's top level


def _merged() -> Any:
    return field(default_factory=dict, metadata=_MERGED)


class StageResult(Mapping[str, Any]):
    """Base of the stage results: a read-only mapping over the fields (merged groups flattened, in field order)."""

    def as_dict(self) -> dict[str, Any]:
        """The result as the plain dict written to JSON."""
        out: dict[str, Any] = {}
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if f.metadata.get("merged"):
                out.update(value)
            else:
                out[f.name] = value
        return out

    def __getitem__(self, key: str) -> Any:
        return self.as_dict()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.as_dict())

    def __len__(self) -> int:
        return len(self.as_dict())


@dataclass(eq=False)
class SimulateResult(StageResult):
    """Images in the store, shards written now and skipped (already complete), wall time (s)."""

    n_images: int
    shards_written: int
    shards_skipped: int
    time_s: float


@dataclass(eq=False)
class TrainResult(StageResult):
    """The training's last-epoch metrics, best validation MAE (rad) and epoch, history and checkpoint (best.pt)."""

    last_epoch: dict[str, Any] = _merged()
    best_val_mae: float | None = None
    best_epoch: int | None = None
    epochs_run: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    checkpoint: str = ""
    run: dict[str, Any] = _merged()  # what the loop also reports: stopped_early, pairs_per_s, wall_time_s, ...
    time_s: float = 0.0


@dataclass(eq=False)
class RecoverStageResult(StageResult):
    """Images, graph nodes (images + in-plane copies) and edges, L_OR (rad²) and its history, times (s); the gauge
    (``gauge_*``) and projection-matching refinement (``refine_*``) when they ran."""

    n_images: int
    n_nodes: int
    n_edges: int
    l_or: float
    loss_history: list[float]
    time_embed_s: float
    time_recover_s: float
    partitions: int
    gauge: dict[str, Any] = _merged()
    refine: dict[str, Any] = _merged()
    time_s: float = 0.0


@dataclass(eq=False)
class ReconstructResult(StageResult):
    """The map written (MRC path), the images it was made from and the wall time (s)."""

    map: str
    n_images: int
    time_s: float


@dataclass(eq=False)
class EvaluateResult(StageResult):
    """The metrics of DESIGN §6 (degrees, acc@k fractions), those before refinement (``unrefined_*``), the distance
    errors (rad) and the FSC resolutions (Å) when there was a graph and a reference map."""

    symmetry: str
    orientation: dict[str, Any] = _merged()
    unrefined: dict[str, Any] = _merged()
    distances: dict[str, Any] = _merged()
    fsc: dict[str, Any] = _merged()


@dataclass(eq=False)
class RefineStageResult(StageResult):
    """Images refined, the orientations they started from, and the refinement's ``refine_*`` numbers."""

    n_images: int
    source: str
    refine: dict[str, Any] = _merged()


@dataclass(eq=False)
class AbInitioStageResult(StageResult):
    """Images, protein (store index), wall time (s), the search's ``ab_initio_*`` numbers and the refinement's."""

    n_images: int
    protein: int | None
    time_ab_initio_s: float
    search: dict[str, Any] = _merged()
    refine: dict[str, Any] = _merged()
    details: dict[str, Any] = _merged()  # per-iteration numbers and restart scores


def train_result(loop_summary: Mapping[str, Any], time_s: float) -> TrainResult:
    """A :class:`TrainResult` from the training loop's summary (or one read back from a checkpoint)."""
    history = list(loop_summary.get("history") or [])
    last = {k: v for k, v in (history[-1] if history else {}).items() if k != "epoch"}
    named = {"best_val_mae", "best_epoch", "epochs_run", "history", "checkpoint", "report", "time_s"}
    return TrainResult(
        last_epoch={k: loop_summary[k] for k in last if k in loop_summary},
        best_val_mae=loop_summary.get("best_val_mae"),
        best_epoch=loop_summary.get("best_epoch"),
        epochs_run=int(loop_summary.get("epochs_run", len(history))),
        history=history,
        checkpoint=str(loop_summary.get("checkpoint", "")),
        run={k: v for k, v in loop_summary.items() if k not in named and k not in last},
        time_s=time_s,
    )

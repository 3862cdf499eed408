"""Pipeline files (``pipelines/*.yaml``): a run config plus named stages, paths/URIs, and stage skipping.

A pipeline file is a :class:`~orirec.config.RunConfig` (so every run config, e.g. ``pipelines/demo.yaml``,
is a valid pipeline file) with optional extra sections:

- ``stages``: which stages run, in order (default: all; ``simulate_test`` only when ``test`` is set,
  ``tune`` only when ``tune`` is set: a Ray Tune sweep whose best values the ``train`` stage then uses;
  ``ab_initio`` only when ``ab_initio`` is set, and then instead of ``tune``, ``train`` and ``recover``).
- ``ab_initio``: orientations with no model (``orirec ab-initio``'s settings, ``refine``, optional ``protein`` and
  ``n``), an alternative to ``train`` + ``recover``: reconstruct / evaluate / report then read its
  ``orientations.csv`` (:attr:`PipelineSpec.orientations_key`).
- ``paths``: where each stage writes, relative to the run folder, absolute, or a URI
  (``s3://``, ``gs://``, ``memory://``, …, through fsspec: the stage writes a local working copy in the run
  folder, which is uploaded when the stage finishes and downloaded again when a later stage needs it).
- ``split``: the manifest split (``split`` column) the training store is simulated from.
- ``test``: a second store (``paths.test_store``) that recover / ab_initio / reconstruct / evaluate / report read
  instead of the training store, e.g. unseen proteins of the ``test`` split.

A pipeline may start from an existing store (e.g. one written by ``orirec import``): point ``paths.store`` at it
and leave ``simulate`` out of ``stages``.

A finished stage leaves ``<run>/stages/<stage>/done.json`` with its config hash and output paths; a rerun
skips the stage when the hash matches and the outputs exist. The hash covers the stage's own config
section and the hashes of the stages whose outputs it reads, so a changed upstream config reruns
everything downstream.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import ConfigDict, Field, model_validator

from orirec.config import RefineConfig, RunConfig, SimulateConfig, TuneConfig, deep_merge, load_yaml, validate
from orirec.config.estimators import AbInitioConfig
from orirec.config.models import _Strict

StageName = Literal[
    "simulate", "simulate_test", "tune", "train", "ab_initio", "recover", "reconstruct", "evaluate", "report"
]
ALL_STAGES: tuple[str, ...] = (
    "simulate",
    "simulate_test",
    "tune",
    "train",
    "ab_initio",
    "recover",
    "reconstruct",
    "evaluate",
    "report",
)
OPTIONAL_STAGES = {"simulate_test": "test", "tune": "tune", "ab_initio": "ab_initio"}  # stage -> the section it needs
MODEL_STAGES = ("tune", "train", "recover")  # what ab_initio replaces in the default stages


class PipelinePaths(_Strict):
    """Output location of each stage: relative to the run folder, absolute, or an fsspec URI."""

    store: str = Field("projections.zarr", description="training store (Zarr, DESIGN §4)")
    test_store: str = Field("test.zarr", description="store of the test data (used when `test` is set)")
    tune: str = Field("tune", description="sweep results and best_values.json")
    train: str = Field("train", description="checkpoints and training summary")
    ab_initio: str = Field("ab_initio", description="orientations.{csv,star}, ab_initio_map.mrc (no model)")
    recover: str = Field("recover", description="orientations.{csv,star}, graph.npz")
    reconstruct: str = Field("reconstruct", description="map.mrc")
    evaluate: str = Field("evaluate", description="metrics.json")
    report: str = Field("report", description="report.html and its PNGs")


class TestData(_Strict):
    """A separate test store: the run's ``simulate`` section with ``simulate`` overrides, from ``split``."""

    split: str | None = Field(None, description="manifest split of the test store, e.g. 'test'")
    simulate: dict[str, Any] = Field(default_factory=dict, description="keys of `simulate` that differ")


class AbInitioStage(AbInitioConfig):
    """The ``ab_initio`` stage: ``orirec ab-initio``'s settings (:class:`AbInitioConfig`, unknown keys are errors),
    which images, and the projection-matching refinement that follows."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    protein: int | None = Field(None, ge=0, description="only the images of this protein (store index)")
    n: int | None = Field(None, ge=10, description="only the first N images (of `protein`)")
    refine: RefineConfig = Field(default_factory=RefineConfig, description="projection-matching refinement after it")

    def settings(self) -> dict[str, Any]:
        """The search's settings (what ``stage_ab_initio`` passes on to the estimator): every field but the
        images, the refinement and the seed (its own argument)."""
        return self.model_dump(exclude={"protein", "n", "refine", "seed"})


class PipelineSpec(RunConfig):
    """A run config plus stages, paths, the training split and an optional test store."""

    description: str | None = None
    stages: list[StageName] | None = Field(None, description="stages to run, in pipeline order (default: all)")
    paths: PipelinePaths = Field(default_factory=PipelinePaths)
    split: str | None = Field(None, description="manifest split of the training store, e.g. 'train'")
    test: TestData | None = None
    tune: TuneConfig | None = Field(None, description="a Ray Tune sweep before training (orirec tune's settings)")
    ab_initio: AbInitioStage | None = Field(
        None, description="orientations with no model (orirec ab-initio's settings), instead of train + recover"
    )

    @model_validator(mode="after")
    def _check_stages(self) -> PipelineSpec:
        if self.stages is not None:
            if len(set(self.stages)) != len(self.stages):
                raise ValueError(f"stages: listed twice: {self.stages}")
            for stage, section in OPTIONAL_STAGES.items():
                if stage in self.stages and getattr(self, section) is None:
                    raise ValueError(f"stages: {stage} needs a `{section}` section")
        active = self.active_stages()
        if "ab_initio" in active and "recover" in active:
            raise ValueError(
                "stages: ab_initio and recover both write the orientations; list one of them "
                "(ab_initio needs no train either)"
            )
        if self.test is not None:
            self.test_simulate_config()  # unknown keys fail now, not after training
        return self

    def active_stages(self) -> list[str]:
        """The stages to run, in pipeline order."""
        if self.stages is not None:
            return [s for s in ALL_STAGES if s in self.stages]
        skip = MODEL_STAGES if self.ab_initio is not None else ()  # no model: ab initio instead of train + recover
        return [s for s in ALL_STAGES if self._has_section(s) and s not in skip]

    def _has_section(self, stage: str) -> bool:
        return stage not in OPTIONAL_STAGES or getattr(self, OPTIONAL_STAGES[stage]) is not None

    def test_simulate_config(self) -> SimulateConfig:
        """The simulation config of the test store (``simulate`` with ``test.simulate`` merged on top)."""
        assert self.test is not None
        merged = deep_merge(self.simulate.model_dump(mode="json"), self.test.simulate)
        return validate(SimulateConfig, merged, "test.simulate")

    @property
    def eval_store_key(self) -> str:
        """The ``paths`` key of the store that recover/ab_initio/reconstruct/evaluate/report read."""
        return "test_store" if self.test is not None else "store"

    @property
    def orientations_key(self) -> str:
        """The ``paths`` key of the stage whose ``orientations.csv`` reconstruct/evaluate/report read: ``ab_initio``
        when it runs, or when the pipeline has an ``ab_initio`` section and recover does not run; else ``recover``."""
        active = self.active_stages()
        if "ab_initio" in active or (self.ab_initio is not None and "recover" not in active):
            return "ab_initio"
        return "recover"


def load_pipeline(path: str | Path, overrides: dict[str, Any] | None = None) -> PipelineSpec:
    """Load a pipeline YAML (or a plain run config) with nested ``overrides`` (from ``--set``) on top."""
    return load_yaml(path, PipelineSpec, overrides)


def as_pipeline(cfg: RunConfig) -> PipelineSpec:
    """A :class:`PipelineSpec` for a plain run config (all default stages and paths)."""
    return cfg if isinstance(cfg, PipelineSpec) else PipelineSpec.model_validate(cfg.model_dump())


# ---- where each stage reads and writes -------------------------------------------------------------------


def is_uri(path: str) -> bool:
    """True for ``scheme://…`` other than ``file://`` (handled through fsspec)."""
    return "://" in path and not path.startswith("file://")


@dataclass(frozen=True)
class Location:
    """A stage output: the local working path and, for object storage, the URI it is mirrored to."""

    local: Path
    remote: str | None = None

    @property
    def where(self) -> str:
        """The durable location (URI if any, else the local path)."""
        return self.remote or str(self.local)


def locate(spec: PipelineSpec, run_dir: Path, key: str) -> Location:
    """Resolve ``paths.<key>`` against the run folder; URIs get a local working copy under the run folder."""
    raw = getattr(spec.paths, key)
    if is_uri(raw):
        return Location(run_dir / PipelinePaths.model_fields[key].default, raw)
    raw = raw.removeprefix("file://")
    p = Path(raw)
    return Location(p if p.is_absolute() else run_dir / p)


def _fs(uri: str):
    import fsspec

    fs, path = fsspec.core.url_to_fs(uri)
    return fs, path


def exists(loc: Location) -> bool:
    """Whether the output is there (locally, or at its URI)."""
    if loc.local.exists():
        return True
    if loc.remote:
        fs, p = _fs(loc.remote)
        return fs.exists(p)
    return False


def publish(loc: Location) -> None:
    """Upload the local working copy to its URI (no-op for local paths)."""
    if loc.remote:
        fs, p = _fs(loc.remote)
        fs.put(str(loc.local), p, recursive=loc.local.is_dir())


def fetch(loc: Location) -> None:
    """Download from the URI when the local working copy is missing (no-op for local paths)."""
    if loc.remote and not loc.local.exists():
        fs, p = _fs(loc.remote)
        if not fs.exists(p):
            raise FileNotFoundError(f"{loc.remote}: stage output not found")
        loc.local.parent.mkdir(parents=True, exist_ok=True)
        fs.get(p, str(loc.local), recursive=fs.isdir(p))


def localize_inputs(inputs: list[str], cache_dir: Path) -> list[str]:
    """Simulation inputs with every URI (``s3://bucket/5j0n.mrc``) replaced by a downloaded local copy."""
    out = []
    for item in inputs:
        if not is_uri(item):
            out.append(item)
            continue
        local = cache_dir / f"{_digest(item)[:8]}-{item.rstrip('/').rsplit('/', 1)[-1]}"
        fetch(Location(local, item))
        out.append(str(local))
    return out


# ---- stage table, hashes and done markers -----------------------------------------------------------------


def stage_io(spec: PipelineSpec, stage: str) -> tuple[list[str], list[str]]:
    """``(inputs, outputs)`` of a stage as ``paths`` keys."""
    ev, orient = spec.eval_store_key, spec.orientations_key
    report_inputs = ["train", "recover"] if orient == "recover" else [orient]  # no model: no training to show
    return {
        "simulate": ([], ["store"]),
        "simulate_test": ([], ["test_store"]),
        "tune": (["store"], ["tune"]),
        "train": (
            ["store", "tune"] if spec.tune is not None and "tune" in spec.active_stages() else ["store"],
            ["train"],
        ),
        "ab_initio": ([ev], ["ab_initio"]),
        "recover": ([ev, "train"], ["recover"]),
        "reconstruct": ([ev, orient], ["reconstruct"]),
        "evaluate": ([ev, orient], ["evaluate"]),
        "report": ([ev, *report_inputs, "reconstruct", "evaluate"], ["report"]),
    }[stage]


def stage_config(spec: PipelineSpec, stage: str) -> dict[str, Any]:
    """The part of the spec that determines a stage's outputs (what its hash covers)."""
    if stage == "simulate":
        return {"simulate": spec.simulate.model_dump(mode="json"), "split": spec.split}
    if stage == "simulate_test":
        assert spec.test is not None  # the stage exists only with a test section
        return {"simulate": spec.test_simulate_config().model_dump(mode="json"), "split": spec.test.split}
    if stage in ("reconstruct", "evaluate"):
        return {"reconstruct": spec.reconstruct.model_dump(mode="json")}
    if stage == "report":
        return {}
    if stage == "tune":
        assert spec.tune is not None  # the stage exists only with a tune section
        space = Path(spec.tune.space)
        text = space.read_text() if space.is_file() else spec.tune.space
        return {"tune": spec.tune.model_dump(mode="json"), "space": text, "train": spec.train.model_dump(mode="json")}
    return {stage: getattr(spec, stage).model_dump(mode="json")}


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def stage_hashes(spec: PipelineSpec) -> dict[str, str]:
    """Config hash of every stage (optional ones only with their section), chained through its inputs' stages."""
    producer = {out: s for s in ALL_STAGES for out in stage_io(spec, s)[1]}
    active = set(spec.active_stages())
    hashes: dict[str, str] = {}
    for s in ALL_STAGES:
        if not spec._has_section(s):
            continue
        ins = stage_io(spec, s)[0]
        upstream = {k: hashes.get(producer[k]) if producer[k] in active else getattr(spec.paths, k) for k in ins}
        hashes[s] = _digest({"stage": s, "config": stage_config(spec, s), "inputs": upstream})
    return hashes


def done_path(run_dir: Path, stage: str) -> Path:
    """``<run>/stages/<stage>/done.json``."""
    return run_dir / "stages" / stage / "done.json"


def read_done(run_dir: Path, stage: str) -> dict[str, Any] | None:
    """The stage's done marker, or None (also None when unreadable: the stage reruns)."""
    p = done_path(run_dir, stage)
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return None


def is_done(spec: PipelineSpec, run_dir: Path, stage: str, stage_hash: str) -> bool:
    """True when the stage finished with this config hash and all its outputs still exist."""
    done = read_done(run_dir, stage)
    if not done or done.get("hash") != stage_hash:
        return False
    return all(exists(locate(spec, run_dir, k)) for k in stage_io(spec, stage)[1])


def mark_done(spec: PipelineSpec, run_dir: Path, stage: str, stage_hash: str, summary: dict[str, Any]) -> None:
    """Write the done marker atomically (a crash never leaves a half-written marker)."""
    p = done_path(run_dir, stage)
    p.parent.mkdir(parents=True, exist_ok=True)
    outputs = {k: locate(spec, run_dir, k).where for k in stage_io(spec, stage)[1]}
    record = {"stage": stage, "hash": stage_hash, "outputs": outputs, "finished_at": time.time(), "summary": summary}
    tmp = p.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2, default=str))
    tmp.replace(p)


def clear_done(run_dir: Path, stage: str) -> None:
    """Remove a stage's done marker before it runs (an interrupted stage is never taken as finished)."""
    done_path(run_dir, stage).unlink(missing_ok=True)

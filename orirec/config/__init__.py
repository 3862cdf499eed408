"""Typed per-stage configs, named presets, and YAML load/dump (DESIGN §3, layer 0)."""

from orirec.config.io import dump_yaml, load_yaml, parse_set, validate
from orirec.config.models import (
    ModelConfig,
    ReconstructConfig,
    RecoverConfig,
    RefineConfig,
    RunConfig,
    SimulateConfig,
    TrackingConfig,
    TrainConfig,
    TuneConfig,
)
from orirec.config.presets import PRESETS, deep_merge, run_preset

__all__ = [
    "PRESETS",
    "ModelConfig",
    "ReconstructConfig",
    "RecoverConfig",
    "RefineConfig",
    "RunConfig",
    "SimulateConfig",
    "TrackingConfig",
    "TrainConfig",
    "TuneConfig",
    "deep_merge",
    "dump_yaml",
    "load_yaml",
    "parse_set",
    "run_preset",
    "validate",
]

"""The main job (``orirec demo``, ``make demo``, ``benchmarks/demo.py``): one config builder and one summary.

The demo runs simulate → train → recover (with projection-matching refinement) → reconstruct → evaluate on the
``small`` preset, and reports the orientation errors before and after refinement. The CLI, the benchmark and the
guard test share these functions, so what the docs quote is what a user's ``make demo`` prints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from orirec.config import PRESETS, RunConfig, deep_merge, load_yaml, validate
from orirec.evaluate.report import HEADLINE

#: (label, key in the evaluate metrics) of the numbers printed before refinement (the recovery's own).
BEFORE_REFINEMENT = (
    ("err_o4_median", "unrefined_err_o4_median"),
    ("err_rot_median", "unrefined_err_rot_median"),
    ("acc10", "unrefined_acc10"),
    ("acc20", "unrefined_acc20"),
)
#: keys of the evaluate metrics printed after refinement (or for the recovery when refinement is off): the report's
AFTER_REFINEMENT = HEADLINE


def demo_config(
    preset: str = "small",
    name: str = "demo",
    inputs: list[str] | None = None,
    sigma2: float | None = None,
    overrides: dict[str, Any] | None = None,
    config: Path | None = None,
    tracking: bool = True,
) -> RunConfig:
    """The run config of ``orirec demo``: ``preset`` (or the YAML ``config``), then the options, then ``overrides``
    (nested, as from ``--set``). ``inputs`` replace the embedded pseudo-protein; ``sigma2`` is the noise level."""
    if config is None and preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    top: dict[str, Any] = {"name": name}
    if inputs:
        top["simulate"] = {"inputs": list(inputs)}
    if sigma2 is not None:
        top.setdefault("simulate", {})["sigma2"] = sigma2
    if not tracking:
        top["tracking"] = {"enabled": False}
    if config is not None:
        base = load_yaml(config, RunConfig).model_dump(mode="json")
    else:
        base = deep_merge(RunConfig().model_dump(mode="json"), PRESETS[preset])
    return validate(RunConfig, deep_merge(deep_merge(base, top), overrides or {}), str(config or "command line"))


def demo_summary(result: dict[str, Any]) -> dict[str, dict[str, float]]:
    """The demo's headline numbers from ``run_all``'s result: ``before_refinement`` (empty when refinement was
    off), ``after_refinement`` (the final orientations), ``stage_times_s`` and ``total_time_s``."""
    ev = result.get("evaluate") or {}
    times = {k: v.get("time_s") for k, v in result.items() if isinstance(v, dict) and k != "evaluate"}
    summary: dict[str, Any] = {
        "before_refinement": {label: ev[key] for label, key in BEFORE_REFINEMENT if key in ev},
        "after_refinement": {k: ev[k] for k in AFTER_REFINEMENT if k in ev},
        "stage_times_s": {k: float(v) for k, v in times.items() if v is not None},
        "total_time_s": float(result.get("total_time_s", 0.0)),
    }
    return summary

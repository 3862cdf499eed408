"""``orirec demo`` (and ``orirec run-config``): the whole pipeline on embedded defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from orirec.cli.common import echo_table, progress_bars, user_errors, warn


def echo_run_summary(run_dir: Path, res: dict) -> None:
    """Print a finished run's numbers: before refinement (when it ran), after, stage times, report, MLflow."""
    from orirec.pipeline.demo import demo_summary

    summary = demo_summary(res)
    before, after = summary["before_refinement"], summary["after_refinement"]
    title = f"run {run_dir} ({summary['total_time_s']:.0f} s)"
    if before:
        echo_table(f"{title}: recovered orientations, before refinement", before)
        title = "after projection-matching refinement"
    echo_table(title, after)
    echo_table("stage times (s)", {f"time_{k}_s": v for k, v in summary["stage_times_s"].items()})
    if res.get("report"):
        typer.echo(f"report: {res['report']['html']}")
    if res.get("tracking_uri"):
        typer.echo(f"MLflow run {res['mlflow_run_id']} at {res['tracking_uri']}")
    if res.get("tracking_failed"):
        warn(res["tracking_failed"])


def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="run folder")] = Path("runs/demo"),
    preset: Annotated[str, typer.Option(help="tiny (seconds), small (minutes), paper, full")] = "small",
    input: Annotated[
        list[str] | None,
        typer.Option("--input", "-i", help="structure/map instead of the embedded pseudo-protein (repeatable)"),
    ] = None,
    sigma2: Annotated[float | None, typer.Option(help="noise level σ² (default: the preset's)")] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="override any config key, e.g. train.epochs=3 (repeatable)")
    ] = None,
    config: Annotated[Path | None, typer.Option(help="a run config YAML (overrides the preset)")] = None,
    no_mlflow: Annotated[bool, typer.Option("--no-mlflow", help="do not track in MLflow")] = False,
    overwrite: Annotated[bool, typer.Option(help="replace an existing store of another config")] = False,
    progress: Annotated[bool, typer.Option(help="show progress bars")] = True,
) -> None:
    """Simulate → train → recover → reconstruct → evaluate, into one run folder tracked in MLflow.

    Example: orirec demo --out runs/demo            (embedded pseudo-protein, ~5 min on 2 cores)
             orirec demo -i ../shared/data/maps/5j0n.mrc --sigma2 16 --out runs/5j0n-s16
    """
    from orirec.config import parse_set
    from orirec.pipeline.demo import demo_config
    from orirec.pipeline.run import run_all

    with user_errors():
        cfg = demo_config(
            preset, out.name or "demo", input, sigma2, parse_set(set_ or []), config, tracking=not no_mlflow
        )
        with progress_bars(progress) as bars:
            res = run_all(cfg, out, overwrite=overwrite, progress=bars, train_progress=progress)
    echo_run_summary(out, res)

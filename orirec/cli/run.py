"""``orirec run``: run a pipeline file here, in-process, skipping stages that are already done."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from orirec.cli.common import progress_bars, user_errors
from orirec.cli.demo import echo_run_summary


def run(
    pipeline: Annotated[Path, typer.Argument(help="pipeline YAML (pipelines/*.yaml) or a run config")],
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="override any key, e.g. simulate.sigma2=16 (repeatable)")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="run folder (default runs/<name>)")] = None,
    force: Annotated[bool, typer.Option(help="rerun stages even when their done.json matches")] = False,
    overwrite: Annotated[bool, typer.Option(help="replace an existing store of another config")] = False,
    no_mlflow: Annotated[bool, typer.Option("--no-mlflow", help="do not track in MLflow")] = False,
    progress: Annotated[bool, typer.Option(help="show progress bars")] = True,
) -> None:
    """Run a pipeline (simulate → train → recover → reconstruct → evaluate → report) on this machine.

    A stage whose stages/<stage>/done.json holds the same config hash, and whose outputs exist, is skipped.

    Example: orirec run pipelines/demo.yaml --out runs/demo
             orirec run pipelines/paper-5j0n.yaml --set simulate.sigma2=16 --out runs/5j0n-s16
    """
    from orirec.config import parse_set
    from orirec.pipeline.run import run_all
    from orirec.pipeline.spec import load_pipeline

    with user_errors():
        overrides = parse_set(set_ or [])
        if no_mlflow:
            overrides.setdefault("tracking", {})["enabled"] = False
        spec = load_pipeline(pipeline, overrides)
        run_dir = out or Path("runs") / spec.name
        with progress_bars(progress) as bars:
            res = run_all(
                spec, run_dir, overwrite=overwrite, progress=bars, train_progress=progress, force=force, log=typer.echo
            )
    echo_run_summary(run_dir, res)

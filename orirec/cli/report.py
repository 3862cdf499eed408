"""``orirec report``: regenerate the HTML report of a run folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from orirec.cli.common import user_errors


def report(
    run_dir: Annotated[Path, typer.Argument(help="run folder written by orirec run / orirec demo")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="report folder (default: the run's paths.report)")
    ] = None,
) -> None:
    """Write RUN_DIR/report/report.html (loss curves, d_p vs d_q, viewing directions, errors, FSC, map slices).

    Example: orirec report runs/demo
    """
    from orirec.pipeline.run import RunPaths, run_report
    from orirec.pipeline.spec import PipelineSpec, load_pipeline

    with user_errors():
        if not run_dir.is_dir():
            raise FileNotFoundError(f"{run_dir}: no such run folder")
        cfg_file = run_dir / "config.yaml"
        spec = load_pipeline(cfg_file) if cfg_file.is_file() else PipelineSpec()
        res = run_report(spec, RunPaths.of(spec, run_dir), out)
    typer.echo(res["html"])
    for name in res["missing"]:
        typer.echo(f"  missing: {name}")

"""Shared CLI helpers: one-line errors with a non-zero exit, rich progress bars, result printing, MLflow
trackers that warn on this console."""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

console = Console(stderr=True, soft_wrap=True)

#: bad input and what the file system refuses (a read-only or full disk, a file where a folder is expected)
USER_ERRORS = (ValueError, OSError)


def error_line(e: BaseException) -> str:
    """One line for a user error: an OSError as ``<path>: <problem>`` (``out/x.pt: no space left on device``),
    anything else its message's first line."""
    if isinstance(e, OSError) and e.strerror and e.filename is not None:
        path = str(e.filename) + (f" -> {e.filename2}" if e.filename2 is not None else "")
        problem = e.strerror[:1].lower() + e.strerror[1:]
        if e.errno in (errno.EEXIST, errno.ENOTDIR):  # name the file that stands where a folder should be
            file = next((p for p in (Path(e.filename), *Path(e.filename).parents) if p.is_file()), None)
            if file is not None:
                return f"{file}: a file where a folder is expected" + (f" ({path})" if file != Path(path) else "")
        return f"{path}: {problem}"
    if isinstance(e, OSError) and e.strerror and not e.args[2:]:  # "[Errno 28] No space left on device"
        return e.strerror[:1].lower() + e.strerror[1:]
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def print_line(prefix: str, text: str) -> None:
    """``prefix`` (rich markup) and the user's ``text`` as is: no markup, emoji or highlighting in it."""
    console.print(f"{prefix} {escape(text)}", markup=True, highlight=False, emoji=False)


def warn(text: str) -> None:
    """A warning line on stderr."""
    print_line("[bold yellow]warning:[/]", text)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn bad-input exceptions (and the file system's refusals) into one line on stderr and exit code 2."""
    try:
        yield
    except USER_ERRORS as e:
        print_line("[bold red]error:[/]", error_line(e))
        raise typer.Exit(2) from None


def config_default(model: type[BaseModel], field: str) -> Any:
    """The default of ``model.field``: an option that sets a config field takes its default from the config
    (orirec.config is the one home of defaults)."""
    return model.model_fields[field].get_default(call_default_factory=True)


def config_help(model: type[BaseModel], field: str, note: str = "") -> str:
    """The help of an option that sets ``model.field``: the field's description (with its units), then ``note``."""
    description = model.model_fields[field].description
    if not description:
        raise ValueError(f"{model.__name__}.{field}: no description to show as the option's help")
    return description + note


def shown_default(value: Any) -> str:
    """`` [value]``: the default an option with no default of its own (None: a --config file or the command decides)
    shows in its help, escaped so that rich does not read ``[small]`` as markup."""
    if isinstance(value, float):
        mantissa, exponent = f"{value:.6e}".split("e")
        short = f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"  # 1e-3
        value = short if abs(int(exponent)) >= 3 else f"{value:g}"
    return " " + escape(f"[{value}]")


def make_tracker(track: bool, uri: str | None, experiment: str, out: Path) -> Any:
    """An MLflow tracker of a command writing to ``out`` (``--track/--no-track``, ``--tracking-uri``, else
    ``$MLFLOW_TRACKING_URI``, else ``sqlite:///OUT/mlflow.db``) whose one warning, if tracking fails, goes to
    stderr; see :func:`tracking_done`."""
    from orirec.tracking import Tracker

    return Tracker(track, uri, experiment, out, warn=warn)


#: the MLflow options of every command that trains, recovers, refines, runs ab initio or compares
TRACK_HELP = "log to MLflow (default: OUT/mlflow.db, or $MLFLOW_TRACKING_URI)"
TRACKING_URI_HELP = "MLflow tracking URI; default $MLFLOW_TRACKING_URI, else sqlite:///OUT/mlflow.db"
#: the ``--track/--no-track`` and ``--tracking-uri`` options of every command that tracks its run
TrackFlag = Annotated[bool, typer.Option("--track/--no-track", help=TRACK_HELP)]
TrackingUri = Annotated[str | None, typer.Option(help=TRACKING_URI_HELP)]


@contextlib.contextmanager
def tracked_run(tracker: Any, name: str, params: dict[str, Any], tags: dict[str, str] | None = None):
    """One MLflow run around a command's work, its params logged first; yields the tracker. Call
    :func:`log_outcome` with the result inside it."""
    with tracker.run(name, tags=tags):
        tracker.log_params(params)
        yield tracker


def log_outcome(tracker: Any, result: Mapping[str, Any], files: tuple[Path, ...] = ()) -> None:
    """Log a command's numeric results as metrics and its output ``files`` (those that exist) as artifacts."""
    tracker.log_metrics(result)  # numbers only
    for f in files:
        if Path(f).exists():
            tracker.log_artifact(f)


def tracking_done(tracker: Any) -> None:
    """At the end of a command: say that its run was not tracked when MLflow failed."""
    if tracker.failed:
        warn(tracker.failed)


@contextlib.contextmanager
def progress_bars(enabled: bool = True):
    """Yield ``make(stage) -> callback(done, total)``, each stage with its own bar."""
    if not enabled:
        yield lambda stage: None
        return
    with Progress(
        TextColumn("{task.description:<12}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as bar:
        tasks: dict[str, TaskID] = {}

        def make(stage: str):
            def update(done: int, total: int) -> None:
                if stage not in tasks:
                    tasks[stage] = bar.add_task(stage, total=total)
                bar.update(tasks[stage], completed=done, total=total)

            return update

        yield make


def echo_table(title: str, rows: Mapping[str, object]) -> None:
    """Print ``key: value`` rows to stdout (floats with 4 significant digits)."""
    typer.echo(title)
    for k, v in rows.items():
        typer.echo(f"  {k:<28} {v:.4g}" if isinstance(v, float) else f"  {k:<28} {v}")

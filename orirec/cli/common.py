"""Shared CLI helpers: one-line errors with a non-zero exit, rich progress bars, result printing."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

console = Console(stderr=True, soft_wrap=True)

USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError, PermissionError)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn bad-input exceptions into one line on stderr and exit code 2."""
    try:
        yield
    except USER_ERRORS as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        console.print(f"[bold red]error:[/] {msg}", markup=True, highlight=False)
        raise typer.Exit(2) from None


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
        tasks: dict[str, int] = {}

        def make(stage: str):
            def update(done: int, total: int) -> None:
                if stage not in tasks:
                    tasks[stage] = bar.add_task(stage, total=total)
                bar.update(tasks[stage], completed=done, total=total)

            return update

        yield make


def echo_table(title: str, rows: dict[str, object]) -> None:
    """Print ``key: value`` rows to stdout (floats with 4 significant digits)."""
    typer.echo(title)
    for k, v in rows.items():
        typer.echo(f"  {k:<28} {v:.4g}" if isinstance(v, float) else f"  {k:<28} {v}")

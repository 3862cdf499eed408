"""mkdocs hooks of the orirec site (``hooks:`` in mkdocs.yml): the pages and tables that are generated, never typed.

At build time:

- ``reference/cli.md`` is written from the typer app (``orirec.cli.app.app``, walked through its click command):
  every registered command with its help, usage, arguments and options, as ``orirec COMMAND --help`` prints them;
- ``contributing.md`` and ``changelog.md`` are the repository's CONTRIBUTING.md and CHANGELOG.md, their links
  made relative to the site;
- every page's generated blocks (``<!-- generated: NAME -->``) are rendered again from benchmarks/results/*.json by
  ``benchmarks/docs.py``, so the results pages show the JSONs as they are.

Without mkdocs: ``python docs/hooks/generate.py`` prints the CLI reference.
"""

from __future__ import annotations

import html
import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CLI_PAGE = "reference/cli.md"


def benchmark_docs() -> ModuleType:
    """``benchmarks/docs.py``, the one renderer of the JSON results."""
    name = "orirec_benchmark_docs"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / "docs.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


# ------------------------------------------------------------------------------------------------- CLI reference


def cli_commands() -> list[tuple[str, Any, Any]]:
    """``(name, click command, its context)`` of every visible command of the orirec app, in ``--help`` order."""
    import typer

    from orirec.cli.app import app

    group: Any = typer.main.get_command(app)  # a click group (TyperGroup)
    ctx = typer.Context(group, info_name="orirec")
    out = []
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        if cmd is not None and not getattr(cmd, "hidden", False):
            out.append((name, cmd, typer.Context(cmd, info_name=name, parent=ctx)))
    return out


def _cell(text: str) -> str:
    """Plain help text as one markdown table cell (nothing in it read as markup)."""
    text = html.escape(" ".join(text.replace("\\[", "[").split()), quote=False)  # rich's escaped \[ is a plain [
    return re.sub(r"([\\`*_|\[\]])", r"\\\1", text)


def _params(cmd: Any, ctx: Any) -> list[str]:
    """Tables of the arguments and options of ``cmd`` (their ``--help`` records: names, type, help, default)."""
    kinds: dict[str, list[tuple[str, str]]] = {"argument": [], "option": []}
    for param in cmd.get_params(ctx):
        record = param.get_help_record(ctx)
        if record is not None and param.param_type_name in kinds:
            kinds[param.param_type_name].append(record)
    lines: list[str] = []
    for kind, records in kinds.items():
        if records:
            lines += ["", f"| {kind} | description |", "|---|---|"]
            lines += [f"| `{names}` | {_cell(help_text)} |" for names, help_text in records]
    return lines


def _summary(help_text: str) -> str:
    return (help_text or "").strip().split("\n\n")[0].replace("\n", " ")


def cli_reference() -> str:
    """Markdown of the whole command line: the global options, then each command (help, usage, parameters)."""
    import typer

    from orirec.cli.app import app

    group = typer.main.get_command(app)
    ctx = typer.Context(group, info_name="orirec")
    commands = cli_commands()
    lines = [
        "# CLI reference",
        "",
        '!!! note "Generated"',
        "    This page is written at build time from the typer app (`orirec.cli.app`) by `docs/hooks/generate.py`;",
        "    `orirec COMMAND --help` prints the same. The [guide](../guide/index.md) shows the commands at work.",
        "",
        f"`{' '.join(['orirec', *group.collect_usage_pieces(ctx)])}`",
        "",
        _cell(_summary(group.help or "")),
        *_params(group, ctx),
        "",
        "| command | what it does |",
        "|---|---|",
        *(f"| [`{name}`](#{name}) | {_cell(_summary(cmd.help or ''))} |" for name, cmd, _ in commands),
    ]
    for name, cmd, cctx in commands:
        help_text = (cmd.help or "").strip()
        summary, _, rest = help_text.partition("\n\n")
        lines += ["", f"## `orirec {name}` {{ #{name} }}", "", _cell(summary)]
        if rest.strip():
            lines += ["", "```text", rest.strip(), "```"]
        lines += ["", "```console", f"orirec {name} {' '.join(cmd.collect_usage_pieces(cctx))}", "```"]
        lines += _params(cmd, cctx)
        if cmd.epilog:
            lines += ["", "```text", cmd.epilog.strip(), "```"]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------- included files


def included(path: Path) -> str:
    """A repository markdown file as a site page: ``docs/X`` links become ``X``, README/CHANGELOG/CONTRIBUTING
    links point at their site pages."""
    text = path.read_text()
    for old, new in (("docs/", ""), ("README.md", "index.md"), ("CHANGELOG.md", "changelog.md"),
                     ("CONTRIBUTING.md", "contributing.md")):  # fmt: skip
        text = re.sub(rf"\]\({re.escape(old)}", f"]({new}", text)
    return text


def changelog() -> str:
    path = ROOT / "CHANGELOG.md"
    if path.exists():
        return included(path)
    return "# Changelog\n\nThere is no CHANGELOG.md in this checkout yet.\n"


# ------------------------------------------------------------------------------------------------- mkdocs events


def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    for uri, content in ((CLI_PAGE, cli_reference()), ("contributing.md", included(ROOT / "CONTRIBUTING.md")),
                         ("changelog.md", changelog())):  # fmt: skip
        files.append(File.generated(config, uri, content=content))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Render the page's generated blocks from benchmarks/results/*.json (the same renderer as ``--check``)."""
    src = page.file.abs_src_path
    if not src or "<!-- generated: " not in markdown:
        return markdown
    return benchmark_docs().render(markdown, Path(src))


if __name__ == "__main__":
    sys.stdout.write(cli_reference())

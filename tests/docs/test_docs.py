"""The docs: numbers generated from the benchmark JSONs, a short README that starts with the two commands, a CLI
reference generated from the typer app that covers every command, and a site that builds with --strict."""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
TWO_COMMANDS = ("make demo    # sets up .venv if missing", "make test    # sets up .venv if missing")


def _module(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def docs():
    return _module("bench_docs_under_test", ROOT / "benchmarks" / "docs.py")


@pytest.fixture(scope="module")
def hook():
    return _module("docs_hook_under_test", ROOT / "docs" / "hooks" / "generate.py")


def _registered_commands() -> dict:
    import typer

    from orirec.cli.app import app

    group: Any = typer.main.get_command(app)  # a click group (TyperGroup)
    return group.commands


# ------------------------------------------------------------------------------------------ generated numbers


def test_benchmark_docs_check_passes():
    res = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "docs.py"), "--check"], capture_output=True,
                         text=True, cwd=ROOT)  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr


def test_every_source_is_current_and_every_json_has_a_results_page(docs):
    assert docs.stale() == []
    for stem in (p.stem for p in docs.RESULTS.glob("*.json")):
        assert stem in docs.PAGES, f"benchmarks/results/{stem}.json has no results page in benchmarks/docs.py PAGES"
        page = ROOT / docs.PAGES[stem][0]
        assert page.is_file(), page
        assert "<!-- generated: " in page.read_text(), f"{page} holds no generated block"


def test_a_block_follows_its_json(docs, monkeypatch):
    real = docs.load

    def load(stem):
        result = copy.deepcopy(real(stem))
        if stem == "refine_projection_matching":
            result["rounds"][-1]["err_rot_median"] = 1.2345
        return result

    monkeypatch.setattr(docs, "load", load)
    headline = docs.BLOCKS["headline"](docs.Where(README))
    assert "**1.23°**" in headline
    assert "1.23°" in docs.BLOCKS["refine"](docs.Where(ROOT / "docs" / "results" / "refinement.md"))


def test_the_peer_table_shows_each_row_its_ratios_and_the_skipped(docs, monkeypatch):
    row = {"err_rot_median": 5.0, "err_rot_mean": 9.0, "acc20": 0.9, "fsc_ref_05_A": 20.0, "threads": 2}
    peers = {"meta": {"commit": "abc", "date": "2026-12-03"}, "proteins": [{
        "protein": "1nca", "skipped": {"aspire-cl": "the optional package 'aspire' is not installed"},
        "rows": [row | {"estimator": "ab-initio --refine-rounds", "time_estimate_s": 300.0},
                 row | {"estimator": "relion-sgd", "err_rot_median": 10.0, "time_estimate_s": 3000.0}],
        "ratios": [{"peer": "relion-sgd", "err_rot_median_ratio": 2.0, "time_ratio": 10.0}]}]}  # fmt: skip
    monkeypatch.setattr(docs, "load", lambda stem: peers)
    block = docs.BLOCKS["ab-initio-peers"](docs.Where(ROOT / "docs" / "results" / "ab-initio.md"))
    lines = [line for line in block.splitlines() if line.startswith("| 1nca")]
    assert len(lines) == 3 and "2.00×" in lines[1] and "10.00×" in lines[1] and "skipped" in lines[2]


def test_provenance_says_what_was_not_recorded(docs):
    p = docs.provenance({"machine": "x86_64", "rows": []})
    assert p["commit"] == p["date"] == docs.NOT_RECORDED and p["machine"] == "x86_64"
    p = docs.provenance({"meta": {"commit": "0123456789abcdef+dirty", "date": "2026-12-03T09:43:29+00:00",
                                  "machine": "AMD EPYC", "cpu_count": 2, "gpu": None}})  # fmt: skip
    assert p["commit"].startswith("`0123456789`") and "uncommitted" in p["commit"]
    assert p["date"] == "2026-12-03" and p["cores"] == "2" and p["gpu"] == "none"


def test_an_unknown_block_is_refused(docs):
    with pytest.raises(ValueError, match="unknown generated block"):
        docs.render("<!-- generated: nope -->\nx\n<!-- end generated: nope -->\n", README)


def test_links_of_a_block_are_relative_to_its_file(docs):
    assert "](docs/results/demo.md)" in docs.BLOCKS["headline"](docs.Where(README))
    assert "](results/demo.md)" in docs.BLOCKS["headline"](docs.Where(ROOT / "docs" / "index.md"))


# ------------------------------------------------------------------------------------------ README


def test_readme_is_short_and_starts_with_the_two_commands():
    data = README.read_bytes()
    assert len(data) <= 8 * 1024, f"README.md is {len(data)} bytes; at most 8 KB"
    lines = [line for line in data.decode().splitlines() if line.strip()]
    assert lines[0].startswith("# ")
    assert lines[1] == "```bash"
    assert lines[2].startswith(TWO_COMMANDS[0]) and lines[3].startswith(TWO_COMMANDS[1])


def test_readme_keeps_the_generated_blocks_and_names_every_command():
    text = README.read_text()
    for name in ("demo", "headline"):
        assert f"<!-- generated: {name} -->" in text and f"<!-- end generated: {name} -->" in text
    table = text.split("## Commands", 1)[1].split("\n## ", 1)[0]
    for name in _registered_commands():
        assert f"`{name}`" in table, f"README's command table does not name `{name}`"


@pytest.mark.parametrize("name", ["README.md", "CONTRIBUTING.md"])
def test_relative_links_resolve(name):
    text = (ROOT / name).read_text()
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
        if re.match(r"[a-z]+:", target):
            continue
        if target == "CHANGELOG.md" and not (ROOT / target).exists():
            continue  # written by its own change; the site shows a placeholder until then
        assert (ROOT / target).exists(), f"{name}: broken link {target}"


# ------------------------------------------------------------------------------------------ design, CLI reference


def test_design_keeps_its_section_numbers():
    headings = re.findall(r"^## (\d+)\. ", (ROOT / "docs" / "design.md").read_text(), re.M)
    assert headings == ["1", "2", "3", "4", "5", "6"]


def test_cli_reference_covers_every_registered_command_and_option(hook):
    text = hook.cli_reference()
    import typer

    for name, cmd in _registered_commands().items():
        if getattr(cmd, "hidden", False):
            continue
        assert f"## `orirec {name}` {{ #{name} }}" in text, f"no section for `orirec {name}`"
        section = text.split(f"## `orirec {name}` ", 1)[1].split("\n## ", 1)[0]
        ctx = typer.Context(cmd, info_name=name)
        for param in cmd.get_params(ctx):
            if param.get_help_record(ctx) is None:
                continue
            for opt in param.opts:
                assert opt in section, f"`orirec {name}`: {opt} missing from the CLI reference"


def test_mkdocs_build_strict(tmp_path):
    if importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("material") is None:
        pytest.skip("mkdocs-material is not installed (pip install -e '.[dev]')")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    res = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
                         capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    cli = (tmp_path / "site" / "reference" / "cli" / "index.html").read_text()
    for name in _registered_commands():
        assert f'id="{name}"' in cli
    demo = (tmp_path / "site" / "results" / "demo" / "index.html").read_text()
    commit = json.loads((ROOT / "benchmarks" / "results" / "demo.json").read_text())["meta"]["commit"][:10]
    assert "<table>" in demo and commit in demo  # rendered from the JSON, with its provenance

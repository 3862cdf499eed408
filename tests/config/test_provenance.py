"""The version and git commit stamped into a run's config.yaml and a store's attributes (orirec.config.provenance)."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from orirec import __version__
from orirec.config import RunConfig, SimulateConfig, dump_yaml, load_yaml
from orirec.config import provenance as P

HEX = set("0123456789abcdef")


def _checkout_head() -> str | None:
    """HEAD of the checkout holding the package, or None (no git, or an installed copy)."""
    if shutil.which("git") is None:
        return None
    try:
        r = subprocess.run(["git", "rev-parse", "HEAD"], cwd=P.SOURCE_DIR, capture_output=True, text=True, timeout=10)
        tracked = subprocess.run(
            ["git", "ls-files", "--error-unmatch", "__init__.py"], cwd=P.SOURCE_DIR, capture_output=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return r.stdout.strip() if r.returncode == 0 and tracked.returncode == 0 else None


def _tiny_sim() -> SimulateConfig:
    return SimulateConfig(inputs=["pseudo:0"], n_per_structure=8, box_px=20, pixel_size_A=4.0, shard_size=8)


def test_version_info_is_the_checkout_head():
    P._git_state.cache_clear()  # found now, as HEAD is (a commit since an earlier test would differ)
    head = _checkout_head()
    info = P.version_info()
    assert info["version"] == __version__ == "0.2.0"
    if head is None:
        pytest.skip("the package is not in a git checkout here")
    assert info["git_sha"] == head and len(head) == 40 and set(head) <= HEX
    assert isinstance(info["git_dirty"], bool)
    assert P.version_info() == info  # cached: the same answer without asking git again


def test_no_git_fields_outside_a_checkout(tmp_path, monkeypatch):
    (tmp_path / "__init__.py").write_text("")
    monkeypatch.setattr(P, "SOURCE_DIR", tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))  # git must not find a parent checkout
    assert P.version_info() == {"version": __version__, "git_sha": None, "git_dirty": None}
    monkeypatch.setattr(P, "SOURCE_DIR", tmp_path / "gone")
    assert P.version_info()["git_sha"] is None


def test_no_git_fields_when_git_is_missing_or_slow(tmp_path, monkeypatch):
    monkeypatch.setattr(P, "SOURCE_DIR", tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path))  # no git executable
    assert P.version_info()["git_sha"] is None and P.version_info()["git_dirty"] is None

    def slow(*args, **kwargs):
        raise subprocess.TimeoutExpired(args[0], P.GIT_TIMEOUT_S)

    P._git_state.cache_clear()
    monkeypatch.setattr(subprocess, "run", slow)
    assert P._git_state(str(tmp_path)) == (None, None)
    P._git_state.cache_clear()


def test_store_attributes_carry_the_stamp(tmp_path):
    from orirec.simulate.to_store import simulate_to_store
    from orirec.store import open_store

    simulate_to_store(_tiny_sim(), tmp_path / "s.zarr")
    attrs = open_store(tmp_path / "s.zarr").attrs
    info = P.version_info()
    assert attrs["orirec_version"] == __version__
    assert attrs["orirec_git_sha"] == info["git_sha"] and attrs["orirec_git_dirty"] == info["git_dirty"]


def test_config_files_carry_the_stamp(tmp_path):
    from orirec.pipeline.run import run_all
    from orirec.pipeline.spec import PipelineSpec, load_pipeline

    info = P.version_info()
    spec = PipelineSpec.model_validate(
        {"name": "stamp", "stages": ["simulate"], "simulate": _tiny_sim().model_dump(), "tracking": {"enabled": False}}
    )
    run_all(spec, tmp_path / "run", train_progress=False)
    written = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert {k: written[k] for k in info} == info
    assert load_pipeline(tmp_path / "run" / "config.yaml").git_sha == info["git_sha"]  # and it loads back
    dump_yaml(RunConfig(name="x"), tmp_path / "c.yaml")
    assert load_yaml(tmp_path / "c.yaml", RunConfig).model_dump(include=set(info)) == info

"""Configs: presets, YAML round trip stamped with the version, unknown keys rejected with the key named."""

import pytest

from orirec import __version__
from orirec.config import PRESETS, RunConfig, dump_yaml, load_yaml, parse_set, run_preset, validate


def test_presets_validate():
    for name in PRESETS:
        cfg = run_preset(name)
        assert isinstance(cfg, RunConfig)
    assert run_preset("tiny").simulate.box_px < run_preset("paper").simulate.box_px


def test_yaml_roundtrip(tmp_path):
    cfg = run_preset("tiny", train={"epochs": 5})
    dump_yaml(cfg, tmp_path / "c.yaml")
    assert f"version: {__version__}" in (tmp_path / "c.yaml").read_text()
    back = load_yaml(tmp_path / "c.yaml", RunConfig)
    assert back.train.epochs == 5 and back.simulate == cfg.simulate


def test_unknown_key_names_file_and_key(tmp_path):
    (tmp_path / "c.yaml").write_text("train:\n  epochz: 3\n")
    with pytest.raises(ValueError, match=r"c.yaml: invalid config: train.epochz: unknown config key"):
        load_yaml(tmp_path / "c.yaml", RunConfig)


def test_bad_values():
    with pytest.raises(ValueError, match="pixel_size_A"):
        validate(RunConfig, {"simulate": {"pixel_size_A": -1}})
    with pytest.raises(ValueError, match="preset"):
        run_preset("huge")


def test_parse_set():
    assert parse_set(["train.epochs=3", "simulate.inputs=[a, b]", "name=x"]) == {
        "train": {"epochs": 3},
        "simulate": {"inputs": ["a", "b"]},
        "name": "x",
    }
    with pytest.raises(ValueError, match="key=value"):
        parse_set(["oops"])


def test_shipped_demo_pipeline_is_the_small_preset():
    from pathlib import Path

    cfg = load_yaml(Path(__file__).resolve().parents[2] / "pipelines" / "demo.yaml", RunConfig)
    expected = run_preset("small")
    assert cfg.simulate == expected.simulate and cfg.train == expected.train and cfg.recover == expected.recover

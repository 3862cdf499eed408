"""Pipeline files: schema (backward compatible with run configs), stage hashes, stage skipping, test stores, URIs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from orirec.config import RunConfig, load_yaml
from orirec.pipeline.run import run_all
from orirec.pipeline.spec import ALL_STAGES, PipelineSpec, done_path, load_pipeline, stage_hashes

ROOT = Path(__file__).resolve().parents[2]
PIPELINES = [
    ROOT / "pipelines" / f
    for f in ("demo.yaml", "paper-5j0n.yaml", "paper-5j0n-s16.yaml", "5j0n-cpu.yaml", "multi-protein.yaml")
]

# A run of a few seconds: train on pseudo:0, recover/evaluate on a separate test store of pseudo:1.
TINY = {
    "name": "tiny",
    "simulate": {"inputs": ["pseudo:0"], "n_per_structure": 160, "box_px": 20, "pixel_size_A": 4.0, "shard_size": 80},
    "train": {
        "model": {"preset": "tiny"},
        "epochs": 1,
        "batch_size": 32,
        "pairs_per_epoch": 256,
        "val_pairs": 64,
        "num_threads": 1,
    },
    "recover": {"steps": 10, "n_starts": 2, "gauge": False, "refine": {"rounds": 1}},  # all images of the test store
    "test": {"simulate": {"inputs": ["pseudo:1"], "n_per_structure": 80, "seed": 1}},
    "tracking": {"enabled": False},
}


def test_every_pipeline_file_validates_and_demo_is_still_a_run_config():
    for p in PIPELINES:
        spec = load_pipeline(p)
        assert spec.active_stages()[0] == "simulate" and spec.active_stages()[-1] == "report"
    load_yaml(ROOT / "pipelines" / "demo.yaml", RunConfig)  # `orirec demo --config pipelines/demo.yaml` still works
    multi = load_pipeline(ROOT / "pipelines" / "multi-protein.yaml")
    assert multi.split == "train" and multi.test.split == "test" and multi.eval_store_key == "test_store"
    assert "simulate_test" in multi.active_stages()
    paper = load_pipeline(ROOT / "pipelines" / "paper-5j0n.yaml", {"simulate": {"sigma2": 16}})
    assert paper.simulate.box_px == 116 and paper.simulate.n_per_structure == 5000 and paper.simulate.sigma2 == 16
    seen = load_pipeline(ROOT / "pipelines" / "paper-5j0n-s16.yaml")
    assert seen.simulate.sigma2 == 16 and seen.recover.refine.rounds == 4 and seen.train.on_the_fly


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"stages": ["simulate", "simulate"]}, "listed twice"),
        ({"stages": ["simulate", "tune"]}, "stages"),
        ({"stages": ["simulate_test"]}, "needs a `test` section"),
        ({"test": {"simulate": {"n_per_structur": 3}}}, "n_per_structur"),
        ({"paths": {"stor": "x.zarr"}}, "paths.stor: unknown config key"),
    ],
)
def test_bad_pipeline_names_the_file_and_key(tmp_path, bad, match):
    f = tmp_path / "p.yaml"
    f.write_text(yaml.safe_dump(bad))
    with pytest.raises(ValueError, match=match) as e:
        load_pipeline(f)
    assert str(f) in str(e.value) or "test.simulate" in str(e.value)


def test_stage_hashes_chain_through_inputs():
    base = PipelineSpec.model_validate(TINY)
    h0 = stage_hashes(base)
    assert set(h0) == set(ALL_STAGES) - {"tune", "ab_initio"}  # no tune / ab_initio section: no such stage
    h1 = stage_hashes(PipelineSpec.model_validate({**TINY, "train": {**TINY["train"], "epochs": 2}}))
    changed = {s for s in h0 if h0[s] != h1[s]}
    assert changed == {"train", "recover", "reconstruct", "evaluate", "report"}
    h2 = stage_hashes(PipelineSpec.model_validate({**TINY, "tracking": {"enabled": True}, "name": "other"}))
    assert h2 == h0  # tracking and the run name do not change any output
    h3 = stage_hashes(PipelineSpec.model_validate({**TINY, "test": {"simulate": {"inputs": ["pseudo:2"]}}}))
    assert {s for s in h0 if h0[s] != h3[s]} == {"simulate_test", "recover", "reconstruct", "evaluate", "report"}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("pipe") / "tiny"
    res = run_all(PipelineSpec.model_validate(TINY), run_dir, train_progress=False)
    return run_dir, res


def test_run_writes_every_stage_and_uses_the_test_store(tiny_run):
    run_dir, res = tiny_run
    assert res["skipped"] == []
    for stage in PipelineSpec.model_validate(TINY).active_stages():
        done = json.loads(done_path(run_dir, stage).read_text())
        assert done["stage"] == stage and len(done["hash"]) == 16
    assert res["simulate"]["n_images"] == 160 and res["simulate_test"]["n_images"] == 80
    assert (run_dir / "test.zarr").is_dir()
    # recover read the test store (80 images of pseudo:1), not the training store (160 images)
    assert res["recover"]["n_images"] == 80 and res["evaluate"]["n"] == 80
    assert "fsc_ref_true_05_A" in res["evaluate"]
    assert len(res["recover"]["refine_rounds"]) == 1 and "unrefined_err_rot_median" in res["evaluate"]
    assert Path(res["report"]["html"]).is_file() and res["report"]["missing"] == []
    stamp = {"version": None, "git_sha": None, "git_dirty": None}  # who wrote it (orirec.config.provenance)
    assert load_pipeline(run_dir / "config.yaml").model_copy(update=stamp) == PipelineSpec.model_validate(TINY)


def test_rerun_skips_done_stages_and_reruns_changed_ones(tiny_run):
    run_dir, _ = tiny_run
    spec = PipelineSpec.model_validate(
        {
            **TINY,
            "recover": {**TINY["recover"], "steps": 5},
            "stages": ["simulate", "simulate_test", "train", "recover"],
        }
    )
    lines: list[str] = []
    res = run_all(spec, run_dir, train_progress=False, log=lines.append)
    assert res["skipped"] == ["simulate", "simulate_test", "train"]
    assert any(line.startswith("recover: running") for line in lines)
    assert res["train"]["epochs_run"] == 1  # summary of the skipped stage comes from done.json
    # a stage whose outputs vanished reruns although its done.json matches
    shutil.rmtree(run_dir / "recover")
    res = run_all(spec, run_dir, train_progress=False)
    assert (
        res["skipped"] == ["simulate", "simulate_test", "train"]
        and (run_dir / "recover" / "orientations.csv").is_file()
    )


def test_outputs_at_a_uri_are_uploaded_and_fetched_back(tmp_path):
    fsspec = pytest.importorskip("fsspec")
    src = tmp_path / "src"
    spec = PipelineSpec.model_validate(
        {**TINY, "stages": ["simulate"], "paths": {"store": "memory://orirec-test/p.zarr"}}
    )
    run_all(spec, src, train_progress=False)
    fs = fsspec.filesystem("memory")
    assert fs.exists("/orirec-test/p.zarr/zarr.json")
    done = json.loads(done_path(src, "simulate").read_text())
    assert done["outputs"]["store"] == "memory://orirec-test/p.zarr"
    # a second run folder with the same done marker: simulate is skipped, train fetches the store from the URI
    dst = tmp_path / "dst"
    done_path(dst, "simulate").parent.mkdir(parents=True)
    shutil.copy(done_path(src, "simulate"), done_path(dst, "simulate"))
    spec2 = PipelineSpec.model_validate({**spec.model_dump(), "stages": ["simulate", "train"]})
    res = run_all(spec2, dst, train_progress=False)
    assert res["skipped"] == ["simulate"] and (dst / "projections.zarr" / "zarr.json").is_file()
    assert (dst / "train" / "checkpoints" / "best.pt").is_file()


def test_cli_run_and_report(tiny_run, tmp_path, cli):
    run_dir, _ = tiny_run
    assert "report.html" in cli("report", run_dir).output
    assert "config file not found" in cli("run", tmp_path / "nope.yaml", code=2).output
    bad = tmp_path / "bad.yaml"
    bad.write_text("stages: [simulate, tune]\n")
    r = cli("run", bad, "--out", tmp_path / "r", code=2)
    assert "bad.yaml" in r.output and not (tmp_path / "r").exists()


def test_tracking_uri_comes_from_the_config_then_the_environment(monkeypatch, tmp_path):
    """A run's tracker resolves its URI in one place (tracking.resolve_tracking_uri): config, env, run's sqlite."""
    from orirec.tracking import Tracker

    def uri(spec: PipelineSpec) -> str:
        return Tracker(True, spec.tracking.uri, spec.tracking.experiment, tmp_path).uri

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert uri(PipelineSpec()) == f"sqlite:///{tmp_path / 'mlflow.db'}"  # the run folder's sqlite
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")  # set by the cluster manifests
    assert uri(PipelineSpec()) == "http://mlflow:5000"
    assert uri(PipelineSpec.model_validate({"tracking": {"uri": "sqlite:///x.db"}})) == "sqlite:///x.db"


def test_simulation_inputs_at_a_uri_are_downloaded(tiny_run, tmp_path):
    fsspec = pytest.importorskip("fsspec")
    from orirec.store import open_store, reference_volume
    from orirec.structures.maps import write_map

    run_dir, _ = tiny_run
    s = open_store(run_dir / "projections.zarr")
    write_map(tmp_path / "vol.mrc", reference_volume(s.group, 0), s.pixel_size_A)
    fsspec.filesystem("memory").put(str(tmp_path / "vol.mrc"), "/orirec-inputs/vol.mrc")
    sim = {**TINY["simulate"], "inputs": ["memory://orirec-inputs/vol.mrc"], "n_per_structure": 32, "shard_size": 32}
    res = run_all(PipelineSpec.model_validate({**TINY, "simulate": sim, "stages": ["simulate"]}), tmp_path / "r")
    assert res["simulate"]["n_images"] == 32
    assert len(list((tmp_path / "r" / "inputs").glob("*-vol.mrc"))) == 1


def test_tune_stage_is_optional_and_feeds_train():
    assert "tune" not in PipelineSpec.model_validate(TINY).active_stages()
    spec = PipelineSpec.model_validate({**TINY, "tune": {"num_samples": 2}})
    assert spec.active_stages().index("tune") < spec.active_stages().index("train")
    h0, h1 = stage_hashes(spec), stage_hashes(PipelineSpec.model_validate({**TINY, "tune": {"num_samples": 3}}))
    assert {s for s in h0 if h0[s] != h1[s]} == {"tune", "train", "recover", "reconstruct", "evaluate", "report"}
    with pytest.raises(ValueError, match="tune needs a `tune` section"):
        PipelineSpec.model_validate({**TINY, "stages": ["tune"]})


@pytest.mark.slow
@pytest.mark.ray  # Ray Tune trials of Ray Train runs
def test_tune_then_train_in_one_pipeline(tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text("lr: {choice: [0.001, 0.003]}\nbatch_size: {choice: [16, 32]}\n")
    tune = {"space": str(space), "num_samples": 2, "epochs": 1, "pairs_per_epoch": 128, "max_concurrent": 1}
    spec = PipelineSpec.model_validate({**TINY, "tune": tune, "stages": ["simulate", "tune", "train"]})
    res = run_all(spec, tmp_path / "run", train_progress=False)
    best = json.loads((tmp_path / "run" / "tune" / "best_values.json").read_text())["values"]
    assert set(best) == {"lr", "batch_size"} and res["tune"]["trials"] == 2
    # trained with the spec's epochs and the sweep's lr / batch size
    assert res["train"]["epochs_run"] == TINY["train"]["epochs"]
    assert res["train"]["tuned"]["lr"] == best["lr"] and res["train"]["tuned"]["batch_size"] == best["batch_size"]
    cfg = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert cfg["tune"]["num_samples"] == 2

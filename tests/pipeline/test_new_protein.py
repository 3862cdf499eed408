"""pipelines/new-protein.yaml (issue 22): the ab_initio stage instead of train + recover, its orientations routed to
reconstruct / evaluate / report, and a pipeline that starts from an imported store (no ground truth)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import starfile
import yaml

from orirec.config import parse_set
from orirec.pipeline.particles import ImportOptions, export_particles, import_particles
from orirec.pipeline.run import RunPaths, run_all
from orirec.pipeline.spec import PipelineSpec, done_path, load_pipeline, stage_hashes, stage_io

ROOT = Path(__file__).resolve().parents[2]
NEW_PROTEIN = ROOT / "pipelines" / "new-protein.yaml"

# new-protein.yaml shrunk to seconds: 60 images of the pseudo-protein at 32 px, 2 restarts of 4 iterations, 1 round
# of refinement (the orientations are poor; this checks the plumbing, not ab initio).
SHRINK = {
    "name": "new-protein-tiny",
    "simulate": {
        "inputs": ["pseudo:0"],
        "n_per_structure": 60,
        "box_px": 32,
        "pixel_size_A": 3.75,
        "sigma2": 1.0,
        "shard_size": 32,
    },
    "ab_initio": {"restarts": 2, "iterations": 4, "refine": {"rounds": 1}},
    "tracking": {"enabled": False},
}


def _spec(**extra) -> PipelineSpec:
    return load_pipeline(NEW_PROTEIN, {**SHRINK, **extra})


def test_new_protein_pipeline_runs_ab_initio_instead_of_train_and_recover():
    spec = load_pipeline(NEW_PROTEIN)
    assert spec.active_stages() == ["simulate", "ab_initio", "reconstruct", "evaluate", "report"]
    assert spec.ab_initio is not None and spec.ab_initio.refine.rounds == 4 and spec.ab_initio.restarts == 6
    assert (spec.simulate.box_px, spec.simulate.pixel_size_A, spec.simulate.sigma2) == (64, 4.7, 16.0)
    assert spec.simulate.ctf and spec.simulate.shift_px == 2.0 and spec.simulate.n_per_structure == 1500
    assert spec.orientations_key == "ab_initio"
    for stage in ("reconstruct", "evaluate"):
        assert stage_io(spec, stage)[0] == ["store", "ab_initio"]
    assert stage_io(spec, "report")[0] == ["store", "ab_initio", "reconstruct", "evaluate"]  # no training to show
    assert RunPaths.of(spec, "/r").orientations == Path("/r/ab_initio")
    # the import route of the file's header comment
    imported = load_pipeline(
        NEW_PROTEIN, parse_set(["paths.store=/data/p.zarr", "stages=[ab_initio, reconstruct, report]"])
    )
    assert imported.active_stages() == ["ab_initio", "reconstruct", "report"]
    assert imported.orientations_key == "ab_initio" and imported.paths.store == "/data/p.zarr"


def test_default_stages_and_routing():
    plain = PipelineSpec()
    assert "recover" in plain.active_stages() and "ab_initio" not in plain.active_stages()
    assert plain.orientations_key == "recover" and RunPaths.of(plain, "/r").orientations == Path("/r/recover")
    assert stage_io(plain, "report")[0] == ["store", "train", "recover", "reconstruct", "evaluate"]  # as before
    # an ab_initio section and no stages list: ab initio replaces tune, train and recover
    spec = PipelineSpec.model_validate({"ab_initio": {}, "tune": {}})
    assert spec.active_stages() == ["simulate", "ab_initio", "reconstruct", "evaluate", "report"]
    # the section alone does not route when recover runs; with neither running, the section says where they are
    listed = PipelineSpec.model_validate({"ab_initio": {}, "stages": ["simulate", "train", "recover", "reconstruct"]})
    assert listed.orientations_key == "recover"
    assert PipelineSpec.model_validate({"ab_initio": {}, "stages": ["reconstruct"]}).orientations_key == "ab_initio"
    assert PipelineSpec.model_validate({"stages": ["reconstruct"]}).orientations_key == "recover"


def test_settings_reach_the_stage_as_ab_initio_config_fields():
    spec = _spec(ab_initio={"restarts": 3, "minibatch": [20, 40], "n": 50, "protein": 0, "refine": {"rounds": 2}})
    ac = spec.ab_initio
    assert ac is not None and (ac.n, ac.protein, ac.refine.rounds) == (50, 0, 2)
    settings = ac.settings()
    assert settings["restarts"] == 3 and settings["minibatch"] == (20, 40)
    assert not {"n", "protein", "refine", "seed"} & set(settings)


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"stages": ["simulate", "ab_initio", "recover"]}, "stages: ab_initio and recover both write the orientations"),
        ({"ab_initio": None}, "stages: ab_initio needs a `ab_initio` section"),
        ({"ab_initio": {"iteratons": 3}}, "ab_initio.iteratons: unknown config key"),
        ({"ab_initio": {"refine": {"rouns": 3}}}, "ab_initio.refine.rouns: unknown config key"),
        ({"ab_initio": {"n": 5}}, "ab_initio.n"),
    ],
)
def test_bad_ab_initio_pipeline_is_one_line_naming_the_file(tmp_path, bad, match):
    data = yaml.safe_load(NEW_PROTEIN.read_text())
    data.update(bad)
    f = tmp_path / "p.yaml"
    f.write_text(yaml.safe_dump(data))
    with pytest.raises(ValueError, match=match) as e:
        load_pipeline(f)
    assert str(f) in str(e.value) and "\n" not in str(e.value)


def test_stage_hashes_chain_through_ab_initio():
    h0 = stage_hashes(_spec())
    assert "ab_initio" in h0
    h1 = stage_hashes(_spec(ab_initio={**SHRINK["ab_initio"], "restarts": 3}))
    assert {s for s in h0 if h0[s] != h1[s]} == {"ab_initio", "reconstruct", "evaluate", "report"}
    h2 = stage_hashes(_spec(train={"epochs": 99}, recover={"steps": 1}))
    assert all(h0[s] == h2[s] for s in ("simulate", "ab_initio", "reconstruct", "evaluate", "report"))


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("new-protein") / "run"
    lines: list[str] = []
    res = run_all(_spec(), run_dir, train_progress=False, log=lines.append)
    return run_dir, res, lines


def test_tiny_run_makes_a_map_and_metrics_from_the_ab_initio_orientations(tiny_run):
    run_dir, res, lines = tiny_run
    assert res["skipped"] == [] and [line.split(":")[0] for line in lines] == _spec().active_stages()
    assert not (run_dir / "train").exists() and not (run_dir / "recover").exists()
    for f in ("orientations.csv", "orientations.star", "orientations_unrefined.csv", "ab_initio_map.mrc"):
        assert (run_dir / "ab_initio" / f).is_file(), f
    assert res["ab_initio"]["n_images"] == 60 and len(res["ab_initio"]["refine_rounds"]) == 1
    assert (run_dir / "reconstruct" / "map.mrc").is_file() and res["reconstruct"]["n_images"] == 60
    metrics = json.loads((run_dir / "evaluate" / "metrics.json").read_text())
    assert metrics["n"] == 60 and "err_rot_median" in metrics and "unrefined_err_rot_median" in metrics
    assert "fsc_ref_recovered_0143_A" in metrics and "fsc_half_0143_A" in metrics
    html = Path(res["report"]["html"])
    assert html.is_file() and "orientation errors" not in res["report"]["missing"]
    assert set(res["report"]["missing"]) <= {"loss curves", "d_p vs d_q"}  # no model: nothing trained, no graph


def test_rerun_skips_finished_stages_and_reruns_changed_ones(tiny_run):
    run_dir, _, _ = tiny_run
    res = run_all(_spec(), run_dir, train_progress=False)
    assert res["skipped"] == _spec().active_stages()
    assert res["ab_initio"]["n_images"] == 60  # the skipped stage's summary, from done.json
    res = run_all(_spec(reconstruct={"wiener": 0.01}), run_dir, train_progress=False)
    assert res["skipped"] == ["simulate", "ab_initio"]


def test_an_imported_store_runs_without_simulate_and_skips_evaluate(tiny_run, tmp_path):
    run_dir, _, _ = tiny_run
    star = tmp_path / "exp" / "particles.star"
    export_particles(run_dir / "projections.zarr", star, maps=False)
    data = starfile.read(star, always_dict=True)
    data["particles"] = data["particles"].drop(columns=["rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"])
    starfile.write(data, star, overwrite=True)  # particles as from an extraction job: no angles
    store = tmp_path / "particles.zarr"
    import_particles(star, store, ImportOptions(shard_size=32))
    stages = ["ab_initio", "reconstruct", "evaluate", "report"]
    spec = _spec(paths={"store": str(store)}, stages=stages)
    lines: list[str] = []
    res = run_all(spec, tmp_path / "run", train_progress=False, log=lines.append)
    assert res["skipped"] == [] and not (tmp_path / "run" / "projections.zarr").exists()
    skipped = [line for line in lines if line.startswith("evaluate: skipped")]
    assert len(skipped) == 1 and "no ground-truth orientations" in skipped[0] and str(store) in skipped[0]
    assert res["evaluate"] == {"skipped": skipped[0].removeprefix("evaluate: skipped, ")}
    assert not (tmp_path / "run" / "evaluate" / "metrics.json").exists()
    assert (tmp_path / "run" / "reconstruct" / "map.mrc").is_file() and Path(res["report"]["html"]).is_file()
    assert "orientation errors" in res["report"]["missing"] and "map slices" not in res["report"]["missing"]
    # the skipped evaluate is finished too: a rerun runs nothing
    res = run_all(spec, tmp_path / "run", train_progress=False)
    assert res["skipped"] == stages and done_path(tmp_path / "run", "evaluate").is_file()

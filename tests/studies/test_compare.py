"""``orirec compare``: one table with every requested estimator; clear errors for bad requests."""

import json

import numpy as np
import pytest

from orirec.studies.compare import COLUMNS
from orirec.studies.tables import markdown_table


@pytest.fixture(scope="module")
def stores(tmp_path_factory, cli):
    root = tmp_path_factory.mktemp("cmp")
    out = {}
    for name, n, seed in (("train", 64, 1), ("test", 32, 2)):
        path = root / f"{name}.zarr"
        cli("simulate", "pseudo:1", "--n-per-structure", n, "--box", 24, "--pixel-size", 4.0, "--seed", seed,
            "--shard-size", 32, "--out", path, "--no-progress")  # fmt: skip
        out[name] = path
    return out


FAST = ["--calibration-pairs", 2000, "--steps", 3, "--cvae-steps", 3, "--grid-size", 50, "--encoder", "tiny",
        "--recover-steps", 10, "--no-track"]  # fmt: skip


@pytest.mark.slow
def test_compare_prints_one_table_with_every_requested_estimator(stores, tmp_path, cli):
    names = ["euclidean", "oracle", "oracle-noise", "regress-6d", "regress-quat", "regress-euler", "cvae"]
    res = cli("compare", stores["test"], "--train-store", stores["train"], "--estimators", ",".join(names),
              "--no-gauge", "--out", tmp_path / "c", *FAST)  # fmt: skip
    table = [line for line in res.output.splitlines() if line.startswith("| ")]
    assert table[0].startswith("| estimator | err_o4 med")
    assert [line.split("|")[1].strip() for line in table[1:]] == names
    data = json.loads((tmp_path / "c" / "compare.json").read_text())
    rows = {r["estimator"]: r for r in data["results"]}
    # exact distances: perfect up to the O(4) gauge; without the gauge search the detector-frame rotation A stays
    assert rows["oracle"]["err_o4_median"] < 5.0
    assert rows["oracle"]["err_rot_median"] > rows["oracle"]["err_o4_median"]
    assert (tmp_path / "c" / "compare.csv").is_file() and (tmp_path / "c" / "cvae_samples.png").is_file()


@pytest.mark.slow
def test_compare_with_gauge_resolution_and_mlflow(stores, tmp_path, cli):
    cli("compare", stores["test"], "--train-store", stores["train"], "--estimators", "oracle,euclidean",
        "--out", tmp_path / "c", *FAST[:-1])  # fmt: skip
    assert (tmp_path / "c" / "mlflow.db").is_file()
    rows = {r["estimator"]: r for r in json.loads((tmp_path / "c" / "compare.json").read_text())["results"]}
    assert rows["oracle"]["err_rot_median"] < 5.0


def test_compare_fast_subset_prints_table(stores, tmp_path, cli):
    res = cli("compare", stores["test"], "--train-store", stores["train"], "--estimators", "oracle,regress-6d",
              "--no-gauge", "--n", 16, "--refine-rounds", 1, "--out", tmp_path / "c", *FAST)  # fmt: skip
    table = [line.split("|")[1].strip() for line in res.output.splitlines() if line.startswith("| ")]
    assert table == ["estimator", "oracle", "oracle+refine", "regress-6d", "regress-6d+refine"]
    for name in table[1:]:  # every row's orientations, for orirec refine / evaluate
        assert len((tmp_path / "c" / "orientations" / f"{name}.csv").read_text().splitlines()) == 17
    rows = {r["estimator"]: r for r in json.loads((tmp_path / "c" / "compare.json").read_text())["results"]}
    assert rows["oracle+refine"]["time_estimate_s"] > rows["oracle"]["time_estimate_s"]
    at_edge = rows["regress-6d+refine"]["refine_at_edge"] * 16  # a fraction of the 16 images
    assert at_edge == pytest.approx(round(at_edge))


def test_compare_runs_ab_initio_without_training_or_model(stores, tmp_path, cli):
    from orirec.evaluate.metrics import orientation_metrics
    from orirec.store import open_store
    from orirec.store.orientations import read_orientations

    cli("compare", stores["test"], "--estimators", "ab-initio", "--ab-initio-iterations", 3,
        "--ab-initio-restarts", 2, "--out", tmp_path / "c", "--no-track")  # fmt: skip
    (row,) = json.loads((tmp_path / "c" / "compare.json").read_text())["results"]
    assert row["estimator"] == "ab-initio" and row["ab-initio_iteration"] == 3 and row["ab-initio_restart"] in (0, 1)
    assert 0 < row["ab-initio_particle_radius_A"] < 24 * 4.0  # read off the images, inside the box (Å)
    idx, q = read_orientations(tmp_path / "c" / "orientations" / "ab-initio.csv")
    assert np.array_equal(idx, np.arange(32))  # every image of the test store, in order
    # the table's err_rot is that of the written orientations against the store's ground truth
    truth = open_store(stores["test"]).quaternions
    assert row["err_rot_median"] == pytest.approx(orientation_metrics(q, truth)["err_rot_median"], abs=1e-6)
    assert row["ab-initio_restarts_averaged"] in (1, 2) and row["ab-initio_restarts_read_back"] == 0
    assert (tmp_path / "c" / "ab_initio_checkpoint.npz").is_file()  # its restarts: a rerun resumes there


def test_compare_per_protein_table_and_resume(tmp_path, cli):
    store = tmp_path / "two.zarr"
    cli("simulate", "pseudo:1", "pseudo:2", "--n-per-structure", 12, "--box", 24, "--pixel-size", 4.0,
        "--seed", 3, "--shard-size", 32, "--out", store, "--no-progress")  # fmt: skip
    args = ("compare", store, "--protein", "all", "--estimators", "ab-initio", "--ab-initio-iterations", 2,
            "--ab-initio-restarts", 1, "--out", tmp_path / "c", "--no-track")  # fmt: skip
    cli(*args)
    rows = json.loads((tmp_path / "c" / "proteins.json").read_text())["results"]
    assert [(r["protein"], r["estimator"], r["n"]) for r in rows] == [(0, "ab-initio", 12), (1, "ab-initio", 12)]
    assert all(r["n_atoms"] > 0 and r["rg_A"] > 0 and r["symmetry"] == "C1" for r in rows)
    assert all(90 < r["chance_err_rot_deg"] < 150 for r in rows)  # C1 random orientations for 12 images
    assert "| protein | sym |" in (tmp_path / "c" / "proteins.md").read_text()
    assert (tmp_path / "c" / "proteins.png").stat().st_size > 10_000  # err_rot against size, per estimator
    again = cli(*args)  # both proteins finished: read back, not run again
    assert again.output.count("done before, read back") == 2, again.output
    bad = cli("compare", store, "--protein", "0,7", "--estimators", "ab-initio", "--out", tmp_path / "d", "--no-track",
              code=2)  # fmt: skip
    assert "proteins [7] have no images" in bad.output


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--estimators", "oracle,nope"], "unknown estimator 'nope'"),
        (["--estimators", "regress-6d"], "needs a training store"),
        (["--estimators", "siamese"], "--model"),
        (["--cvae-condition", "matrix"], "--cvae-condition"),
    ],
)
def test_bad_requests_exit_2_with_a_clear_message(stores, tmp_path, extra, message, cli):
    res = cli("compare", stores["test"], "--out", tmp_path / "c", "--no-track", *extra, code=2)
    assert message in res.output
    assert not (tmp_path / "c" / "compare.md").exists()


def test_markdown_table_marks_missing_values():
    text = markdown_table([{"estimator": "x", "err_rot_median": 1.234, "fsc_ref_05_A": float("nan")}], COLUMNS)
    assert "| x | – | 1.2 |" in text and text.count("–") >= 10


def test_a_peer_without_its_tool_is_skipped_with_its_reason(stores, tmp_path, cli, monkeypatch):
    import orirec.studies.compare as C

    monkeypatch.setattr(C, "relion_available", lambda: False)
    res = cli("compare", stores["test"], "--estimators", "oracle,relion-sgd", "--out", tmp_path / "c", "--no-track")
    assert "relion-sgd: skipped (RELION's relion_refine is not on the PATH" in res.output
    out = json.loads((tmp_path / "c" / "compare.json").read_text())
    assert [r["estimator"] for r in out["results"]] == ["oracle"] and "relion-sgd" in out["skipped"]
    assert "relion-sgd: skipped" in (tmp_path / "c" / "compare.md").read_text()
    alone = cli("compare", stores["test"], "--estimators", "relion-sgd", "--out", tmp_path / "d", "--no-track", code=2)
    assert "none of the estimators can run here" in alone.output and not (tmp_path / "d" / "compare.md").exists()

"""Import validations and reconstruct options (issue 20): bad options refused before anything is written, sizes
checked up front, a changed stack not taken for the imported one, export refusing to overwrite, reconstruct taking
import's options and the store's own angles."""

import mrcfile
import numpy as np
import pytest
from synthetic import simulate_and_export
from typer.testing import CliRunner

from orirec.cli.app import app
from orirec.store import open_store

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def one_line(res) -> str:
    return " ".join(res.output.split())


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A simulated store (30 images, 24 px, 3 Å) and its export exp/p.star + p.mrcs."""
    return simulate_and_export(tmp_path_factory.mktemp("imp"), "pseudo:3")


@pytest.mark.parametrize(
    "option, value, fragment",
    [
        ("--bg-radius", 0, "--bg-radius must be in (0, 1]"),
        ("--shard-size", 0, "--shard-size must be an integer >= 1"),
        ("--box", 100000, "needs about"),
        ("--pixel-size", "inf", "--pixel-size must be a finite number"),
    ],
)
def test_bad_import_options_leave_nothing_behind(exported, tmp_path, option, value, fragment):
    res = run("import", exported / "exp" / "p.star", "--out", tmp_path / "i.zarr", option, value, "--no-progress")
    assert res.exit_code == 2 and fragment in one_line(res), res.output
    assert not (tmp_path / "i.zarr").exists()
    assert not any(p.name.startswith(".i.zarr") for p in tmp_path.iterdir())


def test_changed_stack_is_not_taken_for_the_imported_one(exported, tmp_path):
    import shutil

    shutil.copytree(exported / "exp", tmp_path / "exp")
    star, out = tmp_path / "exp" / "p.star", tmp_path / "i.zarr"
    res = run("import", star, "--out", out, "--no-normalize", "--no-progress")
    assert res.exit_code == 0, res.output
    with mrcfile.open(tmp_path / "exp" / "p.mrcs", mode="r+") as m:
        m.data[0] *= -1  # same size, other content
        new_first = m.data[0].copy()
    res = run("import", star, "--out", out, "--no-normalize", "--no-progress")
    assert res.exit_code == 2 and "another import" in one_line(res), res.output
    res = run("import", star, "--out", out, "--no-normalize", "--no-progress", "--overwrite")
    assert res.exit_code == 0, res.output
    np.testing.assert_array_equal(open_store(out).images[0], new_first)


def test_export_refuses_to_overwrite(exported, tmp_path):
    star = tmp_path / "e" / "x.star"
    assert run("export", exported / "s.zarr", "--out", star).exit_code == 0
    before = star.with_suffix(".mrcs").stat().st_mtime_ns
    res = run("export", exported / "s.zarr", "--out", star)
    assert res.exit_code == 2 and "x.star: already exists; use --overwrite" in one_line(res), res.output
    assert star.with_suffix(".mrcs").stat().st_mtime_ns == before
    res = run("export", exported / "s.zarr", "--out", star, "--overwrite")
    assert res.exit_code == 0, res.output


def test_reconstruct_star_takes_import_options(exported, tmp_path):
    args = ["--no-normalize", "--pixel-size", 6.0, "--box", 16, "--out", tmp_path / "m.mrc"]
    res = run("reconstruct", exported / "exp" / "p.star", *args)
    assert res.exit_code == 0, res.output
    with mrcfile.open(tmp_path / "m.mrc") as m:
        assert m.data.shape == (16, 16, 16) and abs(float(m.voxel_size.x) - 6.0) < 1e-5


def test_reconstruct_store_uses_its_own_angles(exported, tmp_path):
    res = run("reconstruct", exported / "s.zarr", "--out", tmp_path / "m.mrc")
    assert res.exit_code == 0, res.output
    with mrcfile.open(tmp_path / "m.mrc") as m:
        assert m.data.shape == (24, 24, 24)


@pytest.mark.parametrize(
    "source, args, fragment",
    [
        ("exp/p.star", ["--orientations", "o.csv"], "--orientations is for a STORE"),
        ("s.zarr", ["--orientations", "o.csv", "--pad", 1000], "pad"),
        ("s.zarr", ["--box", 32], "import options"),
    ],
)
def test_reconstruct_refuses_inconsistent_options(exported, tmp_path, source, args, fragment):
    from orirec.store.orientations import write_orientations

    write_orientations(tmp_path / "o.csv", np.arange(30), open_store(exported / "s.zarr").quaternions)
    args = [tmp_path / a if a == "o.csv" else a for a in args]
    res = run("reconstruct", exported / source, *args, "--out", tmp_path / "m.mrc")
    assert res.exit_code == 2 and fragment in one_line(res), res.output
    assert not (tmp_path / "m.mrc").exists()

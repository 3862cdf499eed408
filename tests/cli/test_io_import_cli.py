"""Import validations and reconstruct options (issue 20): bad options refused before anything is written, sizes
checked up front, a changed stack not taken for the imported one, export refusing to overwrite, reconstruct taking
import's options and the store's own angles."""

import mrcfile
import numpy as np
import pytest
from synthetic import copy_and_export

from orirec.store import open_store


def one_line(res) -> str:
    return " ".join(res.output.split())


@pytest.fixture(scope="module")
def exported(tiny_store, tmp_path_factory):
    """A copy of the session's simulated store (30 images, 24 px, 3 Å) and its export exp/p.star + p.mrcs."""
    return copy_and_export(tiny_store, tmp_path_factory.mktemp("imp"))


@pytest.mark.parametrize(
    "option, value, fragment",
    [
        ("--bg-radius", 0, "--bg-radius must be in (0, 1]"),
        ("--shard-size", 0, "--shard-size must be an integer >= 1"),
        ("--box", 100000, "needs about"),
        ("--pixel-size", "inf", "--pixel-size must be a finite number"),
    ],
)
def test_bad_import_options_leave_nothing_behind(exported, tmp_path, option, value, fragment, cli):
    star, out = exported / "exp" / "p.star", tmp_path / "i.zarr"
    res = cli("import", star, "--out", out, option, value, "--no-progress", code=2)
    assert fragment in one_line(res), res.output
    assert not (tmp_path / "i.zarr").exists()
    assert not any(p.name.startswith(".i.zarr") for p in tmp_path.iterdir())


def test_changed_stack_is_not_taken_for_the_imported_one(exported, tmp_path, cli):
    import shutil

    shutil.copytree(exported / "exp", tmp_path / "exp")
    star, out = tmp_path / "exp" / "p.star", tmp_path / "i.zarr"
    cli("import", star, "--out", out, "--no-normalize", "--no-progress")
    with mrcfile.open(tmp_path / "exp" / "p.mrcs", mode="r+") as m:
        m.data[0] *= -1  # same size, other content
        new_first = m.data[0].copy()
    res = cli("import", star, "--out", out, "--no-normalize", "--no-progress", code=2)
    assert "another import" in one_line(res), res.output
    cli("import", star, "--out", out, "--no-normalize", "--no-progress", "--overwrite")
    np.testing.assert_array_equal(open_store(out).images[0], new_first)


def test_export_refuses_to_overwrite(exported, tmp_path, cli):
    star = tmp_path / "e" / "x.star"
    cli("export", exported / "s.zarr", "--out", star)
    before = star.with_suffix(".mrcs").stat().st_mtime_ns
    res = cli("export", exported / "s.zarr", "--out", star, code=2)
    assert "x.star: already exists; use --overwrite" in one_line(res), res.output
    assert star.with_suffix(".mrcs").stat().st_mtime_ns == before
    cli("export", exported / "s.zarr", "--out", star, "--overwrite")


def test_reconstruct_star_takes_import_options(exported, tmp_path, cli):
    args = ["--no-normalize", "--pixel-size", 6.0, "--box", 16, "--out", tmp_path / "m.mrc"]
    cli("reconstruct", exported / "exp" / "p.star", *args)
    with mrcfile.open(tmp_path / "m.mrc") as m:
        assert m.data.shape == (16, 16, 16) and abs(float(m.voxel_size.x) - 6.0) < 1e-5


def test_reconstruct_store_uses_its_own_angles(exported, tmp_path, cli):
    cli("reconstruct", exported / "s.zarr", "--out", tmp_path / "m.mrc")
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
def test_reconstruct_refuses_inconsistent_options(exported, tmp_path, source, args, fragment, cli):
    from orirec.store.orientations import write_orientations

    write_orientations(tmp_path / "o.csv", np.arange(30), open_store(exported / "s.zarr").quaternions)
    args = [tmp_path / a if a == "o.csv" else a for a in args]
    res = cli("reconstruct", exported / source, *args, "--out", tmp_path / "m.mrc", code=2)
    assert fragment in one_line(res), res.output
    assert not (tmp_path / "m.mrc").exists()

"""Orientation files usable elsewhere (issue 20): RELION STAR files as orientations of a store's rows, STAR files
written by orirec naming the real particle stack, CSV index checks, and the commands that read them."""

import json
import shutil

import mrcfile
import numpy as np
import pandas as pd
import pytest
import starfile
import zarr
from synthetic import copy_and_export

from orirec.geometry import quat_to_matrix
from orirec.pipeline.particles import ImportOptions, import_particles
from orirec.store import open_store
from orirec.store.relion import orientation_columns, write_star


@pytest.fixture(scope="module")
def stores(tiny_store, tmp_path_factory):
    """A copy of the session's simulated store (30 images, 24 px, 3 Å), its export exp/p.star + p.mrcs, and the
    import i.zarr."""
    root = copy_and_export(tiny_store, tmp_path_factory.mktemp("orient"))
    import_particles(root / "exp" / "p.star", root / "i.zarr", ImportOptions(normalize=False, shard_size=16))
    return root


def _run_data(root, folder, rows, q, stack="../exp/p.mrcs", optics=True):
    """A RELION-like run_data.star (3.1: optics block; 3.0: one unnamed block) of store ``rows`` at ``q``."""
    particles = pd.DataFrame({"rlnImageName": [f"{r + 1:06d}@{stack}" for r in rows], **orientation_columns(q)})
    (root / folder).mkdir(exist_ok=True)
    if not optics:
        return write_star(root / folder / "run_data.star", {"": particles.assign(rlnDetectorPixelSize=3.0)})
    groups = pd.DataFrame({"rlnOpticsGroup": [1], "rlnOpticsGroupName": ["opticsGroup1"], "rlnImagePixelSize": [3.0]})
    blocks = {"optics": groups, "particles": particles.assign(rlnOpticsGroup=1)}
    return write_star(root / folder / "run_data.star", blocks)


def _same_rotations(a, b):
    np.testing.assert_allclose(quat_to_matrix(a), quat_to_matrix(b), atol=1e-6)


@pytest.mark.parametrize("optics", [True, False])
def test_relion_star_maps_to_imported_store_rows(stores, optics):
    from orirec.store.orientations import read_orientations

    s = open_store(stores / "i.zarr")
    rows = np.random.default_rng(0).permutation(30)[:20]
    star = _run_data(stores, f"Refine3D{optics}", rows, s.quaternions[rows], optics=optics)
    assert ("data_optics" in star.read_text()) == optics
    got_rows, q = read_orientations(star, stores / "i.zarr")
    np.testing.assert_array_equal(got_rows, rows)
    _same_rotations(q, s.quaternions[rows])


def test_store_imported_before_sources_were_recorded_maps_by_its_star(stores, tmp_path):
    from orirec.store.orientations import read_orientations

    shutil.copytree(stores / "i.zarr", tmp_path / "old.zarr")
    del zarr.open_group(str(tmp_path / "old.zarr"), mode="r+")["source"]
    rows = np.array([4, 2, 9])
    star = _run_data(stores, "Old", rows, open_store(tmp_path / "old.zarr").quaternions[rows])
    np.testing.assert_array_equal(read_orientations(star, tmp_path / "old.zarr")[0], rows)


@pytest.mark.parametrize(
    "store, stack, fragments",
    [
        ("i.zarr", "../exp/other.mrcs", ["run_data.star row 1", "not an image of"]),
        ("s.zarr", "../exp/p.mrcs", ["run_data.star", "cannot map", "records no source stack"]),
    ],
)
def test_unmappable_star_rows_are_refused(stores, store, stack, fragments):
    from orirec.store.orientations import read_orientations

    star = _run_data(stores, f"Bad{store[0]}", [0, 1], np.tile([1.0, 0, 0, 0], (2, 1)), stack=stack)
    with pytest.raises(ValueError) as exc:
        read_orientations(star, stores / store)
    for f in fragments:
        assert f in str(exc.value), (f, str(exc.value))


def test_star_row_beyond_or_repeated_in_the_store_is_refused(stores):
    from orirec.store.orientations import read_orientations

    star = _run_data(stores, "Rep", [3, 5, 3], np.tile([1.0, 0, 0, 0], (3, 1)))
    with pytest.raises(
        ValueError, match=r"run_data.star row 3 \(000004@../exp/p.mrcs\): the same store image as row 1"
    ):
        read_orientations(star, stores / "i.zarr")


def test_star_written_for_imported_store_names_the_real_stack(stores, tmp_path):
    from orirec.store.orientations import read_orientations, source_image_names, write_orientations

    s = open_store(stores / "i.zarr")
    rows = np.array([7, 0, 29])
    names = source_image_names(s, rows, tmp_path)
    write_orientations(tmp_path / "o.star", rows, s.quaternions[rows], names)
    written = starfile.read(tmp_path / "o.star")["rlnImageName"].tolist()
    assert written == names and names[0].startswith("000008@") and names[0].endswith("exp/p.mrcs")
    got_rows, q = read_orientations(tmp_path / "o.star", s)
    np.testing.assert_array_equal(got_rows, rows)
    _same_rotations(q, s.quaternions[rows])


def test_star_written_for_simulated_store_reads_back_without_the_store(stores, tmp_path):
    from orirec.store.orientations import read_orientations, source_image_names, write_orientations

    s = open_store(stores / "s.zarr")
    assert source_image_names(s, np.arange(3)) is None  # no real stack
    rows = np.array([11, 3])
    write_orientations(tmp_path / "o.star", rows, s.quaternions[rows])
    got_rows, q = read_orientations(tmp_path / "o.star")
    np.testing.assert_array_equal(got_rows, rows)
    _same_rotations(q, s.quaternions[rows])


@pytest.mark.parametrize(
    "bad_row, fragment",
    [("5,1,0,0,0,0,0,0", "line 3: index 5 appears twice (also line 2)"), ("2.5,1,0,0,0,0,0,0", "line 3: index 2.5")],
)
def test_csv_with_repeated_or_fractional_index_is_refused(tmp_path, bad_row, fragment):
    from orirec.store.orientations import CSV_HEADER, read_orientations

    path = tmp_path / "o.csv"
    path.write_text(f"{CSV_HEADER}\n5,1,0,0,0,0,0,0\n{bad_row}\n7,1,0,0,0,0,0,0\n")
    with pytest.raises(ValueError) as exc:
        read_orientations(path)
    assert str(path) in str(exc.value) and fragment in str(exc.value), str(exc.value)


def test_cli_evaluate_reconstruct_refine_accept_relion_star(stores, tmp_path, cli):
    s = open_store(stores / "i.zarr")
    rows = np.arange(30)
    star = _run_data(stores, "CLI", rows, s.quaternions[rows])
    cli("evaluate", stores / "i.zarr", "--orientations", star, "--out", tmp_path / "ev")
    assert json.loads((tmp_path / "ev" / "metrics.json").read_text())["err_rot_median"] < 1e-3
    cli("reconstruct", stores / "i.zarr", "--orientations", star, "--out", tmp_path / "m.mrc")
    cli("reconstruct", stores / "i.zarr", "--out", tmp_path / "own.mrc")  # the store's own angles
    a, b = (mrcfile.read(tmp_path / n) for n in ("m.mrc", "own.mrc"))
    np.testing.assert_allclose(a, b, atol=1e-4 * float(np.abs(b).max()))
    cli("refine", stores / "i.zarr", star, "--out", tmp_path / "rf", "--rounds", 1, "--no-progress")
    assert (tmp_path / "rf" / "orientations.csv").is_file()
    bad = _run_data(stores, "CLIbad", [0], np.array([[1.0, 0, 0, 0]]), stack="../exp/other.mrcs")
    res = cli("evaluate", stores / "i.zarr", "--orientations", bad, "--out", tmp_path / "ev2", code=2)
    assert "not an image of" in " ".join(res.output.split())

"""RELION files: conventions checked against an independent implementation, export headers, bad STAR input.

RELION's Euler matrix (``Euler_angles2matrix``) is ``A = R_z(psi) R_y(tilt) R_z(rot)`` with *frame* (passive)
rotations ``R_z(a) = [[c, s, 0], [-s, c, 0], [0, 0, 1]]``; it maps particle coordinates to the image frame and
its third row is the projection direction ``(sin tilt cos rot, sin tilt sin rot, cos tilt)``. A passive
rotation by ``a`` is the active rotation by ``-a``, so ``A = Rz(-psi) Ry(-tilt) Rz(-rot)`` (active).

scipy: upper-case letters are *intrinsic* axes, ``from_euler("ZYZ", [a, b, c]) = Rz(a) Ry(b) Rz(c)``;
lower-case letters are *extrinsic* axes, ``from_euler("zyz", [a, b, c]) = Rz(c) Ry(b) Rz(a)`` (all active).
Hence ``A = from_euler("zyz", -[rot, tilt, psi])`` and ``A = from_euler("ZYZ", [rot, tilt, psi]).inv()``.
"""

import mrcfile
import numpy as np
import pandas as pd
import pytest
import starfile
from scipy.spatial.transform import Rotation

from orirec.config import SimulateConfig
from orirec.geometry import quat_to_matrix
from orirec.pipeline.particles import export_particles
from orirec.simulate.to_store import simulate_to_store
from orirec.store import open_store
from orirec.store.relion import StackReader, orientation_columns, read_particles, write_star


@pytest.fixture(scope="module")
def tiny_store(tmp_path_factory):
    """40 images of 24 px at 3 Å with CTF and shifts, shards of 16."""
    path = tmp_path_factory.mktemp("relion") / "s.zarr"
    cfg = SimulateConfig(
        inputs=["pseudo:1"], n_per_structure=40, box_px=24, pixel_size_A=3.0, shard_size=16, ctf=True, shift_px=2.0
    )
    simulate_to_store(cfg, path)
    return path


def relion_matrix_from_star(df: pd.DataFrame) -> np.ndarray:
    rot, tilt, psi = (np.deg2rad(df[c].to_numpy(dtype=float)) for c in ("rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"))
    return Rotation.from_euler("zyz", np.column_stack([-rot, -tilt, -psi])).as_matrix()


def test_star_angles_match_relion_convention(tmp_path):
    q = Rotation.random(500, random_state=3).as_quat()[:, [3, 0, 1, 2]]  # scipy is scalar-last
    q[0] = [1, 0, 0, 0]  # gimbal lock, tilt 0
    q[1] = [0, 1, 0, 0]  # tilt 180°
    path = write_star(tmp_path / "o.star", {"particles": pd.DataFrame(orientation_columns(q))})
    df = starfile.read(path)
    A = relion_matrix_from_star(df)
    np.testing.assert_allclose(A, quat_to_matrix(q), atol=1e-6)
    rot, tilt, psi = (np.deg2rad(df[c].to_numpy(dtype=float)) for c in ("rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"))
    B = Rotation.from_euler("ZYZ", np.column_stack([rot, tilt, psi])).inv().as_matrix()
    np.testing.assert_allclose(A, B, atol=1e-12)
    # the projection direction RELION documents for (rot, tilt)
    direction = np.column_stack([np.sin(tilt) * np.cos(rot), np.sin(tilt) * np.sin(rot), np.cos(tilt)])
    np.testing.assert_allclose(A[:, 2, :], direction, atol=1e-12)


def test_export_files_open_in_relion_tools(tiny_store, tmp_path):
    res = export_particles(tiny_store, tmp_path / "out" / "p.star")
    s = open_store(tiny_store)
    with mrcfile.open(res["stack"]) as m:
        assert m.is_image_stack() and m.data.shape == (40, 24, 24)
        assert abs(float(m.voxel_size.x) - 3.0) < 1e-5
        np.testing.assert_array_equal(m.data, s.images[:])
    (ref,) = res["maps"]
    with mrcfile.open(ref) as m:
        assert m.is_volume() and m.data.shape == (24, 24, 24)
        assert abs(float(m.voxel_size.x) - 3.0) < 1e-5
        assert tuple(float(v) for v in m.header.origin.item()) == (0.0, 0.0, 0.0)
    blocks = starfile.read(res["star"], always_dict=True)
    optics, particles = blocks["optics"], blocks["particles"]
    assert float(optics["rlnImagePixelSize"].iloc[0]) == 3.0 and int(optics["rlnImageSize"].iloc[0]) == 24
    assert particles["rlnImageName"].iloc[6] == "000007@p.mrcs"
    np.testing.assert_allclose(relion_matrix_from_star(particles), quat_to_matrix(s.quaternions), atol=1e-6)
    # RELION centres a particle by shifting it by +origin: origin = -(applied shift) in Å
    np.testing.assert_allclose(particles["rlnOriginXAngst"], -s.shifts[:, 0] * 3.0, atol=1e-5)
    np.testing.assert_allclose(particles["rlnDefocusAngle"], np.rad2deg(s.ctf[:, 2]), atol=1e-4)
    np.testing.assert_allclose(particles["rlnDefocusU"], s.ctf[:, 0], rtol=1e-6)


def _star_with_stack(tmp_path, n_images=6, n_rows=6, box=16, **extra):
    data = np.random.default_rng(0).normal(size=(n_images, box, box)).astype(np.float32)
    with mrcfile.new(tmp_path / "stack.mrcs") as m:
        m.set_data(data)
        m.set_image_stack()
    optics = pd.DataFrame({"rlnOpticsGroup": [1], "rlnImagePixelSize": [2.0], "rlnVoltage": [300.0],
                           "rlnSphericalAberration": [2.7], "rlnAmplitudeContrast": [0.1]})  # fmt: skip
    particles = pd.DataFrame(
        {
            "rlnImageName": [f"{i + 1:06d}@stack.mrcs" for i in range(n_rows)],
            "rlnOpticsGroup": 1,
            "rlnDefocusU": 15000.0,
            "rlnDefocusV": 14000.0,
            "rlnDefocusAngle": 30.0,
            **extra,
        }
    )
    return data, optics, particles


def test_read_particles_resolves_paths_and_optics(tmp_path):
    data, optics, particles = _star_with_stack(tmp_path)
    sub = tmp_path / "job"
    sub.mkdir()
    particles["rlnImageName"] = [n.replace("@", "@../") for n in particles["rlnImageName"]]
    write_star(sub / "p.star", {"optics": optics, "particles": particles})
    t = read_particles(sub / "p.star")
    assert (t.n, t.box_px, t.pixel_size_A) == (6, 16, 2.0)
    np.testing.assert_allclose(t.ctf_params()[:, :4], [[15000, 14000, np.deg2rad(30), 300]] * 6)
    assert np.isnan(t.quaternions()).all() and (t.shifts_px() == 0).all()
    with StackReader(t) as r:
        np.testing.assert_array_equal(r.read(np.array([4, 1])), data[[4, 1]])


def test_relion30_star_without_optics(tmp_path):
    _, _, particles = _star_with_stack(tmp_path)
    particles = particles.drop(columns="rlnOpticsGroup").assign(
        rlnVoltage=300.0, rlnSphericalAberration=2.7, rlnAmplitudeContrast=0.1,
        rlnDetectorPixelSize=5.0, rlnMagnification=25000.0,
    )  # fmt: skip
    write_star(tmp_path / "p.star", {"particles": particles})
    assert read_particles(tmp_path / "p.star").pixel_size_A == pytest.approx(2.0)


@pytest.mark.parametrize(
    "case, fragments",
    [
        ("missing_ctf_column", ["p.star", "missing rlnDefocusV"]),
        ("missing_angle", ["p.star", "missing rlnAnglePsi"]),
        ("short_stack", ["p.star row 7", "image 7 of stack.mrcs", "holds only 6"]),
        ("mixed_pixel", ["p.star row 3", "mixed pixel sizes"]),
        ("missing_stack", ["p.star row 1", "gone.mrcs", "not found"]),
        ("bad_name", ["p.star row 2", "bad rlnImageName"]),
        ("no_pixel", ["p.star", "no pixel size"]),
        ("no_image_name", ["p.star", "rlnImageName"]),
        ("not_numeric", ["p.star row 4", "rlnDefocusU"]),
    ],
)
def test_bad_star_input(tmp_path, case, fragments):
    _, optics, particles = _star_with_stack(tmp_path, n_rows=8 if case == "short_stack" else 6)
    if case == "missing_ctf_column":
        particles = particles.drop(columns="rlnDefocusV")
    elif case == "missing_angle":
        particles = particles.assign(rlnAngleRot=0.0, rlnAngleTilt=0.0)
    elif case == "mixed_pixel":
        optics = optics.drop(columns="rlnImagePixelSize")
        particles["rlnImagePixelSize"] = [2.0, 2.0, 2.5, 2.0, 2.0, 2.0]
    elif case == "missing_stack":
        particles["rlnImageName"] = "000001@gone.mrcs"
    elif case == "bad_name":
        particles.loc[1, "rlnImageName"] = "0@stack.mrcs"
    elif case == "no_pixel":
        optics = optics.drop(columns="rlnImagePixelSize")
    elif case == "no_image_name":
        particles = particles.drop(columns="rlnImageName")
    elif case == "not_numeric":
        particles["rlnDefocusU"] = particles["rlnDefocusU"].astype(object)
        particles.loc[3, "rlnDefocusU"] = "abc"
    write_star(tmp_path / "p.star", {"optics": optics, "particles": particles})
    with pytest.raises((ValueError, FileNotFoundError)) as exc:
        read_particles(tmp_path / "p.star")
    for f in fragments:
        assert f in str(exc.value), (f, str(exc.value))


def test_stack_reader_names_nan_row(tmp_path):
    data, optics, particles = _star_with_stack(tmp_path)
    data[3, 2, 2] = np.nan
    with mrcfile.open(tmp_path / "stack.mrcs", mode="r+") as m:
        m.data[3] = data[3]
    write_star(tmp_path / "p.star", {"optics": optics, "particles": particles})
    with StackReader(read_particles(tmp_path / "p.star")) as r, pytest.raises(ValueError, match="p.star row 4.*NaN"):
        r.read(np.arange(6))

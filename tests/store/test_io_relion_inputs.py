"""Read what RELION reads (issue 20): MRC stacks with a non-standard header, complex MRC data refused, RELION 3.0
origins in px, phase-plate data and non-physical STAR values refused with the file and row named."""

import warnings

import mrcfile
import numpy as np
import pandas as pd
import pytest

from orirec.pipeline.particles import ImportOptions, import_particles
from orirec.store.relion import StackReader, read_particles, write_star
from orirec.structures.maps import read_map


def _star(tmp_path, n=6, box=16, optics_extra=None, **extra):
    """p.star + stack.mrcs (n images of box px at 2 Å) with CTF; returns the images."""
    data = np.random.default_rng(0).normal(size=(n, box, box)).astype(np.float32)
    with mrcfile.new(tmp_path / "stack.mrcs", overwrite=True) as m:
        m.set_data(data)
        m.set_image_stack()
    optics = {"rlnOpticsGroup": [1], "rlnImagePixelSize": [2.0], "rlnVoltage": [300.0],
              "rlnSphericalAberration": [2.7], "rlnAmplitudeContrast": [0.1]}  # fmt: skip
    optics = pd.DataFrame({**optics, **(optics_extra or {})})
    particles = pd.DataFrame(
        {"rlnImageName": [f"{i + 1:06d}@stack.mrcs" for i in range(n)], "rlnOpticsGroup": 1,
         "rlnDefocusU": 15000.0, "rlnDefocusV": 14000.0, "rlnDefocusAngle": 30.0, **extra}
    )  # fmt: skip
    write_star(tmp_path / "p.star", {"optics": optics, "particles": particles})
    return data


def _blank_header_ids(path):
    """Zero the ``MAP `` ID string (bytes 208-211) and the machine stamp (212-215), as some writers do."""
    with open(path, "r+b") as f:
        f.seek(208)
        f.write(b"\0" * 8)


def test_stack_without_map_id_and_machine_stamp_is_read_with_one_warning(tmp_path):
    data = _star(tmp_path)
    _blank_header_ids(tmp_path / "stack.mrcs")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = read_particles(tmp_path / "p.star")
        with StackReader(table) as r:
            images = r.read(np.arange(6))
        read_particles(tmp_path / "p.star")  # the same file again: no second warning
    ours = [w for w in caught if "stack.mrcs" in str(w.message)]
    assert len(ours) == 1 and "non-standard MRC header" in str(ours[0].message), [str(w.message) for w in caught]
    np.testing.assert_array_equal(images, data)


def test_stack_without_map_id_and_wrong_size_is_refused(tmp_path):
    _star(tmp_path)
    _blank_header_ids(tmp_path / "stack.mrcs")
    with open(tmp_path / "stack.mrcs", "ab") as f:
        f.write(b"\0" * 100)  # the header's dimensions no longer account for the file
    with pytest.raises(ValueError, match=r"stack.mrcs: not a readable MRC stack"):
        read_particles(tmp_path / "p.star")


def test_complex_stack_is_refused(tmp_path):
    _star(tmp_path)
    with mrcfile.new(tmp_path / "stack.mrcs", overwrite=True) as m:
        m.set_data((np.ones((6, 16, 16)) + 1j).astype(np.complex64))
        m.set_image_stack()
    with pytest.raises(ValueError, match=r"stack.mrcs: complex MRC data \(mode 4"):
        read_particles(tmp_path / "p.star")


def test_complex_map_is_refused(tmp_path):
    with mrcfile.new(tmp_path / "m.mrc") as m:
        m.set_data((np.ones((8, 8, 8)) + 1j).astype(np.complex64))
        m.voxel_size = 2.0
    with pytest.raises(ValueError, match=r"m.mrc: complex MRC data \(mode 4\)"):
        read_map(tmp_path / "m.mrc")


def test_relion30_origins_in_px_are_read(tmp_path):
    _star(tmp_path, rlnOriginX=[1.5, 0, 0, 0, 0, -2.0], rlnOriginY=[0.5, 0, 0, 0, 0, 1.0])
    shifts = read_particles(tmp_path / "p.star").shifts_px()
    np.testing.assert_allclose(shifts[[0, 5]], [[-1.5, -0.5], [2.0, -1.0]])
    np.testing.assert_allclose(read_particles(tmp_path / "p.star").shifts_px(4.0)[0], [-0.75, -0.25])


def test_origins_in_px_and_angstrom_must_agree(tmp_path):
    px = np.array([1.5, 0, -1, 0, 0, 0])
    _star(tmp_path, rlnOriginX=px, rlnOriginY=0.0, rlnOriginXAngst=px * 2.0, rlnOriginYAngst=0.0)
    np.testing.assert_allclose(read_particles(tmp_path / "p.star").shifts_px()[:, 0], -px)
    bad = px * 2.0
    bad[2] += 0.1  # 0.05 px off
    _star(tmp_path, rlnOriginX=px, rlnOriginY=0.0, rlnOriginXAngst=bad, rlnOriginYAngst=0.0)
    with pytest.raises(ValueError, match=r"p.star row 3: rlnOriginX/Y .* disagree with rlnOriginX/YAngst"):
        read_particles(tmp_path / "p.star")


def test_phase_shift_refused_unless_zero(tmp_path):
    _star(tmp_path, rlnPhaseShift=0.0)
    assert read_particles(tmp_path / "p.star").n == 6
    _star(tmp_path, rlnPhaseShift=[0, 0, 0, 90.0, 0, 0])
    with pytest.raises(ValueError, match=r"p.star row 4: phase-plate data \(rlnPhaseShift\) is not supported yet"):
        read_particles(tmp_path / "p.star")
    _star(tmp_path, optics_extra={"rlnPhaseShift": [45.0]})  # in the optics table
    with pytest.raises(ValueError, match=r"p.star row 1: phase-plate data \(rlnPhaseShift\)"):
        read_particles(tmp_path / "p.star")


@pytest.mark.parametrize(
    "case, fragment, not_in",
    [
        ("negative_voltage", "p.star row 1: rlnVoltage must be > 0, got -300", None),
        ("negative_defocus", "p.star row 3: rlnDefocusU must be >= 0, got -15000", None),
        ("negative_pixel", "p.star row 1: rlnImagePixelSize must be > 0, got -4", "mixed"),
        ("nan_pixel", "rlnImagePixelSize is not a finite number", "optics table"),
    ],
)
def test_non_physical_star_values_are_refused(tmp_path, case, fragment, not_in):
    optics = {
        "negative_voltage": {"rlnVoltage": [-300.0]},
        "negative_pixel": {"rlnImagePixelSize": [-4.0]},
        "nan_pixel": {"rlnImagePixelSize": [np.nan]},
    }.get(case)
    extra = {"rlnDefocusU": [15000.0, 15000, -15000, 15000, 15000, 15000]} if case == "negative_defocus" else {}
    _star(tmp_path, optics_extra=optics, **extra)
    with pytest.raises(ValueError) as exc:
        read_particles(tmp_path / "p.star")
    assert fragment in str(exc.value) and (not_in is None or not_in not in str(exc.value)), str(exc.value)


def test_import_pixel_size_inf_is_refused_up_front(tmp_path):
    _star(tmp_path)
    with pytest.raises(ValueError, match=r"--pixel-size must be a finite number of Å > 0, got inf"):
        import_particles(tmp_path / "p.star", tmp_path / "i.zarr", ImportOptions(pixel_size_A=float("inf")))
    assert not (tmp_path / "i.zarr").exists()

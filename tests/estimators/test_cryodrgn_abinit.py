"""cryodrgn-abinit: cryoDRGN's homogeneous ab initio as an estimator; its poses in orirec's convention.

The reader's tests need no cryoDRGN; those marked ``needs_cryodrgn`` run the real ``cryodrgn`` (``make cryodrgn-env``).
"""

import os
import pickle
import shutil
import subprocess

import mrcfile
import numpy as np
import pytest

from orirec.config.estimators import CryodrgnConfig
from orirec.estimators import EstimatorData, make_estimator
from orirec.estimators import cryodrgn_abinit as cd
from orirec.evaluate.metrics import orientation_metrics
from orirec.geometry import quat_distance, quat_to_matrix, uniform_quaternions
from orirec.geometry.euler import euler_to_matrix
from orirec.imaging.ctf import apply_ctf, ctf_from_params, sample_ctf_params
from orirec.simulate.projector import project
from orirec.structures import load_volume

needs_cryodrgn = pytest.mark.skipif(
    not cd.cryodrgn_available(), reason="cryoDRGN not installed (make cryodrgn-env, or set ORIREC_CRYODRGN)"
)
BOX, PX = 32, 4.0
J = np.diag([1.0, 1.0, -1.0])


def _dump_poses(path, rot, box=BOX):
    """A pose.pkl as cryoDRGN writes it: (rot (n, 3, 3), trans (n, 2) in fractions of the box)."""
    with open(path, "wb") as fh:
        pickle.dump((np.asarray(rot, np.float32), np.zeros((len(rot), 2), np.float32) / box), fh)
    return path


@pytest.fixture(scope="module")
def particles():
    """120 clean projections of the asymmetric pseudo-protein at known orientations, and its map."""
    vol, _ = load_volume("pseudo:0", BOX, PX)
    q = uniform_quaternions(120, seed=2)
    return np.asarray(vol, dtype=np.float32), q, np.asarray(project(vol, q), dtype=np.float32)


def test_cryodrgn_rotation_is_orirec_r():
    """cryoDRGN 4.3.1's ``utils.R_from_relion`` of RELION angles (rot, tilt, psi) = (30°, 40°, 50°), the matrix
    its ``parse_pose_star`` writes to pose.pkl, printed by cryoDRGN itself: orirec's R of the same angles,
    neither transposed nor mirrored."""
    cryodrgn_r = np.array([[0.043412, 0.909616, -0.413176],
                           [-0.829598, 0.263258, 0.492404],
                           [0.55667, 0.321394, 0.766044]])  # fmt: skip
    np.testing.assert_allclose(euler_to_matrix(*np.deg2rad([30.0, 40.0, 50.0])), cryodrgn_r, atol=2e-6)


def test_poses_read_back_consistent_with_truth_after_the_gauge(particles, tmp_path):
    """cryoDRGN's poses of an ab initio run, R_i → J R_i B J (a global rotation B and the mirror), read back as
    orirec quaternions, are the truth once registered; transposed matrices are not."""
    _, q, _ = particles
    B = quat_to_matrix(uniform_quaternions(1, seed=7)[0])
    rot = J @ (quat_to_matrix(q) @ B) @ J
    got = cd.read_cryodrgn_poses(_dump_poses(tmp_path / "pose.pkl", rot), len(q))
    assert got.shape == q.shape and np.all(got[:, 0] >= 0)
    assert orientation_metrics(got, q)["err_rot_median"] < 1e-3
    wrong = cd.read_cryodrgn_poses(_dump_poses(tmp_path / "t.pkl", np.swapaxes(rot, 1, 2)), len(q))
    assert orientation_metrics(wrong, q)["err_rot_median"] > 30.0
    with open(tmp_path / "bare.pkl", "wb") as fh:  # a rotations-only pose file (cryoDRGN: --no-trans)
        pickle.dump(quat_to_matrix(q), fh)
    assert np.degrees(quat_distance(cd.read_cryodrgn_poses(tmp_path / "bare.pkl", len(q)), q)).max() < 1e-4
    with pytest.raises(ValueError, match="expected 5 rotation"):
        cd.read_cryodrgn_poses(tmp_path / "bare.pkl", 5)


def test_inputs_and_schedule(particles, tmp_path):
    _, q, img = particles
    ctf = sample_ctf_params(len(q), seed=0)
    assert cd.write_particles(tmp_path / "a", EstimatorData(img, PX, ctf_params=ctf))
    star = (tmp_path / "a" / "particles.star").read_text()
    assert "rlnDefocusU" in star and "rlnAngleRot" not in star and "000120@particles.mrcs" in star
    assert mrcfile.read(tmp_path / "a" / "particles.mrcs").shape == img.shape
    assert not cd.write_particles(tmp_path / "b", EstimatorData(img, PX))
    cfg = CryodrgnConfig()
    args = cd.abinit_args(cfg, 32, 3.0, ctf=True)
    assert args[args.index("--ctf") + 1] == "ctf.pkl" and "--uninvert-data" not in args
    assert args[args.index("--l-end") + 1] == "16" and args[args.index("--t-extent") + 1] == "3"
    centred = cd.abinit_args(cfg, 24, 0.0, ctf=False)
    assert "--uninvert-data" in centred and "--ctf" not in centred
    assert centred[centred.index("--t-ngrid") + 1] == "1" and "--no-trans" not in centred  # 4.3.1 lacks it
    with pytest.raises(ValueError):
        CryodrgnConfig(cryodrgn_ps_freq=1)  # cryoDRGN 4.3.1 crashes (no poses in its first epoch)


def test_without_cryodrgn_the_estimator_says_how_to_get_it(monkeypatch, tmp_path):
    from orirec.studies.compare import default_estimators

    monkeypatch.delenv(cd.ENV_VAR, raising=False)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr(cd, "REPO", tmp_path)
    monkeypatch.chdir(tmp_path)
    assert cd.cryodrgn_executable() is None
    with pytest.raises(ValueError, match="cryoDRGN not found .*make cryodrgn-env") as err:
        make_estimator("cryodrgn-abinit")
    assert "\n" not in str(err.value)
    assert "cryodrgn-abinit" not in default_estimators(None, None)
    monkeypatch.setenv(cd.ENV_VAR, str(tmp_path / "nowhere" / "cryodrgn"))
    with pytest.raises(ValueError, match="ORIREC_CRYODRGN=.* is not an executable"):
        make_estimator("cryodrgn-abinit")


def test_the_environment_variable_names_the_executable(monkeypatch, tmp_path):
    exe = tmp_path / "cryodrgn"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    monkeypatch.setenv(cd.ENV_VAR, str(exe))
    assert cd.cryodrgn_executable() == exe and make_estimator("cryodrgn-abinit").exe == exe


def _cryodrgn(*args, cwd):
    exe = cd.cryodrgn_executable()
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    done = subprocess.run([str(exe), *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


def _corr(a, b):
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


@pytest.mark.slow  # 42 s on 2 cores: five cryoDRGN commands
@needs_cryodrgn
def test_cryodrgn_reads_orirec_angles_images_and_ctf(particles, tmp_path):
    """cryoDRGN's own readers on orirec's files: ``parse_pose_star`` of a STAR file with the true angles gives
    orirec's R (no registration); ``backproject_voxel`` with the true poses rebuilds the true map from the raw
    images (transposed poses do worse), and from CTF-modulated images with ``parse_ctf_star``'s CTF and
    cryoDRGN's default contrast inversion (correlations measured: 0.996, 0.906 transposed, 0.974 with the CTF;
    a CTF or contrast of the wrong sign would give a negative one)."""
    from orirec.store.export import particle_tables_of
    from orirec.store.relion import write_star

    vol, q, img = particles
    cd.write_particles(tmp_path, EstimatorData(img, PX))
    optics, table = particle_tables_of(BOX, PX, "particles.mrcs", np.full((len(q), 7), np.nan), quaternions=q)
    write_star(tmp_path / "angles.star", {"optics": optics, "particles": table})
    _cryodrgn("parse_pose_star", "angles.star", "-o", "star_pose.pkl", "-D", BOX, cwd=tmp_path)
    np.testing.assert_allclose(cd.read_cryodrgn_poses(tmp_path / "star_pose.pkl", len(q)), q, atol=1e-5)

    corr = {}
    for name, rot in (("R", quat_to_matrix(q)), ("RT", np.swapaxes(quat_to_matrix(q), 1, 2))):
        _dump_poses(tmp_path / f"{name}.pkl", rot)
        _cryodrgn("backproject_voxel", "particles.mrcs", "--poses", f"{name}.pkl", "-o", f"bp_{name}",
                  "--uninvert-data", "--no-half-maps", cwd=tmp_path)  # fmt: skip
        corr[name] = _corr(mrcfile.read(tmp_path / f"bp_{name}" / "backproject.mrc"), vol)
    assert corr["R"] > 0.97 and corr["R"] > corr["RT"] + 0.03, corr

    ctf = sample_ctf_params(len(q), seed=0, defocus_range_A=(8000.0, 15000.0))
    modulated = np.asarray(apply_ctf(img, ctf_from_params(ctf, BOX, PX)), dtype=np.float32)
    folder = tmp_path / "ctf"
    assert cd.write_particles(folder, EstimatorData(modulated, PX, ctf_params=ctf))
    _cryodrgn(*cd.PARSE_CTF, cwd=folder)
    with open(folder / "ctf.pkl", "rb") as fh:
        params = pickle.load(fh)
    assert np.isfinite(params).all()  # the phase shift too (NaN without --ps 0)
    np.testing.assert_allclose(params[:, 2:4], ctf[:, :2], rtol=1e-5)  # defocus U, V (Å)
    np.testing.assert_allclose(params[:, 4], np.degrees(ctf[:, 2]), atol=1e-3)  # angle in degrees
    _dump_poses(folder / "R.pkl", quat_to_matrix(q))
    _cryodrgn("backproject_voxel", "particles.mrcs", "--poses", "R.pkl", "--ctf", "ctf.pkl", "-o", "bp",
              "--no-half-maps", cwd=folder)  # fmt: skip
    assert _corr(mrcfile.read(folder / "bp" / "backproject.mrc"), vol) > 0.9


@pytest.mark.slow  # 25 s on 2 cores: cryoDRGN's start-ups and one pose search of 30 images
@needs_cryodrgn
def test_cryodrgn_abinit_in_compare(tiny_store, tmp_path):
    """The real ``cryodrgn abinit_homo_old`` with a minimal schedule as a peer of ``orirec compare``."""
    from orirec.studies.compare import compare_estimators

    settings = {"cryodrgn_epochs": 2, "cryodrgn_pretrain": 64, "cryodrgn_niter": 1, "cryodrgn_dim": 32}
    rows = compare_estimators(tiny_store, tmp_path, ["cryodrgn-abinit"], n=30, settings=settings)
    row = rows[0]
    assert row["estimator"] == "cryodrgn-abinit" and np.isfinite(row["err_rot_median"])
    assert row["cryodrgn-abinit_time_abinit_s"] > 0 and row["cryodrgn-abinit_threads"] == 2
    assert row["cryodrgn-abinit_command"] == "abinit_homo_old"
    work = tmp_path / "cryodrgn"
    assert (work / "abinit" / "pose.pkl").is_file() and (work / "abinit.log").is_file()

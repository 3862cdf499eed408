"""relion-sgd: RELION 3.1's initial model and assignment pass as an estimator; angles in orirec's convention."""

import shutil

import mrcfile
import numpy as np
import pytest

from orirec.config.estimators import RelionConfig
from orirec.estimators import EstimatorData, make_estimator
from orirec.estimators.relion_sgd import read_relion_orientations, relion_assign, relion_available, write_particles
from orirec.geometry import quat_distance, uniform_quaternions
from orirec.simulate.projector import project
from orirec.structures import load_volume

needs_relion = pytest.mark.skipif(not relion_available(), reason="RELION 3.1 not installed (apt-get install relion)")
BOX, PX = 32, 4.0


@pytest.fixture(scope="module")
def particles():
    """100 noisy projections of the pseudo-protein at known orientations, and its map."""
    vol, _ = load_volume("pseudo:0", BOX, PX)
    q = uniform_quaternions(100, seed=2)
    img = np.asarray(project(vol, q), dtype=np.float32)
    img += np.random.default_rng(0).normal(0, 0.5 * img.std(), img.shape).astype(np.float32)
    return np.asarray(vol, dtype=np.float32), q, img


@needs_relion
def test_relion_angles_read_back_in_orirec_convention(particles, tmp_path):
    """Assigned against the true map, RELION's angles are the true orientations without any registration
    (measured median 6.3°, HEALPix order 2: 7.5° steps); a transposed or mirrored reading would be far off."""
    vol, q, img = particles
    write_particles(tmp_path, EstimatorData(img, PX))
    with mrcfile.new(tmp_path / "ref.mrc", overwrite=True) as m:
        m.set_data(vol)
        m.voxel_size = PX
    star = relion_assign(tmp_path, tmp_path / "ref.mrc", RelionConfig(sgd_fin_resol_A=12), 100.0, 2.0, ctf=False)
    got = read_relion_orientations(star, len(q))
    assert np.degrees(np.median(quat_distance(got, q))) < 10.0


@pytest.mark.slow  # 27 s: two RELION runs
@needs_relion
def test_relion_sgd_estimates_every_image_and_keeps_its_work(particles, tmp_path):
    _, q, img = particles
    settings = {"sgd_ini_iter": 3, "sgd_inbetween_iter": 4, "sgd_fin_iter": 3, "sgd_ini_subset": 50,
                "sgd_fin_subset": 100, "sgd_fin_resol_A": 16}  # fmt: skip
    est = make_estimator("relion-sgd", settings)
    est.resume_in(tmp_path)
    got = est.estimate(EstimatorData(img, PX))
    assert got.shape == q.shape and np.allclose(np.linalg.norm(got, axis=1), 1.0)
    assert est.summary["time_sgd_s"] > 0 and est.summary["threads"] == 2
    assert (tmp_path / "relion" / "sgd" / "run_it010_class001.mrc").is_file()
    assert (tmp_path / "relion" / "assign" / "run_it001_data.star").is_file()


def test_without_relion_the_estimator_says_how_to_get_it(monkeypatch):
    from orirec.studies.compare import default_estimators

    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(ValueError, match="apt-get install relion"):
        make_estimator("relion-sgd")
    assert "relion-sgd" not in default_estimators(None, None)

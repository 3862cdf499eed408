"""Estimators behind one interface: registry, Euclidean baseline, oracle, regression heads, ASPIRE adapter."""

import numpy as np
import pytest

from orirec.config import RecoverConfig
from orirec.config.estimators import ESTIMATOR_CONFIGS
from orirec.estimators import (
    DistanceEstimator,
    Estimator,
    EstimatorData,
    TrainingData,
    estimator_names,
    make_estimator,
)
from orirec.evaluate.metrics import orientation_metrics
from orirec.geometry import quat_distance, uniform_quaternions
from orirec.recover import full_graph
from orirec.simulate.projector import project
from orirec.structures import load_volume


@pytest.fixture(scope="module")
def pseudo_images():
    vol, _ = load_volume("pseudo:0", 24, 4.0)
    q = uniform_quaternions(160, seed=3)
    return project(vol, q), q


def test_registry_lists_every_estimator_and_rejects_unknown_names():
    names = estimator_names()
    for n in ("siamese", "euclidean", "oracle", "oracle-noise", "regress-6d", "regress-quat", "regress-euler",
              "cvae", "aspire-cl"):  # fmt: skip
        assert n in names
    with pytest.raises(ValueError, match="unknown name 'nope'.*euclidean"):
        make_estimator("nope")


def test_every_estimator_is_an_estimator_with_one_typed_config():
    """One base class, hooks with defaults, one config per name; the settings are validated per estimator."""
    for name in estimator_names():
        assert name in ESTIMATOR_CONFIGS, name
    with pytest.raises(ValueError, match="calibration_pairs"):
        make_estimator("euclidean", {"calibration_pairs": 0})
    with pytest.raises(TypeError, match="abstract"):
        Estimator("bare")  # estimate() must be written
    est = make_estimator("oracle", {"steps": 3, "seed": 2}, RecoverConfig(gauge=False))  # steps: another's
    assert est.seed == 2 and est.recover.gauge is False and est.gauge_note == "none (gauge off)"
    assert est.fit(TrainingData(np.zeros((2, 4, 4)), np.zeros((2, 4)), 1.0)) == {}
    assert est.save_artifacts(None, None) == [] and est.resume_in(None) is None


def test_a_distance_estimator_estimates_gauge_resolved_orientations(pseudo_images):
    """DistanceEstimator.estimate goes through recover.solve: the oracle's exact distances give orientations
    whose err_rot (registered by a global rotation and handedness only) is small."""
    images, q = pseudo_images
    est = make_estimator("oracle", {}, RecoverConfig(steps=100, n_starts=5, gauge_sources=40))
    q_est = est.estimate(EstimatorData(images[:120], 4.0, q[:120]))
    assert orientation_metrics(q_est, q[:120])["err_rot_median"] < 15.0
    assert est.summary_row()["n_edges"] == (120 + 80) * (120 + 79) // 2 and "gauge_transposed" in est.summary


def test_euclidean_estimator_runs_and_calibrates_on_training_images(pseudo_images):
    images, q = pseudo_images
    est = make_estimator("euclidean", {"euclid_box_px": 16, "calibration_pairs": 5000})
    assert isinstance(est, DistanceEstimator) and not est.uses_ground_truth
    with pytest.raises(ValueError, match="train-store"):
        est.distances(EstimatorData(images, 4.0), np.zeros((2, 4)), np.array([0]), np.array([1]))
    info = est.fit(TrainingData(images[:100], q[:100], 4.0))
    assert info["calibration"] == "isotonic"
    data = EstimatorData(images[100:], 4.0)  # no ground truth given to the estimator
    f = est.features(data)
    i, j = full_graph(len(f))
    d = est.distances(data, f, i, j)
    assert d.shape == i.shape and d.min() >= 0 and d.max() <= np.pi
    # the calibration maps onto the distribution of true distances and keeps their order (weakly: Euclidean
    # image distances are a poor proxy, which is the point of the baseline)
    d_q = quat_distance(q[100:][i], q[100:][j])
    assert abs(d.mean() - d_q.mean()) < 0.3
    assert np.corrcoef(d, d_q)[0, 1] > 0.05


def test_oracle_distances_are_exact_or_noisy_and_need_truth(pseudo_images):
    images, q = pseudo_images
    i, j = full_graph(20)
    exact = make_estimator("oracle")
    data = EstimatorData(images[:20], 4.0, q[:20])
    assert np.allclose(exact.distances(data, exact.features(data), i, j), quat_distance(q[i], q[j]))
    noisy = make_estimator("oracle-noise", {"oracle_noise_rad": 0.2, "seed": 1})
    d = noisy.distances(data, None, i, j)
    assert 0.1 < np.std(d - quat_distance(q[i], q[j])) < 0.3
    with pytest.raises(ValueError, match="ground-truth"):
        exact.features(EstimatorData(images[:20], 4.0))


@pytest.mark.parametrize("rep", ["6d", "quat", "euler"])
def test_regression_estimators_train_and_predict(pseudo_images, rep):
    images, q = pseudo_images
    est = make_estimator(f"regress-{rep}", {"steps": 15, "batch_size": 32, "encoder_preset": "tiny"})
    assert isinstance(est, Estimator) and not isinstance(est, DistanceEstimator)
    with pytest.raises(ValueError, match="not trained"):
        est.estimate(EstimatorData(images[:4], 4.0))
    info = est.fit(TrainingData(images, q, 4.0))
    assert np.isfinite(info["loss_last"])
    out = est.estimate(EstimatorData(images[:10], 4.0))
    assert out.shape == (10, 4) and np.allclose(np.linalg.norm(out, axis=1), 1.0)


def test_regression_accepts_subvolumes():
    rng = np.random.default_rng(0)
    vols = rng.normal(size=(12, 8, 8, 8)).astype(np.float32)
    q = uniform_quaternions(12, seed=1)
    est = make_estimator("regress-6d", {"steps": 3, "batch_size": 4})
    est.fit(TrainingData(vols, q, 4.0))
    assert est.estimate(EstimatorData(vols[:5], 4.0)).shape == (5, 4)
    with pytest.raises(ValueError, match="cubic"):
        est.fit(TrainingData(rng.normal(size=(4, 8, 8, 6)).astype(np.float32), q[:4], 4.0))


def test_aspire_missing_is_a_clear_error():
    from orirec.estimators import aspire_cl

    if aspire_cl.aspire_available():
        pytest.skip("aspire is installed")
    with pytest.raises(ValueError, match=r"pip install 'orirec\[aspire\]'"):
        make_estimator("aspire-cl")


def test_aspire_gets_phase_flipped_images_when_the_ctf_is_known(monkeypatch):
    """With CTF parameters the images reach ASPIRE multiplied by sign(CTF); without, unchanged (no ASPIRE run:
    its matrix estimate is replaced by a recorder)."""
    from orirec.estimators import aspire_cl
    from orirec.estimators.base import EstimatorData
    from orirec.imaging.ctf import ctf_from_params, phase_flip, sample_ctf_params

    monkeypatch.setattr(aspire_cl, "aspire_available", lambda: True)
    seen = []
    est = aspire_cl.AspireCommonLines()
    monkeypatch.setattr(est, "estimate_matrices", lambda im, px, sh: seen.append(im) or np.tile(np.eye(3), (3, 1, 1)))
    images = np.random.default_rng(0).standard_normal((3, 16, 16)).astype(np.float32)
    ctf = sample_ctf_params(3, seed=1)
    est.estimate(EstimatorData(images, 4.7, None, 2.0, ctf))
    est.estimate(EstimatorData(images, 4.7, None, 2.0, None))
    flipped = np.asarray(phase_flip(images, ctf_from_params(ctf, 16, 4.7)))
    assert not np.allclose(flipped, images)
    np.testing.assert_allclose(seen[0], flipped, atol=1e-6)
    np.testing.assert_array_equal(seen[1], images)


@pytest.mark.slow
def test_aspire_adapter_convention_on_clean_images():
    """ASPIRE's rotations map microscope -> particle; the adapter transposes them. Registered to the truth by
    a global rotation + handedness only, clean images of an asymmetric pseudo-protein give small err_rot
    (without the transpose: ≈ 83° here, while err_o4 stays ≈ 3.5°)."""
    pytest.importorskip("aspire", reason="needs `pip install orirec[aspire]`")
    from orirec.estimators import aspire_cl

    vol, _ = load_volume("pseudo:0", 32, 4.0)
    q = uniform_quaternions(40, seed=1)
    est = aspire_cl.AspireCommonLines("voting", n_theta=72)
    m = orientation_metrics(est.estimate(EstimatorData(project(vol, q), 4.0, max_shift_px=0.0)), q)
    assert m["err_rot_median"] < 10.0

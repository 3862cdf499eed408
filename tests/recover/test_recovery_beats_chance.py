"""Recovery beats chance end to end, in seconds: the images of a simulated store, distances with the errors of a
trained model, recovery, and the gauge resolved without ground truth (in-plane copies + consistency search), through
the path ``orirec compare`` and a run's recover stage share (``orirec.recover.solve``). The same check with a trained
model is the main job's guard, tests/pipeline/test_main_job.py (it trains for minutes)."""

from orirec.config import RecoverConfig
from orirec.estimators import EstimatorData, make_estimator
from orirec.evaluate.metrics import orientation_metrics
from orirec.store import open_store
from orirec.studies.per_protein import chance_err_rot_deg

# σ of the Gaussian noise on the exact distances (rad): a distance MAE of about 0.24 rad, that of the guard's trained
# model (0.234); the tiny preset's model, at about 0.8, does not beat chance.
NOISE_RAD = 0.3


def test_recovery_with_the_gauge_beats_chance_by_far(tiny_store):
    s = open_store(tiny_store)  # 30 images of pseudo:1, 24 px, 3 Å
    data = EstimatorData(s.load_images(), s.pixel_size_A, s.quaternions)
    est = make_estimator("oracle-noise", {"oracle_noise_rad": NOISE_RAD, "seed": 0}, recover=RecoverConfig(seed=0))
    m = orientation_metrics(est.estimate(data), s.quaternions)
    chance = chance_err_rot_deg(30)  # 114°: random orientations of 30 images, after the same registration
    # measured 4.6-5.9° over five noise seeds (7.5-9.7° at σ 0.5 rad); the same recovery without the gauge: 33-95°
    assert m["err_rot_median"] < chance / 8, m
    # the gauge found without ground truth is about as good as the best O(4) alignment that uses it (measured: within
    # 0.6°); a wrong branch or beam axis would leave err_rot far above err_o4
    assert m["err_rot_median"] < m["err_o4_median"] + 3.0, m
    assert "gauge_transposed" in est.summary  # the in-plane copies took part

"""Local projection-matching refinement: perturbed orientations of a synthetic particle move back to the truth."""

import numpy as np
import pytest
import torch

from orirec.estimators.projection_matching import best_shifts, matching_box, refine_projection_matching
from orirec.evaluate.metrics import orientation_metrics
from orirec.geometry import local_rotation_grid, multiply, quat_distance, uniform_quaternions
from orirec.imaging.formation import apply_shifts
from orirec.imaging.ncc import MaskedNCC
from orirec.simulate.projector import project
from orirec.structures import atoms_to_density, pseudo_protein

PIXEL_A = 3.5
SCHEDULE = ((6.0, 2.0), (2.0, 1.0))


@pytest.fixture(scope="module")
def perturbed():
    """Noisy projections (32 px) of a pseudo-protein, their true and perturbed (6°) orientations, the clean ones."""
    vol = atoms_to_density(pseudo_protein(0, n_atoms=1200), 32, PIXEL_A)
    q = uniform_quaternions(200, seed=1)
    rng = np.random.default_rng(2)
    clean = project(vol, q)
    images = clean + rng.normal(0, 0.3 * clean.std(), clean.shape).astype(np.float32)
    v = rng.normal(size=(len(q), 3))
    v *= np.radians(6.0) / np.linalg.norm(v, axis=1, keepdims=True)
    th = np.linalg.norm(v, axis=1, keepdims=True)
    delta = np.concatenate([np.cos(th / 2), np.sin(th / 2) * v / th], axis=1)
    return images, q, multiply(q, delta), clean


def test_local_rotation_grid_is_a_ball_of_small_rotations():
    g = local_rotation_grid(3.0, 1.0)
    ang = np.degrees(quat_distance(g, np.array([1.0, 0, 0, 0])))
    assert len(g) == 123 and ang.max() <= 3.0 + 1e-9
    assert np.sum(ang < 1e-9) == 1  # the identity, once
    assert np.sort(ang)[1] == pytest.approx(1.0)  # nearest neighbours one step away
    with pytest.raises(ValueError, match="step"):
        local_rotation_grid(3.0, 0.0)


def test_masked_ncc_ignores_gain_and_offset():
    x = np.random.default_rng(0).normal(size=(3, 24, 24)).astype(np.float32)
    ncc = MaskedNCC(24, pixel_size_A=2.0, resolution_A=8.0)
    s = (ncc(x) * ncc(3.0 * x + 1.0)).sum(1)
    assert np.allclose(s.numpy(), 1.0, atol=1e-5)
    assert abs(float((ncc(x[:1]) * ncc(x[1:2])).sum())) < 0.5


def test_config_default_schedule_is_the_library_default():
    from orirec.config import RefineConfig
    from orirec.estimators.projection_matching import DEFAULT_SCHEDULE

    assert RefineConfig().schedule_deg == DEFAULT_SCHEDULE


def test_matching_box_keeps_the_resolution():
    assert matching_box(64, 4.7, 20.0) == 32  # pixel 9.4 Å <= 20 / 2
    assert matching_box(32, 3.5, 5.0) == 32  # never larger than the images


def test_refinement_recovers_perturbed_orientations(perturbed):
    images, q_true, q0, _ = perturbed
    before = orientation_metrics(q0, q_true)["err_rot_median"]
    res = refine_projection_matching(images, q0, PIXEL_A, rounds=2, schedule=SCHEDULE, resolution_A=10.0)
    after = orientation_metrics(res.quaternions, q_true)["err_rot_median"]
    assert before > 5.0 and after < 2.5, (before, after)
    assert res.box_px == 24 and [r["candidates"] for r in res.rounds] == [123, 33]
    assert res.rounds[1]["fsc_half_0143_A_after"] < res.rounds[0]["fsc_half_0143_A_before"]  # sharper half-maps
    assert res.rounds[0]["change_median_deg"] > 3.0  # it moved, by about the perturbation


def test_shift_of_a_projection_is_found_to_a_fraction_of_a_pixel(perturbed):
    clean = perturbed[3][:3]
    found = best_shifts(
        torch.from_numpy(apply_shifts(clean, np.array([[1.5, -2.0]] * 3))), torch.from_numpy(clean), None, 4
    )
    assert np.allclose(found, [[1.5, -2.0]] * 3, atol=0.05)


def test_shift_search_keeps_off_centre_particles_from_pulling_orientations(perturbed):
    images, q_true, q0, _ = perturbed
    shifts = np.random.default_rng(5).uniform(-2.0, 2.0, (len(q0), 2))  # px, as a simulation's ±2 px
    shifted = apply_shifts(images, shifts)
    kw = {"rounds": 2, "schedule": SCHEDULE, "resolution_A": 10.0}
    before = orientation_metrics(q0, q_true)["err_rot_median"]
    blind = refine_projection_matching(shifted, q0, PIXEL_A, **kw)
    found = refine_projection_matching(shifted, q0, PIXEL_A, max_shift_px=3.0, **kw)
    assert orientation_metrics(blind.quaternions, q_true)["err_rot_median"] > before  # measured 5.9° -> 7.4°
    assert orientation_metrics(found.quaternions, q_true)["err_rot_median"] < 3.0  # measured 2.2°
    assert np.median(np.linalg.norm(found.shifts_px - shifts, axis=1)) < 0.5  # measured 0.15 px
    assert found.rounds[-1]["shift_median_px"] > 1.0 and blind.rounds[-1]["shift_median_px"] == 0.0


def test_true_orientations_of_clean_images_stay_put(perturbed):
    _, q_true, _, clean = perturbed
    res = refine_projection_matching(clean, q_true, PIXEL_A, rounds=1, schedule=((2.0, 1.0),), resolution_A=10.0)
    moved = np.degrees(quat_distance(res.quaternions, q_true))
    assert np.mean(moved < 1e-6) > 0.95, np.sort(moved)[-10:]  # a few, near gaps of the 100-image half-maps, may step
    assert res.rounds[0]["change_median_deg"] == 0.0 and res.rounds[0]["score"] > 0.99


def test_interrupted_refinement_resumes(perturbed, tmp_path):
    images, _, q0, _ = perturbed
    kw = {"schedule": SCHEDULE, "resolution_A": 10.0}
    whole = refine_projection_matching(images[:120], q0[:120], PIXEL_A, rounds=2, **kw)
    ckpt = tmp_path / "refine.npz"
    refine_projection_matching(images[:120], q0[:120], PIXEL_A, rounds=1, checkpoint=ckpt, **kw)
    seen = []
    resumed = refine_projection_matching(
        images[:120], q0[:120], PIXEL_A, rounds=2, checkpoint=ckpt, progress=lambda d, t: seen.append((d, t)), **kw
    )
    assert resumed.resumed_rounds == 1 and len(resumed.rounds) == 2
    assert np.allclose(resumed.quaternions, whole.quaternions)
    assert seen[0][0] > 120 and seen[-1] == (240, 240)  # the first round's images count as done
    with pytest.warns(UserWarning, match="from the start"):  # other start: the checkpoint is not reused
        other = refine_projection_matching(images[:120], q0[::-1][:120], PIXEL_A, rounds=1, checkpoint=ckpt, **kw)
    assert other.resumed_rounds == 0


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="quaternions"):
        refine_projection_matching(np.zeros((5, 16, 16)), np.zeros((4, 4)), 1.0)


def test_upsampled_shift_search_resolves_a_fraction_of_a_coarse_pixel(perturbed):
    """Searching within 0.6 px, the plain grid holds only the centre (no neighbours for the parabola), so a
    (0.3, -0.2) px shift is missed; the 4× finer grid finds it."""
    clean = perturbed[3][:3]
    true = np.array([[0.3, -0.2]] * 3)
    moved = torch.from_numpy(apply_shifts(clean, true))
    coarse = best_shifts(moved, torch.from_numpy(clean), None, 0.6)
    fine = best_shifts(moved, torch.from_numpy(clean), None, 0.6, upsample=4)
    assert np.allclose(coarse, 0.0)  # stuck at the centre
    assert np.allclose(fine, true, atol=0.08), fine
    assert np.linalg.norm(fine, axis=1).max() <= 0.6 + 0.125  # the disk, within the parabola's half a fine px

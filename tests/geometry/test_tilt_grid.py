"""The local search's decomposition R_z(ψ) R_t R: tilts about in-plane axes, turns about the beam."""

import numpy as np
import pytest

from orirec.geometry import local_rotation_grid, multiply, quat_distance, rotate_about_z, tilt_rotation_grid


def test_tilts_are_about_in_plane_axes_within_the_disk():
    t = tilt_rotation_grid(12.0, 4.0)
    assert len(t) == 29 and np.allclose(t[:, 3], 0.0) and np.allclose(np.linalg.norm(t, axis=1), 1.0)
    assert np.degrees(quat_distance(t, np.tile([1.0, 0, 0, 0], (len(t), 1)))).max() <= 12.0 + 1e-9
    assert (np.abs(t - [1, 0, 0, 0]).sum(1) < 1e-12).sum() == 1  # the identity, once
    with pytest.raises(ValueError, match="step"):
        tilt_rotation_grid(4.0, 0.0)


def test_turns_and_tilts_cover_the_local_ball():
    """Every rotation of the ball of radius 12° (step 4°) is within one step of some R_z(ψ) R_t."""
    tilts, psis = tilt_rotation_grid(12.0, 4.0), np.radians(np.arange(-3, 4) * 4.0)
    cand = np.concatenate([rotate_about_z(tilts, p) for p in psis])
    ball = multiply(local_rotation_grid(12.0, 4.0), np.tile([1.0, 0, 0, 0], (123, 1)))
    nearest = [np.degrees(quat_distance(np.tile(b, (len(cand), 1)), cand)).min() for b in ball]
    assert max(nearest) < 4.0, max(nearest)

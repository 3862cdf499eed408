"""Quaternions, rotation matrices, RELION Euler angles, distances and SO(3) sampling."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from orirec.geometry import (
    canonicalize,
    conjugate,
    euler_to_matrix,
    euler_to_quat,
    matrix_to_euler,
    matrix_to_quat,
    multiply,
    normalize,
    pairwise_quat_distance,
    project_to_so3,
    quat_distance,
    quat_to_euler,
    quat_to_matrix,
    rotation_angle,
    uniform_euler_quaternions,
    uniform_quaternions,
    viewing_direction,
)

FAST = settings(max_examples=60, deadline=None)
coord = st.floats(-1.0, 1.0, allow_nan=False, allow_infinity=False)
quats = st.tuples(coord, coord, coord, coord).map(np.array).filter(lambda q: np.linalg.norm(q) > 1e-2)
angle = st.floats(-2 * np.pi, 2 * np.pi, allow_nan=False, allow_infinity=False)
tilts = st.one_of(st.floats(0.0, np.pi, allow_nan=False), st.sampled_from([0.0, np.pi, 1e-13, np.pi - 1e-13]))


def rz(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])


def ry(b):
    c, s = np.cos(b), np.sin(b)
    return np.array([[c, 0, s], [0, 1.0, 0], [-s, 0, c]])


def same_rotation(q1, q2, atol=1e-10):
    return np.allclose(quat_to_matrix(q1), quat_to_matrix(q2), atol=atol)


@FAST
@given(quats)
def test_quat_matrix_round_trip(q):
    R = quat_to_matrix(q)
    assert np.allclose(R @ R.T, np.eye(3), atol=1e-12)
    assert np.isclose(np.linalg.det(R), 1.0)
    q2 = matrix_to_quat(R)
    assert np.allclose(q2, canonicalize(q), atol=1e-10)
    assert q2[0] >= 0


@FAST
@given(quats, quats)
def test_multiply_matches_matrix_product(a, b):
    assert np.allclose(quat_to_matrix(multiply(a, b)), quat_to_matrix(a) @ quat_to_matrix(b), atol=1e-12)
    qa = normalize(a)
    assert np.allclose(multiply(qa, conjugate(qa)), [1.0, 0, 0, 0], atol=1e-12)


def test_canonicalize_sign_rules():
    q = np.array([[0.0, -1.0, 0, 0], [0.0, 0.0, -3.0, 4.0], [-0.5, 0.5, 0.5, 0.5], [0.0, 0.0, 0.0, -2.0]])
    c = canonicalize(q)
    assert np.allclose(c, canonicalize(-q))
    assert np.allclose(c[0], [0, 1, 0, 0]) and np.allclose(c[1], [0, 0, 0.6, -0.8])
    assert np.allclose(c[2], [0.5, -0.5, -0.5, -0.5]) and np.allclose(c[3], [0, 0, 0, 1])
    assert np.allclose(np.linalg.norm(c, axis=1), 1.0)
    # Rounding-level w (rotations by pi) does not decide the sign, and w >= 0 always holds.
    tiny = np.array([[-1e-20, 1.0, 1.0, 1.0], [1e-20, -1.0, -1.0, -1.0], [-1e-15, -1.0, 0, 0]])
    c = canonicalize(tiny)
    assert np.all(c[:, 0] >= 0) and np.allclose(c[0], c[1]) and np.allclose(c, canonicalize(-tiny))
    assert c[2, 1] > 0


def test_matrix_to_quat_pi_rotations_and_batch():
    R = np.stack([np.diag([1.0, -1, -1]), np.diag([-1.0, 1, -1]), np.diag([-1.0, -1, 1]), np.eye(3)])
    q = matrix_to_quat(R)
    assert np.allclose(q, [[0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1], [1, 0, 0, 0]])
    qs = uniform_quaternions(50, 3).reshape(5, 10, 4)
    assert np.allclose(matrix_to_quat(quat_to_matrix(qs)), qs, atol=1e-12)


def test_relion_formula_hand_case():
    # rot = 90 deg, tilt = 90 deg, psi = 0: worked out by hand from the RELION matrix.
    A = euler_to_matrix(np.pi / 2, np.pi / 2, 0.0)
    assert np.allclose(A, [[0, 0, -1], [-1, 0, 0], [0, 1, 0]], atol=1e-15)
    assert np.allclose(A.T @ [0, 0, 1], [0, 1, 0], atol=1e-15)


@FAST
@given(angle, tilts, angle)
def test_euler_matches_definition_and_viewing_direction(rot, tilt, psi):
    A = euler_to_matrix(rot, tilt, psi)
    assert np.allclose(A, rz(-psi) @ ry(-tilt) @ rz(-rot), atol=1e-12)
    v = viewing_direction(euler_to_quat(rot, tilt, psi))
    expected = [np.sin(tilt) * np.cos(rot), np.sin(tilt) * np.sin(rot), np.cos(tilt)]
    assert np.allclose(v, expected, atol=1e-12)


@FAST
@given(angle, tilts, angle)
def test_euler_round_trip_including_gimbal_lock(rot, tilt, psi):
    R = euler_to_matrix(rot, tilt, psi)
    r2, t2, p2 = matrix_to_euler(R)
    assert -np.pi < r2 <= np.pi and -np.pi < p2 <= np.pi and 0 <= t2 <= np.pi
    assert np.allclose(euler_to_matrix(r2, t2, p2), R, atol=1e-12)
    assert np.isclose(t2, tilt, atol=1e-7)
    q = euler_to_quat(rot, tilt, psi)
    assert np.allclose(euler_to_matrix(*quat_to_euler(q)), R, atol=1e-12)


@pytest.mark.parametrize("tilt", [0.0, np.pi])
def test_gimbal_lock_sets_psi_zero(tilt):
    R = euler_to_matrix(0.7, tilt, -1.9)
    rot, t, psi = matrix_to_euler(R)
    assert psi == 0.0 and t == tilt
    assert np.allclose(euler_to_matrix(rot, t, psi), R, atol=1e-14)
    # The in-plane angle goes into rot: rot + psi is conserved at tilt 0, rot - psi at tilt pi.
    expected = 0.7 - 1.9 if tilt == 0 else 0.7 + 1.9
    assert np.isclose(np.angle(np.exp(1j * (rot - expected))), 0.0, atol=1e-12)


def test_euler_broadcast_and_errors():
    R = euler_to_matrix(np.zeros((2, 3)), 0.3, np.linspace(0, 1, 3))
    assert R.shape == (2, 3, 3, 3)
    rot, tilt, psi = matrix_to_euler(R)
    assert rot.shape == tilt.shape == psi.shape == (2, 3)
    with pytest.raises(ValueError, match="tilt"):
        euler_to_matrix(0.0, np.nan, 0.0)
    with pytest.raises(ValueError, match="R"):
        matrix_to_euler(np.eye(4))


@FAST
@given(quats, quats, quats, quats, st.booleans(), st.booleans())
def test_dq_invariant_under_o4_and_signs(q1, q2, a, b, conj, flip):
    d = quat_distance(q1, q2)

    def gauge(q):
        q = normalize(q)
        return multiply(normalize(a), multiply(conjugate(q) if conj else q, normalize(b)))

    g1, g2 = gauge(q1), gauge(q2)
    if flip:
        g1 = -g1
    assert np.isclose(quat_distance(g1, g2), d, atol=1e-7)
    assert np.isclose(quat_distance(-q1, q2), d, atol=1e-12)
    assert np.isclose(rotation_angle(quat_to_matrix(q1), quat_to_matrix(q2)), d, atol=1e-7)
    assert 0.0 <= d <= np.pi


def test_dq_accurate_near_zero_and_pi():
    q = uniform_quaternions(1, 0)[0]
    for eps in [1e-10, 1e-6, 1e-3]:
        axis_rot = np.array([np.cos(eps / 2), np.sin(eps / 2), 0, 0])
        q2 = multiply(q, axis_rot)
        assert np.isclose(quat_distance(q, q2), eps, rtol=1e-6)
        assert np.isclose(rotation_angle(quat_to_matrix(q), quat_to_matrix(q2)), eps, rtol=1e-6)
    flip = multiply(q, np.array([0.0, 0, 1, 0]))
    assert np.isclose(quat_distance(q, flip), np.pi)
    assert np.isclose(rotation_angle(quat_to_matrix(q), quat_to_matrix(flip)), np.pi)


def test_pairwise_matches_quat_distance():
    q = uniform_quaternions(30, 1)
    D = pairwise_quat_distance(q)
    assert D.shape == (30, 30) and np.all(np.diag(D) == 0)
    assert np.allclose(D, D.T)
    assert np.allclose(D, quat_distance(q[:, None, :], q[None, :, :]), atol=1e-7)


def test_project_to_so3():
    R = quat_to_matrix(uniform_quaternions(20, 2))
    assert np.allclose(project_to_so3(R), R, atol=1e-12)
    noisy = R + 0.05 * np.random.default_rng(0).standard_normal(R.shape)
    P = project_to_so3(noisy)
    assert np.allclose(P @ np.swapaxes(P, 1, 2), np.eye(3), atol=1e-12)
    assert np.allclose(np.linalg.det(P), 1.0)
    assert np.all(rotation_angle(P, R) < np.deg2rad(10))
    assert np.isclose(np.linalg.det(project_to_so3(np.diag([1.0, 1, -1]))), 1.0)


def test_input_validation():
    with pytest.raises(ValueError, match="zero quaternion"):
        normalize(np.zeros(4))
    with pytest.raises(ValueError, match=r"\(\.\.\., 4\)"):
        quat_to_matrix(np.ones(3))
    with pytest.raises(ValueError, match="non-finite"):
        quat_distance([1.0, 0, 0, np.inf], [1.0, 0, 0, 0])


def test_uniform_quaternions_deterministic_and_haar():
    q = uniform_quaternions(4000, 7)
    assert q.shape == (4000, 4) and np.all(q[:, 0] >= 0)
    assert np.allclose(np.linalg.norm(q, axis=1), 1.0)
    assert np.array_equal(q, uniform_quaternions(4000, 7))
    assert not np.array_equal(q, uniform_quaternions(4000, 8))
    # Rotation angle of a Haar rotation has density (1 - cos t)/pi, CDF (t - sin t)/pi.
    theta = quat_distance(q, np.array([1.0, 0, 0, 0]))
    assert stats.kstest(theta, lambda t: (t - np.sin(t)) / np.pi).pvalue > 1e-3
    # Viewing directions are uniform on the sphere: cos(tilt) uniform on [-1, 1].
    cz = viewing_direction(q)[:, 2]
    assert stats.kstest(cz, stats.uniform(-1, 2).cdf).pvalue > 1e-3
    assert uniform_quaternions(0, 1).shape == (0, 4)
    with pytest.raises(ValueError, match="n"):
        uniform_quaternions(-1, 0)


def test_uniform_euler_box_sampler():
    q = uniform_euler_quaternions(3000, 5, rot_range=(0, 2 * np.pi), tilt_range=(0, np.pi / 2))
    assert np.array_equal(q, uniform_euler_quaternions(3000, 5, tilt_range=(0, np.pi / 2)))
    rot, tilt, psi = quat_to_euler(q)
    assert tilt.max() <= np.pi / 2 + 1e-9
    # Tilt is uniform in angle (not in cos tilt): this sampler is not Haar on SO(3).
    assert stats.kstest(tilt, stats.uniform(0, np.pi / 2).cdf).pvalue > 1e-3
    q_small = uniform_euler_quaternions(500, 1, rot_range=(0.1, 0.2), tilt_range=(0.5, 0.6), psi_range=(-0.3, 0.3))
    r, t, p = quat_to_euler(q_small)
    assert np.all((r >= 0.1 - 1e-9) & (r <= 0.2 + 1e-9) & (t >= 0.5 - 1e-9) & (t <= 0.6 + 1e-9))
    assert np.all(np.abs(p) <= 0.3 + 1e-9)
    with pytest.raises(ValueError, match="tilt_range"):
        uniform_euler_quaternions(10, 0, tilt_range=(0, 4.0))
    with pytest.raises(ValueError, match="rot_range"):
        uniform_euler_quaternions(10, 0, rot_range=(1.0, 0.0))


def test_common_line_angles_geometry():
    """The common line lies in both central slices, follows an in-plane turn of one image, and is undefined for a
    shared beam axis."""
    from orirec.geometry import common_line_angles, multiply

    q_i, q_j = uniform_quaternions(50, seed=3), uniform_quaternions(50, seed=4)
    t_i, t_j = common_line_angles(q_i, q_j)
    # back in particle coordinates, the line of image i and that of image j are the same direction
    d_i = np.einsum("nba,nb->na", quat_to_matrix(q_i), np.stack([np.cos(t_i), np.sin(t_i), 0 * t_i], -1))
    d_j = np.einsum("nba,nb->na", quat_to_matrix(q_j), np.stack([np.cos(t_j), np.sin(t_j), 0 * t_j], -1))
    np.testing.assert_allclose(d_i, d_j, atol=1e-9)
    # R_i -> R_z(φ) R_i turns image i by φ: its line angle moves by φ, image j's stays
    phi = 0.7
    z = np.array([np.cos(phi / 2), 0.0, 0.0, np.sin(phi / 2)])
    u_i, u_j = common_line_angles(multiply(z, q_i), q_j)
    np.testing.assert_allclose(np.angle(np.exp(1j * (u_i - t_i - phi))), 0.0, atol=1e-9)
    np.testing.assert_allclose(u_j, t_j, atol=1e-9)
    assert np.isnan(common_line_angles(q_i[:1], multiply(z, q_i[:1]))[0]).all()
    # the error of a line pair: 0 for the true line in either sense, the larger in-image gap otherwise
    from orirec.geometry import common_line_error

    np.testing.assert_allclose(common_line_error(t_i, t_j, q_i, q_j), 0.0, atol=1e-9)
    np.testing.assert_allclose(common_line_error(t_i + np.pi, t_j + np.pi, q_i, q_j), 0.0, atol=1e-9)
    np.testing.assert_allclose(common_line_error(t_i + 0.1, t_j - 0.05, q_i, q_j), 0.1, atol=1e-9)
    # C2 about z: q_j and q_j·z(π) give one image, so the copy's line counts as well
    zpi = np.array([0.0, 0.0, 0.0, 1.0])
    c_i, c_j = common_line_angles(q_i, multiply(q_j, zpi))
    assert common_line_error(c_i, c_j, q_i, q_j).max() > 0.1
    np.testing.assert_allclose(common_line_error(c_i, c_j, q_i, q_j, "C2"), 0.0, atol=1e-9)

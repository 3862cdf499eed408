"""In-plane rotation matches the projection of R_z(φ) R; Fourier down-sampling keeps the centre."""

import numpy as np

from orirec.geometry import multiply, uniform_quaternions, z_rotation_quaternions
from orirec.imaging.inplane import rotate_inplane
from orirec.imaging.resize import fourier_downsample
from orirec.simulate.projector import project
from orirec.structures import atoms_to_density, pseudo_protein


def test_rotated_projection_is_projection_of_left_rotated_orientation():
    vol = atoms_to_density(pseudo_protein(3, n_atoms=600, radius_A=20.0), 40, 2.0, resolution_A=9.0)
    q = uniform_quaternions(4, seed=11)
    phi = np.deg2rad(np.array([30.0, -75.0, 120.0, 200.0]))
    direct = project(vol, multiply(z_rotation_quaternions(phi), q))
    rotated = rotate_inplane(project(vol, q), phi)
    L = vol.shape[0]
    yy, xx = np.mgrid[:L, :L] - L // 2
    disk = xx**2 + yy**2 < (L // 2 - 2) ** 2
    for a, b in zip(direct, rotated, strict=True):
        err = np.linalg.norm((a - b)[disk]) / np.linalg.norm(a[disk])
        assert err < 0.02, err
    # the opposite sense is clearly wrong
    wrong = rotate_inplane(project(vol, q), -phi)
    err = np.linalg.norm((direct[0] - wrong[0])[disk]) / np.linalg.norm(direct[0][disk])
    assert err > 0.2


def test_fourier_downsample_keeps_a_smooth_image():
    L = 48
    yy, xx = np.mgrid[:L, :L] - L // 2
    img = np.exp(-((xx - 3) ** 2 + (yy + 5) ** 2) / (2 * 6.0**2))[None]
    small = fourier_downsample(img, 24)
    yy2, xx2 = np.mgrid[:24, :24] - 12
    expect = np.exp(-((2 * xx2 - 3) ** 2 + (2 * yy2 + 5) ** 2) / (2 * 6.0**2))
    assert np.abs(small[0] - expect).max() < 0.02

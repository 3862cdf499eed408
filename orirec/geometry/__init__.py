"""Layer 0 geometry: quaternions, rotations, RELION Euler angles, SO(3) sampling, distances, symmetry groups, alignment.

All functions are numpy (float64) and broadcast over leading dimensions; angles are in radians. Conventions:
DESIGN §2 (scalar-first unit quaternions with w >= 0; R maps particle to microscope coordinates).
"""

from orirec.geometry.align import align_o4, apply_o4, register_rotation
from orirec.geometry.common_lines import common_line_angles, common_line_error
from orirec.geometry.euler import euler_to_matrix, euler_to_quat, matrix_to_euler, quat_to_euler
from orirec.geometry.quaternions import (
    canonicalize,
    conjugate,
    matrix_to_quat,
    multiply,
    normalize,
    orientation_features,
    pairwise_quat_distance,
    project_to_so3,
    quat_distance,
    quat_to_matrix,
    rotate_about_z,
    rotation_angle,
    viewing_direction,
    z_rotation_quaternions,
)
from orirec.geometry.sampling import (
    global_rotation_grid,
    local_rotation_grid,
    preferred_quaternions,
    sample_vmf_directions,
    tilt_rotation_grid,
    uniform_euler_quaternions,
    uniform_quaternions,
)
from orirec.geometry.symmetry import (
    group_quaternions,
    parse_symmetry,
    symmetric_quat_distance,
    symmetry_name,
    symmetry_order,
)

__all__ = [
    "align_o4",
    "apply_o4",
    "canonicalize",
    "common_line_angles",
    "common_line_error",
    "conjugate",
    "group_quaternions",
    "global_rotation_grid",
    "local_rotation_grid",
    "tilt_rotation_grid",
    "euler_to_matrix",
    "euler_to_quat",
    "matrix_to_euler",
    "matrix_to_quat",
    "multiply",
    "normalize",
    "orientation_features",
    "pairwise_quat_distance",
    "parse_symmetry",
    "preferred_quaternions",
    "project_to_so3",
    "quat_distance",
    "quat_to_euler",
    "quat_to_matrix",
    "register_rotation",
    "rotate_about_z",
    "rotation_angle",
    "sample_vmf_directions",
    "symmetric_quat_distance",
    "symmetry_name",
    "symmetry_order",
    "uniform_euler_quaternions",
    "uniform_quaternions",
    "viewing_direction",
    "z_rotation_quaternions",
]

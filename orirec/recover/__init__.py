"""Orientation recovery from pairwise distances: pair graphs, spectral initialization, refinement."""

from .api import RecoveryResult, recover_from_matrix, recover_orientations
from .graph import distance_weights, full_graph, knn_graph, validate_distances
from .refine import refine, torch_quat_distance
from .spectral import gram_embedding, procrustes_rotations, spectral_init

__all__ = [
    "RecoveryResult",
    "distance_weights",
    "full_graph",
    "gram_embedding",
    "knn_graph",
    "procrustes_rotations",
    "recover_from_matrix",
    "recover_orientations",
    "refine",
    "spectral_init",
    "torch_quat_distance",
    "validate_distances",
]

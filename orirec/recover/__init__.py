"""Orientation recovery from pairwise distances: pair graphs, spectral initialization, refinement,
and partitioned (block-Jacobi) recovery over parts of the pair graph."""

from .api import RecoveryResult, recover_from_matrix, recover_orientations
from .blocks import LocalBlockRunner, RecoveryRoundError, recover_partitioned
from .graph import distance_weights, full_graph, knn_graph, validate_distances
from .partition import balanced_kmeans, split_graph
from .spectral import gram_embedding, procrustes_rotations, spectral_init
from .sphere import descend_on_sphere, l_or_value, torch_quat_distance

__all__ = [
    "LocalBlockRunner",
    "RecoveryResult",
    "RecoveryRoundError",
    "balanced_kmeans",
    "distance_weights",
    "full_graph",
    "gram_embedding",
    "knn_graph",
    "l_or_value",
    "procrustes_rotations",
    "recover_from_matrix",
    "recover_orientations",
    "recover_partitioned",
    "descend_on_sphere",
    "spectral_init",
    "split_graph",
    "torch_quat_distance",
    "validate_distances",
]

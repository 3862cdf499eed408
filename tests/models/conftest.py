"""Fixtures of the model tests: a store of two blob 'proteins'."""

import numpy as np
import pytest
from synthetic import blob_projections

from orirec.geometry import uniform_quaternions
from orirec.store import create_store

BOX, PER_PROTEIN = 20, 64


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    """Two blob 'proteins', PER_PROTEIN images each, BOX px, in one store."""
    q = uniform_quaternions(2 * PER_PROTEIN, seed=5)
    protein = np.repeat(np.arange(2, dtype=np.int32), PER_PROTEIN)
    images = np.concatenate([blob_projections(q[protein == p], BOX, seed=p) for p in range(2)])
    path = tmp_path_factory.mktemp("pair_store") / "proj.zarr"
    w = create_store(
        path, len(images), BOX, 2.0, shard_size=len(images), attrs={"proteins": [{"id": "a"}, {"id": "b"}]}
    )
    w.write_shard(0, images=images, quaternions=q, protein=protein)
    w.finalize()
    return path

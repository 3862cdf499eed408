"""The projection store: schema, one writer per shard, completion, resume, clear errors."""

import numpy as np
import pytest
import zarr

from orirec.store import create_store, open_store
from orirec.store.orientations import read_orientations, write_orientations


def _fill(w, k, rng):
    start = k * w.shard_size
    rows = min(w.shard_size, w.n_images - start)
    w.write_shard(
        k, images=rng.normal(size=(rows, 16, 16)), quaternions=rng.normal(size=(rows, 4)), protein=np.full(rows, k % 2)
    )


def test_write_read_roundtrip(tmp_path):
    rng = np.random.default_rng(0)
    w = create_store(tmp_path / "s.zarr", 70, 16, 2.0, shard_size=32, chunk_size=8)
    assert w.n_shards == 3
    for k in w.missing_shards():
        _fill(w, k, rng)
    w.finalize(proteins=[{"id": "a"}, {"id": "b"}])
    s = open_store(tmp_path / "s.zarr")
    assert s.images.shape == (70, 16, 16)
    assert s.images.shards == (32, 16, 16) and s.images.chunks == (8, 16, 16)
    assert s.attrs["completed_shards"] == [0, 1, 2]
    sel = s.load_images([69, 3, 40])
    np.testing.assert_array_equal(sel[1], s.images[3])
    assert np.isnan(s.ctf).all() and s.protein[:32].tolist() == [0] * 32


def test_incomplete_store_is_refused_and_resumable(tmp_path):
    rng = np.random.default_rng(1)
    w = create_store(tmp_path / "s.zarr", 64, 16, 2.0, shard_size=16)
    _fill(w, 0, rng)
    _fill(w, 2, rng)
    with pytest.raises(ValueError, match="incomplete .2 of 4 shards"):
        open_store(tmp_path / "s.zarr")
    with pytest.raises(RuntimeError, match="not written"):
        w.finalize()
    from orirec.store import StoreWriter

    w2 = StoreWriter(tmp_path / "s.zarr")  # a later process resumes
    assert w2.missing_shards() == [1, 3]
    first = w2.group["images"][:16].copy()
    for k in w2.missing_shards():
        _fill(w2, k, rng)
    w2.finalize()
    s = open_store(tmp_path / "s.zarr")
    np.testing.assert_array_equal(s.images[:16], first)


def test_each_store_shard_maps_to_one_zarr_shard(tmp_path):
    """One writer per shard holds only if store shards and Zarr shards/chunks coincide for every array."""
    create_store(tmp_path / "s.zarr", 100, 16, 1.0, shard_size=25, chunk_size=5)
    g = zarr.open_group(str(tmp_path / "s.zarr"), mode="r")
    for name in ("images", "quaternions", "shifts", "ctf", "protein", "noise_var", "snr_disk"):
        a = g[name]
        outer = a.shards[0] if a.shards is not None else a.chunks[0]
        assert outer == 25, name
    assert g["shard_complete"].chunks == (1,)


def test_bad_input(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such store"):
        open_store(tmp_path / "missing.zarr")
    (tmp_path / "junk.zarr").mkdir()
    (tmp_path / "junk.zarr" / "zarr.json").write_text("{not json")
    with pytest.raises(ValueError, match="junk.zarr"):
        open_store(tmp_path / "junk.zarr")
    with pytest.raises(ValueError, match="pixel size"):
        create_store(tmp_path / "p.zarr", 10, 16, 0.0)
    create_store(tmp_path / "e.zarr", 10, 16, 1.0)
    with pytest.raises(FileExistsError):
        create_store(tmp_path / "e.zarr", 10, 16, 1.0)
    w = create_store(tmp_path / "n.zarr", 10, 16, 1.0, shard_size=10)
    with pytest.raises(ValueError, match="NaN"):
        w.write_shard(0, images=np.full((10, 16, 16), np.nan))
    with pytest.raises(ValueError, match="shape"):
        w.write_shard(0, images=np.zeros((9, 16, 16)))
    assert w.missing_shards() == [0]


def test_orientation_files(tmp_path):
    from orirec.geometry import quat_distance, uniform_quaternions

    q = uniform_quaternions(20, seed=3)
    write_orientations(tmp_path / "o.csv", np.arange(20) + 5, q)
    idx, q2 = read_orientations(tmp_path / "o.csv")
    assert idx.tolist() == list(range(5, 25))
    assert np.max(quat_distance(q, q2)) < 1e-8
    write_orientations(tmp_path / "o.star", np.arange(20), q)
    import starfile

    df = starfile.read(tmp_path / "o.star")
    assert {"rlnAngleRot", "rlnAngleTilt", "rlnAnglePsi"} <= set(df.columns)
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="not an orirec orientation CSV"):
        read_orientations(tmp_path / "bad.csv")


def test_dask_view(tmp_path):
    rng = np.random.default_rng(2)
    w = create_store(tmp_path / "s.zarr", 32, 16, 1.0, shard_size=16)
    for k in w.missing_shards():
        _fill(w, k, rng)
    w.finalize()
    s = open_store(tmp_path / "s.zarr")
    lazy = s.to_dask("images")
    assert lazy.shape == (32, 16, 16)
    np.testing.assert_array_equal(lazy[5:20].compute(), s.images[5:20])

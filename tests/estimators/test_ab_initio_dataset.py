"""Ab initio at dataset scale: restarts on a subset, then a global pass and local rounds over every image, shard
by shard, in this process or on Ray actors."""

import os
from pathlib import Path

import numpy as np
import pytest

from orirec.estimators.ab_initio.dataset import SerialMapper, ab_initio_dataset, shards_of
from orirec.estimators.ab_initio.passes import ArrayImages
from orirec.evaluate.metrics import orientation_metrics
from orirec.geometry import quat_distance, uniform_quaternions
from orirec.imaging.formation import apply_shifts
from orirec.simulate.projector import project
from orirec.structures import atoms_to_density, pseudo_protein

PIXEL_A, RADIUS_A, N = 3.5, 25.0, 400
SETTINGS = {"iterations": 25, "resolution_start_A": 16.0, "resolution_end_A": 10.0, "restarts": 3}
KW = dict(shard_size=128, subset=150, settings=SETTINGS, schedule=((8.0, 4.0), (3.0, 1.5)),
          refine_resolution_A=10.0, max_shift_px=1.5, particle_radius_A=1.3 * RADIUS_A, seed=0)  # fmt: skip


@pytest.fixture(scope="module")
def particle():
    """Noisy (SNR 1 in the frame), shifted (±1 px) 32-px projections of an asymmetric pseudo-protein."""
    vol = atoms_to_density(pseudo_protein(0, n_atoms=1200, radius_A=RADIUS_A), 32, PIXEL_A)
    q = uniform_quaternions(N, seed=1)
    rng = np.random.default_rng(2)
    clean = project(vol, q)
    images = np.asarray(apply_shifts(clean, rng.uniform(-1, 1, (N, 2)))) + rng.normal(0, clean.std(), clean.shape)
    return ArrayImages(images.astype(np.float32)), q


@pytest.fixture(scope="module", autouse=True)
def _restarts_run_once(tmp_path_factory):
    """Every run of the module poses the same subset: its restarts are read back from one checkpoint."""
    KW["settings"] = SETTINGS | {"checkpoint": tmp_path_factory.mktemp("restarts") / "restarts.npz"}


@pytest.fixture(scope="module")
def serial(particle, tmp_path_factory):
    ckpt = tmp_path_factory.mktemp("passes") / "passes.npz"
    return ab_initio_dataset(particle[0], np.arange(N), 32, PIXEL_A, checkpoint=ckpt, **KW), ckpt


def test_shards_follow_the_store_shards():
    rows = np.array([3, 5, 16, 17, 40, 41, 47])
    assert [g.tolist() for g in shards_of(rows, 16)] == [[0, 1], [2, 3], [4, 5, 6]]


def test_every_image_is_posed_from_a_subset_map(serial, particle):
    """The images outside the subset, posed by the passes alone, are as good as the subset's (measured: 4.6° for
    the 400 others, 6.4° for the 200 of the subset's ab initio, 4.4° for all after the two rounds)."""
    res, _ = serial
    q = particle[1]
    rest = np.setdiff1d(np.arange(N), res.subset_positions)
    assert len(res.subset_positions) == 150 and res.quaternions.shape == (N, 4)
    assert orientation_metrics(res.quaternions[rest], q[rest])["err_rot_median"] < 8.0
    assert orientation_metrics(res.quaternions, q)["err_rot_median"] < 8.0
    assert [p["pass"] for p in res.passes] == ["global", "local 1", "repose", "local 2"]
    assert res.passes[0]["images_posed"] == N and res.passes[-1]["fsc_half_0143_A"] < 15.0
    assert np.isfinite(res.scores).all() and res.volume.shape == (res.box_px,) * 3


def test_a_rerun_reads_the_finished_passes_back(serial, particle, monkeypatch):
    res, ckpt = serial
    import orirec.estimators.ab_initio.dataset as D

    monkeypatch.setattr(D.LocalRound, "__call__", lambda *a: pytest.fail("a finished pass ran again"))
    again = ab_initio_dataset(particle[0], np.arange(N), 32, PIXEL_A, checkpoint=ckpt, **KW)
    assert again.passes_read_back == 4 and np.array_equal(again.quaternions, res.quaternions)


class _Once:
    """A mapper that stops the run after ``passes`` passes (an interruption), then behaves as the serial one."""

    def __init__(self, passes: int):
        self.left = passes

    def map(self, fn, tasks, shared, progress=None):
        if self.left == 0:
            raise KeyboardInterrupt
        self.left -= 1
        return list(SerialMapper().map(fn, tasks, shared, progress))


def test_an_interrupted_run_resumes_after_its_last_pass(serial, particle, tmp_path):
    ckpt = tmp_path / "passes.npz"
    with pytest.raises(KeyboardInterrupt):
        ab_initio_dataset(particle[0], np.arange(N), 32, PIXEL_A, checkpoint=ckpt, mapper=_Once(2), **KW)
    resumed = ab_initio_dataset(particle[0], np.arange(N), 32, PIXEL_A, checkpoint=ckpt, **KW)
    assert resumed.passes_read_back == 2
    assert np.allclose(resumed.quaternions, serial[0].quaternions)


@pytest.mark.ray
def test_one_and_two_ray_workers_agree(serial, particle):
    """1 and 2 Ray workers give the same poses, bit for bit: each shard runs on 1 torch thread wherever it runs,
    and the driver adds the shards' sums in shard order. The serial mapper (this process's threads) differs only
    at near-ties of the NCC (float reduction order): stated tolerance, at most 2 % of the poses, each by at most
    one step of the last round's grid, and the same map to 1e-2 of its peak."""
    from orirec.distributed.shards import RayShardMapper

    out = []
    for workers in (1, 2):
        mapper = RayShardMapper(workers)
        try:
            out.append(ab_initio_dataset(particle[0], np.arange(N), 32, PIXEL_A, mapper=mapper, **KW))
        finally:
            mapper.close()
    one, two = out
    assert np.array_equal(one.quaternions, two.quaternions) and np.array_equal(one.volume, two.volume)
    apart = np.degrees(quat_distance(two.quaternions, serial[0].quaternions))
    assert np.mean(apart > 1e-3) <= 0.02 and apart.max() < 2 * 1.5 * np.sqrt(3), np.sort(apart)[-10:]
    assert np.abs(two.volume - serial[0].volume).max() < 1e-2 * np.abs(serial[0].volume).max()


@pytest.mark.ray
def test_a_killed_actors_shard_is_redone_once(particle, tmp_path):
    from orirec.distributed.shards import RayShardMapper
    from orirec.estimators.ab_initio.passes import Shard

    shards = [Shard(i, g, np.zeros(len(g)), np.zeros((len(g), 4)), np.zeros((len(g), 2))) for i, g in
              enumerate(np.array_split(np.arange(40), 5))]  # fmt: skip

    class DieOnce:  # defined here so that Ray pickles it by value (workers cannot import the test module)
        """A shard task that kills its worker process the first time it meets shard 1 (a lost node)."""

        def __init__(self, task, marker: Path):
            self.task, self.marker = task, marker

        def __call__(self, shard, shared):
            if shard.index == 1 and not self.marker.exists():
                self.marker.write_text("died")
                os._exit(1)
            return self.task(shard, shared)

    mapper = RayShardMapper(2)
    seen: list[int] = []
    try:
        out = list(mapper.map(DieOnce(lambda s, shared: (s.index, s.rows.sum() + shared), tmp_path / "m"), shards,
                              1000, progress=seen.append))  # fmt: skip
    finally:
        mapper.close()
    assert (tmp_path / "m").exists() and mapper.restarted == 1  # the actor did die, and was replaced
    assert out == [(i, s.rows.sum() + 1000) for i, s in enumerate(shards)]  # every shard once, in order
    assert sorted(seen) == [8] * 5  # progress counted each shard's images once


class _Generated:
    """Images made on demand, row by row (noisy projections of one map at fixed orientations): a source that holds
    no image, so that what a run keeps is the run's own memory."""

    def __init__(self, n: int):
        self.vol = atoms_to_density(pseudo_protein(0, n_atoms=1200, radius_A=RADIUS_A), 32, PIXEL_A)
        self.q = uniform_quaternions(n, seed=1)

    def __call__(self, rows):
        clean = np.asarray(project(self.vol, self.q[rows]))
        noise = np.stack([np.random.default_rng([7, int(r)]).normal(size=clean.shape[1:]) for r in rows])
        return (clean + clean.std() * noise).astype(np.float32)


class _Traced(SerialMapper):
    """The serial mapper, recording the peak of traced memory during its passes (not the subset's restarts)."""

    peak_mb = 0.0

    def map(self, fn, tasks, shared, progress=None):
        import tracemalloc

        tracemalloc.reset_peak()
        out = list(super().map(fn, tasks, shared, progress))
        self.peak_mb = max(self.peak_mb, tracemalloc.get_traced_memory()[1] / 2**20)
        return out


@pytest.mark.slow
def test_memory_does_not_grow_with_the_number_of_images():
    """The passes' peak of traced (numpy and Python) memory for 2 × N images stays within 20 % (+1 MB for the 7
    numbers per image the driver keeps) of N's: one shard of images at a time, whatever N (all 1,200 images of
    32 px at once would be 4.7 MB before their copies)."""
    import tracemalloc

    peaks = []
    for n in (600, 1200):
        kw = KW | {"settings": SETTINGS | {"iterations": 10, "restarts": 1}, "schedule": ((4.0, 2.0),), "subset": 100}
        mapper = _Traced()
        tracemalloc.start()
        try:
            ab_initio_dataset(_Generated(n), np.arange(n), 32, PIXEL_A, mapper=mapper, **kw)
        finally:
            tracemalloc.stop()
        peaks.append(mapper.peak_mb)
    assert peaks[1] < 1.2 * peaks[0] + 1.0, peaks

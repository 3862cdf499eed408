"""Resume after a killed worker: a Ray actor is killed mid-run; the run names the failed shard, and the
same command run again writes only the missing shard, leaving exactly the images of an uninterrupted run."""

import numpy as np
import pytest

from orirec.config import SimulateConfig
from orirec.simulate.to_store import ShardsFailedError, simulate_to_store
from orirec.store import open_store

pytestmark = pytest.mark.ray  # Ray actors, one of them killed


@pytest.mark.slow
def test_killed_actor_fails_the_run_naming_its_shard_and_a_rerun_completes_it(tmp_path):
    ray = pytest.importorskip("ray")
    import torch

    from orirec.distributed.simulate import ray_shard_runner

    cfg = SimulateConfig(
        inputs=["pseudo:0", "pseudo:1"], n_per_structure=48, box_px=32, pixel_size_A=3.0,
        shard_size=16, sigma2=2.0, shift_px=1.0, ctf=True,
    )  # fmt: skip
    torch.set_num_threads(1)  # as in the actors, so that in-process and actor images agree bit for bit
    reference = simulate_to_store(cfg, tmp_path / "local.zarr")
    assert reference.shards_written == 6

    victim = 3
    killed = []

    def kill_when_dispatched(k, actor):
        if k == victim:  # some shards are already done; this actor dies with shard 3 in its hands
            ray.kill(actor, no_restart=True)
            killed.append(k)

    store = tmp_path / "ray.zarr"
    try:
        with pytest.raises(ShardsFailedError, match=r"shard\(s\) \[3\] failed") as err:
            simulate_to_store(cfg, store, run_shards=ray_shard_runner(2, on_dispatch=kill_when_dispatched))
        assert killed == [3] and err.value.failed.keys() == {3} and err.value.not_started == []
        partial = open_store(store, require_complete=False)
        # the other actor kept going: every shard but the failed one is complete
        assert partial.group["shard_complete"][:].tolist() == [1, 1, 1, 0, 1, 1]
        with pytest.raises(ValueError, match="incomplete"):
            open_store(store)

        again = simulate_to_store(cfg, store, run_shards=ray_shard_runner(2))  # the same command again
        assert (again.shards_written, again.shards_skipped) == (1, 5)
    finally:
        ray.shutdown()
    a, b = open_store(tmp_path / "local.zarr"), open_store(store)
    for name in ("images", "quaternions", "shifts", "ctf", "protein", "noise_var"):
        np.testing.assert_array_equal(a.array(name), b.array(name), err_msg=name)
    assert b.attrs["completed_shards"] == list(range(6)) and b.attrs["complete"]

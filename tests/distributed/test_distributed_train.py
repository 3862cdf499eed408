"""Ray Train over the shared training loop: 2 CPU workers (DDP over gloo) on a tiny store."""

import pytest

pytest.importorskip("ray")


@pytest.mark.slow
def test_ray_train_two_workers(tmp_path):
    from orirec.config import run_preset
    from orirec.pipeline.stages import stage_simulate, stage_train

    cfg = run_preset("tiny", train={"num_workers": 2, "epochs": 2})
    store = tmp_path / "s.zarr"
    stage_simulate(cfg.simulate, store)
    res = stage_train(cfg.train, store, tmp_path / "train", progress=False)
    assert res["epochs_run"] == 2
    assert (tmp_path / "train" / "checkpoints" / "best.pt").is_file()
    assert res["best_val_mae"] < 3.2
    import ray

    ray.shutdown()

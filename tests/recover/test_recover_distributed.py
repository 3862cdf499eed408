"""Partitioned (block-Jacobi) orientation recovery: partition, sequential driver, checkpoints, Ray actors."""

import numpy as np
import pytest
import torch

from orirec.evaluate.metrics import orientation_metrics
from orirec.geometry import orientation_features, quat_distance, uniform_quaternions
from orirec.recover import knn_graph
from orirec.recover.blocks import LocalBlockRunner, RecoveryRoundError, recover_partitioned
from orirec.recover.partition import balanced_kmeans, split_graph
from orirec.recover.spectral import spectral_init

N = 300


@pytest.fixture(scope="module")
def problem():
    q = uniform_quaternions(N, seed=3)
    emb = orientation_features(q)
    i, j = knn_graph(emb, k=12, n_random=3, seed=3)
    d = quat_distance(q[i], q[j])
    labels = balanced_kmeans(emb, 3, seed=0)
    # start ~15 deg away from the truth: the spectral start on this graph is already close to exact
    rng = np.random.default_rng(5)
    q0 = q + 0.12 * rng.standard_normal(q.shape)
    q0 /= np.linalg.norm(q0, axis=1, keepdims=True)
    return q, i, j, d, labels, q0


def test_partition_covers_every_node_once(problem):
    q, i, j, _, labels, _ = problem
    assert labels.shape == (N,) and labels.min() == 0 and labels.max() == 2
    assert np.bincount(labels).max() <= int(np.ceil(N / 3 * 1.1))  # balanced within the slack
    assert np.array_equal(labels, balanced_kmeans(orientation_features(q), 3, seed=0))  # deterministic
    parts = split_graph(labels, i, j)
    nodes = np.concatenate([p.nodes for p in parts])
    assert np.array_equal(np.sort(nodes), np.arange(N))  # every node exactly once
    seen = np.zeros(i.size, dtype=int)
    for k, p in enumerate(parts):
        assert np.all(labels[p.nodes] == k)
        internal, boundary = p.edges[: p.n_internal], p.edges[p.n_internal :]
        assert np.all(labels[i[internal]] == k) and np.all(labels[j[internal]] == k)
        assert np.all((labels[i[boundary]] == k) != (labels[j[boundary]] == k))
        assert np.all(labels[p.halo] != k) and p.halo.size > 0
        seen[p.edges] += 1
    cross = labels[i] != labels[j]
    assert np.all(seen[~cross] == 1) and np.all(seen[cross] == 2)  # boundary edges shared by both parts
    with pytest.raises(ValueError, match=r"part\(s\) \[1\]"):
        split_graph(np.where(labels == 1, 0, labels), i, j)
    with pytest.raises(ValueError, match="parts"):
        balanced_kmeans(orientation_features(q), N + 1)


def test_sequential_partitioned_recovery_is_accurate(problem):
    q, i, j, d, labels, q0 = problem
    start = orientation_metrics(q0, q)["err_o4_median"]
    res = recover_partitioned(N, i, j, d, labels, rounds=12, block_steps=5, relax=0.6, q0=q0)
    m = orientation_metrics(res.quaternions, q)
    assert start > 5.0
    assert m["err_o4_median"] < 0.5, m
    assert res.loss_history[-1] < 1e-3 * res.loss_history[0]
    assert len(res.loss_history) == 13


def test_spectral_start_then_blocks(problem):
    q, i, j, d, labels, _ = problem
    res = recover_partitioned(N, i, j, d, labels, rounds=3, block_steps=5, relax=0.6)
    q_init = spectral_init(N, i, j, d)
    assert (
        orientation_metrics(res.quaternions, q)["err_o4_median"]
        <= orientation_metrics(q_init, q)["err_o4_median"] + 1e-9
    )
    assert res.loss_history[-1] <= res.loss_history[0]


def test_resume_continues_at_stored_round(problem, tmp_path):
    q, i, j, d, labels, q0 = problem
    ck = tmp_path / "ck.npz"
    kw = dict(block_steps=3, relax=0.6, q0=q0)
    whole = recover_partitioned(N, i, j, d, labels, rounds=4, **kw)
    recover_partitioned(N, i, j, d, labels, rounds=2, checkpoint=ck, **kw)
    with np.load(ck) as z:
        assert int(z["round"]) == 2
    rounds_run: list[int] = []
    resumed = recover_partitioned(
        N, i, j, d, labels, rounds=4, checkpoint=ck, progress=lambda r, _: rounds_run.append(r), **kw
    )
    assert rounds_run == [2, 3]
    np.testing.assert_allclose(resumed.loss_history, whole.loss_history, rtol=1e-9)
    assert quat_distance(resumed.quaternions, whole.quaternions).max() < 1e-9
    other = np.roll(labels, 1)
    with pytest.raises(ValueError, match="different graph or partition"):
        recover_partitioned(N, i, j, d, other, rounds=4, checkpoint=ck, **kw)


def test_failed_part_names_part_and_round_and_keeps_checkpoint(problem, tmp_path, monkeypatch):
    import orirec.recover.blocks as blocks

    q, i, j, d, labels, q0 = problem
    ck = tmp_path / "ck.npz"
    real = blocks.refine_block
    calls = {"n": 0}

    def flaky(p, qo, qb, opts):
        calls["n"] += 1
        if calls["n"] == 5:  # part 1 of round 1 (3 parts per round)
            raise FloatingPointError("boom")
        return real(p, qo, qb, opts)

    monkeypatch.setattr(blocks, "refine_block", flaky)
    with pytest.raises(RecoveryRoundError, match=r"part 1 failed in round 1: boom"):
        recover_partitioned(N, i, j, d, labels, rounds=3, block_steps=3, q0=q0, checkpoint=ck)
    with np.load(ck) as z:
        assert int(z["round"]) == 1
    monkeypatch.setattr(blocks, "refine_block", real)
    res = recover_partitioned(N, i, j, d, labels, rounds=3, block_steps=3, q0=q0, checkpoint=ck)
    assert len(res.loss_history) == 4


@pytest.mark.slow
@pytest.mark.ray
def test_ray_two_workers_match_sequential_and_fail_cleanly(problem, tmp_path):
    pytest.importorskip("ray")
    import ray

    from orirec.distributed.recover import RayBlockRunner

    q, i, j, d, labels, q0 = problem
    kw = dict(rounds=4, block_steps=5, relax=0.6, q0=q0)
    torch.set_num_threads(1)  # as in the actors: same reduction order
    ref = recover_partitioned(N, i, j, d, labels, runner=LocalBlockRunner(), **kw)
    try:
        got = recover_partitioned(N, i, j, d, labels, runner=RayBlockRunner(2), **kw)
        assert quat_distance(got.quaternions, ref.quaternions).max() < 1e-6  # rad; stated tolerance
        np.testing.assert_allclose(got.loss_history, ref.loss_history, rtol=1e-6)

        ck = tmp_path / "ck.npz"
        runner = RayBlockRunner(2)

        def kill_after_round_0(r, _l_or):
            if r == 0:
                ray.kill(runner.actors[0])

        with pytest.raises(RecoveryRoundError, match=r"part\(s\) \[0, 2\] failed in round 1"):
            recover_partitioned(N, i, j, d, labels, runner=runner, checkpoint=ck, progress=kill_after_round_0, **kw)
        with np.load(ck) as z:
            assert int(z["round"]) == 1
        resumed = recover_partitioned(N, i, j, d, labels, runner=RayBlockRunner(2), checkpoint=ck, **kw)
        assert quat_distance(resumed.quaternions, ref.quaternions).max() < 1e-6
    finally:
        ray.shutdown()


@pytest.mark.slow
def test_oracle_cli_partitioned_resolves_gauge(cli):
    args = ["--oracle", "--n", "300", "--seed", "1", "--graph", "knn", "--partitions", "3", "--rounds", "15"]
    res = cli("recover", *args, "--no-progress")
    rows = dict(line.split()[:2] for line in res.output.splitlines()[1:] if len(line.split()) == 2)
    assert int(rows["partitions"]) == 3
    assert float(rows["err_o4_median"]) < 0.5
    assert float(rows["err_rot_median"]) < 0.5  # gauge resolved from in-plane copies, no ground truth


def test_full_graph_too_large_is_a_clear_error():
    from orirec.config import RecoverConfig
    from orirec.recover.solve import FULL_GRAPH_MAX, pair_graph

    with pytest.raises(ValueError, match="use --graph knn"):
        pair_graph(RecoverConfig(graph="full"), np.zeros((FULL_GRAPH_MAX + 1, 10)))

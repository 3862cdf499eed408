"""The ab initio stage's resolved device and workers, checked without a GPU or a cluster."""

import pytest
import torch

from orirec.distributed.shards import RayShardMapper
from orirec.estimators.ab_initio.dataset import SerialMapper
from orirec.pipeline.ab_initio import _device, _mapper


def test_one_worker_runs_in_this_process_and_more_on_ray_actors(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert isinstance(_mapper(1, "cpu"), SerialMapper)
    cpu = _mapper(2, "cpu")
    assert isinstance(cpu, RayShardMapper) and cpu.num_workers == 2
    assert cpu.resources == {"num_cpus": 1.0, "num_gpus": 0.0} and not cpu.actors  # nothing started yet
    assert _mapper(3, "cuda:0").resources == {"num_cpus": 1.0, "num_gpus": 1.0}  # one GPU per actor
    monkeypatch.setenv("RAY_ADDRESS", "ray://head:10001")
    assert isinstance(_mapper(1, "cpu"), RayShardMapper)  # a cluster: its actors, even for one worker


def test_the_device_resolves_here_and_a_missing_gpu_is_one_line():
    assert _device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert _device("cpu") == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            _device("cuda")


def test_a_bad_worker_count_is_refused():
    with pytest.raises(ValueError, match="num_workers"):
        RayShardMapper(0)

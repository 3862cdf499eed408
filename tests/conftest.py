"""Shared fixtures: the path to ../shared/data (tests that need it skip with a reason when absent)."""

import sys
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """Path of ../shared/data; skips the test when the folder is not beside the checkout."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _few_threads():
    import torch

    torch.set_num_threads(2)
    yield


@pytest.fixture(autouse=True, scope="session")
def _volume_cache_in_tmp(tmp_path_factory):
    """Keep orirec's density cache (orirec.structures.cache) out of the user's home during tests."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ORIREC_CACHE", str(tmp_path_factory.mktemp("orirec-cache")))
        yield


@pytest.fixture(autouse=True)
def _ray_shut_down_after_each_test():
    """A Ray started in-process by one test (ray.init persists) must not be reused by the next: its CPUs may still
    be held by another test's placement groups, and actors that need them would wait forever."""
    yield
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()

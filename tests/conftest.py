"""Shared fixtures and markers.

- ``shared_data``: the path to ../shared/data (tests that need it skip with a reason when absent).
- ``tiny_store``: one small simulated store for the whole session, for tests that only read a store.
- ``cli``: runs the ``orirec`` command line in-process and fails the test with the command's output when the exit
  code is not the expected one.
- markers (pyproject.toml): ``slow`` (not in the default run), ``ray`` (starts Ray: deselect with ``-m 'not ray'``),
  ``gpu`` (skipped with "needs a CUDA GPU" on a machine without one).
"""

import sys
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

#: The smallest store recipe the tests use: 30 images of pseudo:1, 24 px at 3 Å/px, shards of 16 (two shards).
TINY_STORE = {"inputs": ["pseudo:1"], "n_per_structure": 30, "box_px": 24, "pixel_size_A": 3.0, "shard_size": 16}


def pytest_collection_modifyitems(config, items):
    """Tests marked ``gpu`` are skipped when torch sees no CUDA GPU."""
    gpu_tests = [item for item in items if item.get_closest_marker("gpu") is not None]
    if not gpu_tests:
        return
    import torch

    if not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs a CUDA GPU")
        for item in gpu_tests:
            item.add_marker(skip)


@pytest.fixture
def shared_data() -> Path:
    """Path of ../shared/data; skips the test when the folder is not beside the checkout."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_store(tmp_path_factory) -> Path:
    """A simulated store of ``TINY_STORE`` (30 images of pseudo:1, 24 px, 3 Å/px), built once per session.

    Shared by every test that asks for it: read it, never write into it (copy it first, or build your own).
    """
    from orirec.config import SimulateConfig
    from orirec.simulate.to_store import simulate_to_store

    path = tmp_path_factory.mktemp("tiny_store") / "s.zarr"
    simulate_to_store(SimulateConfig(**TINY_STORE), path)
    return path


class Cli:
    """``cli(*args)`` runs ``orirec ARGS`` in-process (each argument ``str()``-ed) and returns click's ``Result``.

    The test fails, showing the command and its output, unless the exit code is ``code`` (default 0; ``None``
    accepts any). Exceptions propagate (``catch_exceptions=False``), so a crash shows its own traceback; other
    keywords (``env``, ``input``) go to ``CliRunner.invoke``.
    """

    def __init__(self) -> None:
        from typer.testing import CliRunner

        from orirec.cli.app import app

        self.runner, self.app = CliRunner(), app

    def __call__(self, *args, code: int | None = 0, catch_exceptions: bool = False, **kw):
        argv = [str(a) for a in args]
        res = self.runner.invoke(self.app, argv, catch_exceptions=catch_exceptions, **kw)
        if code is not None and res.exit_code != code:
            error = res.exception if not isinstance(res.exception, SystemExit) else None
            shown = f"\nexception: {error!r}" if error is not None else ""
            pytest.fail(f"orirec {' '.join(argv)}\nexit code {res.exit_code} (expected {code}):\n{res.output}{shown}")
        return res


@pytest.fixture(scope="session")
def cli() -> Cli:
    """The ``orirec`` command line, in-process (see ``Cli``); session-scoped, so module fixtures can use it too."""
    return Cli()


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

"""Safety of the store writers (issue 20 §2): ``--overwrite`` deletes only orirec stores, never the inputs; no store
of blank images is marked complete; one run per store (a lock, stale locks taken over); bad values are refused
before a store exists; sizes are checked up front; fingerprints follow file contents; silent accepts are errors."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest
import torch
import zarr

from orirec.config import SimulateConfig
from orirec.pipeline.particles import export_particles, import_particles
from orirec.simulate.to_store import simulate_to_store
from orirec.store import create_store, open_store

SIM = ["simulate", "pseudo:0", "--n-per-structure", "4", "--box", "24", "--pixel-size", "4", "--shard-size", "4"]
SIM += ["--no-progress"]


def _cfg(**kw) -> SimulateConfig:
    base = {"inputs": ["pseudo:0"], "n_per_structure": 4, "box_px": 24, "pixel_size_A": 4.0, "shard_size": 4}
    return SimulateConfig(**{**base, **kw})


def _error_line(output: str) -> str:
    """The CLI's error: exactly one line starting with 'error:'."""
    lines = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, output
    return lines[0]


def _pdb(path: Path, seed: int, nan_atom: int | None = None) -> Path:
    """A small PDB file of the pseudo-protein's atoms as carbons (atom ``nan_atom`` with NaN coordinates)."""
    from orirec.structures import pseudo_protein

    xyz = pseudo_protein(seed, n_atoms=200, radius_A=12.0).coords_A
    lines = []
    for k, (x, y, z) in enumerate(xyz):
        coords = f"{'nan':>8}" * 3 if k == nan_atom else f"{x:8.3f}{y:8.3f}{z:8.3f}"
        lines.append(f"ATOM  {k + 1:5d}  CA  ALA A{k + 1:4d}    {coords}  1.00  0.00           C")
    path.write_text("\n".join(lines) + "\nEND\n")
    return path


def _lock_of(store: Path) -> Path:
    p = store.resolve()
    return p.with_name(p.name + ".lock")


def _write_lock(store: Path, pid: int, host: str | None = None) -> Path:
    lock = _lock_of(store)
    info = {"pid": pid, "host": host or socket.gethostname(), "command": "orirec simulate ... (test)"}
    lock.write_text(json.dumps({**info, "started": "2026-01-01T00:00:00+00:00"}))
    return lock


def _dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(proc.stdout)


@pytest.fixture(scope="module")
def particles(tmp_path_factory) -> Path:
    """A folder p/ holding ok.star and its stack ok.mrcs (8 images, 24 px)."""
    root = tmp_path_factory.mktemp("particles")
    simulate_to_store(_cfg(n_per_structure=8, sigma2=1.0, shard_size=8), root / "s.zarr")
    export_particles(root / "s.zarr", root / "p" / "ok.star", maps=False)
    return root / "p"


# 1. --overwrite deletes only an orirec store (or an empty folder), never another folder nor the inputs


def test_overwrite_never_deletes_a_folder_that_is_not_a_store(tmp_path, cli):
    thesis = tmp_path / "thesis"
    thesis.mkdir()
    (thesis / "chapter1.tex").write_text("years of work")
    res = cli(*SIM, "--out", thesis, "--overwrite", code=2)
    line = _error_line(res.output)
    assert str(thesis) in line and "not an orirec store" in line
    assert (thesis / "chapter1.tex").read_text() == "years of work"
    with pytest.raises(ValueError, match="not an orirec store"):  # the library call too
        create_store(thesis, 4, 16, 1.0, overwrite=True)
    other = tmp_path / "other.zarr"  # a Zarr group that is not an orirec store
    zarr.open_group(str(other), mode="w").create_array("mine", shape=(3,), dtype="float32")
    with pytest.raises(ValueError, match="not an orirec store"):
        simulate_to_store(_cfg(), other, overwrite=True)
    assert "mine" in zarr.open_group(str(other), mode="r")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.zarr", "thesis"]  # no lock or temporary left


def test_import_overwrite_never_deletes_its_own_inputs(particles, tmp_path, cli):
    p = tmp_path / "p"
    shutil.copytree(particles, p)
    before = sorted(x.name for x in p.iterdir())
    res = cli("import", p / "ok.star", "--out", p, "--overwrite", "--no-progress", code=2)
    assert str(p) in _error_line(res.output)
    assert sorted(x.name for x in p.iterdir()) == before
    # an orirec store that holds the inputs (copied into it) is not replaced either
    store = tmp_path / "s.zarr"
    import_particles(p / "ok.star", store)
    for name in before:
        shutil.copy(p / name, store / name)
    with pytest.raises(ValueError, match="holds the command's input"):
        import_particles(store / "ok.star", store, overwrite=True)
    assert (store / "ok.star").is_file() and open_store(store).n_images == 8


def test_overwrite_replaces_a_store_and_an_empty_folder_is_used(tmp_path):
    out = tmp_path / "s.zarr"
    simulate_to_store(_cfg(), out)
    assert simulate_to_store(_cfg(seed=1), out, overwrite=True).shards_written == 1
    assert open_store(out).attrs["seed"] == 1
    empty = tmp_path / "empty"
    empty.mkdir()
    assert simulate_to_store(_cfg(), empty).shards_written == 1  # nothing there to lose: no --overwrite needed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "s.zarr"]


# 2. no store of blank images marked complete


def test_nan_atom_coordinates_are_refused_before_a_store_exists(tmp_path, cli):
    pdb = _pdb(tmp_path / "nan.pdb", 1, nan_atom=3)
    out = tmp_path / "s.zarr"
    res = cli("simulate", pdb, *SIM[2:], "--out", out, code=2)
    line = _error_line(res.output)
    assert "nan.pdb" in line and "NaN" in line
    assert not out.exists() and not _lock_of(out).exists()


def test_write_shard_refuses_empty_images(tmp_path):
    w = create_store(tmp_path / "s.zarr", 8, 16, 1.0, shard_size=8)
    images = np.random.default_rng(0).normal(size=(8, 16, 16))
    images[5] = 0.0
    with pytest.raises(ValueError, match=r"s\.zarr: shard 0: 1 image\(s\) are empty, all zero \(first at row 5\)"):
        w.write_shard(0, images=images)
    images[5, 3, 3] = np.inf
    with pytest.raises(ValueError, match=r"NaN or inf \(first at row 5\)"):
        w.write_shard(0, images=images)
    assert w.missing_shards() == [0]


# 4. bad values refused before the store exists (and 7. silent accepts)


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--pixel-size", "inf"], "pixel_size_A"),
        (["--sigma2", "inf"], "sigma2"),
        (["--sigma2", "nan"], "sigma2"),
        (["--seed", "-1"], "seed"),
        (["--ctf", "--set", "defocus_range_A=[25000,10000]"], "defocus_range_A"),
        (["--num-workers", "0"], "--num-workers"),
    ],
)
def test_bad_values_are_refused_before_a_store_exists(tmp_path, args, named, cli):
    out = tmp_path / "s.zarr"
    res = cli(*SIM, "--out", out, *args, code=2)
    assert named in " ".join(res.output.split())
    assert not out.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
def test_cuda_device_without_a_gpu_is_refused_up_front(tmp_path, cli):
    out = tmp_path / "s.zarr"
    res = cli(*SIM, "--out", out, "--device", "cuda", code=2)
    assert "no CUDA GPU" in _error_line(res.output)
    assert not out.exists()


def test_oracle_distance_noise_must_be_finite(cli):
    res = cli("recover", "--oracle", "--n", "20", "--distance-noise", "nan", "--no-progress", code=2)
    assert "--distance-noise" in _error_line(res.output)


def test_an_interrupted_creation_does_not_block_the_rerun(tmp_path):
    out = tmp_path / "s.zarr"
    # what a kill -9 during store creation left behind (before this fix): the group and an array, no attributes
    zarr.open_group(str(out), mode="w").create_array("images", shape=(4, 24, 24), dtype="float32")
    with pytest.warns(UserWarning, match="interrupted store creation"):
        res = simulate_to_store(_cfg(), out)
    assert res.shards_written == 1 and open_store(out).attrs["complete"]


def test_an_incomplete_store_of_another_config_says_it_is_incomplete(tmp_path):
    out = tmp_path / "s.zarr"
    create_store(out, 4, 24, 4.0, shard_size=4, attrs={"fingerprint": "another run"})
    with pytest.raises(ValueError, match=r"s\.zarr: an incomplete store .*resume it, or use --overwrite"):
        simulate_to_store(_cfg(), out)
    assert simulate_to_store(_cfg(), out, overwrite=True).shards_written == 1


def test_a_failed_creation_leaves_nothing_behind(tmp_path, monkeypatch):
    real = zarr.Group.create_array
    calls = []

    def fail_on_the_third(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise OSError("disk full (test)")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(zarr.Group, "create_array", fail_on_the_third)
    out = tmp_path / "s.zarr"
    with pytest.raises(OSError, match="disk full"):
        create_store(out, 8, 16, 1.0, shard_size=8)
    assert list(tmp_path.iterdir()) == []


# 3. one run per store


def test_a_second_run_into_a_store_being_written_is_refused(tmp_path, cli):
    out = tmp_path / "s.zarr"
    simulate_to_store(_cfg(), out)
    lock = _write_lock(out, os.getppid())  # a live process of this host writes the store
    with pytest.raises(FileExistsError, match=rf"another run is writing this store \(pid {os.getppid()} on"):
        simulate_to_store(_cfg(seed=1), out, overwrite=True)
    assert open_store(out).attrs["seed"] == 0  # untouched
    res = cli(*SIM, "--out", out, "--overwrite", code=2)
    assert "another run is writing" in _error_line(res.output)
    other_host = _write_lock(tmp_path / "i.zarr", _dead_pid(), host="elsewhere.invalid")  # cannot be checked
    with pytest.raises(FileExistsError, match="elsewhere.invalid"):
        import_particles(tmp_path / "missing.star", tmp_path / "i.zarr")
    lock.unlink()
    other_host.unlink()
    simulate_to_store(_cfg(seed=1), out, overwrite=True)
    assert open_store(out).attrs["seed"] == 1 and not lock.exists()


def test_a_lock_left_by_a_dead_process_is_taken_over_with_a_warning(tmp_path):
    out = tmp_path / "s.zarr"
    lock = _write_lock(out, _dead_pid())
    with pytest.warns(UserWarning, match=r"stale lock \(process \d+ is not running"):
        simulate_to_store(_cfg(), out)
    assert open_store(out).attrs["complete"] and not lock.exists()


def test_a_killed_run_holding_the_lock_refuses_then_frees_the_store(tmp_path):
    out = tmp_path / "s.zarr"
    code = (
        "import time\nfrom orirec.store.lock import store_lock\n"
        f"with store_lock({str(out)!r}, 'orirec simulate (holder)'):\n"
        "    print('held', flush=True)\n    time.sleep(60)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(FileExistsError, match=rf"pid {holder.pid} .*orirec simulate \(holder\)"):
            simulate_to_store(_cfg(), out)
        assert not out.exists()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with pytest.warns(UserWarning, match="stale lock"):
        simulate_to_store(_cfg(), out)
    assert not _lock_of(out).exists()


# 5. sizes checked up front


def test_a_run_too_large_is_refused_before_anything_is_written(tmp_path):
    out = tmp_path / "s.zarr"
    with pytest.raises(ValueError, match=r"s\.zarr: the run needs about .* of memory"):
        simulate_to_store(_cfg(n_per_structure=10**12), out)
    assert list(tmp_path.iterdir()) == []


def test_a_store_larger_than_the_free_disk_is_refused(tmp_path, monkeypatch):
    done = tmp_path / "done.zarr"
    simulate_to_store(_cfg(), done)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 1000, 1000))
    out = tmp_path / "s.zarr"
    with pytest.raises(ValueError, match=r"s\.zarr: the store needs about .* on disk .* but only 1 KB is free"):
        simulate_to_store(_cfg(), out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["done.zarr"]
    assert simulate_to_store(_cfg(), done).shards_skipped == 1  # an existing store needs no more room to resume


# 6. fingerprints follow the files' contents


def test_a_structure_changed_in_place_is_not_resumed_as_the_old_one(tmp_path):
    pdb = _pdb(tmp_path / "a.pdb", 1)
    out = tmp_path / "s.zarr"
    simulate_to_store(_cfg(inputs=[str(pdb)]), out)
    _pdb(pdb, 2)  # same path, other atoms
    with pytest.raises(ValueError, match="different simulation config"):
        simulate_to_store(_cfg(inputs=[str(pdb)]), out)
    _pdb(pdb, 1)  # the same bytes again (a new modification time): resumes
    assert simulate_to_store(_cfg(inputs=[str(pdb)]), out).shards_written == 0


def test_a_store_of_the_older_fingerprint_resumes_while_its_files_are_unchanged(tmp_path):
    pdb = _pdb(tmp_path / "a.pdb", 1)
    out = tmp_path / "s.zarr"
    cfg = _cfg(inputs=[str(pdb)], n_per_structure=8)
    simulate_to_store(cfg, out)

    def interrupt():
        g = zarr.open_group(str(out), mode="r+")
        g["shard_complete"][1] = 0
        g.attrs["complete"] = False
        return g

    g = interrupt()
    doc = json.loads(g.attrs["fingerprint"])
    del doc["contents"]
    g.attrs["fingerprint"] = json.dumps(doc, sort_keys=True)  # as written before fingerprints held the contents
    assert simulate_to_store(cfg, out).shards_written == 1  # the recorded SHA-256 of a.pdb still matches
    interrupt()
    _pdb(pdb, 2)
    with pytest.raises(ValueError, match="incomplete store .*with a different simulation config"):
        simulate_to_store(cfg, out)

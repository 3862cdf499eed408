"""One-line errors on what the file system refuses (read-only or full disk, a file for a folder), user text printed
as is (no rich markup or emoji), a model of another box, a resumed run of another store or settings, a binary
config file."""

import os
import shutil
from pathlib import Path

import pytest

TINY = ["--preset", "tiny", "--epochs", 1, "--batch-size", 32, "--pairs-per-epoch", 256, "--no-progress"]


def error_line(res) -> str:
    assert res.exit_code == 2, res.output
    err = res.stderr if hasattr(res, "stderr") else res.output
    line = " ".join(err.split())
    assert line.startswith("error:") and len(err.strip().splitlines()) == 1, err
    return line


def _store(path: Path, box: int, n: int) -> Path:
    from orirec.config import SimulateConfig
    from orirec.simulate.to_store import simulate_to_store

    simulate_to_store(SimulateConfig(inputs=["pseudo:1"], n_per_structure=n, box_px=box, pixel_size_A=3.0), path)
    return path


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("stores")
    return {"24": _store(root / "s24.zarr", 24, 64), "32": _store(root / "s32.zarr", 32, 16)}


@pytest.fixture(scope="module")
def model24(stores, tmp_path_factory):
    from orirec.train import train_loop_per_worker

    out = tmp_path_factory.mktemp("model")
    cfg = {"store": str(stores["24"]), "out_dir": str(out), "model": {"preset": "tiny"}, "epochs": 1,
           "batch_size": 32, "pairs_per_epoch": 64, "val_pairs": 32, "val_fraction": 0.2}  # fmt: skip
    return Path(train_loop_per_worker(cfg)["checkpoint"])


@pytest.mark.parametrize("source", ["x[/y].pdb", "[bold]x.pdb", "pseudo:abc"])
def test_user_text_is_printed_as_is(tmp_path, source, cli):
    """Error text was rich markup: '[/y]' crashed the printer, '[bold]' vanished, ':abc:' became an emoji."""
    res = cli("simulate", source, "--n-per-structure", 8, "--out", tmp_path / "o.zarr", "--no-progress", code=2)
    line = error_line(res)
    assert source in line and "\N{INPUT SYMBOL FOR LATIN LETTERS}" not in line


def test_out_that_is_a_file(stores, tmp_path, cli):
    f = tmp_path / "afile"
    f.write_text("")
    line = error_line(cli("train", stores["24"], "--out", f, "--no-track", *TINY, code=2))
    assert line == f"error: {f}: a file where a folder is expected"
    line = error_line(cli("train", stores["24"], "--out", f / "sub", "--no-track", *TINY, code=2))
    assert line.startswith(f"error: {f}: a file where a folder is expected")


def _read_only_folder(tmp_path: Path) -> Path:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    for candidate in (ro / "out", Path("/sys/orirec-test")):  # root writes anyway: then sysfs, read-only
        try:
            candidate.mkdir()
        except OSError:
            return candidate
        candidate.rmdir()
    pytest.skip("no read-only folder for this user")


def test_read_only_out(stores, tmp_path, cli):
    out = _read_only_folder(tmp_path)
    line = error_line(cli("train", stores["24"], "--out", out, "--no-track", *TINY, code=2))
    assert line in (f"error: {out}: permission denied", f"error: {out}: operation not permitted"), line
    assert "Errno" not in line


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_full_disk_names_the_checkpoint(stores, tmp_path, cli):
    """torch.save on a full disk said only 'unexpected pos 32448'."""
    ckpt = tmp_path / "t" / "checkpoints"
    ckpt.mkdir(parents=True)
    (ckpt / f".last.pt.tmp{os.getpid()}").symlink_to("/dev/full")  # the checkpoint's temporary file: a full disk
    line = error_line(cli("train", stores["24"], "--out", tmp_path / "t", "--no-track", *TINY, code=2))
    assert line == f"error: {ckpt / 'last.pt'}: no space left on device"


def test_model_of_another_box(stores, model24, tmp_path, cli):
    args = ("--out", tmp_path / "r", "--no-track", "--no-progress")
    res = cli("recover", stores["32"], "--model", model24, *args, code=2)
    assert error_line(res) == f"error: model {model24} expects 24 px images, store {stores['32']} holds 32 px"


def test_resume_with_another_store_or_settings_is_refused(stores, tmp_path, cli):
    out = tmp_path / "t"
    cli("train", stores["24"], "--out", out, "--no-track", *TINY)
    line = error_line(cli("train", stores["24"], "--out", out, "--no-track", "--resume", *TINY, "--lr", 0.01, code=2))
    assert "lr 0.001 (now 0.01)" in line and str(out / "checkpoints" / "last.pt") in line
    other = tmp_path / "other.zarr"
    shutil.copytree(stores["24"], other)
    line = error_line(cli("train", other, "--out", out, "--no-track", "--resume", *TINY, "--epochs", 2, code=2))
    assert f"store {stores['24']} (now {other})" in line
    cli("train", stores["24"], "--out", out, "--no-track", "--resume", *TINY[:2], "--epochs", 2, *TINY[4:])  # resumed


def test_binary_config_yaml_is_named(tmp_path, cli):
    cfg = tmp_path / "config.yaml"
    cfg.write_bytes(bytes(range(128, 256)) * 4)
    line = error_line(cli("train", tmp_path / "s.zarr", "--config", cfg, "--out", tmp_path / "t", "--no-track", code=2))
    assert str(cfg) in line

"""The run report: every plot is written and actually loads in a real headless browser (Debian's chromium)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from orirec.config import SimulateConfig
from orirec.evaluate.report import write_report
from orirec.pipeline.stages import stage_simulate
from orirec.store import open_store, reference_volume
from orirec.store.orientations import write_orientations
from orirec.structures.maps import write_map

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PLOTS = {"loss curves", "orientation errors", "viewing directions", "d_p vs d_q", "FSC", "map slices"}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A run folder with every stage output the report reads (a tiny simulation; the rest synthetic)."""
    root = tmp_path_factory.mktemp("report")
    cfg = SimulateConfig(inputs=["pseudo:0"], n_per_structure=64, box_px=20, pixel_size_A=4.0, shard_size=64)
    stage_simulate(cfg, root / "projections.zarr")
    s = open_store(root / "projections.zarr")
    rng = np.random.default_rng(0)
    q = s.quaternions + 0.05 * rng.standard_normal(s.quaternions.shape)
    (root / "recover").mkdir()
    write_orientations(
        root / "recover" / "orientations.csv", np.arange(s.n_images), q / np.linalg.norm(q, axis=1)[:, None]
    )
    i, j = np.triu_indices(s.n_images, 1)
    np.savez_compressed(
        root / "recover" / "graph.npz", indices=np.arange(s.n_images), i=i, j=j, d_p=rng.uniform(0, 3, len(i))
    )
    (root / "train").mkdir()
    hist = [
        {"epoch": e + 1, "train_loss": 1.0 / (e + 1), "val_loss": 1.1 / (e + 1), "val_mae": 0.5 / (e + 1)}
        for e in range(4)
    ]
    (root / "train" / "train_result.json").write_text(json.dumps({"history": hist, "best_val_mae": 0.125}))
    (root / "evaluate").mkdir()
    f = np.linspace(0, 0.125, 10)
    curves = {"half-maps": {"freq_per_A": f.tolist(), "curve": np.exp(-30 * f).tolist()}}
    (root / "evaluate" / "fsc_curves.json").write_text(json.dumps(curves))
    (root / "evaluate" / "metrics.json").write_text(json.dumps({"err_rot_median": 5.5, "acc20": 0.9}))
    (root / "reconstruct").mkdir()
    write_map(root / "reconstruct" / "map.mrc", reference_volume(s.group, 0), s.pixel_size_A)
    return root


def _report(run_dir: Path, out: Path) -> dict:
    return write_report(
        out,
        store=run_dir / "projections.zarr",
        train_dir=run_dir / "train",
        recover_dir=run_dir / "recover",
        map_path=run_dir / "reconstruct" / "map.mrc",
        evaluate_dir=run_dir / "evaluate",
        title="test run",
    )


def _dump_dom(page: Path, profile_dir: Path) -> str:
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"{CHROMIUM} not installed (apt-get install -y chromium; .ci/run installs it)")
    cmd = [CHROMIUM, *FLAGS, f"--user-data-dir={profile_dir}", "--dump-dom", page.resolve().as_uri()]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


def _images(dom: str) -> dict[str, dict[str, str]]:
    out = {}
    for tag in re.findall(r"<img\b[^>]*>", dom):
        attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', tag))
        out[attrs["alt"]] = attrs
    return out


def test_report_lists_every_plot_and_the_key_numbers(run_dir, tmp_path):
    res = _report(run_dir, tmp_path / "report")
    assert res["missing"] == [] and len(res["plots"]) == len(PLOTS)
    html = Path(res["html"]).read_text()
    assert "err_rot_median" in html and "5.5" in html and "train_best_val_mae" in html
    # without the training and recovery outputs, those plots are listed as missing, not silently dropped
    bare = tmp_path / "bare"
    shutil.copytree(run_dir, bare, ignore=shutil.ignore_patterns("train", "recover"))
    res = _report(bare, tmp_path / "bare-report")
    assert set(res["missing"]) == {"loss curves", "orientation errors", "viewing directions", "d_p vs d_q"}
    assert "Missing" in Path(res["html"]).read_text()


def test_plots_load_in_headless_chromium(run_dir, tmp_path):
    res = _report(run_dir, tmp_path / "report")
    imgs = _images(_dump_dom(Path(res["html"]), tmp_path / "chromium-profile"))
    assert set(imgs) == PLOTS
    for name, attrs in imgs.items():
        assert attrs.get("data-loaded") == "yes", name
        assert int(attrs["data-natural-width"]) >= 300, name
    # the check can fail: a plot file that is gone is reported as not loaded
    (tmp_path / "report" / "fsc.png").unlink()
    imgs = _images(_dump_dom(Path(res["html"]), tmp_path / "chromium-profile-2"))
    assert imgs["FSC"]["data-loaded"] == "no" and imgs["loss curves"]["data-loaded"] == "yes"

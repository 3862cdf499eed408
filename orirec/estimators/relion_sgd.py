"""RELION 3.1's initial model as an estimator (``relion-sgd``): the field's own ab initio on orirec's images.

Two ``relion_refine`` runs (Debian's ``relion`` package, CPU) in a work folder:

1. ``--denovo_3dref --sgd``: a map by stochastic gradient descent from the images, with no angles or origins;
2. one global assignment pass against that map (``--ref MAP --K 1 --iter 1 --firstiter_cc``), which gives every
   particle a pose (the SGD's own data file holds only its last minibatches').

The angles of ``run_it001_data.star`` are read back in orirec's convention (:mod:`orirec.store.relion`, checked
against the true map in the tests). The wall time of each run and the threads (``--j``) go to ``summary``.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from orirec.config.estimators import RelionConfig
from orirec.estimators.ab_initio.estimator import RADIUS_MARGIN, shift_search_px
from orirec.estimators.ab_initio.search import estimate_particle_radius_A
from orirec.estimators.base import Estimator, EstimatorData, register
from orirec.geometry import euler_to_quat
from orirec.store.export import write_particle_stack
from orirec.store.relion import ANGLE_LABELS, read_star_blocks

__all__ = ["RelionSGD", "read_relion_orientations", "relion_assign", "relion_available"]

RELION_REFINE = "relion_refine"
WORK = "relion"  # the work folder's name inside the comparison's output folder


def relion_available() -> bool:
    """Whether RELION's ``relion_refine`` is on the PATH (Debian: ``apt-get install relion``)."""
    return shutil.which(RELION_REFINE) is not None


def write_particles(folder: Path, data: EstimatorData) -> Path:
    """``folder/particles.{mrcs,star}``: the images with their CTF (if known), without angles or origins."""
    return write_particle_stack(folder, data.images, data.pixel_size_A, data.ctf_params, placeholder_optics=True)


def _run(args: list[str], folder: Path, log: str) -> float:
    """Run ``relion_refine args`` in ``folder`` (its log to ``folder/log``); the wall time (s)."""
    t0 = time.perf_counter()
    with open(folder / log, "w") as fh:
        done = subprocess.run([RELION_REFINE, *args], cwd=folder, stdout=fh, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0:
        tail = (folder / log).read_text().strip().splitlines()[-3:]
        raise RuntimeError(f"{RELION_REFINE} failed ({done.returncode}) in {folder}: {' / '.join(tail)}")
    return time.perf_counter() - t0


def _common(cfg: RelionConfig, diameter_A: float, offset_px: float, ctf: bool) -> list[str]:
    args = ["--i", "particles.star", "--K", "1", "--sym", "C1", "--particle_diameter", f"{diameter_A:.1f}",
            "--zero_mask", "--pad", "1", "--j", str(cfg.threads), "--dont_combine_weights_via_disc", "--pool", "10",
            "--random_seed", str(cfg.seed), "--offset_range", f"{max(offset_px, 1.0):.1f}",
            "--offset_step", f"{cfg.offset_step_px:g}"]  # fmt: skip
    return [*args, "--ctf"] if ctf else args


def relion_sgd_map(folder: Path, cfg: RelionConfig, diameter_A: float, offset_px: float, ctf: bool) -> Path:
    """Run RELION's SGD initial model on ``folder/particles.star``; the path of its map."""
    (folder / "sgd").mkdir(exist_ok=True)
    args = ["--o", "sgd/run", "--denovo_3dref", "--sgd", "--healpix_order", str(cfg.healpix_order),
            "--sgd_ini_iter", str(cfg.sgd_ini_iter), "--sgd_inbetween_iter", str(cfg.sgd_inbetween_iter),
            "--sgd_fin_iter", str(cfg.sgd_fin_iter), "--sgd_ini_subset", str(cfg.sgd_ini_subset),
            "--sgd_fin_subset", str(cfg.sgd_fin_subset), "--sgd_ini_resol", f"{cfg.sgd_ini_resol_A:g}",
            "--sgd_fin_resol", f"{cfg.sgd_fin_resol_A:g}"]  # fmt: skip
    _run([*args, *_common(cfg, diameter_A, offset_px, ctf)], folder, "sgd.log")
    last = cfg.sgd_ini_iter + cfg.sgd_inbetween_iter + cfg.sgd_fin_iter
    model = folder / "sgd" / f"run_it{last:03d}_class001.mrc"
    if not model.is_file():
        raise RuntimeError(f"{RELION_REFINE}: no map {model} after the SGD run (see {folder / 'sgd.log'})")
    return model


def relion_assign(folder: Path, ref: Path, cfg: RelionConfig, diameter_A: float, offset_px: float, ctf: bool) -> Path:
    """One global assignment pass of ``folder/particles.star`` against the map ``ref``; its data STAR file."""
    (folder / "assign").mkdir(exist_ok=True)
    args = ["--o", "assign/run", "--ref", str(Path(ref).resolve()), "--ini_high", f"{cfg.sgd_fin_resol_A:g}",
            "--iter", "1", "--firstiter_cc", "--healpix_order", str(cfg.assign_healpix_order)]  # fmt: skip
    _run([*args, *_common(cfg, diameter_A, offset_px, ctf)], folder, "assign.log")
    return folder / "assign" / "run_it001_data.star"


def read_relion_orientations(data_star: Path, n: int) -> np.ndarray:
    """Quaternions (n, 4) of particles ``1..n`` of the stack from RELION's ``rlnAngleRot/Tilt/Psi`` (by
    ``rlnImageName``, whatever the row order)."""
    particles, _ = read_star_blocks(data_star)
    index = particles["rlnImageName"].astype(str).str.split("@").str[0].astype(int).to_numpy() - 1
    if sorted(index.tolist()) != list(range(n)):
        raise ValueError(f"{data_star}: expected particles 1..{n} once each, got {len(index)} rows")
    angles = np.deg2rad(particles[list(ANGLE_LABELS)].to_numpy(dtype=np.float64))
    q = np.empty((n, 4))
    q[index] = euler_to_quat(angles[:, 0], angles[:, 1], angles[:, 2])
    return q


class RelionSGD(Estimator):
    """Orientation estimator: RELION's SGD initial model, then one global assignment pass (see the module)."""

    gauge_note = "RELION map: global rotation + handedness (harmless), registered for err_rot"

    def __init__(self, config: RelionConfig) -> None:
        if not relion_available():
            raise ValueError(f"relion-sgd: {RELION_REFINE} not found; install RELION 3.1 (apt-get install relion)")
        super().__init__("relion-sgd")
        self.cfg = config
        self.folder: Path | None = None

    def resume_in(self, folder: Path) -> None:
        """Keep RELION's work folder (inputs, logs, maps, STAR files) in ``folder/relion``."""
        self.folder = Path(folder) / WORK

    def estimate(self, data: EstimatorData) -> np.ndarray:
        """Orientations (n, 4) of ``data.images`` from RELION (no ground truth is written)."""
        with tempfile.TemporaryDirectory(prefix="orirec-relion-") as tmp:
            folder = self.folder or Path(tmp)
            return self._estimate(data, folder)

    def _estimate(self, data: EstimatorData, folder: Path) -> np.ndarray:
        write_particles(folder, data)
        images, box = data.images, data.images.shape[-1]
        diameter_A = self.cfg.particle_diameter_A or 2 * RADIUS_MARGIN * estimate_particle_radius_A(
            np.asarray(images), data.pixel_size_A
        )
        offset_px = shift_search_px(self.cfg.max_shift_px, data.max_shift_px, box)
        ctf = data.ctf_params is not None
        t0 = time.perf_counter()
        model = relion_sgd_map(folder, self.cfg, diameter_A, offset_px, ctf)
        t1 = time.perf_counter()
        star = relion_assign(folder, model, self.cfg, diameter_A, offset_px, ctf)
        self.summary = {"time_sgd_s": t1 - t0, "time_assign_s": time.perf_counter() - t1,
                        "threads": self.cfg.threads, "particle_diameter_A": diameter_A}  # fmt: skip
        return read_relion_orientations(star, len(images))


@register("relion-sgd")
def _make(config: RelionConfig) -> RelionSGD:
    return RelionSGD(config)

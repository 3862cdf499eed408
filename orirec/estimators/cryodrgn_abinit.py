"""cryoDRGN's homogeneous ab initio as an estimator (``cryodrgn-abinit``): a peer's neural ab initio on orirec's images.

Install (cryoDRGN's pins may clash with orirec's, so it gets its own environment): ``make cryodrgn-env`` creates
``.venv-cryodrgn`` (CPU torch, ``cryodrgn``; about 3 minutes). The executable is looked up in this order: the
environment variable ``ORIREC_CRYODRGN`` (path to ``cryodrgn``), ``.venv-cryodrgn/bin/cryodrgn`` in the working
directory or the repository, then ``cryodrgn`` on the PATH. Without one, ``make_estimator`` raises a one-line
ValueError saying how to install it and ``orirec compare`` leaves the estimator out of its default list.
Run it with ``orirec compare STORE --estimators cryodrgn-abinit`` (settings: :class:`CryodrgnConfig`).

In a work folder (``resume_in``: ``OUT/cryodrgn``, else a temporary one):

1. ``particles.mrcs`` (the raw images, not phase-flipped) and ``particles.star`` (RELION 3.1 layout, with the
   CTF where known, :func:`orirec.store.export.write_particle_stack`);
2. where the images have a CTF, ``cryodrgn parse_ctf_star particles.star -o ctf.pkl --ps 0`` (cryoDRGN's own
   reader: an (n, 9) array D, Å/px, defocus U, V (Å), angle (°), kV, Cs (mm), amplitude contrast, phase shift
   (°), which is NaN without ``--ps`` when the STAR file has no ``rlnPhaseShift``; the store's B-factor has no
   place in it);
3. ``cryodrgn abinit_homo_old particles.mrcs -o abinit ...`` (cryoDRGN2's homogeneous ab initio, called
   ``abinit_homo`` before cryoDRGN 4.2 deprecated it in favour of cryoDRGN-AI's ``abinit``; the name is chosen
   from ``cryodrgn --help``). cryoDRGN-AI's ``abinit --zdim 0`` is not used: 4.3.1 crashes in it without a CTF.
4. ``abinit/pose.pkl``: a pickled ``(rot, trans)``, rot (n, 3, 3) and trans (n, 2) in fractions of the box
   (``abinit_homo_old.save_checkpoint``), read by :func:`read_cryodrgn_poses`.

Conventions (checked against cryoDRGN 4.3.1): cryoDRGN's ``rot`` is ``utils.R_from_relion`` of RELION's angles
(``cryodrgn parse_pose_star``), which is RELION's matrix A, particle → microscope: orirec's R itself (DESIGN §2),
neither transposed nor mirrored. On an orirec STAR file ``parse_pose_star`` gives orirec's matrices to 1e-7, and
``cryodrgn backproject_voxel`` with them reconstructs the true map from 200 lightly noisy projections (correlation
0.99, against 0.91 transposed); ``tests/estimators/test_cryodrgn_abinit.py`` keeps both checks. Contrast: orirec's
CTF has RELION's sign (CTF(0) = +A, particles white) and cryoDRGN's ``compute_ctf`` the micrograph's (CTF(0) = -A),
which is why cryoDRGN inverts the images by default; with a CTF they are left to that default, without one they are
passed with ``--uninvert-data`` so that the map comes out positive (a global sign of the decoder's map). Ab initio
fixes the orientations only up to a global rotation and handedness, which the evaluation registers.

Schedule (:class:`~orirec.config.estimators.CryodrgnConfig`, cryoDRGN's defaults in brackets): 21 epochs [30], a
pose search every 5 from the first [5], 4,000 images of random-pose pretraining [10,000], Adam at 1e-3 [1e-4],
HEALPix base order 1 [2] with 3 subdivisions [4] keeping 4 poses [8], Fourier radius 8 → half the box [12 → 32]
ramped over the run [25 epochs], 3×3 translations [7×7] over the dataset's shift range [±10 px], a 128-wide decoder
[256]. cryoDRGN's defaults are a GPU's for tens of thousands of images; on 2 shared cores one of their pose-search
epochs of 200 images at 32 px took 8 min, against 35 s at Fourier radius 12 to 1:50 at 16 with these. Measured on
200 projections of the pseudo-protein (32 px, 4 Å, noise σ 0.3 of the images' std): 5.4 min, err_rot median 15°
(acc@20 0.6) after registration, and 102° reading the matrices transposed; 8 epochs with a pose search every 2 at
cryoDRGN's learning rate stayed at random poses (err_rot ≈ 90°). Threads: ``threads`` (OMP_NUM_THREADS). The wall
times, threads and cryoDRGN's version go to ``summary``.
"""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from orirec.config.estimators import CryodrgnConfig
from orirec.estimators.ab_initio.estimator import shift_search_px
from orirec.estimators.base import Estimator, EstimatorData, register
from orirec.geometry import matrix_to_quat
from orirec.store.export import write_particle_stack

__all__ = [
    "CryodrgnAbinit",
    "abinit_args",
    "cryodrgn_available",
    "cryodrgn_executable",
    "missing_reason",
    "read_cryodrgn_poses",
    "write_particles",
]

ENV_VAR = "ORIREC_CRYODRGN"
LOCAL_VENV = Path(".venv-cryodrgn") / "bin" / "cryodrgn"
REPO = Path(__file__).resolve().parents[2]
WORK = "cryodrgn"  # the work folder's name inside the comparison's output folder
#: cryoDRGN2's homogeneous ab initio: its name from cryoDRGN 4.2 on, then before
COMMANDS = ("abinit_homo_old", "abinit_homo")
#: cryoDRGN's CTF pickle from the STAR file; orirec has no phase shift, which cryoDRGN 4.3.1 would read as NaN
PARSE_CTF = ("parse_ctf_star", "particles.star", "-o", "ctf.pkl", "--ps", "0")


def cryodrgn_executable() -> Path | None:
    """The ``cryodrgn`` to run: ``$ORIREC_CRYODRGN`` (when set, only it), ``.venv-cryodrgn/bin/cryodrgn`` in the
    working directory or the repository, else ``cryodrgn`` on the PATH; None when there is none."""
    given = os.environ.get(ENV_VAR)
    if given:
        path = Path(given).expanduser()
        return path if path.is_file() and os.access(path, os.X_OK) else None
    for path in (Path.cwd() / LOCAL_VENV, REPO / LOCAL_VENV):
        if path.is_file() and os.access(path, os.X_OK):
            return path
    found = shutil.which("cryodrgn")
    return Path(found) if found else None


def cryodrgn_available() -> bool:
    """Whether a ``cryodrgn`` executable is found (see :func:`cryodrgn_executable`)."""
    return cryodrgn_executable() is not None


def missing_reason() -> str:
    """One line: why cryodrgn-abinit cannot run here and how to install cryoDRGN."""
    where = f"${ENV_VAR}={os.environ[ENV_VAR]} is not an executable" if os.environ.get(ENV_VAR) else (
        f"not in ${ENV_VAR}, {LOCAL_VENV} or the PATH"
    )  # fmt: skip
    return f"cryodrgn-abinit: cryoDRGN not found ({where}); install it with `make cryodrgn-env`"


def _env(threads: int) -> dict[str, str]:
    """The environment of a cryoDRGN run: its own Python (none of orirec's paths) and ``threads`` threads."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(threads)
    return env


def _run(exe: Path, args: list[str], folder: Path, log: str, threads: int) -> float:
    """Run ``cryodrgn args`` in ``folder`` (its output to ``folder/log``); the wall time (s)."""
    t0 = time.perf_counter()
    with open(folder / log, "w") as fh:
        done = subprocess.run(
            [str(exe), *args], cwd=folder, stdout=fh, stderr=subprocess.STDOUT, env=_env(threads), check=False
        )
    if done.returncode != 0:
        tail = (folder / log).read_text().strip().splitlines()[-3:]
        raise RuntimeError(f"cryodrgn {args[0]} failed ({done.returncode}) in {folder}: {' / '.join(tail)}")
    return time.perf_counter() - t0


def _command(exe: Path) -> tuple[str, str]:
    """(cryoDRGN's version, the name of its homogeneous ab initio command), from ``cryodrgn --help/--version``."""
    helptext = subprocess.run([str(exe), "--help"], capture_output=True, text=True, env=_env(1), check=False).stdout
    version = subprocess.run([str(exe), "--version"], capture_output=True, text=True, env=_env(1), check=False)
    name = next((c for c in COMMANDS if c in helptext), None)
    if name is None:
        raise RuntimeError(f"{exe}: no homogeneous ab initio command ({' or '.join(COMMANDS)}) in its --help")
    return (version.stdout + version.stderr).strip().removeprefix("cryoDRGN ").strip(), name


def write_particles(folder: Path, data: EstimatorData) -> bool:
    """``folder/particles.{mrcs,star}``: the raw images, with their CTF (if known) in the STAR file and no angles.
    Returns whether the images have a CTF."""
    write_particle_stack(folder, data.images, data.pixel_size_A, data.ctf_params, placeholder_optics=False)
    return data.ctf_params is not None and bool(np.isfinite(np.asarray(data.ctf_params, np.float64)).all())


def abinit_args(cfg: CryodrgnConfig, box: int, shift_px: float, ctf: bool) -> list[str]:
    """The options of ``cryodrgn abinit_homo_old`` for a ``box``-px stack, ±``shift_px`` translations."""
    l_end = cfg.cryodrgn_l_end or box // 2
    l_start = min(cfg.cryodrgn_l_start, l_end)
    # --checkpoint: a map and poses after every pose search (and the final ones, always)
    args = ["-n", str(cfg.cryodrgn_epochs), "--pretrain", str(cfg.cryodrgn_pretrain),
            "--ps-freq", str(cfg.cryodrgn_ps_freq), "-b", str(cfg.cryodrgn_batch_size),
            "--l-start", str(l_start), "--l-end", str(l_end),
            "--l-ramp-epochs", str(max(cfg.cryodrgn_epochs - 1, 1)),
            "--base-healpy", str(cfg.cryodrgn_base_healpy), "--niter", str(cfg.cryodrgn_niter),
            "--nkeptposes", str(cfg.cryodrgn_nkeptposes), "--dim", str(cfg.cryodrgn_dim),
            "--lr", f"{cfg.cryodrgn_lr:g}", "--seed", str(cfg.seed), "--shuffle-seed", str(cfg.seed),
            "--checkpoint", str(cfg.cryodrgn_ps_freq)]  # fmt: skip
    # 4.3.1 has no --no-trans ("NotImplementedError"): centred images get one translation (0) and its refinements
    t_extent, t_ngrid = (shift_px, cfg.cryodrgn_t_ngrid) if shift_px >= 1 else (0.5, 1)
    args += ["--t-extent", f"{t_extent:g}", "--t-ngrid", str(t_ngrid)]
    return [*args, "--ctf", "ctf.pkl"] if ctf else [*args, "--uninvert-data"]


def read_cryodrgn_poses(pose_pkl: Path, n: int) -> np.ndarray:
    """Quaternions (n, 4) in orirec's convention from cryoDRGN's ``pose.pkl`` (``(rot, trans)`` or ``rot``):
    cryoDRGN's rotation matrices are orirec's R (see the module docstring)."""
    with open(pose_pkl, "rb") as fh:
        pose = pickle.load(fh)
    rot = np.asarray(pose[0] if isinstance(pose, tuple | list) else pose, dtype=np.float64)
    if rot.shape != (n, 3, 3):
        raise ValueError(f"{pose_pkl}: expected {n} rotation matrices (n, 3, 3), got shape {rot.shape}")
    return matrix_to_quat(rot)


class CryodrgnAbinit(Estimator):
    """Orientation estimator: cryoDRGN's homogeneous ab initio (cryoDRGN2; see the module)."""

    gauge_note = "cryoDRGN map: global rotation + handedness (harmless), registered for err_rot"

    def __init__(self, config: CryodrgnConfig) -> None:
        exe = cryodrgn_executable()
        if exe is None:
            raise ValueError(missing_reason())
        super().__init__("cryodrgn-abinit")
        self.exe, self.cfg = exe, config
        self.folder: Path | None = None

    def resume_in(self, folder: Path) -> None:
        """Keep cryoDRGN's work folder (inputs, logs, maps, poses) in ``folder/cryodrgn`` (not resumed)."""
        self.folder = Path(folder) / WORK

    def estimate(self, data: EstimatorData) -> np.ndarray:
        """Orientations (n, 4) of ``data.images`` from cryoDRGN (no ground truth is written)."""
        with tempfile.TemporaryDirectory(prefix="orirec-cryodrgn-") as tmp:
            return self._estimate(data, self.folder or Path(tmp))

    def _estimate(self, data: EstimatorData, folder: Path) -> np.ndarray:
        cfg, threads = self.cfg, self.cfg.threads
        ctf = write_particles(folder, data)
        version, command = _command(self.exe)
        time_ctf = 0.0
        if ctf:  # cryoDRGN's own CTF pickle from the STAR file
            time_ctf = _run(self.exe, list(PARSE_CTF), folder, "ctf.log", 1)
        box = data.images.shape[-1]
        shift_px = shift_search_px(cfg.max_shift_px, data.max_shift_px, box)
        out = folder / "abinit"
        if out.exists():
            shutil.rmtree(out)  # a rerun starts afresh (cryoDRGN would ask before overwriting)
        args = [command, "particles.mrcs", "-o", "abinit", *abinit_args(cfg, box, shift_px, ctf)]
        time_abinit = _run(self.exe, args, folder, "abinit.log", threads)
        self.summary = {"time_abinit_s": time_abinit, "time_ctf_s": time_ctf, "threads": threads,
                        "epochs": cfg.cryodrgn_epochs, "shift_search_px": shift_px, "ctf": ctf,
                        "cryodrgn_version": version, "command": command}  # fmt: skip
        return read_cryodrgn_poses(out / "pose.pkl", len(data.images))


@register("cryodrgn-abinit")
def _make(config: CryodrgnConfig) -> CryodrgnAbinit:
    return CryodrgnAbinit(config)

"""Classical common lines through ASPIRE (optional extra: ``pip install orirec[aspire]``).

The images go into an ``aspire.source.ArrayImageSource``; ``CLSyncVoting`` (default) or ``CLSync3N``
estimates one rotation per image. ASPIRE's rotation ``R_a`` has the image's x, y axes and viewing
direction as its columns in particle coordinates (microscope → particle), the inverse of orirec's
convention (DESIGN §2: particle → microscope), so orirec's ``R = R_aᵀ`` — checked on 40 clean projections
of an asymmetric pseudo-protein (``tests/estimators/test_estimators.py``, slow): err_rot median 3.6° with the transpose,
83° without (err_o4 3.5° either way, which is why err_o4 cannot check a convention).
The common-line search tries 1D shifts up to the dataset's ``max_shift_px`` (ASPIRE's default, 15 % of the
box, where it is unknown): for 150 centred 64-px images it took 4.4 s searching ±0 px against 80 s at ASPIRE's
±10 px default. The voting step is O(n³) in pure Python/NumPy and dominates beyond ~100 images: 9.4 s for
150 images, 135 s for 400, and for 500 a 29 s search then about 230 s of voting (2 cores, float32), so
1,650 images would take hours; keep n in the hundreds on a CPU (ASPIRE runs the search on a GPU through cupy,
not the voting).
Where the images carry a CTF (``EstimatorData.ctf_params``) they are phase-flipped (multiplied by sign(CTF))
first, as a practitioner would after CTF estimation: on 64-px test images at σ² 0 this doubles the pairs whose
correlation peaks on the true common line (``benchmarks/commonline_detectability.py``).
Common lines fix orientations only up to a global rotation and handedness, which the evaluation
registers away (and which reconstructs the same map, or its mirror). Importing ASPIRE writes a ``logs/``
folder and ``aspire.err.log`` into the working directory (ASPIRE's own logging config).
"""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np

from orirec.config.estimators import AspireConfig
from orirec.estimators.base import Estimator, EstimatorData, register
from orirec.geometry import matrix_to_quat

__all__ = ["AspireCommonLines", "aspire_available"]

METHODS = ("voting", "sync3n")
#: orirec R = ASPIRE's R transposed (see the module docstring)
TRANSPOSE = True


def aspire_available() -> bool:
    """Whether the optional ``aspire`` package is installed (found without importing it: importing ASPIRE
    creates a ``logs/`` folder in the working directory)."""
    return importlib.util.find_spec("aspire") is not None


class AspireCommonLines(Estimator):
    """Orientation estimator: ASPIRE common lines (``method`` "voting" = CLSyncVoting, "sync3n" = CLSync3N)."""

    gauge_note = "common lines: global rotation + handedness (harmless), registered for err_rot"

    def __init__(self, method: str = "voting", n_theta: int = 360, seed: int = 0) -> None:
        if method not in METHODS:
            raise ValueError(f"aspire-cl: unknown method {method!r}; choose one of {METHODS}")
        if not aspire_available():
            raise ValueError("aspire-cl: the optional package 'aspire' is not installed; pip install 'orirec[aspire]'")
        super().__init__("aspire-cl")
        self.method, self.n_theta, self.seed = method, int(n_theta), seed

    def estimate_matrices(
        self, images: np.ndarray, pixel_size_A: float = 1.0, max_shift_px: float | None = None
    ) -> np.ndarray:
        """ASPIRE's own rotation matrices (n, 3, 3) for images (n, L, L) of ``pixel_size_A`` Å per px whose
        particles are shifted by at most ``max_shift_px`` (px; None: ASPIRE's default range)."""
        from aspire.abinitio import CLSync3N, CLSyncVoting
        from aspire.source import ArrayImageSource

        images = np.asarray(images, dtype=np.float32)
        src = ArrayImageSource(images, pixel_size=float(pixel_size_A))
        cls = CLSyncVoting if self.method == "voting" else CLSync3N
        kwargs: dict[str, Any] = {"n_theta": self.n_theta}
        if max_shift_px is not None:
            kwargs["max_shift"] = float(max_shift_px) / images.shape[-1]  # ASPIRE: a fraction of the box
        if self.method == "sync3n":
            kwargs["seed"] = self.seed
        est = cls(src, **kwargs)
        rots = est.estimate_rotations()
        if rots is None:
            rots = est.rotations
        return np.asarray(rots, dtype=np.float64)

    def estimate(self, data: EstimatorData) -> np.ndarray:
        """Orientations (n, 4) in orirec's convention."""
        images = data.phase_flipped_images()
        r = self.estimate_matrices(images, data.pixel_size_A, data.max_shift_px)
        return matrix_to_quat(np.swapaxes(r, -1, -2) if TRANSPOSE else r)


@register("aspire-cl")
def _make(config: AspireConfig) -> AspireCommonLines:
    return AspireCommonLines(config.aspire_method, config.n_theta, seed=config.seed)

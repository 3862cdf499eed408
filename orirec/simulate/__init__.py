"""Layer 2 simulation: Fourier-slice projection, shifts, noise (DESIGN §2 conventions)."""

from orirec.simulate.formation import (
    add_noise,
    apply_shifts,
    inscribed_disk,
    sample_shifts,
    snr_disk,
    snr_frame,
)
from orirec.simulate.projector import FourierSliceProjector, project

__all__ = [
    "FourierSliceProjector",
    "add_noise",
    "apply_shifts",
    "inscribed_disk",
    "project",
    "sample_shifts",
    "snr_disk",
    "snr_frame",
]

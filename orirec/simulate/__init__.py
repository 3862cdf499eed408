"""Layer 2 simulation: projectors (Fourier-slice, NUFFT, ASTRA) and simulation into a store (DESIGN §2 conventions).

Image-batch operations (CTF, shifts, noise, filters) live in :mod:`orirec.imaging`.
"""

from orirec.simulate.projector import FourierSliceProjector, project

__all__ = ["FourierSliceProjector", "project"]

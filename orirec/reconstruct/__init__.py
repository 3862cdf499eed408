"""Reconstruction from images and orientations (direct Fourier inversion) and Fourier shell correlation."""

from .fourier import reconstruct, reconstruct_half_maps
from .fsc import fsc, fsc_report, fsc_resolution

__all__ = ["fsc", "fsc_report", "fsc_resolution", "reconstruct", "reconstruct_half_maps"]

"""orirec: recover the 3D orientations of single-particle cryo-EM images from learned distances."""

__version__ = "0.2.0"

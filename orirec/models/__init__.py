"""Siamese encoders for distance learning (layer 2): network, presets, checkpoints, embedding."""

from orirec.models.checkpoint import embed_images, load_checkpoint, load_model, save_checkpoint
from orirec.models.siamese import PRESETS, SiameseNet, build_model, distance, preset

__all__ = [
    "PRESETS",
    "SiameseNet",
    "build_model",
    "distance",
    "embed_images",
    "load_checkpoint",
    "load_model",
    "preset",
    "save_checkpoint",
]

"""Siamese encoders for distance learning (layer 2): families, presets, distances, checkpoints, embedding."""

from orirec.models.checkpoint import edge_distances, embed_images, load_checkpoint, load_model, save_checkpoint
from orirec.models.encoder import DISTANCES, EncoderBase, embedding_distance, embedding_distance_np
from orirec.models.pair import PairNet
from orirec.models.polar import PolarEncoder
from orirec.models.registry import FAMILIES, build_model, model_from_config
from orirec.models.resnet import ResNetEncoder
from orirec.models.siamese import ENCODER_PRESETS, SiameseNet, distance, encoder_preset

__all__ = [
    "DISTANCES",
    "FAMILIES",
    "ENCODER_PRESETS",
    "EncoderBase",
    "PairNet",
    "PolarEncoder",
    "ResNetEncoder",
    "SiameseNet",
    "build_model",
    "distance",
    "edge_distances",
    "embed_images",
    "embedding_distance",
    "embedding_distance_np",
    "encoder_preset",
    "load_checkpoint",
    "load_model",
    "model_from_config",
    "save_checkpoint",
]

# direct-regression heads, the 3D encoder and the cVAE (orirec compare)
from orirec.models.cvae import ConditionalVAE  # noqa: E402
from orirec.models.encoder3d import Encoder3D  # noqa: E402
from orirec.models.rotation_heads import RotationRegressor, gram_schmidt_6d  # noqa: E402

__all__ += ["ConditionalVAE", "Encoder3D", "RotationRegressor", "gram_schmidt_6d"]

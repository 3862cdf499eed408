"""The method itself: distances learned by a Siamese network (DESIGN §1.1), from a checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from orirec.config.estimators import SiameseConfig
from orirec.estimators.base import DistanceEstimator, EstimatorData, TrainingData, per_edge, register
from orirec.models import edge_distances, embed_images, load_model

__all__ = ["SiameseEstimator"]


class SiameseEstimator(DistanceEstimator):
    """Distance estimator: embeddings of a trained Siamese encoder and its d_p (rad) on the edges.

    Training is ``orirec train``'s job (long); this estimator only loads the checkpoint ``model``.
    """

    def __init__(self, model: Path | None) -> None:
        if model is None:
            raise ValueError("siamese: needs a trained checkpoint (--model CKPT, from `orirec train`)")
        super().__init__("siamese")
        self.checkpoint = Path(model)
        self.model, self.meta = load_model(self.checkpoint)

    def fit(self, train: TrainingData) -> dict[str, Any]:
        """Nothing to do: the network was trained by ``orirec train``."""
        return {"checkpoint": str(self.checkpoint)}

    def features(self, data: EstimatorData) -> np.ndarray:
        """Embeddings (n, F); a pair model's line tokens (n, n_angles, F)."""
        if data.images.shape[-1] != self.model.in_size:
            raise ValueError(
                f"siamese: checkpoint {self.checkpoint} expects {self.model.in_size} px images, "
                f"got {data.images.shape[-1]} px"
            )
        return embed_images(self.model, data.images)

    def distances(self, data: EstimatorData, features: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """The model's d_p (rad) on the edges (a pair model: its learned head on the two images' tokens)."""
        return per_edge(lambda a, b: edge_distances(self.model, features, a, b), i, j)


@register("siamese")
def _make(config: SiameseConfig) -> SiameseEstimator:
    return SiameseEstimator(config.model)

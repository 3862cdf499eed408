"""Direct orientation regression from one image (or one 3D subvolume): encoder + rotation head.

Heads: continuous 6D (Gram–Schmidt, Zhou et al. 2019), unit quaternion, ZYZ Euler (see
:mod:`orirec.models.rotation_heads`), all trained with the geodesic loss on rotation matrices against the
training store's true orientations. Images (n, L, L) use an :func:`orirec.models.build_model` encoder;
subvolumes (n, D, D, D) the 3D conv encoder :class:`orirec.models.encoder3d.Encoder3D` (cryo-ET).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from orirec.config.estimators import RegressionConfig
from orirec.estimators.base import Estimator, EstimatorData, TrainingData, register
from orirec.estimators.training import batched, train_steps
from orirec.geometry import matrix_to_quat, quat_to_matrix
from orirec.models.encoder3d import Encoder3D
from orirec.models.registry import build_model
from orirec.models.rotation_heads import RotationRegressor, geodesic_loss

__all__ = ["RegressionEstimator"]


class RegressionEstimator(Estimator):
    """Orientation estimator: a :class:`RotationRegressor` with the ``representation`` head, trained in ``fit``."""

    needs_training = True

    def __init__(self, representation: str, config: RegressionConfig) -> None:
        super().__init__(f"regress-{representation}")
        self.representation, self.opts = representation, config
        self.net: RotationRegressor | None = None

    def _build(self, shape: tuple[int, ...]) -> RotationRegressor:
        if len(shape) == 4:
            if not shape[1] == shape[2] == shape[3]:
                raise ValueError(f"{self.name}: subvolumes must be cubic (n, D, D, D), got {shape}")
            encoder: torch.nn.Module = Encoder3D(shape[1])
        elif len(shape) == 3 and shape[1] == shape[2]:
            ds = self.opts.downsample if shape[1] // max(self.opts.downsample, 1) >= 8 else 1
            encoder = build_model({"preset": self.opts.encoder_preset, "downsample": ds}, shape[1])
        else:
            raise ValueError(f"{self.name}: expected images (n, L, L) or subvolumes (n, D, D, D), got {shape}")
        torch.manual_seed(self.opts.seed)
        return RotationRegressor(encoder, self.representation)

    def fit(self, train: TrainingData) -> dict[str, Any]:
        """Train on the training store's images and true orientations (geodesic loss, rad)."""
        x = np.asarray(train.images, dtype=np.float32)
        if len(x) != len(train.quaternions):
            raise ValueError(f"{self.name}: {len(x)} training inputs but {len(train.quaternions)} orientations")
        self.net = self._build(x.shape)
        r_true = torch.from_numpy(quat_to_matrix(train.quaternions).astype(np.float32))
        net = self.net

        def loss(rows: np.ndarray) -> torch.Tensor:
            return geodesic_loss(net(torch.from_numpy(x[rows])), r_true[rows])

        o = self.opts
        return train_steps(net, loss, len(x), o.steps, o.batch_size, o.lr, o.seed)

    def estimate(self, data: EstimatorData) -> np.ndarray:
        """Predicted orientations (n, 4)."""
        if self.net is None:
            raise ValueError(f"{self.name}: not trained; it needs a training store (--train-store)")
        r = batched(self.net, data.images)
        return matrix_to_quat(r)


def _factory(rep: str):
    def make(config: RegressionConfig) -> RegressionEstimator:
        return RegressionEstimator(rep, config)

    return make


for _rep in ("6d", "quat", "euler"):
    register(f"regress-{_rep}")(_factory(_rep))

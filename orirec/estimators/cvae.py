"""Conditional VAE estimator: learn to generate projections for a given orientation, then estimate an
image's orientation by searching over the condition.

Search: the decoder renders templates at ``grid_size`` uniform orientations with the prior mean latent
``z = 0``; each image takes the template of least squared error (on per-image normalized pixels); then
``refine_steps`` of Adam on the condition (quaternion, or Euler angles) with the image's own latent
``z = μ(x)`` minimize the reconstruction error locally.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from orirec.config.estimators import CVAEConfig
from orirec.estimators.base import Estimator, EstimatorData, TrainingData, register
from orirec.estimators.training import batched, train_steps
from orirec.geometry import canonicalize, euler_to_quat, quat_to_euler, uniform_quaternions
from orirec.models.cvae import ConditionalVAE, condition_vector, normalize_images_t

__all__ = ["CVAEEstimator"]


class CVAEEstimator(Estimator):
    """Orientation estimator by a conditional VAE (latent ``latent_dim``, condition "quat" or "euler")."""

    needs_training = True

    def __init__(self, config: CVAEConfig) -> None:
        super().__init__("cvae")
        self.opts = config
        self.net: ConditionalVAE | None = None
        self.last_estimate: np.ndarray | None = None

    def fit(self, train: TrainingData) -> dict[str, Any]:
        """Train the cVAE (negative ELBO) on the training images conditioned on their true orientations."""
        x = np.asarray(train.images, dtype=np.float32)
        if x.ndim != 3 or x.shape[1] != x.shape[2]:
            raise ValueError(f"cvae: training images must be (n, L, L), got {x.shape} ({train.source})")
        o = self.opts
        torch.manual_seed(o.seed)
        ds = o.downsample if x.shape[-1] // max(o.downsample, 1) >= 8 else 1
        self.net = net = ConditionalVAE(x.shape[-1], o.latent_dim, o.cvae_condition, o.encoder_preset, downsample=ds)
        cond = torch.from_numpy(condition_vector(train.quaternions, o.cvae_condition))

        def loss(rows: np.ndarray) -> torch.Tensor:
            return net.loss(torch.from_numpy(x[rows]), cond[rows])

        return train_steps(net, loss, len(x), o.cvae_steps, o.batch_size, o.lr, o.seed)

    def _require(self) -> ConditionalVAE:
        if self.net is None:
            raise ValueError("cvae: not trained; it needs a training store (--train-store)")
        return self.net

    @torch.no_grad()
    def grid_search(self, images: np.ndarray) -> np.ndarray:
        """Best grid orientation (n, 4) per image: least squared error against templates decoded at z = 0."""
        net, o = self._require(), self.opts
        grid = uniform_quaternions(o.grid_size, seed=o.seed)
        cond = condition_vector(grid, o.cvae_condition)
        zeros = np.zeros((len(grid), net.latent_dim), dtype=np.float32)
        both = np.concatenate([zeros, cond], axis=1)
        t = batched(lambda b: net.decode(b[:, : net.latent_dim], b[:, net.latent_dim :]), both).reshape(len(grid), -1)
        x = batched(normalize_images_t, images).reshape(len(images), -1)
        score = x @ t.T - 0.5 * np.sum(t**2, axis=1)[None, :]  # -½‖x − t‖² up to a per-image constant
        return grid[np.argmax(score, axis=1)]

    def refine(self, images: np.ndarray, q0: np.ndarray) -> np.ndarray:
        """Local refinement of the condition by Adam (lr 0.02) on the reconstruction error, z = μ(x)."""
        net, o = self._require(), self.opts
        x = torch.from_numpy(np.asarray(images, dtype=np.float32))
        with torch.no_grad():
            z = net.encode(x)[0]
            target = normalize_images_t(x)
        if o.cvae_condition == "quat":
            p = torch.tensor(canonicalize(q0), dtype=torch.float32, requires_grad=True)
        else:
            p = torch.tensor(np.stack(quat_to_euler(q0), -1), dtype=torch.float32, requires_grad=True)
        opt = torch.optim.Adam([p], lr=0.02)
        for _ in range(o.refine_steps):
            if o.cvae_condition == "quat":
                q = p / p.norm(dim=-1, keepdim=True)
                cond = torch.where(q[:, :1] < 0, -q, q)
            else:
                cond = torch.cat([torch.cos(p), torch.sin(p)], dim=-1)
            err = ((net.decode(z, cond) - target) ** 2).sum()
            opt.zero_grad()
            err.backward()
            opt.step()
        found = p.detach().double().numpy()
        if o.cvae_condition == "quat":
            return canonicalize(found / np.linalg.norm(found, axis=1, keepdims=True))
        return euler_to_quat(found[:, 0], found[:, 1], found[:, 2])

    def estimate(self, data: EstimatorData) -> np.ndarray:
        """Grid search then local refinement; orientations (n, 4)."""
        self._require().eval()
        q0 = self.grid_search(data.images)
        out = []
        for s in range(0, len(q0), 512):
            out.append(
                self.refine(data.images[s : s + 512], q0[s : s + 512]) if self.opts.refine_steps else q0[s : s + 512]
            )
        self.last_estimate = np.concatenate(out)
        return self.last_estimate

    @torch.no_grad()
    def save_artifacts(self, out_dir: Path, data: EstimatorData, n_show: int = 8) -> list[Path]:
        """PNG: rows = true projections (normalized), decoder at the true orientation, decoder at the
        estimated orientation (both with z = μ(x)), for the first ``n_show`` images."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        net, o = self._require(), self.opts
        if data.true_quaternions is None or self.last_estimate is None:
            return []
        k = min(n_show, len(data.images))
        x = torch.from_numpy(np.asarray(data.images[:k], dtype=np.float32))
        z = net.encode(x)[0]
        rows = {
            "true projection": normalize_images_t(x).numpy(),
            "cVAE at true q": net.decode(
                z, torch.from_numpy(condition_vector(data.true_quaternions[:k], o.cvae_condition))
            ).numpy(),
            "cVAE at estimated q": net.decode(
                z, torch.from_numpy(condition_vector(self.last_estimate[:k], o.cvae_condition))
            ).numpy(),
        }
        fig, axes = plt.subplots(3, k, figsize=(1.6 * k, 5.2), squeeze=False)
        for r, (label, imgs) in enumerate(rows.items()):
            for c in range(k):
                axes[r, c].imshow(imgs[c], cmap="gray")
                axes[r, c].set_xticks([])
                axes[r, c].set_yticks([])
            axes[r, 0].set_ylabel(label, fontsize=7)
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / "cvae_samples.png"
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return [path]


@register("cvae")
def _make(config: CVAEConfig) -> CVAEEstimator:
    return CVAEEstimator(config)

"""A small seeded mini-batch training loop shared by the learned estimators (regression heads, cVAE)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["train_steps", "batched"]


def train_steps(
    model: nn.Module,
    loss_fn: Callable[[np.ndarray], torch.Tensor],
    n_train: int,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
) -> dict[str, Any]:
    """Adam for ``steps`` mini-batches of ``batch_size`` random training rows; ``loss_fn(rows)`` → scalar.

    Seeded (torch and the row sampler). Returns ``loss_first``, ``loss_last`` (mean of the first / last
    10 % of steps), ``steps`` and ``time_fit_s``.
    """
    if steps < 1 or batch_size < 1 or n_train < 1:
        raise ValueError(f"training: need steps, batch size and training images >= 1, got {steps}, {batch_size}, "
                         f"{n_train}")  # fmt: skip
    torch.manual_seed(seed)
    rng = np.random.default_rng([seed, 31])
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    t0, losses = time.perf_counter(), []
    for _ in range(steps):
        rows = np.sort(rng.choice(n_train, size=min(batch_size, n_train), replace=False))
        loss = loss_fn(rows)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    model.eval()
    k = max(1, steps // 10)
    return {
        "loss_first": float(np.mean(losses[:k])),
        "loss_last": float(np.mean(losses[-k:])),
        "steps": steps,
        "time_fit_s": time.perf_counter() - t0,
    }


@torch.no_grad()
def batched(fn: Callable[[torch.Tensor], torch.Tensor], x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """``fn`` over ``x`` in batches without gradients; outputs concatenated as float64 numpy."""
    out = [
        fn(torch.from_numpy(np.asarray(x[s : s + batch_size], dtype=np.float32))) for s in range(0, len(x), batch_size)
    ]
    return torch.cat(out).double().numpy()

"""Checkpoints of Siamese encoders (atomic writes) and batched embedding of images."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from orirec.models.encoder import EncoderBase
from orirec.models.registry import model_from_config

__all__ = ["embed_images", "load_checkpoint", "load_model", "save_checkpoint"]

FORMAT = "orirec-siamese-checkpoint-v1"


def _plain(obj: Any) -> Any:
    """JSON-plain copy of metrics/extra (numpy scalars → Python), so torch.load(weights_only) reads it."""
    return json.loads(json.dumps(obj, default=lambda o: o.item() if hasattr(o, "item") else str(o)))


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") else model


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    model_config: dict[str, Any],
    epoch: int,
    optimizer_state: dict | None = None,
    metrics: dict | list | None = None,
    extra: dict | None = None,
) -> Path:
    """Write a checkpoint atomically (temporary file in the same folder, then ``os.replace``).

    Args:
        path: destination file (folders are created).
        model: the network (a DDP wrapper is unwrapped).
        model_config: keyword arguments (with ``family``) that rebuild it (``model.config``).
        epoch: number of completed epochs.
        optimizer_state: ``optimizer.state_dict()`` for resuming, or None.
        metrics, extra: JSON-like values (numpy scalars are converted).
    Returns the path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in _unwrap(model).state_dict().items()}
    payload = {
        "format": FORMAT,
        "model_config": _plain(dict(model_config)),
        "state_dict": state,
        "epoch": int(epoch),
        "optimizer_state": optimizer_state,
        "metrics": _plain(metrics),
        "extra": _plain(extra),
    }
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` as a dict.

    Raises FileNotFoundError if missing and ValueError if unreadable or not an orirec checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path}: no such file")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a corrupt file
        raise ValueError(f"checkpoint {path}: unreadable or corrupt ({type(exc).__name__}: {exc})") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"checkpoint {path}: not an orirec Siamese checkpoint (format {FORMAT} expected)")
    return payload


def load_model(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> tuple[EncoderBase, dict[str, Any]]:
    """Rebuild the network (any family, :func:`orirec.models.registry.model_from_config`) from a checkpoint.

    Returns ``(model, meta)`` with the model in eval mode; ``meta`` holds ``model_config``,
    ``epoch``, ``metrics``, ``extra`` and ``optimizer_state``.
    """
    payload = load_checkpoint(path, map_location)
    try:
        model = model_from_config(payload["model_config"])
        model.load_state_dict(payload["state_dict"])
    except (TypeError, KeyError, RuntimeError, ValueError) as exc:
        raise ValueError(f"checkpoint {path}: weights do not match the saved model config ({exc})") from exc
    model.to(map_location).eval()
    meta = {k: v for k, v in payload.items() if k not in ("state_dict", "format")}
    return model, meta


@torch.no_grad()
def embed_images(
    model: nn.Module,
    images: np.ndarray,
    batch_size: int = 256,
    progress: Callable[[int], Any] | None = None,
) -> np.ndarray:
    """Embed images (N, L, L) → features (N, F) float32, in eval mode without gradients.

    Args:
        model: a SiameseNet (or wrapper); its training mode is restored afterwards.
        images: numpy array (N, L, L), any float dtype (or a zarr array).
        batch_size: images per forward pass.
        progress: optional callable, called with the number of images done after each batch.
    """
    if batch_size < 1:
        raise ValueError(f"embed_images: batch_size must be >= 1, got {batch_size}")
    if len(getattr(images, "shape", ())) != 3:
        raise ValueError(f"embed_images: images must be (N, L, L), got shape {getattr(images, 'shape', None)}")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = []
    try:
        for start in range(0, images.shape[0], batch_size):
            batch = np.asarray(images[start : start + batch_size], dtype=np.float32)
            out.append(model(torch.from_numpy(batch).to(device)).float().cpu().numpy())
            if progress is not None:
                progress(start + len(batch))
    finally:
        model.train(was_training)
    if not out:
        return np.zeros((0, getattr(_unwrap(model), "feature_dim", 0)), dtype=np.float32)
    return np.concatenate(out).astype(np.float32, copy=False)

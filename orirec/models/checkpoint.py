"""Checkpoints of Siamese encoders (atomic writes), batched embedding of images and d_p on graph edges."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from orirec.models.encoder import EncoderBase, embedding_distance_np
from orirec.models.registry import model_from_config

__all__ = ["check_image_size", "edge_distances", "embed_images", "load_checkpoint", "load_model", "save_checkpoint"]

FORMAT = "orirec-siamese-checkpoint-v1"


def _plain(obj: Any) -> Any:
    """JSON-plain copy of metrics/extra (numpy scalars → Python), so torch.load(weights_only) reads it."""
    return json.loads(json.dumps(obj, default=lambda o: o.item() if hasattr(o, "item") else str(o)))


def _unwrap(model: nn.Module) -> Any:
    return getattr(model, "module", model)  # a DDP wrapper's module, else the model


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
    buffer = io.BytesIO()
    torch.save(payload, buffer)  # in memory first: torch reports a failed file write as "unexpected pos ..."
    try:
        with open(tmp, "wb") as f:
            f.write(buffer.getbuffer())
        os.replace(tmp, path)
    except OSError as e:  # a full disk, a read-only folder: name the checkpoint, not the temporary file
        raise OSError(e.errno, e.strerror or str(e), str(path)) from e
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


def check_image_size(model: nn.Module, checkpoint: str | os.PathLike, box_px: int, store: str | os.PathLike) -> None:
    """ValueError unless the model (loaded from ``checkpoint``) takes the ``box_px`` images of ``store``."""
    expects = getattr(_unwrap(model), "in_size", None)
    if expects is not None and int(expects) != int(box_px):
        raise ValueError(f"model {checkpoint} expects {int(expects)} px images, store {store} holds {int(box_px)} px")


@torch.no_grad()
def embed_images(
    model: nn.Module,
    images: np.ndarray,
    batch_size: int = 256,
    progress: Callable[[int], Any] | None = None,
) -> np.ndarray:
    """Embed images (N, L, L) → features (N, F) float32 (a pair model: line tokens (N, n_angles, F)), in eval
    mode without gradients.

    Args:
        model: a SiameseNet, any encoder family (or wrapper); its training mode is restored afterwards.
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
        m = _unwrap(model)
        return np.zeros((0, *getattr(m, "embedding_shape", (getattr(m, "feature_dim", 0),))), dtype=np.float32)
    return np.concatenate(out).astype(np.float32, copy=False)


@torch.no_grad()
def edge_distances(
    model: nn.Module,
    features: np.ndarray,
    i: np.ndarray,
    j: np.ndarray,
    batch_size: int = 8192,
    progress: Callable[[int], Any] | None = None,
) -> np.ndarray:
    """The model's learned distance d_p (rad, float64, in [0, π]) on the edges (i, j) of precomputed features.

    Vector embeddings (N, F): :func:`orirec.models.encoder.embedding_distance_np` with the model's distance
    kind (no torch). A pair model (``distance_kind == "pair"``, features (N, n_angles, F) from
    :func:`embed_images`): its learned head ``model.distance`` runs in torch, in eval mode without gradients,
    ``batch_size`` edges at a time on the model's device; ``progress`` is called with the edges done.
    """
    m = _unwrap(model)
    i, j = np.asarray(i, dtype=np.int64), np.asarray(j, dtype=np.int64)
    if i.shape != j.shape or i.ndim != 1:
        raise ValueError(f"edge_distances: i and j must be 1-D of equal length, got {i.shape} and {j.shape}")
    if getattr(m, "distance_kind", "angle") != "pair":
        return embedding_distance_np(features, i, j, getattr(m, "distance_kind", "angle"))
    if batch_size < 1:
        raise ValueError(f"edge_distances: batch_size must be >= 1, got {batch_size}")
    n = len(features)
    if len(i) and (min(i.min(), j.min()) < 0 or max(i.max(), j.max()) >= n):
        raise ValueError(f"edge_distances: edge indices outside the {n} feature rows")
    was_training = m.training
    m.eval()
    device = next(m.parameters()).device
    feats = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32)).to(device)
    out = np.empty(len(i), dtype=np.float64)
    try:
        for s in range(0, len(i), batch_size):
            a = torch.from_numpy(i[s : s + batch_size]).to(device)
            b = torch.from_numpy(j[s : s + batch_size]).to(device)
            out[s : s + len(a)] = m.distance(feats[a], feats[b]).double().cpu().numpy()
            if progress is not None:
                progress(s + len(a))
    finally:
        m.train(was_training)
    return out

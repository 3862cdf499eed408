"""In-memory pair data for distance learning: train/validation split by image, seeded pair batches.

Seeds (numpy SeedSequence entropy lists, independent streams): the split uses ``[seed, 0]``, the
training pairs of epoch ``e`` (0-based) use ``[seed, 1, e]``, the fixed validation pairs ``[seed, 2]``.

Data parallelism: ``batch_size`` is the GLOBAL batch (pairs per optimizer step over all ranks). Every
rank draws the same epoch pairs from the same seed, cuts them into ``n_pairs // batch_size`` global
batches, and rank ``r`` of ``world_size`` takes the contiguous slice ``[r*b, (r+1)*b)`` of each global
batch, ``b = batch_size // world_size``. The slices are disjoint and together cover every global batch,
so the gradient averaged by DistributedDataParallel equals the single-process gradient of the same
global batch. Validation pairs are dealt the same way (rank r takes pairs r, r + world_size, ...).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import torch

from orirec.store import ProjectionStore, open_store
from orirec.store.pairs import sample_uniform_pairs

__all__ = ["PairData", "select_proteins", "split_by_image"]

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]
#: (images (m, L, L), quaternions (m, 4) float64, protein (m,)) of the distinct images of a step.
ImageBatch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def select_proteins(proteins, protein: np.ndarray, path: str | os.PathLike) -> np.ndarray:
    """Sorted unique protein indices of ``proteins``, checked against the store's per-image ``protein`` array."""
    chosen = np.unique(np.asarray(list(proteins), dtype=np.int64))
    present = np.unique(protein)
    if chosen.size == 0:
        raise ValueError(f"{path}: proteins: the list of proteins to train on is empty")
    missing = np.setdiff1d(chosen, present)
    if missing.size:
        raise ValueError(
            f"{path}: proteins {missing.tolist()[:10]} have no images (the store has protein indices "
            f"{int(present.min())}..{int(present.max())})"
        )
    return chosen


def split_by_image(protein: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split image indices into (train, validation), stratified per protein, seeded.

    Each protein gives round(val_fraction × n_p) images to validation, at least 2 and at most n_p - 2
    when it has >= 4 images (so both sides can form within-protein pairs). Returns sorted int64 arrays.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction: must be in (0, 1), got {val_fraction}")
    protein = np.asarray(protein)
    rng = np.random.default_rng([seed, 0])
    val = []
    for p in np.unique(protein):
        members = rng.permutation(np.flatnonzero(protein == p))
        k = int(round(val_fraction * len(members)))
        if len(members) >= 4:
            k = min(max(k, 2), len(members) - 2)
        val.append(members[:k])
    val_idx = np.sort(np.concatenate(val)).astype(np.int64)
    train_idx = np.setdiff1d(np.arange(len(protein)), val_idx).astype(np.int64)
    return train_idx, val_idx


class PairData:
    """Images in memory (float32 torch tensor) and seeded batches of within-protein pairs.

    Args:
        images: (N, L, L) images.
        quaternions: (N, 4) ground-truth orientations.
        protein: (N,) protein index per image.
        val_fraction: fraction of each protein's images held out for validation.
        val_pairs: number of fixed validation pairs (drawn among validation images only).
        seed: base seed (see module docstring).
        n_candidates: candidates per round of :func:`orirec.store.pairs.sample_uniform_pairs`.
        symmetry: point group per protein index (e.g. ``store.symmetries``): symmetry-aware d_q of the pairs.
    """

    def __init__(
        self,
        images: np.ndarray,
        quaternions: np.ndarray,
        protein: np.ndarray,
        val_fraction: float = 0.1,
        val_pairs: int = 4000,
        seed: int = 0,
        n_candidates: int = 32,
        symmetry: list[str] | None = None,
    ) -> None:
        images = np.asarray(images, dtype=np.float32)
        if images.ndim != 3 or images.shape[1] != images.shape[2]:
            raise ValueError(f"images: expected shape (N, L, L), got {images.shape}")
        n = images.shape[0]
        self.quaternions = np.asarray(quaternions, dtype=np.float64)
        self.protein = np.asarray(protein)
        if self.quaternions.shape != (n, 4) or self.protein.shape != (n,):
            raise ValueError(
                f"quaternions/protein: expected ({n}, 4) and ({n},), got {self.quaternions.shape}, {self.protein.shape}"
            )
        if not np.isfinite(self.quaternions).all():
            raise ValueError("quaternions: ground truth has NaN/inf values; training needs known orientations")
        self.images = torch.from_numpy(np.ascontiguousarray(images))
        self.box_px = int(images.shape[1])
        self.seed, self.n_candidates = int(seed), int(n_candidates)
        self.symmetry = list(symmetry) if symmetry and any(g != "C1" for g in symmetry) else None
        self.train_idx, self.val_idx = split_by_image(self.protein, val_fraction, self.seed)
        self.val_i, self.val_j, self.val_d = self._sample(self.val_idx, int(val_pairs), [self.seed, 2])

    @classmethod
    def from_store(
        cls, path: str | os.PathLike | ProjectionStore, proteins: list[int] | None = None, **kwargs
    ) -> PairData:
        """Load the images of the store at ``path`` (or an opened store) into memory: all, or those of the
        ``proteins`` (indices into the store's protein table; they keep their store index). Raises a clear error
        for a bad store."""
        store = path if isinstance(path, ProjectionStore) else open_store(path)
        path = store.path
        kwargs.setdefault("symmetry", store.symmetries)
        if proteins is None:
            return cls(store.load_images(), store.quaternions, store.protein, **kwargs)
        rows = np.flatnonzero(np.isin(store.protein, select_proteins(proteins, store.protein, path)))
        return cls(store.load_images(rows), store.quaternions[rows], store.protein[rows], **kwargs)

    def _sample(self, subset: np.ndarray, n_pairs: int, seed: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        try:
            i, j, d = sample_uniform_pairs(
                self.quaternions[subset], self.protein[subset], n_pairs, seed, n_candidates=self.n_candidates,
                symmetry=self.symmetry,
            )  # fmt: skip
        except ValueError as exc:
            raise ValueError(f"pair sampling over {len(subset)} images: {exc}") from exc
        return subset[i], subset[j], d

    def epoch_pairs(self, epoch: int, n_pairs: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The epoch's training pairs (global image indices i, j and d_q in rad), same on every rank."""
        return self._sample(self.train_idx, int(n_pairs), [self.seed, 1, int(epoch)])

    def _gather(self, i: np.ndarray, j: np.ndarray, d: np.ndarray) -> Batch:
        it, jt = torch.from_numpy(np.ascontiguousarray(i)), torch.from_numpy(np.ascontiguousarray(j))
        return self.images[it], self.images[jt], torch.from_numpy(d.astype(np.float32))

    @staticmethod
    def steps_per_epoch(n_pairs: int, batch_size: int) -> int:
        """Global optimizer steps per epoch (the remainder of n_pairs / batch_size is dropped)."""
        return int(n_pairs) // int(batch_size)

    def pair_indices(
        self, epoch: int, n_pairs: int, batch_size: int, rank: int = 0, world_size: int = 1
    ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Yield this rank's share ``(i, j, d_q)`` (image indices, rad) of each global batch of the epoch.

        ``batch_size`` is global and must be a multiple of ``world_size`` and <= ``n_pairs``.
        """
        if batch_size < 1 or batch_size % world_size:
            raise ValueError(f"batch_size: must be a positive multiple of world_size {world_size}, got {batch_size}")
        if n_pairs < batch_size:
            raise ValueError(f"pairs_per_epoch: must be >= batch_size {batch_size}, got {n_pairs}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank: must be in [0, {world_size}), got {rank}")
        steps, b = self.steps_per_epoch(n_pairs, batch_size), batch_size // world_size
        i, j, d = (
            a[: steps * batch_size].reshape(steps, world_size, b)[:, rank] for a in self.epoch_pairs(epoch, n_pairs)
        )
        for s in range(steps):
            yield i[s], j[s], d[s]

    def batches(self, epoch: int, n_pairs: int, batch_size: int, rank: int = 0, world_size: int = 1) -> Iterator[Batch]:
        """Yield this rank's share ``(img_i, img_j, d_q)`` of each global batch (see :meth:`pair_indices`)."""
        for i, j, d in self.pair_indices(epoch, n_pairs, batch_size, rank, world_size):
            yield self._gather(i, j, d)

    def image_batches(
        self, epoch: int, n_pairs: int, batch_size: int, rank: int = 0, world_size: int = 1
    ) -> Iterator[ImageBatch]:
        """Yield this rank's distinct images of each step for all-pairs training (``pairing="all"``).

        A global step takes ``batch_size // 2`` of the epoch's uniform-distance pairs (so that small
        distances are present; ``n_pairs // batch_size`` steps), split between ranks like
        :meth:`pair_indices`; the rank returns the distinct images of its pairs, among which every
        within-protein pair enters the loss.
        """
        half = max(batch_size // 2 // world_size, 1) * world_size
        steps = self.steps_per_epoch(n_pairs, batch_size)
        for i, j, _ in self.pair_indices(epoch, steps * half, half, rank, world_size):
            idx = np.unique(np.concatenate([i, j]))
            yield (
                self.images[torch.from_numpy(idx)],
                torch.from_numpy(self.quaternions[idx]),
                torch.from_numpy(self.protein[idx].astype(np.int64)),
            )

    def val_batches(self, batch_size: int = 512, rank: int = 0, world_size: int = 1) -> Iterator[Batch]:
        """Yield this rank's validation pairs (every ``world_size``-th, starting at ``rank``) in batches."""
        i, j, d = self.val_i[rank::world_size], self.val_j[rank::world_size], self.val_d[rank::world_size]
        for s in range(0, len(i), batch_size):
            yield self._gather(i[s : s + batch_size], j[s : s + batch_size], d[s : s + batch_size])

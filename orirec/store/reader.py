"""Open a projection store for reading (zarr arrays, with numpy helpers)."""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Any, cast

import numpy as np
import zarr

from orirec.store.schema import PER_IMAGE_ARRAYS


def member_array(group: zarr.Group, name: str) -> zarr.Array:
    """The array ``name`` of a store's ``group`` (the schema's per-image entries are arrays, not groups)."""
    return cast(zarr.Array, group[name])


class ProjectionStore:
    """Read access to a complete store written by :func:`orirec.store.create_store`."""

    def __init__(self, path: str | Path, group: zarr.Group):
        self.path = Path(path)
        self.group = group
        self.attrs: dict[str, Any] = dict(group.attrs)
        self.n_images = int(self.attrs["n_images"])
        self.box_px = int(self.attrs["box_px"])
        self.pixel_size_A = float(self.attrs["pixel_size_A"])

    @property
    def images(self) -> zarr.Array:
        """The (N, L, L) image array (lazy)."""
        return member_array(self.group, "images")

    @property
    def proteins(self) -> list[dict]:
        """Per-protein metadata (id, source checksum, pixel size, box, ...)."""
        return list(self.attrs.get("proteins", []))

    @property
    def sigma2(self) -> float:
        """Noise variance of the images relative to the clean image variance (attrs ``sigma2``, else the simulation
        config's; 0 when neither is recorded)."""
        return float(self.attrs.get("sigma2", self.attrs.get("simulation", {}).get("sigma2", 0.0)) or 0.0)

    @property
    def max_shift_px(self) -> float | None:
        """Largest in-plane shift (px, 2D norm) the recorded simulation could produce: ±shift_px per axis for
        uniform and triangular shifts, 3σ per axis for Gaussian ones; None when no simulation is recorded
        (imported particles). A dataset-level range, as a user states it to a common-lines search."""
        sim = self.attrs.get("simulation")
        if not sim:
            return None
        per_axis = float(sim.get("shift_px", 0.0) or 0.0)
        if sim.get("shift_distribution") == "gaussian":
            per_axis *= 3.0
        return per_axis * float(np.sqrt(2.0))

    @property
    def symmetries(self) -> list[str]:
        """Point group per protein (``"C1"``, ``"C2"``, ``"D7"``, ...; ``"C1"`` where none was recorded).

        Orientations ``q`` and ``q * g`` of a protein with group G give the same image (DESIGN §2; see
        :mod:`orirec.geometry.symmetry`); pass this list to :mod:`orirec.store.pairs` for symmetry-aware d_q.
        """
        return [str(p.get("symmetry") or "C1") for p in self.proteins]

    def rows_symmetry(self, rows: np.ndarray) -> str:
        """Point group of the images ``rows`` when they all show one protein, else C1 (one gauge for all)."""
        ps = np.unique(self.protein[np.asarray(rows)])
        return self.symmetry(int(ps[0])) if len(ps) == 1 else "C1"

    def symmetry(self, protein: int = 0) -> str:
        """Point group of protein ``protein`` (see :attr:`symmetries`)."""
        groups = self.symmetries
        if not 0 <= protein < max(len(groups), 1):
            raise ValueError(f"{self.path}: no protein {protein} (store has {len(groups)})")
        return groups[protein] if groups else "C1"

    @cached_property
    def quaternions(self) -> np.ndarray:
        """(N, 4) ground-truth quaternions (NaN where unknown)."""
        return np.asarray(member_array(self.group, "quaternions")[:])

    @cached_property
    def protein(self) -> np.ndarray:
        """(N,) protein index per image."""
        return np.asarray(member_array(self.group, "protein")[:])

    @cached_property
    def shifts(self) -> np.ndarray:
        """(N, 2) shifts in px."""
        return np.asarray(member_array(self.group, "shifts")[:])

    @cached_property
    def ctf(self) -> np.ndarray:
        """(N, k) CTF parameters (see orirec.store.schema.CTF_COLUMNS)."""
        return np.asarray(member_array(self.group, "ctf")[:])

    def ctf_params(self, rows: np.ndarray) -> np.ndarray | None:
        """CTF parameters of ``rows``, or None when the store has none (or these images were simulated without)."""
        if "ctf" not in self.group:
            return None
        ctf = np.asarray(member_array(self.group, "ctf").get_orthogonal_selection((np.asarray(rows),)))
        return ctf if np.isfinite(ctf).all() else None

    def array(self, name: str) -> np.ndarray:
        """Any per-image array, fully loaded."""
        return np.asarray(member_array(self.group, name)[:])

    def load_images(self, indices: np.ndarray | None = None) -> np.ndarray:
        """Images as float32 numpy, all or the given indices (in the given order)."""
        if indices is None:
            return np.asarray(self.images[:], dtype=np.float32)
        indices = np.asarray(indices, dtype=np.int64)
        order = np.argsort(indices)
        out = np.empty((len(indices), self.box_px, self.box_px), dtype=np.float32)
        out[order] = self.images.get_orthogonal_selection((indices[order],))
        return out

    def to_dask(self, name: str = "images"):
        """A dask array view of one per-image array."""
        import dask.array as da

        return da.from_zarr(self.group[name])


def reference_volume(group: zarr.Group, protein: int = 0) -> np.ndarray:
    """The reference volume (L, L, L) of ``protein`` saved by a simulation (voxel = the store's pixel size)."""
    volumes = cast(zarr.Group, group["volumes"]) if "volumes" in group else None
    if volumes is None or str(protein) not in volumes:
        raise ValueError(f"store has no reference volume for protein {protein}")
    return np.asarray(member_array(volumes, str(protein))[:])


def open_store(path: str | os.PathLike, require_complete: bool = True) -> ProjectionStore:
    """Open the store at ``path``; clear errors when it is missing, not a store, or incomplete."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such store")
    try:
        group = zarr.open_group(str(path), mode="r")
        attrs = dict(group.attrs)
    except Exception as e:  # zarr raises several types for a corrupt/foreign folder
        raise ValueError(f"{path}: not a readable Zarr store ({type(e).__name__}: {e})") from e
    missing = [s.name for s in PER_IMAGE_ARRAYS if s.name not in group] + [
        k for k in ("n_images", "box_px", "pixel_size_A") if k not in attrs
    ]
    if missing:
        raise ValueError(f"{path}: not an orirec projection store (missing {', '.join(missing)})")
    if require_complete and not attrs.get("complete", False):
        done = int(np.count_nonzero(np.asarray(member_array(group, "shard_complete")[:])))
        total = member_array(group, "shard_complete").shape[0]
        raise ValueError(f"{path}: store is incomplete ({done} of {total} shards written); re-run to resume")
    return ProjectionStore(path, group)

"""Create a projection store and write it shard by shard, one writer per shard.

Every per-image array is chunked (and for ``images`` sharded) so that the rows of one
store shard fall in exactly one Zarr shard/chunk: a worker that owns shard ``k`` never
touches bytes another worker writes. Completion is recorded in the ``shard_complete``
array (one chunk per shard, so concurrent writers do not race on the attributes) and is
set only after the whole shard has been written, so an interrupted run resumes by
skipping complete shards.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from orirec import __version__
from orirec.store.schema import PER_IMAGE_ARRAYS, SCHEMA_VERSION, array_shape, n_shards, shard_rows


class StoreWriter:
    """Writes whole shards of an existing store (see :func:`create_store`)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.group = zarr.open_group(str(self.path), mode="r+")
        a = self.group.attrs
        self.n_images = int(a["n_images"])
        self.box_px = int(a["box_px"])
        self.shard_size = int(a["shard_size"])
        self.n_shards = n_shards(self.n_images, self.shard_size)

    def completed_shards(self) -> list[int]:
        """Indices of shards that were written whole."""
        done = self.group["shard_complete"][:]
        return [int(k) for k in np.flatnonzero(done)]

    def missing_shards(self) -> list[int]:
        """Indices of shards still to write."""
        done = set(self.completed_shards())
        return [k for k in range(self.n_shards) if k not in done]

    def write_shard(self, k: int, **arrays: np.ndarray) -> None:
        """Write every per-image array of shard ``k`` and then mark it complete.

        ``arrays`` maps names of :data:`PER_IMAGE_ARRAYS` to the shard's rows; ``images`` is
        required, others default to NaN / 0.
        """
        start, stop = shard_rows(k, self.n_images, self.shard_size)
        rows = stop - start
        if "images" not in arrays:
            raise ValueError("write_shard needs 'images'")
        unknown = set(arrays) - {s.name for s in PER_IMAGE_ARRAYS}
        if unknown:
            raise ValueError(f"unknown store arrays: {sorted(unknown)}")
        for spec in PER_IMAGE_ARRAYS:
            shape = array_shape(spec, rows, self.box_px)
            value = arrays.get(spec.name)
            if value is None:
                fill = 0 if spec.dtype.startswith("int") else np.nan
                value = np.full(shape, fill, dtype=spec.dtype)
            value = np.asarray(value, dtype=spec.dtype)
            if value.shape != shape:
                raise ValueError(f"shard {k}: '{spec.name}' has shape {value.shape}, expected {shape}")
            if spec.name == "images" and not np.isfinite(value).all():
                raise ValueError(f"shard {k}: images contain NaN or inf")
            self.group[spec.name][start:stop] = value
        self.group["shard_complete"][k] = 1

    def finalize(self, **attrs: Any) -> None:
        """Record the completed-shard set (and extra attributes) once every shard is written."""
        missing = self.missing_shards()
        if missing:
            raise RuntimeError(f"{self.path}: cannot finalize, shards {missing[:10]} not written")
        self.group.attrs.update({**attrs, "completed_shards": self.completed_shards(), "complete": True})


def create_store(
    path: str | Path,
    n_images: int,
    box_px: int,
    pixel_size_A: float,
    shard_size: int = 256,
    chunk_size: int = 16,
    attrs: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> StoreWriter:
    """Create an empty store at ``path`` and return its :class:`StoreWriter`.

    ``pixel_size_A`` is the pixel size in Å; ``shard_size`` images form one shard (one writer),
    stored in chunks of ``chunk_size`` images. An existing store is refused unless ``overwrite``.
    """
    path = Path(path)
    if n_images <= 0:
        raise ValueError(f"n_images must be positive, got {n_images}")
    if box_px < 8:
        raise ValueError(f"box must be at least 8 px, got {box_px}")
    if not pixel_size_A > 0:
        raise ValueError(f"pixel size must be positive, got {pixel_size_A} Å")
    if path.exists():
        if not overwrite:
            raise FileExistsError(f"{path} already exists (use overwrite to replace it)")
        shutil.rmtree(path)
    chunk_size = max(1, min(chunk_size, shard_size))
    if shard_size % chunk_size:
        raise ValueError(f"shard_size {shard_size} must be a multiple of chunk_size {chunk_size}")
    group = zarr.open_group(str(path), mode="w")
    for spec in PER_IMAGE_ARRAYS:
        shape = array_shape(spec, n_images, box_px)
        if spec.name == "images":
            group.create_array(
                "images",
                shape=shape,
                dtype=spec.dtype,
                chunks=(chunk_size, box_px, box_px),
                shards=(shard_size, box_px, box_px),
                fill_value=0.0,
            )
        else:
            fill = 0 if spec.dtype.startswith("int") else np.nan
            group.create_array(
                spec.name, shape=shape, dtype=spec.dtype, chunks=(shard_size, *shape[1:]), fill_value=fill
            )
        group[spec.name].attrs["doc"] = spec.doc
    group.create_array(
        "shard_complete", shape=(n_shards(n_images, shard_size),), dtype="uint8", chunks=(1,), fill_value=0
    )
    group.attrs.update(
        {
            "schema_version": SCHEMA_VERSION,
            "orirec_version": __version__,
            "n_images": int(n_images),
            "box_px": int(box_px),
            "pixel_size_A": float(pixel_size_A),
            "shard_size": int(shard_size),
            "chunk_size": int(chunk_size),
            "complete": False,
            "completed_shards": [],
            **(attrs or {}),
        }
    )
    return StoreWriter(path)


def writer_to_resume(out: str | Path, fingerprint: str, overwrite: bool, what: str) -> StoreWriter | None:
    """The writer of the store at ``out`` when it was made from the same ``fingerprint`` (to resume it); None when
    there is none yet or ``overwrite``. A store of another fingerprint is refused, naming ``what`` differs."""
    out = Path(out)
    if not out.exists() or overwrite:
        return None
    try:
        existing = zarr.open_group(str(out), mode="r").attrs.get("fingerprint")
    except Exception as e:
        raise ValueError(f"{out}: exists and is not an orirec store; choose another --out or --overwrite") from e
    if existing != fingerprint:
        raise ValueError(f"{out}: exists with {what}; use --overwrite to replace it")
    return StoreWriter(out)

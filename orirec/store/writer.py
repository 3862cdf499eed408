"""Create a projection store and write it shard by shard, one writer per shard.

Every per-image array is chunked (and for ``images`` sharded) so that the rows of one
store shard fall in exactly one Zarr shard/chunk: a worker that owns shard ``k`` never
touches bytes another worker writes. Completion is recorded in the ``shard_complete``
array (one chunk per shard, so concurrent writers do not race on the attributes) and is
set only after the whole shard has been written, so an interrupted run resumes by
skipping complete shards.

A store is created whole or not at all: it is built under a hidden temporary name beside ``path`` and
renamed into place once its arrays and attributes exist, so a killed creation never leaves a half-made
store at ``path``. What may be replaced (``overwrite``) is decided by :mod:`orirec.store.safety`.
"""

from __future__ import annotations

import os
import shutil
import socket
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from orirec.config.provenance import version_info
from orirec.store.reader import member_array
from orirec.store.safety import check_fits_on_disk, check_replaceable, format_bytes, store_attrs, store_state
from orirec.store.schema import PER_IMAGE_ARRAYS, SCHEMA_VERSION, array_shape, n_shards, shard_rows

#: Bytes per image of every per-image array but ``images`` (quaternions, shifts, CTF, protein, noise, SNR).
METADATA_BYTES_PER_IMAGE = 4 * 8 + 2 * 4 + 7 * 4 + 4 + 4 + 4 + 1


class StoreWriter:
    """Writes whole shards of an existing store (see :func:`create_store`)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.group = zarr.open_group(str(self.path), mode="r+")
        a: dict[str, Any] = dict(self.group.attrs)
        self.n_images = int(a["n_images"])
        self.box_px = int(a["box_px"])
        self.shard_size = int(a["shard_size"])
        self.n_shards = n_shards(self.n_images, self.shard_size)

    def completed_shards(self) -> list[int]:
        """Indices of shards that were written whole."""
        done = np.asarray(member_array(self.group, "shard_complete")[:])
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
            if spec.name == "images":
                _check_images(self.path, k, start, value)
            member_array(self.group, spec.name)[start:stop] = value
        member_array(self.group, "shard_complete")[k] = 1

    def finalize(self, **attrs: Any) -> None:
        """Record the completed-shard set (and extra attributes) once every shard is written."""
        missing = self.missing_shards()
        if missing:
            raise RuntimeError(f"{self.path}: cannot finalize, shards {missing[:10]} not written")
        self.group.attrs.update({**attrs, "completed_shards": self.completed_shards(), "complete": True})


def _check_images(path: Path, k: int, start: int, images: np.ndarray) -> None:
    """ValueError naming the store, the shard and the first bad row for NaN/inf or empty (all-zero) images."""
    bad = ~np.isfinite(images).all(axis=(1, 2))
    if bad.any():
        raise ValueError(f"{path}: shard {k}: images contain NaN or inf (first at row {start + int(bad.argmax())})")
    empty = ~images.any(axis=(1, 2))
    if empty.any():
        raise ValueError(
            f"{path}: shard {k}: {int(empty.sum())} image(s) are empty, all zero (first at row "
            f"{start + int(empty.argmax())}); refusing to store them as data"
        )


def store_bytes(n_images: int, box_px: int) -> int:
    """Uncompressed size (bytes) of a store of ``n_images`` images of ``box_px``² px."""
    return int(n_images) * (int(box_px) ** 2 * 4 + METADATA_BYTES_PER_IMAGE)


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
    stored in chunks of ``chunk_size`` images. An existing store is refused unless ``overwrite``; an empty folder
    or the leftover of an interrupted creation is replaced, any other folder or file refused (even with
    ``overwrite``), as is a store too large for the free disk space.
    """
    path = Path(path)
    if n_images <= 0:
        raise ValueError(f"n_images must be positive, got {n_images}")
    if box_px < 8:
        raise ValueError(f"box must be at least 8 px, got {box_px}")
    if not (pixel_size_A > 0 and np.isfinite(pixel_size_A)):
        raise ValueError(f"pixel size must be positive and finite, got {pixel_size_A} Å")
    chunk_size = max(1, min(chunk_size, shard_size))
    if shard_size % chunk_size:
        raise ValueError(f"shard_size {shard_size} must be a multiple of chunk_size {chunk_size}")
    state = store_state(path)
    if state == "store" and not overwrite:
        raise FileExistsError(f"{path} already exists (use overwrite to replace it)")
    check_replaceable(path)  # never another folder (a thesis, the inputs): only a store, a leftover, an empty one
    freed = _tree_bytes(path) if state != "missing" else 0  # a replaced store gives its space back
    what = f"{n_images} images of {box_px}x{box_px} px" + (
        f", less {format_bytes(freed)} of the old store" if freed else ""
    )
    check_fits_on_disk(path, store_bytes(n_images, box_px) - freed, what)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_dead_temporaries(path)
    tmp = path.with_name(f".{path.name}.creating-{socket.gethostname()}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _build(tmp, n_images, box_px, pixel_size_A, shard_size, chunk_size, attrs)
        if state == "missing":
            os.rename(tmp, path)
        else:  # move the old one aside, the new one in, then drop the old one
            old = path.with_name(f".{path.name}.replaced-{socket.gethostname()}-{os.getpid()}")
            os.rename(path, old)
            os.rename(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return StoreWriter(path)


def _tree_bytes(path: Path) -> int:
    """Bytes of the files under ``path``."""
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def _remove_dead_temporaries(path: Path) -> None:
    """Drop ``.NAME.creating-HOST-PID`` / ``.NAME.replaced-HOST-PID`` folders left by killed processes of this host."""
    prefix = f"{socket.gethostname()}-"
    for kind in ("creating", "replaced"):
        for leftover in path.parent.glob(f".{path.name}.{kind}-{prefix}*"):
            pid = leftover.name.rsplit("-", 1)[-1]
            if pid.isdigit() and not _pid_alive(int(pid)):
                shutil.rmtree(leftover, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _build(
    path: Path,
    n_images: int,
    box_px: int,
    pixel_size_A: float,
    shard_size: int,
    chunk_size: int,
    attrs: dict[str, Any] | None,
) -> None:
    """Make the store's group, arrays and attributes at ``path`` (a fresh temporary folder)."""
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
            **{f"orirec_{k}": v for k, v in version_info().items()},  # orirec_version, orirec_git_sha, orirec_git_dirty
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


def writer_to_resume(
    out: str | Path, fingerprint: str, overwrite: bool, what: str, inputs: Iterable[str | Path] = ()
) -> StoreWriter | None:
    """The writer of the store at ``out`` when it was made from the same ``fingerprint`` (to resume it); None when
    a new store is to be created there (none yet, an empty folder, the leftover of an interrupted creation, or
    ``overwrite`` of an orirec store). A store of another fingerprint is refused, naming ``what`` differs (and
    saying whether it is incomplete). ``out`` must not be, hold or lie in one of the command's ``inputs``, and is
    never a folder other than an orirec store (refused even with ``overwrite``: that would delete it)."""
    out = Path(out)
    state = check_replaceable(out, inputs, replacing=overwrite)
    if state in ("missing", "empty"):
        return None
    if state == "partial":
        warnings.warn(
            f"{out}: the leftover of an interrupted store creation (no orirec attributes); replacing it", stacklevel=2
        )
        return None
    if overwrite:
        return None
    attrs = store_attrs(out) or {}
    existing = attrs.get("fingerprint")
    if existing == fingerprint:
        return StoreWriter(out)
    if not attrs.get("complete", False):
        made = "of unknown origin (no fingerprint)" if existing is None else f"with {what}"
        raise ValueError(
            f"{out}: an incomplete store (an interrupted run) {made}; re-run the command that made it to resume it, "
            "or use --overwrite to replace it"
        )
    raise ValueError(f"{out}: exists with {what}; use --overwrite to replace it")

"""The Zarr v3 projection-store schema of DESIGN §4: array names, shapes, dtypes and chunking."""

from __future__ import annotations

from dataclasses import dataclass

SCHEMA_VERSION = 1

#: CTF columns, in order: defocus u/v (Å), astigmatism angle (rad), voltage (kV), Cs (mm),
#: amplitude contrast (fraction), B-factor (Å²).
CTF_COLUMNS = ("defocus_u_A", "defocus_v_A", "astigmatism_rad", "voltage_kV", "cs_mm", "amp_contrast", "bfactor_A2")


@dataclass(frozen=True)
class ArraySpec:
    """Shape (with N for the image count and L for the box) and dtype of one per-image array."""

    name: str
    trailing: tuple[str | int, ...]
    dtype: str
    doc: str


PER_IMAGE_ARRAYS = (
    ArraySpec("images", ("L", "L"), "float32", "projection images, px values"),
    ArraySpec("quaternions", (4,), "float64", "ground-truth orientations (w,x,y,z), w>=0; NaN if unknown"),
    ArraySpec("shifts", (2,), "float32", "applied shifts (x, y) in px"),
    ArraySpec("ctf", (len(CTF_COLUMNS),), "float32", "CTF parameters, columns CTF_COLUMNS; NaN if none"),
    ArraySpec("protein", (), "int32", "index into attrs['proteins']"),
    ArraySpec("noise_var", (), "float32", "variance of the added noise (px value²)"),
    ArraySpec("snr_disk", (), "float32", "signal energy in the inscribed disk / noise variance"),
)


def array_shape(spec: ArraySpec, n_images: int, box_px: int) -> tuple[int, ...]:
    """Full shape of a per-image array for a store of ``n_images`` images of ``box_px``² px."""
    return (n_images, *(box_px if d == "L" else int(d) for d in spec.trailing))


def n_shards(n_images: int, shard_size: int) -> int:
    """Number of shards (the last one may be partial)."""
    return -(-n_images // shard_size)


def shard_rows(k: int, n_images: int, shard_size: int) -> tuple[int, int]:
    """Row range [start, stop) of shard ``k``."""
    start = k * shard_size
    if k < 0 or start >= n_images:
        raise ValueError(f"shard {k} out of range for {n_images} images in shards of {shard_size}")
    return start, min(start + shard_size, n_images)

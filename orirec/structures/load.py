"""One entry point: any structure source (PDB/mmCIF, MRC map, or the synthetic "pseudo") to a boxed volume."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from orirec.structures.atoms import read_atoms
from orirec.structures.cache import cached_volume, volume_cache_key
from orirec.structures.density import atoms_to_density, default_resolution_A, volume_radius_A
from orirec.structures.maps import prepare_map, read_map
from orirec.structures.pseudo import pseudo_protein
from orirec.structures.pseudo_random import PSEUDO_RANDOM, pseudo_random_seed, random_pseudo_protein

__all__ = ["ATOM_SUFFIXES", "MAP_SUFFIXES", "file_sha256", "load_volume", "source_kind"]

ATOM_SUFFIXES = (".pdb", ".ent", ".cif", ".mmcif")
MAP_SUFFIXES = (".mrc", ".map", ".mrcs")


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes (for caching and provenance)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _split_name(path: Path) -> tuple[str, str]:
    """(stem, suffix) with a trailing ``.gz`` looked through: ``1abc.cif.gz`` -> ("1abc", ".cif")."""
    name = path.name
    if name.lower().endswith(".gz"):
        name = name[:-3]
    p = Path(name)
    return p.stem, p.suffix.lower()


def source_kind(source: str | Path) -> str:
    """Classify a structure source: ``"pseudo"``, ``"atoms"`` or ``"map"`` (ValueError when unknown)."""
    s = str(source)
    if s == "pseudo" or s.startswith(("pseudo:", PSEUDO_RANDOM)):
        return "pseudo"
    _, suffix = _split_name(Path(s))
    if suffix in ATOM_SUFFIXES:
        return "atoms"
    if suffix in MAP_SUFFIXES:
        return "map"
    raise ValueError(
        f"{s}: unknown structure file type {suffix or '(no suffix)'!r}; expected one of "
        f"{', '.join(ATOM_SUFFIXES + MAP_SUFFIXES)} (optionally .gz), 'pseudo[:seed]' or "
        f"'{PSEUDO_RANDOM}SEED'"
    )


def _mass_radius_A(volume: np.ndarray, pixel_size_A: float, fraction: float = 0.99) -> float:
    """Radius (Å) about the box centre (index L//2) holding ``fraction`` of the positive density."""
    pos = np.clip(volume, 0.0, None).astype(np.float64)
    c = volume.shape[0] // 2
    idx = np.indices(volume.shape) - c
    r = np.sqrt((idx**2).sum(0)).ravel() * pixel_size_A
    order = np.argsort(r)
    cum = np.cumsum(pos.ravel()[order])
    return float(r[order][np.searchsorted(cum, fraction * cum[-1])])


def load_volume(
    source: str | Path,
    box_px: int,
    pixel_size_A: float,
    resolution_A: float | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Load any structure source as a centred (L, L, L) float32 density.

    File sources are cached by content (:mod:`orirec.structures.cache`): a second load of the same bytes
    with the same box, pixel size and resolution reads the stored density. Dispatch on the source:
    ``.pdb/.ent/.cif/.mmcif`` (optionally ``.gz``) -> Gaussian atoms
    (:func:`atoms_to_density`); ``.mrc/.map/.mrcs`` -> :func:`read_map` + :func:`prepare_map`;
    ``"pseudo"`` or ``"pseudo:<seed>"`` -> :func:`pseudo_protein` (default seed ``seed``) + Gaussian atoms.

    Args:
        source: file path or ``"pseudo[:seed]"``.
        box_px: box edge L (px).
        pixel_size_A: pixel size (Å).
        resolution_A: Gaussian-atom resolution (Å), atoms only; default density.DEFAULT_RESOLUTION_PX * pixel size.
        seed: seed of the synthetic protein when the source is plain ``"pseudo"``.

    Returns:
        (volume, info): info holds ``name``, ``kind``, ``source``, ``sha256`` (file bytes, or the
        synthetic coordinates), ``n_atoms`` (None for maps), ``radius_A`` (atoms: farthest atom
        from the centre of mass; maps: radius holding 99% of the positive density), ``box_px``,
        ``pixel_size_A``, ``resolution_A``.
    """
    kind = source_kind(source)
    info: dict[str, Any] = {"kind": kind, "box_px": int(box_px), "pixel_size_A": float(pixel_size_A)}
    if kind == "pseudo":
        s = str(source)
        if s.startswith(PSEUDO_RANDOM):
            seed, family = pseudo_random_seed(s), "pseudo-random"
            atoms = random_pseudo_protein(seed)
        else:
            if ":" in s:
                try:
                    seed = int(s.split(":", 1)[1])
                except ValueError:
                    raise ValueError(f"{s}: expected 'pseudo:<integer seed>'") from None
            family, atoms = "pseudo", pseudo_protein(seed)
        volume = _checked(atoms_to_density(atoms, box_px, pixel_size_A, resolution_A), s)
        digest = hashlib.sha256(np.ascontiguousarray(atoms.coords_A).tobytes()).hexdigest()
        info.update(name=f"{family}{seed}", source=f"{family}:{seed}", sha256=digest, n_atoms=len(atoms))
        info.update(radius_A=atoms.radius_A(), resolution_A=resolution_A or default_resolution_A(pixel_size_A))
        return volume, info
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"structure file not found: {path}")
    stem, _ = _split_name(path)
    digest = file_sha256(path)
    key = volume_cache_key(digest, kind, box_px, pixel_size_A, resolution_A)
    volume, computed, _ = cached_volume(key, lambda: _file_volume(path, kind, box_px, pixel_size_A, resolution_A))
    volume = _checked(volume, path)
    info.update(name=stem, source=str(path.resolve()), sha256=digest, **computed)
    return volume, info


def _checked(volume: np.ndarray, source: str | Path) -> np.ndarray:
    """``volume``, or ValueError naming ``source`` when it holds NaN/inf or is empty (all zero): such a density
    would make a store of blank images."""
    if not np.isfinite(volume).all():
        raise ValueError(f"{source}: the density holds NaN or inf values")
    if not np.any(volume):
        raise ValueError(f"{source}: the density is empty (all zero)")
    return volume


def _file_volume(
    path: Path, kind: str, box_px: int, pixel_size_A: float, resolution_A: float | None
) -> tuple[np.ndarray, dict[str, Any]]:
    """The density of an atom or map file and what was measured on it (JSON-serializable, cached)."""
    if kind == "atoms":
        atoms = read_atoms(path)
        bad = ~np.isfinite(atoms.coords_A).all(axis=1)
        if bad.any():
            raise ValueError(
                f"{path}: {int(bad.sum())} of {len(atoms)} atoms have NaN/inf coordinates "
                f"(first: atom {int(bad.argmax()) + 1})"
            )
        volume = atoms_to_density(atoms, box_px, pixel_size_A, resolution_A)
        return volume, {
            "n_atoms": len(atoms),
            "radius_A": float(atoms.radius_A()),
            "resolution_A": resolution_A or default_resolution_A(pixel_size_A),
            "density_radius_A": float(volume_radius_A(atoms, pixel_size_A, resolution_A)),
        }
    raw, voxel = read_map(path)
    volume = prepare_map(raw, voxel, box_px, pixel_size_A)
    return volume, {
        "n_atoms": None,
        "radius_A": _mass_radius_A(volume, pixel_size_A),
        "resolution_A": None,
        "map_voxel_size_A": float(voxel),
    }

"""Expand the INPUT arguments of ``orirec simulate`` into a list of structure sources."""

from __future__ import annotations

import csv
from pathlib import Path

from orirec.structures.pseudo_random import PSEUDO_RANDOM, expand_pseudo_random

STRUCTURE_SUFFIXES = (".pdb", ".ent", ".cif", ".mmcif", ".mrc", ".map")


def is_structure_file(path: Path) -> bool:
    """True for PDB/mmCIF/MRC files, gzipped or not."""
    name = path.name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    return name.endswith(STRUCTURE_SUFFIXES)


def read_manifest(path: Path, split: str | None = None) -> list[str]:
    """Structure files listed in a manifest CSV (column ``file``, relative to the CSV's folder).

    ``split`` keeps only rows whose ``split`` column equals it (train/val/test).
    """
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or "file" not in rows[0]:
        raise ValueError(f"{path}: manifest needs a 'file' column")
    if split is not None:
        if "split" not in rows[0]:
            raise ValueError(f"{path}: manifest has no 'split' column")
        rows = [r for r in rows if r["split"] == split]
    return [str(path.parent / r["file"]) for r in rows]


def expand_inputs(inputs: list[str], split: str | None = None, pdb_mirror: str | Path | None = None) -> list[str]:
    """Files, folders (their structure files, sorted), manifest CSVs, ``pseudo[:seed]``, ``pseudo-random:SEED``
    (or ``pseudo-random:FIRST-LAST``, one source per seed) or ``pdb:ID`` → sources.

    ``pdb:ID`` resolves to a local mmCIF via :func:`orirec.structures.pdb_ids.resolve_pdb_id` (mirror folder
    ``pdb_mirror`` or env ``ORIREC_PDB_MIRROR``, else the verified download cache).

    Raises FileNotFoundError naming the first input that does not exist, and ValueError when
    the expansion is empty.
    """
    sources: list[str] = []
    for item in inputs:
        if item.startswith(PSEUDO_RANDOM):
            sources.extend(expand_pseudo_random(item))
            continue
        if item == "pseudo" or item.startswith("pseudo:"):
            sources.append(item)
            continue
        if item.lower().startswith("pdb:"):
            from orirec.structures.pdb_ids import resolve_pdb_id

            sources.append(str(resolve_pdb_id(item, mirror=pdb_mirror)))
            continue
        path = Path(item)
        if not path.exists():
            raise FileNotFoundError(f"{item}: no such file or folder")
        if path.is_dir():
            found = sorted(str(p) for p in path.iterdir() if p.is_file() and is_structure_file(p))
            if not found:
                raise ValueError(f"{item}: folder holds no PDB/mmCIF/MRC files")
            sources.extend(found)
        elif path.suffix.lower() == ".csv":
            sources.extend(read_manifest(path, split))
        else:
            sources.append(str(path))
    if not sources:
        raise ValueError("no input structures given")
    return sources

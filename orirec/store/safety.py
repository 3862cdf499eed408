"""What a store writer may replace, and whether a store fits: the one home of these checks.

``--overwrite`` replaces only a folder that is an orirec store (a Zarr group with orirec's schema
attributes), the leftover of an interrupted store creation (a Zarr group holding nothing but orirec's
arrays), or an empty folder; never any other folder (a thesis, a folder of particles) and never one
that is, holds or lies inside the command's own inputs. Sizes are checked before anything is written:
the store on disk against the free space, the run's memory against the available memory.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from orirec.store.schema import PER_IMAGE_ARRAYS

__all__ = [
    "check_fits_in_memory",
    "check_fits_on_disk",
    "check_not_inputs",
    "check_replaceable",
    "format_bytes",
    "store_attrs",
    "store_state",
]

#: Entries an orirec store folder holds (the group metadata, its arrays, the reference volumes).
_STORE_ENTRIES = {"zarr.json", "shard_complete", "volumes", *(s.name for s in PER_IMAGE_ARRAYS)}


def store_attrs(path: str | Path) -> dict[str, Any] | None:
    """The attributes of the Zarr v3 group at ``path`` (read from its ``zarr.json``), or None when it is none."""
    try:
        doc = json.loads((Path(path) / "zarr.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("node_type") != "group":
        return None
    attrs = doc.get("attributes") or {}
    return attrs if isinstance(attrs, dict) else None


def store_state(path: str | Path) -> str:
    """What is at ``path``: ``missing``, ``empty`` (an empty folder), ``store`` (an orirec store), ``partial``
    (a Zarr group of orirec's arrays without its schema attributes: a creation that was interrupted) or
    ``foreign`` (anything else: a file, a folder of other things, another Zarr group)."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return "missing"
    if not path.is_dir():
        return "foreign"
    try:
        entries = {p.name for p in path.iterdir()}
    except OSError:
        return "foreign"
    if not entries:
        return "empty"
    attrs = store_attrs(path)
    if attrs is None:
        return "foreign"
    if "schema_version" in attrs and "n_images" in attrs:
        return "store"
    return "partial" if entries <= _STORE_ENTRIES else "foreign"


def check_not_inputs(out: str | Path, inputs: Iterable[str | Path] = (), replacing: bool = False) -> None:
    """ValueError when ``out`` is one of ``inputs`` or holds one of them; when ``replacing`` (it is to be deleted),
    also when it lies inside an input folder."""
    o = Path(out).resolve()
    for item in inputs:
        i = Path(item).resolve()
        if i == o:
            raise ValueError(f"{out}: is the command's input {item}; choose another --out")
        if o in i.parents:
            raise ValueError(f"{out}: holds the command's input {item}; refusing to write there, choose another --out")
        if replacing and i.is_dir() and i in o.parents:
            raise ValueError(
                f"{out}: lies inside the input folder {item}; refusing to replace it, choose another --out"
            )


def check_replaceable(path: str | Path, inputs: Iterable[str | Path] = (), replacing: bool = False) -> str:
    """Refuse (ValueError) to write to ``path`` unless it is missing, empty, an orirec store or the leftover of an
    interrupted store creation, and neither is nor holds one of ``inputs`` (nor, when ``replacing``, lies in an
    input folder); returns its :func:`store_state`."""
    state = store_state(path)
    if state == "foreign":
        what = "a file" if Path(path).exists() and not Path(path).is_dir() else "a folder"
        raise ValueError(
            f"{path}: exists and is {what} that is not an orirec store; refusing to replace it "
            "(--overwrite replaces only an orirec store or an empty folder), choose another --out"
        )
    if state != "missing":
        check_not_inputs(path, inputs, replacing)
    return state


def format_bytes(n: float) -> str:
    """``n`` bytes in a readable unit (B, KB, MB, GB, TB, PB; powers of 1000)."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000:
            return f"{n:.3g} {unit}"
        n /= 1000
    return f"{n:.3g} PB"


def _existing_ancestor(path: Path) -> Path:
    path = path.absolute()
    for p in (path, *path.parents):
        if p.exists():
            return p
    return Path("/")


def check_fits_on_disk(path: str | Path, n_bytes: float, what: str) -> None:
    """ValueError when ``n_bytes`` (what a store at ``path`` will take, uncompressed) exceed the free disk space."""
    free = shutil.disk_usage(_existing_ancestor(Path(path))).free
    if n_bytes > free:
        raise ValueError(
            f"{path}: the store needs about {format_bytes(n_bytes)} on disk ({what}) but only "
            f"{format_bytes(free)} is free there; write fewer or smaller images, or choose another --out"
        )


def check_fits_in_memory(n_bytes: float, what: str, where: str | Path) -> None:
    """ValueError when ``n_bytes`` (what the run holds in memory at once) exceed the available memory."""
    import psutil

    available = psutil.virtual_memory().available
    if n_bytes > available:
        raise ValueError(
            f"{where}: the run needs about {format_bytes(n_bytes)} of memory ({what}) but only "
            f"{format_bytes(available)} is available; write fewer images, or use a smaller box or shard size"
        )

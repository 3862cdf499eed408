"""Structures by PDB id (``pdb:1ABC``): a local mirror first, else a download from RCSB into a verified cache.

Lookup order for an id such as ``1ABC``:

1. a mirror folder (argument, else env ``ORIREC_PDB_MIRROR``): ``1abc.cif.gz`` or ``ab/1abc.cif.gz``
   (the wwPDB layout by the id's middle two characters), ``.cif`` also accepted;
2. the cache (argument, else ``$ORIREC_CACHE/pdb``, default ``~/.cache/orirec/pdb``): ``1abc.cif.gz`` with its
   SHA-256 in ``1abc.cif.gz.sha256``, verified on every reuse;
3. a download from ``base_url`` (default RCSB, ``https://files.rcsb.org/download/1ABC.cif.gz``) into the
   cache: written to a temporary file, checked to be gzip, then renamed and its checksum recorded.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orirec.structures.cache import cache_dir

RCSB_URL = "https://files.rcsb.org/download"
PDB_ID = re.compile(r"^[0-9][A-Za-z0-9]{3}$")
PREFIX = "pdb:"

Opener = Callable[..., Any]


def parse_pdb_id(item: str) -> str:
    """``"pdb:1ABC"`` or ``"1abc"`` -> ``"1abc"``; ValueError for anything that is not a 4-character PDB id."""
    pdb_id = item[len(PREFIX) :] if item.lower().startswith(PREFIX) else item
    pdb_id = pdb_id.strip()
    if not PDB_ID.match(pdb_id):
        raise ValueError(f"{item}: not a PDB id (expected 4 characters such as 1ABC)")
    return pdb_id.lower()


def default_cache() -> Path:
    """The download cache: ``<cache_dir()>/pdb`` (``$ORIREC_CACHE/pdb``, default ``~/.cache/orirec/pdb``).

    Downloads always need a folder, so ``ORIREC_CACHE=off`` (which only disables the volume cache) falls
    back to the default.
    """
    root = cache_dir()
    return (root if root is not None else Path.home() / ".cache" / "orirec") / "pdb"


def find_in_mirror(pdb_id: str, mirror: str | Path | None = None) -> Path | None:
    """The mirror's file for ``pdb_id`` (``1abc.cif.gz``, ``ab/1abc.cif.gz``, or ``.cif``), None if absent."""
    mirror = mirror or os.environ.get("ORIREC_PDB_MIRROR")
    if not mirror:
        return None
    root = Path(mirror)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: PDB mirror folder not found")
    pid = parse_pdb_id(pdb_id)
    for name in (f"{pid}.cif.gz", f"{pid}.cif", f"{pid.upper()}.cif.gz", f"{pid.upper()}.cif"):
        for path in (root / name, root / pid[1:3] / name):
            if path.is_file():
                return path
    return None


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _verified(path: Path) -> bool:
    check = path.with_name(path.name + ".sha256")
    if not (path.is_file() and check.is_file()):
        return False
    return check.read_text().split()[0] == sha256_file(path)


def download(
    pdb_id: str, cache: str | Path | None = None, base_url: str = RCSB_URL, opener: Opener | None = None
) -> Path:
    """Download ``<base_url>/<ID>.cif.gz`` into the cache (atomic; checksum written after the file)."""
    pid = parse_pdb_id(pdb_id)
    folder = Path(cache) if cache else default_cache()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{pid}.cif.gz"
    url = f"{base_url.rstrip('/')}/{pid.upper()}.cif.gz"
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        try:
            with (opener or urllib.request.urlopen)(url, timeout=60) as response:
                data = response.read()
        except urllib.error.HTTPError as e:
            raise ValueError(f"pdb:{pid.upper()}: {url} answered HTTP {e.code} (unknown id?)") from None
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise ValueError(
                f"pdb:{pid.upper()}: cannot download {url} ({reason}); offline? "
                "Put the file in a mirror folder (ORIREC_PDB_MIRROR) or the cache "
                f"{folder}"
            ) from None
        if data[:2] != b"\x1f\x8b":
            raise ValueError(f"pdb:{pid.upper()}: {url} did not return a gzip file")
        try:
            gzip.decompress(data)
        except (OSError, EOFError) as e:
            raise ValueError(f"pdb:{pid.upper()}: {url} returned a truncated gzip file ({e})") from None
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    digest = hashlib.sha256(data).hexdigest()
    check = path.with_name(path.name + ".sha256")
    check.write_text(f"{digest}  {path.name}\n")
    return path


def resolve_pdb_id(
    item: str,
    mirror: str | Path | None = None,
    cache: str | Path | None = None,
    base_url: str = RCSB_URL,
    opener: Opener | None = None,
) -> Path:
    """Local path of the mmCIF of ``pdb:ID`` (mirror, else verified cache, else download; see module doc).

    A cached file whose checksum does not match is downloaded again.
    """
    pid = parse_pdb_id(item)
    found = find_in_mirror(pid, mirror)
    if found is not None:
        return found
    cached = (Path(cache) if cache else default_cache()) / f"{pid}.cif.gz"
    if _verified(cached):
        return cached
    return download(pid, cache, base_url, opener)

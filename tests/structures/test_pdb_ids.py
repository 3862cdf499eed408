"""Structures by PDB id: mirror folder, download into a checksummed cache (file:// URLs only, no network)."""

import gzip
import hashlib
import urllib.error

import pytest

from orirec.structures.inputs import expand_inputs
from orirec.structures.pdb_ids import parse_pdb_id, resolve_pdb_id

CIF = gzip.compress(b"data_1ABC\n_cell.length_a 10\n")


@pytest.fixture
def remote(tmp_path):
    """A folder served as the download base URL (file://), holding 1ABC.cif.gz."""
    folder = tmp_path / "remote"
    folder.mkdir()
    (folder / "1ABC.cif.gz").write_bytes(CIF)
    return folder


def no_network(*args, **kwargs):
    raise AssertionError("network used")


def test_parse_ids():
    assert parse_pdb_id("pdb:1ABC") == "1abc" and parse_pdb_id("7xyz") == "7xyz"
    for bad in ("pdb:ABC", "pdb:12345", "pdb:1a-c"):
        with pytest.raises(ValueError, match="not a PDB id"):
            parse_pdb_id(bad)


def test_mirror_flat_and_divided_layout(tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    (mirror / "ab").mkdir(parents=True)
    (mirror / "1abc.cif.gz").write_bytes(CIF)
    (mirror / "ab" / "2abd.cif.gz").write_bytes(CIF)
    kw = {"cache": tmp_path / "cache", "opener": no_network}
    assert resolve_pdb_id("pdb:1ABC", mirror=mirror, **kw) == mirror / "1abc.cif.gz"
    assert resolve_pdb_id("pdb:2ABD", mirror=mirror, **kw) == mirror / "ab" / "2abd.cif.gz"
    monkeypatch.setenv("ORIREC_PDB_MIRROR", str(mirror))
    assert resolve_pdb_id("pdb:1abc", **kw) == mirror / "1abc.cif.gz"
    assert not (tmp_path / "cache").exists()


def test_download_cache_checksum_and_reuse(tmp_path, remote):
    cache = tmp_path / "cache"
    base = remote.as_uri()
    path = resolve_pdb_id("pdb:1ABC", cache=cache, base_url=base)
    assert path == cache / "1abc.cif.gz" and path.read_bytes() == CIF
    check = (cache / "1abc.cif.gz.sha256").read_text().split()[0]
    assert check == hashlib.sha256(CIF).hexdigest()
    # reuse: verified, no download
    assert resolve_pdb_id("pdb:1ABC", cache=cache, base_url=base, opener=no_network) == path
    # a corrupted cached file fails verification and is downloaded again
    path.write_bytes(b"corrupt")
    assert resolve_pdb_id("pdb:1ABC", cache=cache, base_url=base).read_bytes() == CIF


def test_cache_env_and_clear_errors(tmp_path, remote, monkeypatch):
    monkeypatch.setenv("ORIREC_CACHE", str(tmp_path / "envcache"))
    assert resolve_pdb_id("pdb:1ABC", base_url=remote.as_uri()).parent == tmp_path / "envcache" / "pdb"

    def offline(url, timeout):
        raise urllib.error.URLError("Name or service not known")

    with pytest.raises(ValueError, match=r"pdb:2XYZ: cannot download .*offline\?.*ORIREC_PDB_MIRROR"):
        resolve_pdb_id("pdb:2XYZ", cache=tmp_path / "c", opener=offline)
    (remote / "3BAD.cif.gz").write_bytes(b"<html>not found</html>")
    with pytest.raises(ValueError, match="did not return a gzip file"):
        resolve_pdb_id("pdb:3BAD", cache=tmp_path / "c", base_url=remote.as_uri())
    assert not (tmp_path / "c" / "3bad.cif.gz").exists()
    with pytest.raises(FileNotFoundError, match="mirror folder not found"):
        resolve_pdb_id("pdb:1ABC", mirror=tmp_path / "nowhere")


def test_expand_inputs_resolves_pdb_items(tmp_path):
    mirror = tmp_path / "m"
    mirror.mkdir()
    (mirror / "1abc.cif.gz").write_bytes(CIF)
    assert expand_inputs(["pdb:1ABC", "pseudo:3"], pdb_mirror=mirror) == [str(mirror / "1abc.cif.gz"), "pseudo:3"]


def test_simulate_cli_with_pdb_ids(tmp_path, shared_data, cli):
    from orirec.store import open_store

    mirror = tmp_path / "mirror"
    (mirror / "ac").mkdir(parents=True)
    (mirror / "ac" / "1acb.cif.gz").write_bytes((shared_data / "structures" / "1acb.cif.gz").read_bytes())
    args = ["simulate", "--pdb-ids", "1ACB", "--pdb-mirror", mirror, "--n-per-structure", 4, "--box", 40]
    cli(*args, "--out", tmp_path / "s.zarr", "--no-progress")
    s = open_store(tmp_path / "s.zarr")
    assert s.n_images == 4 and s.proteins[0]["name"].startswith("1acb")

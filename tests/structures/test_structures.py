"""Structures layer: atoms in, Gaussian densities, MRC maps, the synthetic protein, the load dispatcher."""

import gzip
import warnings

import numpy as np
import pytest

from orirec.structures import (
    Atoms,
    atoms_to_density,
    load_volume,
    prepare_map,
    pseudo_protein,
    read_atoms,
    read_map,
    write_map,
)

PDB_TEXT = """\
ATOM      1  N   ALA A   1      11.104   6.134  -6.504  1.00  0.00           N
ATOM      2  CA  ALA A   1      11.639   6.071  -5.147  1.00  0.00           C
ATOM      3  H   ALA A   1      10.500   6.000  -6.900  1.00  0.00           H
ATOM      4  C   ALA A   1      13.149   5.916  -5.225  1.00  0.00           C
ATOM      5  O   ALA A   1      13.767   5.486  -4.245  1.00  0.00           O
ATOM      6  SD  MET A   2      14.000   8.000  -3.000  1.00  0.00           S
HETATM    7  O   HOH A 101       0.000   0.000   0.000  1.00  0.00           O
END
"""


def _write_pdb(tmp_path, text=PDB_TEXT, name="tiny.pdb"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_read_atoms_skips_hydrogens_and_waters(tmp_path):
    atoms = read_atoms(_write_pdb(tmp_path))
    assert len(atoms) == 5
    assert atoms.atomic_number.tolist() == [7, 6, 6, 8, 16]
    np.testing.assert_allclose(atoms.coords_A[0], [11.104, 6.134, -6.504])
    assert atoms.mass[1] == pytest.approx(12.011, abs=0.01)


def test_read_atoms_gz_equals_plain(tmp_path):
    gz = tmp_path / "tiny.pdb.gz"
    gz.write_bytes(gzip.compress(PDB_TEXT.encode()))
    a, b = read_atoms(_write_pdb(tmp_path)), read_atoms(gz)
    np.testing.assert_array_equal(a.coords_A, b.coords_A)


def test_read_atoms_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pdb"):
        read_atoms(tmp_path / "nope.pdb")
    only_water = _write_pdb(tmp_path, PDB_TEXT.splitlines()[6] + "\nEND\n", "water.pdb")
    with pytest.raises(ValueError, match="structure has no atoms"):
        read_atoms(only_water)
    bad = tmp_path / "bad.cif"
    bad.write_text("data_x\nloop_\n_atom_site.id\n_atom_site.Cartn_x\n1 2 3\n garbage '\n")
    with pytest.raises(ValueError, match="bad.cif"):
        read_atoms(bad)


def test_read_real_structure(shared_data):
    atoms = read_atoms(shared_data / "structures" / "1a2k.cif.gz")
    assert len(atoms) == 3588  # manifest n_atoms (heavy atoms, no waters)


def _single_atom(xyz, z=6):
    return Atoms(np.asarray([xyz], dtype=float), np.array([z]), np.array([12.0]))


def test_density_mass_centre_and_sigma():
    rng = np.random.default_rng(0)
    atoms = Atoms(rng.normal(scale=4.0, size=(300, 3)), rng.integers(6, 9, 300), rng.uniform(12, 16, 300))
    L, px, res = 48, 1.0, 1.5 / 0.225  # sigma = 1.5 px
    vol = atoms_to_density(atoms, L, px, res)
    assert vol.shape == (L, L, L) and vol.dtype == np.float32
    assert vol.sum() == pytest.approx(atoms.atomic_number.sum(), rel=1e-4)
    # Z-weighted centre of the density = Z-weighted centre of the atoms, shifted by the mass-weighted centre.
    g = np.arange(L) - L // 2
    w = vol.astype(np.float64)
    centre = [(w.sum(axis=tuple(i for i in range(3) if i != a)) * g).sum() / w.sum() for a in (2, 1, 0)]
    zc = (atoms.coords_A * atoms.atomic_number[:, None]).sum(0) / atoms.atomic_number.sum()
    np.testing.assert_allclose(centre, zc - atoms.center_of_mass_A(), atol=1e-3)


def test_density_single_atom_is_the_right_gaussian():
    L, px = 32, 2.0
    vol = atoms_to_density(_single_atom([5.0, -3.0, 1.0]), L, px, resolution_A=2.0 * px / 0.225 / 2)  # sigma 1 px
    zz, yy, xx = np.meshgrid(*[np.arange(L) - L // 2] * 3, indexing="ij")
    ref = 6.0 * np.exp(-(xx**2 + yy**2 + zz**2) / 2.0) / (2 * np.pi) ** 1.5
    np.testing.assert_allclose(vol, ref, atol=1e-6)  # a single atom is its own centre of mass


def test_density_matches_direct_sum_for_many_atoms():
    rng = np.random.default_rng(1)
    atoms = Atoms(rng.uniform(-10, 10, size=(1500, 3)), np.full(1500, 6), rng.uniform(1, 2, 1500))
    L, px, res = 40, 1.3, 4.0
    vol = atoms_to_density(atoms, L, px, res, chunk_atoms=257)
    sig = 0.225 * res / px
    pos = (atoms.coords_A - atoms.center_of_mass_A()) / px + L // 2
    z, y, x = 17, 22, 19
    d2 = (pos[:, 0] - x) ** 2 + (pos[:, 1] - y) ** 2 + (pos[:, 2] - z) ** 2
    ref = (6.0 * np.exp(-d2 / (2 * sig**2))).sum() / ((2 * np.pi) ** 1.5 * sig**3)
    assert vol[z, y, x] == pytest.approx(ref, rel=1e-5)


def test_density_errors():
    atoms = pseudo_protein(0, n_atoms=200, radius_A=20.0)
    with pytest.raises(ValueError, match="pixel_size"):
        atoms_to_density(atoms, 64, 0.0)
    with pytest.raises(ValueError, match="box_px"):
        atoms_to_density(atoms, 6, 1.0)
    with pytest.raises(ValueError, match=r"does not fit.*use box_px >= \d+"):
        atoms_to_density(atoms, 32, 1.0)


def test_pseudo_protein_deterministic_and_asymmetric():
    a, b, c = pseudo_protein(3), pseudo_protein(3), pseudo_protein(4)
    np.testing.assert_array_equal(a.coords_A, b.coords_A)
    assert not np.allclose(a.coords_A, c.coords_A)
    for seed in range(5):
        atoms = pseudo_protein(seed, n_atoms=1500, radius_A=30.0)
        assert len(atoms) == 1500 and np.all(atoms.atomic_number == 6)
        assert atoms.radius_A() == pytest.approx(30.0)
        x = atoms.coords_A - atoms.center_of_mass_A()
        inertia = np.eye(3) * (x**2).sum() - x.T @ x
        ev = np.linalg.eigvalsh(inertia)
        gaps = np.diff(ev) / ev[-1]
        assert gaps.min() > 0.03, f"seed {seed}: near-degenerate inertia eigenvalues {ev}"
        steps = np.linalg.norm(np.diff(atoms.coords_A, axis=0), axis=1)
        assert 3.0 < np.median(steps) < 4.6  # CA-like chain


def test_write_read_map_roundtrip(tmp_path):
    vol = np.random.default_rng(0).normal(size=(10, 12, 14)).astype(np.float32)
    path = write_map(tmp_path / "m.mrc", vol, 1.7)
    back, voxel = read_map(path)
    np.testing.assert_array_equal(back, vol)
    assert voxel == pytest.approx(1.7, rel=1e-6)
    assert [p.name for p in tmp_path.iterdir()] == ["m.mrc"]  # no temporary file left behind


def test_read_map_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.mrc"):
        read_map(tmp_path / "absent.mrc")
    junk = tmp_path / "junk.mrc"
    junk.write_bytes(b"not a map" * 200)
    with pytest.raises(ValueError, match="junk.mrc"):
        read_map(junk)
    vol = np.ones((8, 8, 8), np.float32)
    vol[2, 3, 4] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # mrcfile warns when computing header stats with NaN
        write_map(tmp_path / "nan.mrc", vol, 1.0)
    with pytest.raises(ValueError, match="nan.mrc: map contains NaN"):
        read_map(tmp_path / "nan.mrc")


def test_prepare_map_resamples_and_centres():
    # A Gaussian blob off-centre in a non-cubic box at 1 Å/voxel, resampled to 2 Å/px in a 32^3 box.
    shape = (40, 50, 60)
    zz, yy, xx = np.meshgrid(*[np.arange(n, dtype=float) for n in shape], indexing="ij")
    centre_vox = (23.3, 20.6, 35.2)  # (z, y, x)
    sig = 4.0
    vol = np.exp(-((zz - centre_vox[0]) ** 2 + (yy - centre_vox[1]) ** 2 + (xx - centre_vox[2]) ** 2) / (2 * sig**2))
    out = prepare_map(vol, 1.0, 32, 2.0)
    assert out.shape == (32, 32, 32) and out.dtype == np.float32
    g = np.arange(32) - 16
    Z, Y, X = np.meshgrid(g, g, g, indexing="ij")
    ref = np.exp(-(X**2 + Y**2 + Z**2) * 4.0 / (2 * sig**2))  # same blob, sigma 2 px, at the box centre
    assert np.abs(out - ref).max() < 0.02
    com = [(out * c).sum() / out.sum() for c in (Z, Y, X)]
    np.testing.assert_allclose(com, 0.0, atol=0.02)


def test_prepare_map_rejects_too_small_box():
    vol = np.zeros((40, 40, 40), np.float32)
    vol[5:35, 5:35, 5:35] = 1.0
    with pytest.raises(ValueError, match=r"falls outside.*use box_px >= \d+"):
        prepare_map(vol, 1.0, 16, 1.0)


def test_load_volume_dispatch(tmp_path):
    vol, info = load_volume("pseudo:2", 48, 2.0)
    vol2, info2 = load_volume("pseudo", 48, 2.0, seed=2)
    np.testing.assert_array_equal(vol, vol2)
    assert info["sha256"] == info2["sha256"] and info["n_atoms"] == 2000 and info["name"] == "pseudo2"
    pdb = _write_pdb(tmp_path)
    v, i = load_volume(pdb, 16, 1.0)
    assert v.shape == (16, 16, 16) and i["n_atoms"] == 5 and i["name"] == "tiny" and len(i["sha256"]) == 64
    write_map(tmp_path / "v.map", vol, 2.0)
    v3, i3 = load_volume(tmp_path / "v.map", 48, 2.0)
    assert i3["n_atoms"] is None and np.abs(v3 - vol).max() < 0.02 * vol.max()
    with pytest.raises(ValueError, match=r"thing\.xyz"):
        load_volume(tmp_path / "thing.xyz", 16, 1.0)
    with pytest.raises(ValueError, match="pseudo:x"):
        load_volume("pseudo:x", 16, 1.0)


def test_load_shared_map(shared_data):
    vol, info = load_volume(shared_data / "maps" / "5j0n.mrc", 64, 3.667)
    assert vol.shape == (64, 64, 64) and info["name"] == "5j0n"
    assert 50.0 < info["radius_A"] < 64 * 3.667 / 2

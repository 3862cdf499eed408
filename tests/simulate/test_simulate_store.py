"""Simulation into the store: CTF recorded and applied, shards deterministic, Ray actors = in-process."""

import numpy as np
import pytest

from orirec.config import SimulateConfig
from orirec.simulate.shards import ShardSimulator
from orirec.simulate.to_store import simulate_to_store
from orirec.store import CTF_COLUMNS, open_store


def _cfg(**kw):
    base = {
        "inputs": ["pseudo:0", "pseudo:1"],
        "n_per_structure": 40,
        "box_px": 32,
        "pixel_size_A": 3.0,
        "shard_size": 16,
        "sigma2": 1.0,
        "shift_px": 1.5,
    }
    return SimulateConfig(**{**base, **kw})


def test_ctf_is_recorded_and_applied(tmp_path):
    simulate_to_store(_cfg(ctf=True, sigma2=0.0), tmp_path / "ctf.zarr")
    simulate_to_store(_cfg(sigma2=0.0), tmp_path / "plain.zarr")
    with_ctf, plain = open_store(tmp_path / "ctf.zarr"), open_store(tmp_path / "plain.zarr")
    ctf = with_ctf.ctf
    assert ctf.shape == (80, len(CTF_COLUMNS)) and np.isfinite(ctf).all()
    assert (ctf[:, 0] >= ctf[:, 1]).all() and (ctf[:, 0] >= 10000).all() and (ctf[:, 0] <= 25000).all()
    assert np.isnan(plain.ctf).all()
    # same orientations and shifts, different images: the CTF changed them
    np.testing.assert_array_equal(with_ctf.quaternions, plain.quaternions)
    a, b = with_ctf.images[:], plain.images[:]
    corr = np.corrcoef(a[0].ravel(), b[0].ravel())[0, 1]
    assert abs(corr) < 0.95


def test_any_process_computes_the_same_shard(tmp_path):
    cfg = _cfg()
    simulate_to_store(cfg, tmp_path / "s.zarr")
    store = open_store(tmp_path / "s.zarr")
    again = ShardSimulator(tmp_path / "s.zarr", cfg).simulate(3)  # a fresh simulator, e.g. in another actor
    np.testing.assert_array_equal(again["images"], store.images[48:64])
    assert np.bincount(store.protein).tolist() == [40, 40]


@pytest.mark.slow
@pytest.mark.ray
def test_ray_actor_pool_writes_the_same_store(tmp_path):
    pytest.importorskip("ray")
    from orirec.pipeline.stages import stage_simulate

    cfg = _cfg(ctf=True)
    stage_simulate(cfg, tmp_path / "local.zarr")
    res = stage_simulate(cfg, tmp_path / "ray.zarr", num_workers=2)
    assert res["shards_written"] == 5
    a, b = open_store(tmp_path / "local.zarr"), open_store(tmp_path / "ray.zarr")
    # the actors run torch with 1 thread, this process with 2: float32 sums may differ in the last bits
    scale = float(np.abs(a.images[:]).max())
    np.testing.assert_allclose(a.images[:], b.images[:], rtol=0, atol=1e-5 * scale)
    np.testing.assert_array_equal(a.ctf, b.ctf)
    np.testing.assert_array_equal(a.quaternions, b.quaternions)
    import ray

    ray.shutdown()


def _cif_of_pseudo(path, seed: int):
    """A small valid mmCIF file: the pseudo-protein's atoms as carbons (written with gemmi)."""
    import gemmi

    from orirec.structures import pseudo_protein

    xyz = pseudo_protein(seed, n_atoms=300, radius_A=15.0).coords_A
    lines = [
        f"ATOM  {k + 1:5d}  CA  ALA A{k + 1:4d}    {x:8.3f}{y:8.3f}{z:8.3f}  1.00  0.00           C"
        for k, (x, y, z) in enumerate(xyz)
    ]
    gemmi.read_pdb_string("\n".join(lines) + "\nEND\n").make_mmcif_document().write_file(str(path))
    return path


def test_corrupt_structure_between_good_ones_stops_cleanly_naming_it(tmp_path):
    folder = tmp_path / "structures"
    folder.mkdir()
    _cif_of_pseudo(folder / "a.cif", 1)
    (folder / "b.cif").write_text("data_broken\nloop_\n_atom_site.id\n_atom_site.Cartn_x\n1 not-a-number\n")
    _cif_of_pseudo(folder / "c.cif", 2)
    out = tmp_path / "s.zarr"
    with pytest.raises(ValueError, match=r"b\.cif"):
        simulate_to_store(_cfg(inputs=[str(folder)], n_per_structure=8, shard_size=8), out)
    assert not out.exists()  # stopped before anything was written (documented in simulate_to_store)
    (folder / "b.cif").unlink()
    res = simulate_to_store(_cfg(inputs=[str(folder)], n_per_structure=8, shard_size=8), out)
    assert res.n_images == 16 and [p["name"] for p in open_store(out).proteins] == ["a", "c"]


def test_resume_refuses_a_changed_config(tmp_path):
    out = tmp_path / "s.zarr"
    simulate_to_store(_cfg(), out)
    changes = [
        {"n_per_structure": 41},
        {"orientations": "preferred"},
        {"shift_distribution": "gaussian"},
        {"normalize": True},
        {"symmetry": "C2"},
        {"preferred_kappa": 3.0},
        {"inputs": ["pseudo:0"]},
        {"backend": "torch"},  # the default (auto) resolved to nufft here and the store records that
        {"nufft_eps": 1e-4},
    ]
    for change in changes:
        with pytest.raises(ValueError, match="different simulation config"):
            simulate_to_store(_cfg(**change), out)
    assert simulate_to_store(_cfg(), out).shards_written == 0  # the same config resumes (nothing left to do)
    assert simulate_to_store(_cfg(backend="nufft"), out).shards_written == 0  # auto was recorded as nufft
    # The NUFFT tolerance is not part of another backend's fingerprint.
    simulate_to_store(_cfg(backend="torch"), tmp_path / "t.zarr")
    assert simulate_to_store(_cfg(backend="torch", nufft_eps=1e-4), tmp_path / "t.zarr").shards_written == 0


def test_one_writer_per_shard_each_shard_in_its_own_zarr_shard(tmp_path):
    """Two writers of two different shards never share a Zarr shard/chunk, and each writes only its rows."""
    cfg = _cfg()
    out = tmp_path / "s.zarr"
    simulate_to_store(cfg, out)
    ref = open_store(out).images[:]
    import zarr

    g = zarr.open_group(str(out), mode="r+")
    for name in ("images", "quaternions", "shifts", "protein", "noise_var", "snr_disk", "ctf"):
        a = g[name]
        assert (a.shards or a.chunks)[0] == cfg.shard_size, name
    g["shard_complete"][:] = 0
    g["images"][:] = 0
    g.attrs["complete"] = False
    # two independent writers (as two actors would be), interleaved, each owning its own shards
    w1, w2 = ShardSimulator(out, cfg), ShardSimulator(out, cfg)
    for k in range(5):
        (w1 if k % 2 else w2).run(k)
    np.testing.assert_array_equal(open_store(out, require_complete=False).images[:], ref)


def test_normalize_background_mean_zero_std_one_and_recorded(tmp_path):
    out = tmp_path / "n.zarr"
    simulate_to_store(_cfg(normalize=True, sigma2=4.0, shift_px=0.0), out)
    store = open_store(out)
    imgs = store.images[:].astype(np.float64)
    L = imgs.shape[-1]
    g = np.arange(L) - L // 2
    radius = 0.375 * L  # RELION's default: background circle of 75 % of the box
    assert store.attrs["normalization"]["radius_px"] == pytest.approx(radius)
    bg = imgs[:, (g[:, None] ** 2 + g[None, :] ** 2) > radius**2]
    np.testing.assert_allclose(bg.mean(1), 0, atol=1e-5)
    np.testing.assert_allclose(bg.std(1), 1, atol=1e-5)
    # the recorded noise variance is in the new units: about the background variance (noise + faint tails)
    # (~570 background px per image: each estimate scatters by ~6 %)
    noise_var = store.array("noise_var")
    assert abs(noise_var.mean() - 1.0) < 0.05 and np.all(np.abs(noise_var - 1.0) < 0.3)
    with pytest.raises(ValueError, match="needs noise"):
        simulate_to_store(_cfg(normalize=True, sigma2=0.0), tmp_path / "noiseless.zarr")
    with pytest.raises(ValueError, match="no background"):
        simulate_to_store(_cfg(normalize=True, normalize_radius_px=40.0), tmp_path / "big.zarr")


def test_new_distributions_reach_the_store(tmp_path):
    from orirec.geometry import preferred_quaternions, viewing_direction

    cfg = _cfg(
        orientations="preferred",
        preferred_directions=[(0.0, 0.0)],
        preferred_kappa=20.0,
        shift_distribution="gaussian",
        shift_px=1.0,
    )
    simulate_to_store(cfg, tmp_path / "s.zarr")
    store = open_store(tmp_path / "s.zarr")
    np.testing.assert_allclose(store.quaternions, preferred_quaternions(80, seed=0, kappa=20.0), atol=1e-12)
    assert viewing_direction(store.quaternions)[:, 2].mean() > 0.9  # top views (coth 20 - 1/20 = 0.95)
    assert np.abs(store.shifts).max() > 1.0  # gaussian: not bounded by shift_px
    assert np.linalg.norm(store.shifts, axis=1).max() <= store.max_shift_px == pytest.approx(3 * np.sqrt(2))
    assert store.attrs["normalization"] is None and store.symmetries == ["C1", "C1"]


def test_structure_density_is_cached_by_content(tmp_path, monkeypatch):
    import orirec.structures.load as load

    monkeypatch.setenv("ORIREC_CACHE", str(tmp_path / "cache"))
    path = _cif_of_pseudo(tmp_path / "a.cif", 1)
    first, info1 = load.load_volume(path, 32, 3.0)
    calls = []
    real = load.atoms_to_density
    monkeypatch.setattr(load, "atoms_to_density", lambda *a, **k: calls.append(1) or real(*a, **k))
    again, info2 = load.load_volume(path, 32, 3.0)
    assert calls == [] and info2 == info1  # a hit: no density computed
    np.testing.assert_array_equal(again, first)
    load.load_volume(path, 32, 2.5)  # another pixel size: a miss
    assert calls == [1]
    _cif_of_pseudo(path, 2)  # same name, other content: a miss
    changed, _ = load.load_volume(path, 32, 3.0)
    assert calls == [1, 1] and not np.allclose(changed, first)
    monkeypatch.setenv("ORIREC_CACHE", "off")
    load.load_volume(path, 32, 3.0)
    assert calls == [1, 1, 1]
    # a corrupt entry is recomputed, not an error
    monkeypatch.setenv("ORIREC_CACHE", str(tmp_path / "cache"))
    for entry in (tmp_path / "cache").rglob("*.npz"):
        entry.write_bytes(b"junk")
    np.testing.assert_array_equal(load.load_volume(path, 32, 3.0)[0], changed)


def test_cli_options_reach_the_config(tmp_path, cli):
    out = tmp_path / "cli.zarr"
    args = ["simulate", "pseudo:0", "--n-per-structure", "16", "--box", "32", "--pixel-size", "3", "--shard-size", "16"]
    args += ["--orientations", "preferred", "--preferred-direction", "1.2,0.5", "--preferred-direction", "0,0,1"]
    args += [
        "--preferred-kappa",
        "7",
        "--uniform-fraction",
        "0.1",
        "--shift",
        "1",
        "--shift-distribution",
        "triangular",
    ]
    args += ["--sigma2", "2", "--normalize", "--symmetry", "C1", "--out", str(out), "--no-progress"]
    cli(*args)
    sim = open_store(out).attrs["simulation"]
    assert sim["orientations"] == "preferred" and sim["preferred_directions"] == [[1.2, 0.5], [0.0, 0.0, 1.0]]
    assert (sim["preferred_kappa"], sim["preferred_uniform_fraction"]) == (7.0, 0.1)
    assert (sim["shift_distribution"], sim["normalize"], sim["symmetry"]) == ("triangular", True, "C1")
    bad = cli(*args[:-3], "--preferred-direction", "1", "--out", tmp_path / "b.zarr", code=2)
    assert "--preferred-direction" in " ".join(bad.output.split())


def test_projector_cache_holds_the_most_recently_used_volumes(tmp_path):
    from orirec.config import SimulateConfig
    from orirec.simulate.to_store import simulate_to_store
    from orirec.simulate.volume_cache import ProjectorCache
    from orirec.store import open_store

    inputs = ["pseudo:0", "pseudo:1", "pseudo:2"]
    cfg = SimulateConfig(inputs=inputs, n_per_structure=4, box_px=24, pixel_size_A=4.0, shard_size=4)
    simulate_to_store(cfg, tmp_path / "s.zarr")
    built = []
    cache = ProjectorCache(open_store(tmp_path / "s.zarr").group, lambda vol: built.append(vol.sum()) or vol, 2)
    for p in (0, 1, 0, 2, 1):
        cache(p)
    assert len(cache) == 2 and len(built) == 4  # 0, 1 built; 0 reused; 2 evicts 1; 1 built again

"""Point groups (C1, Cn, Dn): closed groups, symmetry-aware distance, pairs, and symmetric images."""

import numpy as np
import pytest

from orirec.geometry import (
    canonicalize,
    group_quaternions,
    multiply,
    quat_distance,
    symmetric_quat_distance,
    symmetry_order,
    uniform_quaternions,
)

GROUPS = ["C1", "C2", "C3", "C4", "D2", "D3", "D7"]


def _as_set(q: np.ndarray) -> set[tuple[float, ...]]:
    return {tuple(np.round(x, 9) + 0.0) for x in canonicalize(q)}


@pytest.mark.parametrize("name", GROUPS)
def test_group_is_closed_and_has_the_right_order(name):
    G = group_quaternions(name)
    assert len(G) == symmetry_order(name) == len(_as_set(G))  # distinct elements
    np.testing.assert_allclose(G[0], [1, 0, 0, 0])
    products = multiply(G[:, None, :], G[None, :, :]).reshape(-1, 4)
    assert _as_set(products) == _as_set(G)  # closed under the product
    inverses = G * np.array([1, -1, -1, -1])
    assert _as_set(inverses) <= _as_set(G)


def test_group_axes_follow_relion():
    # C4: rotations about z by multiples of 90 degrees; D2 adds pi rotations about x and y
    from orirec.geometry import quat_to_matrix

    R = quat_to_matrix(group_quaternions("C4"))
    np.testing.assert_allclose(R[:, :, 2], np.tile([0.0, 0.0, 1.0], (4, 1)), atol=1e-12)  # z is the axis
    angles = np.rad2deg(np.arctan2(R[:, 1, 0], R[:, 0, 0])) % 360
    np.testing.assert_allclose(np.sort(angles), [0, 90, 180, 270], atol=1e-9)
    d2 = group_quaternions("D2")
    assert _as_set(d2) == _as_set(np.eye(4))


@pytest.mark.parametrize("name", ["C2", "C5", "D2", "D7"])
def test_distance_invariant_under_the_group_on_either_side(name):
    q1, q2 = uniform_quaternions(300, seed=1), uniform_quaternions(300, seed=2)
    d = symmetric_quat_distance(q1, q2, name)
    assert np.all(d <= quat_distance(q1, q2) + 1e-12)
    for g in group_quaternions(name):
        np.testing.assert_allclose(symmetric_quat_distance(q1, multiply(q2, g), name), d, atol=1e-9)
        np.testing.assert_allclose(symmetric_quat_distance(multiply(q1, g), q2, name), d, atol=1e-9)
        np.testing.assert_allclose(symmetric_quat_distance(q1, multiply(q1, g), name), 0, atol=1e-7)
    np.testing.assert_allclose(symmetric_quat_distance(q2, q1, name), d, atol=1e-9)  # symmetric in q1, q2
    # but NOT invariant under the group acting on the microscope side (left product) in general
    g = group_quaternions(name)[1]
    assert np.median(np.abs(symmetric_quat_distance(q1, multiply(g, q2), name) - d)) > 1e-3


def test_c1_is_the_plain_distance_and_bad_names_are_refused():
    q1, q2 = uniform_quaternions(50, seed=3), uniform_quaternions(50, seed=4)
    np.testing.assert_allclose(symmetric_quat_distance(q1, q2, "C1"), quat_distance(q1, q2), atol=1e-12)
    np.testing.assert_allclose(symmetric_quat_distance(q1[0], q2, "c2").shape, (50,))  # broadcast, any case
    for bad in ["O", "I2", "D1", "C0", "C-2"]:
        with pytest.raises(ValueError, match="symmetry"):
            group_quaternions(bad)


def test_pairs_use_the_symmetry_aware_distance():
    from orirec.store.pairs import sample_random_pairs, sample_uniform_pairs

    q = uniform_quaternions(1200, seed=5)
    protein = np.repeat(np.array([0, 1], dtype=np.int32), 600)
    groups = ["C1", "D2"]
    for sampler in (sample_random_pairs, sample_uniform_pairs):
        i, j, d = sampler(q, protein, 3000, seed=1, symmetry=groups)
        assert np.all(protein[i] == protein[j])
        sym = protein[i] == 1
        np.testing.assert_allclose(d[sym], symmetric_quat_distance(q[i[sym]], q[j[sym]], "D2"), atol=1e-9)
        np.testing.assert_allclose(d[~sym], quat_distance(q[i[~sym]], q[j[~sym]]), atol=1e-12)
        assert d[sym].max() < 2.1 < d[~sym].max()  # D2 caps the distance near 2.09 rad
    _, _, d_none = sample_random_pairs(q, protein, 100, seed=1)
    _, _, d_c1 = sample_random_pairs(q, protein, 100, seed=1, symmetry=["C1", "C1"])
    np.testing.assert_array_equal(d_none, d_c1)
    with pytest.raises(ValueError, match="protein indices"):
        sample_random_pairs(q, protein, 10, seed=1, symmetry=["C2"])


def _c2_map(tmp_path):
    """An MRC of the pseudo-protein made C2-symmetric about the particle z axis (indexed [z, y, x])."""
    from orirec.structures import load_volume, write_map

    vol, _ = load_volume("pseudo:3", 32, 3.0)
    rotated = np.roll(np.flip(vol, axis=(1, 2)), 1, axis=(1, 2))  # (x, y) -> (-x, -y) about index L//2
    path = tmp_path / "c2.mrc"
    write_map(path, (vol + rotated) / 2, 3.0)
    return path


def test_c2_store_gives_identical_images_for_q_and_q_times_g(tmp_path, monkeypatch):
    from orirec.config import SimulateConfig
    from orirec.simulate.shards import make_projector
    from orirec.simulate.to_store import simulate_to_store
    from orirec.store import open_store, reference_volume

    monkeypatch.setenv("ORIREC_CACHE", str(tmp_path / "cache"))
    cfg = SimulateConfig(
        inputs=[str(_c2_map(tmp_path))], n_per_structure=24, box_px=32, pixel_size_A=3.0, shard_size=8, symmetry="c2"
    )
    simulate_to_store(cfg, tmp_path / "c2.zarr")
    store = open_store(tmp_path / "c2.zarr")
    assert store.symmetries == ["C2"] and store.symmetry(0) == "C2"
    assert store.proteins[0]["symmetry"] == "C2"
    proj = make_projector(reference_volume(store.group, 0), cfg)  # the store's own projector
    q = store.quaternions[:8]
    g = group_quaternions("C2")[1]
    same = proj.project(multiply(q, g)).numpy()
    other = proj.project(multiply(g, q)).numpy()  # the group acting on the wrong (microscope) side
    images = store.images[:8]
    scale = np.abs(images).max()
    np.testing.assert_allclose(same, images, atol=2e-3 * scale)
    assert np.abs(other - images).max() > 0.1 * scale


def test_symmetry_axis_is_found_and_manifest_hints_are_used(tmp_path):
    from orirec.config import SimulateConfig
    from orirec.geometry import quat_to_matrix
    from orirec.simulate.to_store import simulate_to_store
    from orirec.store import open_store, reference_volume
    from orirec.structures import read_map, write_map
    from orirec.structures.symmetry_frame import rotate_volume, symmetry_correlation

    vol, _ = read_map(_c2_map(tmp_path))
    tilted = rotate_volume(vol, quat_to_matrix(np.array([0.9, 0.3, -0.2, 0.25])))  # 2-fold axis now off z
    assert symmetry_correlation(tilted, "C2") < 0.8
    write_map(tmp_path / "tilted.mrc", tilted, 3.0)
    write_map(tmp_path / "asym.mrc", vol + rotate_volume(vol, quat_to_matrix(np.array([0.8, 0.6, 0, 0]))), 3.0)
    (tmp_path / "set.csv").write_text("id,file,symmetry_hint\nt,tilted.mrc,C2\na,c2.mrc,\n")
    cfg = SimulateConfig(inputs=[str(tmp_path / "set.csv")], n_per_structure=8, box_px=32, pixel_size_A=3.0)
    simulate_to_store(cfg, tmp_path / "s.zarr")
    store = open_store(tmp_path / "s.zarr")
    assert store.symmetries == ["C2", "C1"]  # the hint, then the global default
    assert symmetry_correlation(reference_volume(store.group, 0), "C2") > 0.95  # rotated into the C2 frame
    frame = np.array(store.proteins[0]["symmetry_frame"])
    np.testing.assert_allclose(frame @ frame.T, np.eye(3), atol=1e-9)
    assert not np.allclose(frame, np.eye(3)) and "symmetry_frame" not in store.proteins[1]
    # a declared group the density does not have is refused, naming the file, before anything is written
    bad = SimulateConfig(inputs=[str(tmp_path / "asym.mrc")], n_per_structure=8, box_px=32, symmetry="C3")
    with pytest.raises(ValueError, match=r"asym\.mrc: declared symmetry C3 not found"):
        simulate_to_store(bad, tmp_path / "bad.zarr")
    assert not (tmp_path / "bad.zarr").exists()
    # ... but a manifest's hint the density does not show is advice: a warning, and the protein stored as C1
    (tmp_path / "hint.csv").write_text("id,file,symmetry_hint\na,asym.mrc,C3\n")
    hinted = SimulateConfig(inputs=[str(tmp_path / "hint.csv")], n_per_structure=8, box_px=32, pixel_size_A=3.0)
    with pytest.warns(UserWarning, match=r"asym\.mrc: declared symmetry C3 not found"):
        simulate_to_store(hinted, tmp_path / "hint.zarr")
    store = open_store(tmp_path / "hint.zarr")
    assert store.symmetries == ["C1"] and store.proteins[0]["symmetry_hint_rejected"] == "C3"


def test_dihedral_frame_is_found_in_a_rotated_d3_volume():
    from orirec.geometry import quat_to_matrix
    from orirec.structures import load_volume
    from orirec.structures.symmetry_frame import align_to_symmetry, rotate_volume, symmetry_correlation

    vol, _ = load_volume("pseudo:4", 32, 3.0)
    d3 = np.mean([rotate_volume(vol, g) for g in quat_to_matrix(group_quaternions("D3"))], axis=0)
    assert symmetry_correlation(d3, "D3") > 0.95 and symmetry_correlation(vol, "D3") < 0.5
    R = quat_to_matrix(np.array([0.7, -0.2, 0.5, 0.4]) / np.linalg.norm([0.7, -0.2, 0.5, 0.4]))
    tilted = rotate_volume(d3, R)
    assert symmetry_correlation(tilted, "D3") < 0.5
    aligned, frame, cc = align_to_symmetry(tilted, "D3")
    assert cc > 0.9 and symmetry_correlation(aligned, "D3") == pytest.approx(cc)
    # the frame undoes R up to an element of the group's normalizer: its n-fold axis is R's image of z
    np.testing.assert_allclose(np.abs(frame @ R[:, 2]), [0, 0, 1], atol=0.03)

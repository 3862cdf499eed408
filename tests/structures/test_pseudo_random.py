"""Synthetic proteins of random shape and size (``pseudo-random:SEED``), for training diversity."""

import numpy as np
import pytest

from orirec.structures.inputs import expand_inputs
from orirec.structures.load import load_volume, source_kind
from orirec.structures.pseudo_random import ATOMS_RANGE, _rg_A, random_pseudo_protein


def _rg(coords: np.ndarray) -> float:
    return float(np.sqrt(((coords - coords.mean(0)) ** 2).sum(1).mean()))


def test_random_pseudo_proteins_are_seeded_and_span_protein_sizes():
    a, b = random_pseudo_protein(5), random_pseudo_protein(5)
    assert np.array_equal(a.coords_A, b.coords_A)
    proteins = [random_pseudo_protein(s) for s in range(12)]
    sizes = np.array([len(p.coords_A) for p in proteins])
    assert sizes.min() >= 0.9 * ATOMS_RANGE[0] and sizes.max() <= 1.1 * ATOMS_RANGE[1]
    assert sizes.max() > 5 * sizes.min()  # small and large ones
    ratio = np.array([_rg(p.coords_A) / _rg_A(len(p.coords_A)) for p in proteins])
    assert np.all((ratio > 0.95) & (ratio < 1.35)), ratio  # as compact as proteins, some elongated
    shapes = [np.linalg.eigvalsh(np.cov(p.coords_A.T)) for p in proteins]
    aspects = np.array([np.sqrt(e[-1] / e[0]) for e in shapes])
    assert aspects.max() - aspects.min() > 0.5  # not one layout rescaled


def test_pseudo_random_sources_expand_and_load():
    assert expand_inputs(["pseudo-random:3-5", "pseudo:1"]) == [
        "pseudo-random:3", "pseudo-random:4", "pseudo-random:5", "pseudo:1",
    ]  # fmt: skip
    assert source_kind("pseudo-random:7") == "pseudo"
    vol, info = load_volume("pseudo-random:7", 32, 6.0)
    assert vol.shape == (32, 32, 32) and vol.sum() > 0
    assert info["name"] == "pseudo-random7" and info["n_atoms"] == len(random_pseudo_protein(7).coords_A)
    for bad in ("pseudo-random:x", "pseudo-random:5-2", "pseudo-random:"):
        with pytest.raises(ValueError, match="pseudo-random"):
            expand_inputs([bad])

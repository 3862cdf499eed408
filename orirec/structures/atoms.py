"""Atomic models in: PDB / mmCIF (optionally gzipped) read with gemmi into a small :class:`Atoms` record."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["Atoms", "read_atoms"]


@dataclass(frozen=True)
class Atoms:
    """Heavy atoms of one model.

    Attributes:
        coords_A: (n, 3) float64 Cartesian coordinates (x, y, z) in Å.
        atomic_number: (n,) int atomic numbers Z.
        mass: (n,) float64 atomic masses in Da.
    """

    coords_A: np.ndarray
    atomic_number: np.ndarray
    mass: np.ndarray

    def __post_init__(self) -> None:
        c = np.asarray(self.coords_A, dtype=np.float64)
        if c.ndim != 2 or c.shape[1] != 3:
            raise ValueError(f"Atoms.coords_A must have shape (n, 3), got {c.shape}")
        z = np.asarray(self.atomic_number, dtype=np.int64)
        m = np.asarray(self.mass, dtype=np.float64)
        if z.shape != (c.shape[0],) or m.shape != (c.shape[0],):
            raise ValueError("Atoms: atomic_number and mass must have shape (n,) matching coords_A")
        object.__setattr__(self, "coords_A", c)
        object.__setattr__(self, "atomic_number", z)
        object.__setattr__(self, "mass", m)

    def __len__(self) -> int:
        return int(self.coords_A.shape[0])

    def center_of_mass_A(self) -> np.ndarray:
        """Mass-weighted centre of mass (x, y, z) in Å."""
        return (self.coords_A * self.mass[:, None]).sum(0) / self.mass.sum()

    def radius_A(self) -> float:
        """Largest distance (Å) of an atom centre from the mass-weighted centre of mass."""
        return float(np.linalg.norm(self.coords_A - self.center_of_mass_A(), axis=1).max())


def read_atoms(path: str | Path) -> Atoms:
    """Read the heavy atoms of the first model of a PDB or mmCIF file (``.gz`` accepted).

    Hydrogens (and deuterium) and water molecules are skipped; alternate conformations are reduced
    to the first one.

    Args:
        path: PDB (``.pdb``, ``.ent``) or mmCIF (``.cif``, ``.mmcif``) file, optionally gzipped.

    Returns:
        :class:`Atoms` with coordinates in Å.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file cannot be parsed, or it holds no (non-hydrogen, non-water) atoms.
    """
    import gemmi

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"structure file not found: {p}")
    try:
        st = gemmi.read_structure(str(p))
    except Exception as exc:  # gemmi raises RuntimeError / ValueError / OSError with a short reason
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"could not read structure {p}: {reason}") from None
    if len(st) == 0:
        raise ValueError(f"{p}: structure has no atoms")
    st.remove_alternative_conformations()
    model = st[0]
    coords: list[tuple[float, float, float]] = []
    znum: list[int] = []
    mass: list[float] = []
    for chain in model:
        for res in chain:
            if res.is_water():
                continue
            for atom in res:
                el = atom.element
                if el.is_hydrogen or el.atomic_number <= 0:
                    continue
                pos = atom.pos
                coords.append((pos.x, pos.y, pos.z))
                znum.append(el.atomic_number)
                mass.append(el.weight)
    if not coords:
        raise ValueError(f"{p}: structure has no atoms")
    return Atoms(np.asarray(coords), np.asarray(znum), np.asarray(mass))

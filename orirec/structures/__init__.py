"""Layer 1 structures: PDB/mmCIF/MRC in, centred density maps out (plus a synthetic asymmetric protein)."""

from orirec.structures.atoms import Atoms, read_atoms
from orirec.structures.density import atoms_to_density, gaussian_sigma_A, volume_radius_A
from orirec.structures.load import file_sha256, load_volume, source_kind
from orirec.structures.maps import prepare_map, read_map, write_map
from orirec.structures.pseudo import pseudo_protein

__all__ = [
    "Atoms",
    "atoms_to_density",
    "file_sha256",
    "gaussian_sigma_A",
    "load_volume",
    "prepare_map",
    "pseudo_protein",
    "read_atoms",
    "read_map",
    "source_kind",
    "volume_radius_A",
    "write_map",
]

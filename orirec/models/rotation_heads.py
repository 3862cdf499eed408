"""Direct orientation regression (layer 2): rotation heads on top of an image (or subvolume) encoder.

Three representations of the predicted rotation ``R`` (particle → microscope, DESIGN §2):

- ``"6d"``: two 3-vectors turned into a rotation by Gram–Schmidt (Zhou et al. 2019, "On the continuity
  of rotation representations"); continuous, so a network can regress it well.
- ``"quat"``: a 4-vector normalized to a unit quaternion (scalar-first; q and -q give the same R).
- ``"euler"``: three angles, RELION ZYZ ``(rot, tilt, psi)`` in rad (discontinuous, the weak baseline).

Every head ends in a (B, 3, 3) rotation matrix, so all three are trained with the same geodesic loss.
"""

from __future__ import annotations

from typing import Any, cast

import torch
from torch import nn

__all__ = [
    "REPRESENTATIONS",
    "RotationRegressor",
    "euler_zyz_to_matrix_t",
    "geodesic_loss",
    "gram_schmidt_6d",
    "quat_to_matrix_t",
]

REPRESENTATIONS = {"6d": 6, "quat": 4, "euler": 3}


def gram_schmidt_6d(x: torch.Tensor) -> torch.Tensor:
    """Map (B, 6) to proper rotations (B, 3, 3): Gram–Schmidt on the two 3-vectors, third = cross product.

    The columns of the result are ``b1, b2, b3``; det = +1. Continuous wherever the two vectors are
    linearly independent.
    """
    if x.shape[-1] != 6:
        raise ValueError(f"gram_schmidt_6d: expected (..., 6), got {tuple(x.shape)}")
    a1, a2 = x[..., :3], x[..., 3:]
    b1 = a1 / a1.norm(dim=-1, keepdim=True).clamp_min(1e-8)
    a2 = a2 - (b1 * a2).sum(-1, keepdim=True) * b1
    b2 = a2 / a2.norm(dim=-1, keepdim=True).clamp_min(1e-8)
    b3 = torch.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)


def quat_to_matrix_t(q: torch.Tensor) -> torch.Tensor:
    """Unit quaternions (..., 4), scalar-first (normalized here), to rotation matrices (..., 3, 3).

    Same convention as :func:`orirec.geometry.quat_to_matrix`.
    """
    q = q / q.norm(dim=-1, keepdim=True).clamp_min(1e-8)
    w, x, y, z = q.unbind(-1)
    rows = [
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ]  # fmt: skip
    return torch.stack(rows, dim=-1).reshape(*q.shape[:-1], 3, 3)


def _rz(a: torch.Tensor) -> torch.Tensor:
    c, s, o, i = torch.cos(a), torch.sin(a), torch.zeros_like(a), torch.ones_like(a)
    return torch.stack([c, -s, o, s, c, o, o, o, i], -1).reshape(*a.shape, 3, 3)


def _ry(a: torch.Tensor) -> torch.Tensor:
    c, s, o, i = torch.cos(a), torch.sin(a), torch.zeros_like(a), torch.ones_like(a)
    return torch.stack([c, o, s, o, i, o, -s, o, c], -1).reshape(*a.shape, 3, 3)


def euler_zyz_to_matrix_t(angles: torch.Tensor) -> torch.Tensor:
    """RELION ZYZ Euler angles (..., 3) = (rot, tilt, psi) in rad to rotation matrices (..., 3, 3).

    ``R = R_z(-psi) R_y(-tilt) R_z(-rot)`` (RELION composes passive rotations), the convention of
    :func:`orirec.geometry.euler_to_matrix` (checked by the tests).
    """
    rot, tilt, psi = angles.unbind(-1)
    return _rz(-psi) @ _ry(-tilt) @ _rz(-rot)


def geodesic_loss(r_pred: torch.Tensor, r_true: torch.Tensor) -> torch.Tensor:
    """Mean geodesic angle (rad) between rotation matrices (B, 3, 3); cos clamped for finite gradients."""
    cos = ((r_pred.transpose(-1, -2) @ r_true).diagonal(dim1=-2, dim2=-1).sum(-1) - 1.0) / 2.0
    return torch.arccos(cos.clamp(-1 + 1e-6, 1 - 1e-6)).mean()


class RotationRegressor(nn.Module):
    """An encoder (images or subvolumes → features (B, F)) followed by a small MLP rotation head.

    Args:
        encoder: any module mapping the input batch to (B, ``encoder.feature_dim``) features
            (e.g. :func:`orirec.models.build_model` or :class:`orirec.models.encoder3d.Encoder3D`).
        representation: "6d", "quat" or "euler" (see the module docstring).
        hidden: width of the head's hidden layer.
    ``forward`` returns rotation matrices (B, 3, 3); ``raw`` the head's un-mapped output.
    """

    def __init__(self, encoder: nn.Module, representation: str = "6d", hidden: int = 128) -> None:
        super().__init__()
        if representation not in REPRESENTATIONS:
            raise ValueError(f"representation: unknown {representation!r}; choose one of {sorted(REPRESENTATIONS)}")
        self.encoder, self.representation = encoder, representation
        feat = int(cast(Any, encoder).feature_dim)
        self.head = nn.Sequential(
            nn.Linear(feat, hidden), nn.ReLU(), nn.Linear(hidden, REPRESENTATIONS[representation])
        )

    @property
    def config(self) -> dict[str, Any]:
        """The head's settings (the encoder keeps its own ``config``)."""
        return {"representation": self.representation, "hidden": self.head[0].out_features}

    def raw(self, x: torch.Tensor) -> torch.Tensor:
        """The head's output (B, 6 | 4 | 3) before it is mapped to a rotation."""
        return self.head(self.encoder(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Predicted rotation matrices (B, 3, 3)."""
        out = self.raw(x)
        if self.representation == "6d":
            return gram_schmidt_6d(out)
        if self.representation == "quat":
            return quat_to_matrix_t(out)
        return euler_zyz_to_matrix_t(out)

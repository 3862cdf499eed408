"""Direct Fourier inversion: insert central slices of the images into a padded 3D Fourier grid.

Convention (DESIGN §2): the image of orientation R is the line integral along microscope z of the
rotated volume ``vol_rot(r) = vol(R^T r)``, coordinates in voxels relative to index ``L // 2``;
volumes are indexed ``[z, y, x]``, images ``[y, x]``. By the Fourier slice theorem the 2D FFT of an
image at frequency ``(kx, ky)`` is the 3D FFT of the volume at ``R^T (kx, ky, 0)``. A shift applied
at image formation, ``out[y, x] = img[y - dy, x - dx]`` with ``shifts_px = (dx, dy)``, is undone by
the conjugate phase ramp.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from orirec.geometry import group_quaternions, multiply, quat_to_matrix

__all__ = ["FourierSums", "insert_images", "reconstruct", "reconstruct_half_maps", "volume_from_sums"]

DT = torch.float32  # working precision of the insertion (sums are symmetrized in float64)


def _check_inputs(
    images: np.ndarray, quaternions: np.ndarray, shifts_px: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    img = np.asarray(images)
    q = np.asarray(quaternions, dtype=np.float64)
    if img.ndim != 3 or img.shape[1] != img.shape[2] or img.shape[0] == 0:
        raise ValueError(f"images: expected a non-empty (N, L, L) stack, got shape {img.shape}")
    if q.shape != (img.shape[0], 4):
        raise ValueError(f"quaternions: expected shape ({img.shape[0]}, 4), got {q.shape}")
    if not np.all(np.isfinite(q)) or not np.all(np.isfinite(img)):
        raise ValueError("images/quaternions: contain NaN or inf")
    sh = None
    if shifts_px is not None:
        sh = np.asarray(shifts_px, dtype=np.float64)
        if sh.shape != (img.shape[0], 2) or not np.all(np.isfinite(sh)):
            raise ValueError(f"shifts_px: expected finite values of shape ({img.shape[0]}, 2), got {sh.shape}")
    return img, q, sh


@dataclass
class FourierSums:
    """Fourier insertion sums of a set of images (Hermitian-symmetrized): ``num`` (P, P, P) complex128 and
    ``wgt`` (P, P, P) float64 on the padded grid (``P = pad * box_px``, fft order). Sums of disjoint image sets
    add (``a + b``): a map-reduce over shards, or a running average (``sums.scaled(decay) + new``), gives the map
    of all their images with :func:`volume_from_sums`."""

    num: torch.Tensor
    wgt: torch.Tensor
    box_px: int
    pad: int

    def __add__(self, other: FourierSums) -> FourierSums:
        if (self.box_px, self.pad) != (other.box_px, other.pad):
            raise ValueError(f"Fourier sums of boxes {self.box_px}/{other.box_px} px, pads {self.pad}/{other.pad}")
        return FourierSums(self.num + other.num, self.wgt + other.wgt, self.box_px, self.pad)

    def scaled(self, factor: float) -> FourierSums:
        """The sums with every image's weight multiplied by ``factor`` (older images fade in a running average)."""
        return FourierSums(self.num * factor, self.wgt * factor, self.box_px, self.pad)


def insert_images(
    images: np.ndarray,
    quaternions: np.ndarray,
    shifts_px: np.ndarray | None = None,
    pad: int = 2,
    batch_size: int = 128,
    device: str | torch.device = "cpu",
    symmetry: str | None = None,
) -> FourierSums:
    """The Fourier insertion sums of images at their orientations (see :func:`reconstruct` for the arguments).

    Each padded image's 2D FFT (origin at the particle centre) is inserted at particle-frame frequencies
    ``R^T (kx, ky, 0)`` (|k| < pad*L/2) with trilinear weights; with a point group ``symmetry`` (Cn, Dn; axes
    as in :mod:`orirec.geometry.symmetry`), at those of every orientation ``q g`` that gives the same image.
    """
    img, q, sh = _check_inputs(images, quaternions, shifts_px)
    if int(pad) != pad or pad < 1:
        raise ValueError(f"pad: expected an integer >= 1, got {pad}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    dev = torch.device(device)
    n_img, L = img.shape[0], img.shape[1]
    P = int(pad) * L
    c = L // 2
    # Half-plane of 2D frequencies (rfft2: kx >= 0, ky in fft order) inside the sphere |k| < P/2. The
    # other half follows from Hermitian symmetry, applied once to the 3D sums; the kx = 0 column holds
    # both members of its +-k pairs, so it enters with half weight.
    ky1 = np.fft.fftfreq(P, d=1.0 / P)
    kx1 = np.arange(P // 2 + 1, dtype=np.float64)
    kyy, kxx = np.meshgrid(ky1, kx1, indexing="ij")
    keep = np.flatnonzero((kxx**2 + kyy**2).ravel() < (P / 2) ** 2)
    kx = torch.as_tensor(kxx.ravel()[keep], dtype=DT, device=dev)
    ky = torch.as_tensor(kyy.ravel()[keep], dtype=DT, device=dev)
    half = torch.where(kx == 0, 0.5, 1.0).to(DT)
    keep_t = torch.as_tensor(keep, device=dev)
    acc = torch.zeros((P**3, 3), dtype=DT, device=dev)  # real, imag, weight
    rots = [quat_to_matrix(multiply(q, g)) for g in group_quaternions(symmetry)]  # the identity first
    step = max(1, min(int(batch_size), (1 << 21) // max(1, keep.size)))
    for s in range(0, n_img, step):
        b = torch.as_tensor(img[s : s + step], dtype=DT, device=dev)
        padded = torch.zeros((b.shape[0], P, P), dtype=DT, device=dev)
        padded[:, :L, :L] = b
        padded = torch.roll(padded, shifts=(-c, -c), dims=(1, 2))  # particle centre to index 0
        ft = torch.fft.rfft2(padded).reshape(b.shape[0], -1)[:, keep_t]  # (B, M)
        if sh is not None:
            d = torch.as_tensor(sh[s : s + step], dtype=DT, device=dev)
            phase = 2.0 * np.pi / P * (d[:, :1] * kx[None] + d[:, 1:] * ky[None])
            ft = ft * torch.polar(torch.ones_like(phase), phase)
        vals = torch.stack([ft.real, ft.imag, torch.ones_like(ft.real)], -1) * half[None, :, None]
        for rot in rots:
            r = torch.as_tensor(rot[s : s + step], dtype=DT, device=dev)
            pts = kx[None, :, None] * r[:, None, 0, :] + ky[None, :, None] * r[:, None, 1, :]  # (B, M, 3) x,y,z
            _splat(acc, pts.reshape(-1, 3), vals.reshape(-1, 3), P)
    acc = acc.to(torch.float64).reshape(P, P, P, 3)
    mirror = torch.roll(torch.flip(acc, dims=(0, 1, 2)), shifts=(1, 1, 1), dims=(0, 1, 2))  # value at -k
    num = torch.complex(acc[..., 0] + mirror[..., 0], acc[..., 1] - mirror[..., 1])
    return FourierSums(num, acc[..., 2] + mirror[..., 2], L, int(pad))


def volume_from_sums(sums: FourierSums, wiener: float = 1e-3) -> np.ndarray:
    """The (L, L, L) float32 volume ``[z, y, x]`` of Fourier insertion sums: the weighted average
    ``F = S / (W + wiener * mean W)``, inverse transformed, cropped and divided by the real-space transform of
    the trilinear kernel (``sinc^2`` per axis)."""
    if wiener < 0:
        raise ValueError(f"wiener must be >= 0, got {wiener}")
    L, P, wgt = sums.box_px, sums.pad * sums.box_px, sums.wgt
    c = L // 2
    pos = wgt > 0
    mean_w = wgt[pos].mean() if bool(pos.any()) else torch.tensor(1.0, dtype=torch.float64)
    grid = sums.num / (wgt + float(wiener) * mean_w + 1e-300)
    vol = torch.fft.ifftn(grid).real
    vol = torch.roll(vol, shifts=(c, c, c), dims=(0, 1, 2))[:L, :L, :L]
    corr = torch.as_tensor(np.sinc((np.arange(L) - c) / P) ** 2, dtype=torch.float64, device=vol.device)
    vol = vol / (corr[:, None, None] * corr[None, :, None] * corr[None, None, :])
    return vol.to(torch.float32).cpu().numpy()


def reconstruct(
    images: np.ndarray,
    quaternions: np.ndarray,
    shifts_px: np.ndarray | None = None,
    pad: int = 2,
    wiener: float = 1e-3,
    batch_size: int = 128,
    device: str | torch.device = "cpu",
    symmetry: str | None = None,
) -> np.ndarray:
    """Reconstruct an (L, L, L) float32 volume ``[z, y, x]`` from images and their orientations.

    Parameters
    ----------
    images: (N, L, L) projections ``[y, x]`` (line integrals, voxel units).
    quaternions: (N, 4) unit quaternions (scalar-first) of ``R`` (particle -> microscope frame).
    shifts_px: optional (N, 2) shifts ``(dx, dy)`` in pixels that were applied to the images
        (content moved by +shift); they are undone by a Fourier phase ramp.
    pad: padding factor of the Fourier grid (``pad * L`` per axis).
    wiener: regularization relative to the mean inserted weight: ``F = S / (W + wiener * mean W)``.
    batch_size: images per insertion batch.
    device: torch device.
    symmetry: point group (Cn, Dn) the map is made to have: each image is inserted at every orientation
        that gives the same image (default C1).

    :func:`insert_images` then :func:`volume_from_sums`.
    """
    if wiener < 0:
        raise ValueError(f"wiener must be >= 0 and batch_size >= 1, got {wiener}, {batch_size}")
    return volume_from_sums(insert_images(images, quaternions, shifts_px, pad, batch_size, device, symmetry), wiener)


def _splat(acc: torch.Tensor, pts: torch.Tensor, vals: torch.Tensor, P: int) -> None:
    """Trilinear scatter of rows ``vals`` (K, 3) at frequencies ``pts`` (K, 3) (x, y, z) into a periodic
    (P, P, P) grid in fft order, flattened ``[z, y, x]`` into ``acc`` (P^3, 3)."""
    base = torch.floor(pts)
    frac = pts - base
    base = base.to(torch.int64)
    for dz in (0, 1):
        wz = frac[:, 2] if dz else 1.0 - frac[:, 2]
        iz = torch.remainder(base[:, 2] + dz, P) * (P * P)
        for dy in (0, 1):
            wzy = wz * (frac[:, 1] if dy else 1.0 - frac[:, 1])
            izy = iz + torch.remainder(base[:, 1] + dy, P) * P
            for dx in (0, 1):
                w = wzy * (frac[:, 0] if dx else 1.0 - frac[:, 0])
                acc.index_add_(0, izy + torch.remainder(base[:, 0] + dx, P), vals * w[:, None])


def reconstruct_half_maps(
    images: np.ndarray,
    quaternions: np.ndarray,
    shifts_px: np.ndarray | None = None,
    seed: int = 0,
    **kw,
) -> tuple[np.ndarray, np.ndarray]:
    """Two independent reconstructions from a seeded random split of the images into halves.

    Keyword arguments go to :func:`reconstruct`. Returns (v1, v2), each (L, L, L) float32.
    """
    img, q, sh = _check_inputs(images, quaternions, shifts_px)
    if img.shape[0] < 2:
        raise ValueError(f"images: need at least 2 images for half maps, got {img.shape[0]}")
    return tuple(  # type: ignore[return-value]
        reconstruct(img[h], q[h], None if sh is None else sh[h], **kw) for h in half_split(img.shape[0], seed)
    )


def half_split(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The seeded split of ``n`` images into two halves (sorted row indices) used for half-maps."""
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[: n // 2]), np.sort(perm[n // 2 :])

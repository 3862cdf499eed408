"""The figures of a run report (matplotlib, Agg backend; each function writes one PNG and returns its path).

Angles on axes are in radians (distances) or degrees (errors); FSC frequencies in 1/Å.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

DPI = 100


def _figure(*args, **kwargs):
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt, plt.figure(*args, **kwargs)


def _save(plt, fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def plot_loss_curves(history: list[dict[str, Any]], path: Path) -> Path:
    """Training loss and validation MAE (rad) per epoch."""
    plt, fig = _figure(figsize=(6, 4))
    ax = fig.add_subplot(111)
    epochs = [h.get("epoch", k + 1) for k, h in enumerate(history)]
    for key, label in (
        ("train_loss", "train loss"),
        ("val_loss", "validation loss"),
        ("val_mae", "validation MAE (rad)"),
    ):
        ys = [h.get(key) for h in history]
        if any(isinstance(y, (int, float)) for y in ys):
            ax.plot(epochs, [np.nan if y is None else y for y in ys], marker="o", label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss / error")
    ax.set_title("training history")
    ax.legend()
    ax.grid(alpha=0.3)
    return _save(plt, fig, path)


def plot_distance_scatter(d_q: np.ndarray, d_p: np.ndarray, path: Path, max_points: int = 5000, seed: int = 0) -> Path:
    """Learned distance d_p against the true distance d_q (rad) on the recovery graph's edges."""
    if len(d_q) > max_points:
        keep = np.random.default_rng(seed).choice(len(d_q), max_points, replace=False)
        d_q, d_p = d_q[keep], d_p[keep]
    plt, fig = _figure(figsize=(5, 5))
    ax = fig.add_subplot(111)
    ax.scatter(d_q, d_p, s=2, alpha=0.3)
    ax.plot([0, np.pi], [0, np.pi], "k--", lw=1, label="d_p = d_q")
    ax.set_xlim(0, np.pi)
    ax.set_ylim(0, np.pi)
    ax.set_xlabel("true distance d_q (rad)")
    ax.set_ylabel("learned distance d_p (rad)")
    ax.set_title(f"d_p vs d_q ({len(d_q)} edges)")
    ax.legend(loc="upper left")
    return _save(plt, fig, path)


def plot_view_directions(v_true: np.ndarray, v_est: np.ndarray, err_deg: np.ndarray, path: Path) -> Path:
    """True and recovered (registered) viewing directions (unit vectors) on the sphere, Mollweide projection."""
    plt, fig = _figure(figsize=(10, 3.6))
    for k, (v, title) in enumerate(((v_true, "true viewing directions"), (v_est, "recovered (registered)"))):
        ax = fig.add_subplot(1, 2, k + 1, projection="mollweide")
        lon = np.arctan2(v[:, 1], v[:, 0])
        lat = np.arcsin(np.clip(v[:, 2], -1, 1))
        sc = ax.scatter(lon, lat, c=err_deg, s=4, cmap="viridis", vmin=0, vmax=max(30.0, float(np.median(err_deg))))
        ax.set_title(title)
        ax.set_xticklabels([])  # longitude labels crowd a small panel
        ax.grid(alpha=0.3)
    fig.colorbar(sc, ax=fig.axes, shrink=0.7, label="err_rot (°)")
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def plot_error_histogram(errors_deg: dict[str, np.ndarray], path: Path) -> Path:
    """Histograms of the per-image orientation errors (degrees)."""
    plt, fig = _figure(figsize=(6, 4))
    ax = fig.add_subplot(111)
    bins = np.linspace(0, 180, 61)
    for key, err in errors_deg.items():
        ax.hist(err, bins=bins, alpha=0.5, label=f"{key} (median {np.median(err):.1f}°)")
    ax.set_xlabel("error (°)")
    ax.set_ylabel("images")
    ax.set_title("orientation errors")
    ax.legend()
    return _save(plt, fig, path)


def plot_fsc(curves: dict[str, dict[str, list[float]]], path: Path) -> Path:
    """FSC curves against spatial frequency (1/Å), with the 0.5 and 0.143 thresholds."""
    plt, fig = _figure(figsize=(6, 4))
    ax = fig.add_subplot(111)
    for label, c in curves.items():
        ax.plot(c["freq_per_A"], c["curve"], label=label)
    for t in (0.5, 0.143):
        ax.axhline(t, color="grey", ls=":", lw=1)
    ax.set_xlabel("spatial frequency (1/Å)")
    ax.set_ylabel("FSC")
    ax.set_ylim(-0.1, 1.05)
    ax.set_title("Fourier shell correlation")
    ax.legend()
    return _save(plt, fig, path)


def plot_central_slices(
    volumes: dict[str, np.ndarray], pixel_size_A: float, path: Path, registered: bool = False
) -> Path:
    """The three central slices (z, y, x) of each volume, one row per volume; ``registered``: the volumes share
    one frame (the reconstruction was registered onto the reference), so the rows compare slice by slice."""
    plt, fig = _figure(figsize=(9, 3 * len(volumes)))
    for r, (label, vol) in enumerate(volumes.items()):
        c = np.array(vol.shape) // 2
        for k, (sl, name) in enumerate(((vol[c[0]], "z"), (vol[:, c[1]], "y"), (vol[:, :, c[2]], "x"))):
            ax = fig.add_subplot(len(volumes), 3, 3 * r + k + 1)
            ax.imshow(sl, cmap="gray", origin="lower")
            if r == 0:
                ax.set_title(f"central {name} slice")
            if k == 0:
                ax.set_ylabel(label)
            ax.set_xticks([])
            ax.set_yticks([])
    frame = (
        "the reconstruction registered onto the reference (evaluation only), same frame"
        if registered
        else "the reconstruction lies in the recovered frame, so it may be a global rotation of any reference"
    )
    fig.suptitle(f"maps (voxel {pixel_size_A:.3g} Å); {frame}", fontsize=9)
    return _save(plt, fig, path)

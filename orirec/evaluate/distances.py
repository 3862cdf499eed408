"""Distance quality of a trained encoder on a store (DESIGN §6): MAE/RMSE of d_p − d_q (rad) overall, per d_q
bin and per protein, split into proteins the model was trained on ("seen") and the others ("unseen").

Pairs are drawn within each protein with d_q uniform on [0, π] (symmetry-aware when the store records a
point group per protein), seeded; only the images of the drawn pairs are embedded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from orirec.evaluate.metrics import distance_metrics
from orirec.models import edge_distances, embed_images, load_model
from orirec.store import open_store
from orirec.store.pairs import sample_uniform_pairs

__all__ = [
    "evaluate_model_distances",
    "distances_markdown",
    "model_and_truth",
    "protein_key",
    "protein_name",
    "scatter_figure",
    "trained_protein_ids",
    "write_outputs",
]


def _summary(d_p: np.ndarray, d_q: np.ndarray, n_bins: int) -> dict[str, Any]:
    m: dict[str, Any] = distance_metrics(d_p, d_q, n_bins)
    return {
        "n_pairs": int(len(d_p)),
        "mae_rad": m["mae"],
        "rmse_rad": m["rmse"],
        "bias_rad": m["bias"],
        "mae_deg": float(np.degrees(m["mae"])),
        "bin_edges_rad": [float(x) for x in m["bin_edges"]],
        "bin_mae_rad": [None if not np.isfinite(x) else float(x) for x in m["bin_mae"]],
        "bin_rmse_rad": [None if not np.isfinite(x) else float(x) for x in m["bin_rmse"]],
        "bin_count": [int(c) for c in m["bin_count"]],
    }


def protein_key(info: dict[str, Any], index: int) -> str:
    """Identity of a protein for seen/unseen: its source checksum (sha256), else id, name, source, else index."""
    for k in ("sha256", "id", "name", "source"):
        if info.get(k):
            return str(info[k])
    return str(index)


def protein_name(info: dict[str, Any], index: int) -> str:
    """Display name of a protein: id, name or source (else its index)."""
    for k in ("id", "name", "source"):
        if info.get(k):
            return str(info[k])
    return str(index)


def trained_protein_ids(meta: dict[str, Any]) -> set[str] | None:
    """Protein keys (:func:`protein_key`) of the store a checkpoint was trained on (from its saved config), or
    None if unknown."""
    store = ((meta.get("extra") or {}).get("config") or {}).get("store")
    if not store:
        return None
    try:
        return {protein_key(p, k) for k, p in enumerate(open_store(store).proteins)}
    except (FileNotFoundError, ValueError, KeyError):
        return None


def model_and_truth(model_path: str | Path, store_path: str | Path):
    """Load a checkpoint and a store with ground truth for it: ``(model, meta, store)``; a clear ValueError when
    the image sizes differ or the store's quaternions are unknown."""
    model, meta = load_model(model_path)
    store = open_store(store_path)
    if model.in_size != store.box_px:
        raise ValueError(f"{store_path}: images are {store.box_px} px, model {model_path} expects {model.in_size} px")
    if not np.isfinite(store.quaternions).all():
        raise ValueError(f"{store_path}: quaternions have NaN/inf values; evaluating a model needs ground truth")
    return model, meta, store


def evaluate_model_distances(
    model_path: str | Path,
    store_path: str | Path,
    pairs_per_protein: int = 2000,
    n_bins: int = 6,
    seed: int = 0,
    seen_ids: set[str] | None = None,
    batch_size: int = 256,
) -> dict[str, Any]:
    """Evaluate the checkpoint ``model_path`` on the store ``store_path``.

    ``seen_ids`` are the protein keys (:func:`protein_key`) the model was trained on; by default they are read
    from the training store recorded in the checkpoint (unknown if that store is gone). Returns a JSON-ready dict with
    ``overall``, ``seen``, ``unseen`` (each MAE/RMSE/bias in rad and per-bin values) and ``proteins`` (one
    row per protein: index, id, seen, n_images, n_pairs, mae_rad, rmse_rad, ...), plus ``d_p``/``d_q`` arrays
    (rad) under ``pairs`` for plots.
    """
    model, meta, store = model_and_truth(model_path, store_path)
    q, protein = store.quaternions, store.protein
    if seen_ids is None:
        seen_ids = trained_protein_ids(meta)
    infos = store.proteins
    symmetry = store.symmetries or None
    rows, all_i, all_j, all_d = [], [], [], []
    for p in np.unique(protein):
        members = np.flatnonzero(protein == p)
        if len(members) < 2:
            continue
        i, j, d = sample_uniform_pairs(
            q[members],
            np.zeros(len(members), dtype=np.int64),
            pairs_per_protein,
            [seed, 31, int(p)],
            symmetry=[symmetry[int(p)]] if symmetry and int(p) < len(symmetry) else None,
        )
        all_i.append(members[i])
        all_j.append(members[j])
        all_d.append(d)
    if not all_d:
        raise ValueError(f"{store_path}: no protein has two images to pair")
    gi, gj, d_q = np.concatenate(all_i), np.concatenate(all_j), np.concatenate(all_d)
    rows_needed = np.unique(np.concatenate([gi, gj]))
    emb = embed_images(model, store.load_images(rows_needed), batch_size=batch_size)
    d_p = edge_distances(model, emb, np.searchsorted(rows_needed, gi), np.searchsorted(rows_needed, gj))
    pair_protein = protein[gi]
    flags = np.zeros(len(d_p), dtype=bool)
    for p in np.unique(pair_protein):
        sel = pair_protein == p
        info = infos[int(p)] if int(p) < len(infos) else {}
        pid = protein_name(info, int(p))
        seen = None if seen_ids is None else protein_key(info, int(p)) in seen_ids
        flags[sel] = bool(seen)
        s = _summary(d_p[sel], d_q[sel], n_bins)
        rows.append({"protein": int(p), "id": pid, "seen": seen, "n_images": int((protein == p).sum()), **s})
    out = {
        "model": str(model_path),
        "store": str(store_path),
        "family": getattr(model, "family", "vgg"),
        "distance": model.distance_kind,
        "overall": _summary(d_p, d_q, n_bins),
        "seen": _summary(d_p[flags], d_q[flags], n_bins) if seen_ids is not None and flags.any() else None,
        "unseen": _summary(d_p[~flags], d_q[~flags], n_bins) if seen_ids is not None and (~flags).any() else None,
        "seen_known": seen_ids is not None,
        "proteins": rows,
        "pairs": {"d_p": d_p, "d_q": d_q, "protein": pair_protein},
    }
    return out


def distances_markdown(result: dict[str, Any]) -> str:
    """Markdown: a summary table (overall / seen / unseen) and one row per protein (MAE, RMSE in degrees)."""
    lines = ["| set | pairs | MAE (°) | RMSE (°) | bias (°) |", "|---|---:|---:|---:|---:|"]
    for name in ("overall", "seen", "unseen"):
        s = result.get(name)
        if s:
            lines.append(
                f"| {name} | {s['n_pairs']} | {np.degrees(s['mae_rad']):.2f} | {np.degrees(s['rmse_rad']):.2f} "
                f"| {np.degrees(s['bias_rad']):.2f} |"
            )
    edges = result["overall"]["bin_edges_rad"]
    lines += ["", "| d_q bin (°) | pairs | MAE (°) |", "|---|---:|---:|"]
    for k, (c, m) in enumerate(zip(result["overall"]["bin_count"], result["overall"]["bin_mae_rad"], strict=True)):
        mae = "–" if m is None else f"{np.degrees(m):.2f}"
        lines.append(f"| {np.degrees(edges[k]):.0f}–{np.degrees(edges[k + 1]):.0f} | {c} | {mae} |")
    lines += ["", "| protein | id | seen | images | pairs | MAE (°) | RMSE (°) |", "|---:|---|---|---:|---:|---:|---:|"]
    for r in result["proteins"]:
        seen = "?" if r["seen"] is None else ("yes" if r["seen"] else "no")
        lines.append(
            f"| {r['protein']} | {r['id']} | {seen} | {r['n_images']} | {r['n_pairs']} "
            f"| {np.degrees(r['mae_rad']):.2f} | {np.degrees(r['rmse_rad']):.2f} |"
        )
    return "\n".join(lines) + "\n"


def scatter_figure(d_p: np.ndarray, d_q: np.ndarray, title: str = "learned vs true distance", max_points: int = 5000):
    """A matplotlib figure (Agg): d_p against d_q (rad) with the diagonal; at most ``max_points`` points."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    d_p, d_q = np.asarray(d_p), np.asarray(d_q)
    if len(d_p) > max_points:
        keep = np.random.default_rng(0).choice(len(d_p), max_points, replace=False)
        d_p, d_q = d_p[keep], d_q[keep]
    fig, ax = plt.subplots(figsize=(4.5, 4.5), dpi=100)
    ax.scatter(d_q, d_p, s=3, alpha=0.3, lw=0)
    ax.plot([0, np.pi], [0, np.pi], "k--", lw=1)
    ax.set(xlim=(0, np.pi), ylim=(0, np.pi), xlabel="d_q (rad)", ylabel="d_p (rad)", title=title)
    fig.tight_layout()
    return fig


def write_outputs(result: dict[str, Any], out_dir: str | Path) -> dict[str, Path]:
    """Write ``distances.json``, ``distances.md`` and ``dp_vs_dq.png`` into ``out_dir``; returns their paths."""
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "distances.json", "markdown": out_dir / "distances.md", "plot": out_dir / "dp_vs_dq.png"}
    plain = {k: v for k, v in result.items() if k != "pairs"}
    tmp = paths["json"].with_suffix(".json.tmp")
    tmp.write_text(json.dumps(plain, indent=2))
    tmp.replace(paths["json"])
    paths["markdown"].write_text(distances_markdown(result))
    fig = scatter_figure(result["pairs"]["d_p"], result["pairs"]["d_q"])
    fig.savefig(paths["plot"])
    plt.close(fig)
    return paths

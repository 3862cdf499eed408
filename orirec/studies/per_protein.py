"""Per-protein results of a trained distance model on a store (issue 9): where does it fail?

For each protein of the store, the first ``images_per_protein`` images are embedded once; the model's d_p on
pairs drawn with d_q uniform on [0, π] (symmetry-aware) gives the distance MAE, and the model's d_p on the full
pair graph of those images (and of in-plane rotated copies) goes through the same recovery and gauge resolution
as a real run (:func:`orirec.recover.solve.solve_orientations`); the result is scored against the ground
truth (``err_o4``, ``err_rot``, ``err_dir`` medians in degrees, ``acc20``). Each row also holds the protein's
size (atoms), its radius of gyration (Å, from the store's reference volume) and its point group.

Rows are appended to ``per_protein.partial.jsonl`` as they finish, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from orirec.config import RecoverConfig
from orirec.evaluate.distances import model_and_truth, protein_key, protein_name, trained_protein_ids
from orirec.evaluate.metrics import orientation_metrics
from orirec.models import edge_distances, embed_images
from orirec.recover.solve import consistency_score, inplane_copies, solve_orientations
from orirec.store import reference_volume
from orirec.store.pairs import sample_uniform_pairs
from orirec.studies.tables import markdown_table

__all__ = [
    "chance_err_rot_deg",
    "protein_rg_A",
    "radius_of_gyration_A",
    "per_protein_results",
    "summarize_rows",
    "write_per_protein",
]

#: columns of the table: (key, markdown header, format); units in the keys (rad, Å) or headers (°)
TABLE = [
    ("protein", "#", "{}"), ("id", "protein", "{}"), ("seen", "seen", "{}"), ("symmetry", "sym", "{}"),
    ("n_atoms", "atoms", "{}"), ("rg_A", "Rg (Å)", "{:.1f}"), ("n_images", "images", "{}"),
    ("dist_mae_rad", "distance MAE (rad)", "{:.3f}"), ("err_o4_median", "err_o4 (°)", "{:.1f}"),
    ("err_rot_median", "err_rot (°)", "{:.1f}"), ("err_dir_median", "err_dir (°)", "{:.1f}"),
    ("acc20", "acc@20", "{:.0%}"), ("chance_err_rot_deg", "chance err_rot (°)", "{:.0f}"),
    ("time_s", "time (s)", "{:.1f}"),
]  # fmt: skip
COLUMNS = [k for k, _, _ in TABLE]


def radius_of_gyration_A(volume: np.ndarray, pixel_size_A: float) -> float:
    """Density-weighted radius of gyration (Å) of a volume (negative density counts as zero)."""
    rho = np.clip(np.asarray(volume, dtype=np.float64), 0.0, None)
    total = rho.sum()
    if total <= 0:
        return float("nan")
    grid = np.indices(rho.shape).reshape(3, -1).astype(np.float64)
    w = rho.ravel() / total
    centre = grid @ w
    r2 = ((grid - centre[:, None]) ** 2).sum(axis=0)
    return float(np.sqrt(r2 @ w) * pixel_size_A)


def protein_rg_A(store, protein: int) -> float | None:
    """Radius of gyration (Å) of a store's reference volume of ``protein``; None when the store holds no volumes."""
    if "volumes" not in store.group:
        return None
    return radius_of_gyration_A(reference_volume(store.group, protein), store.pixel_size_A)


def _settings(model_path, store_path, images_per_protein, steps, n_starts, pairs_per_protein, seed) -> dict:
    return {
        "model": str(Path(model_path).resolve()),
        "store": str(Path(store_path).resolve()),
        "images_per_protein": int(images_per_protein),
        "steps": int(steps),
        "n_starts": int(n_starts),
        "pairs_per_protein": int(pairs_per_protein),
        "seed": int(seed),
        "recovery": "solve_orientations with the gauge",  # rows of runs before the gauge are not resumed
    }


def _done_rows(partial: Path, settings: dict) -> dict[int, dict]:
    """Rows of an earlier run with the same settings (a run with other settings starts afresh)."""
    if not partial.is_file():
        return {}
    lines = partial.read_text().splitlines()
    if not lines or json.loads(lines[0]) != settings:
        partial.unlink()
        return {}
    rows = {}
    for line in lines[1:]:
        try:
            row = json.loads(line)
        except json.JSONDecodeError:  # a row cut by an interruption
            continue
        rows[int(row["protein"])] = row
    return rows


def per_protein_results(
    model_path: str | Path,
    store_path: str | Path,
    out_dir: str | Path,
    images_per_protein: int = 150,
    proteins: list[int] | None = None,
    steps: int = 200,
    n_starts: int = 10,
    pairs_per_protein: int = 2000,
    seed: int = 0,
    progress: Callable[[int, int], Any] | None = None,
) -> list[dict[str, Any]]:
    """One row per protein (see the module docstring); ``proteins`` (store indices) limits the set.

    ``progress(done, total)`` is called after each protein. Resumes from ``out_dir/per_protein.partial.jsonl``.
    """
    if images_per_protein < 3:
        raise ValueError(f"images_per_protein: need at least 3 images to recover, got {images_per_protein}")
    model, meta, store = model_and_truth(model_path, store_path)
    protein = store.protein
    present = np.unique(protein)
    chosen = present if proteins is None else np.asarray(sorted(set(int(p) for p in proteins)))
    missing = np.setdiff1d(chosen, present)
    if missing.size:
        raise ValueError(f"{store_path}: proteins {missing.tolist()[:10]} have no images")
    seen_ids = trained_protein_ids(meta)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    partial = out_dir / "per_protein.partial.jsonl"
    settings = _settings(model_path, store_path, images_per_protein, steps, n_starts, pairs_per_protein, seed)
    done = _done_rows(partial, settings)
    if not done:
        partial.write_text(json.dumps(settings) + "\n")
    infos, groups = store.proteins, store.symmetries
    rows = []
    for k, p in enumerate(chosen):
        p = int(p)
        if p not in done:
            info = infos[p] if p < len(infos) else {}
            group = groups[p] if p < len(groups) else "C1"
            row = _one_protein(model, store, p, images_per_protein, steps, n_starts, pairs_per_protein, seed, group)
            row.update(
                {
                    "id": protein_name(info, p),
                    "seen": None if seen_ids is None else protein_key(info, p) in seen_ids,
                    "n_atoms": info.get("n_atoms"),
                    "rg_A": protein_rg_A(store, p),
                }
            )
            row["chance_err_rot_deg"] = chance_err_rot_deg(row["n_images"], symmetry=group)
            with partial.open("a") as fh:
                fh.write(json.dumps(row) + "\n")
            done[p] = row
        rows.append({c: done[p].get(c) for c in COLUMNS})
        if progress is not None:
            progress(k + 1, len(chosen))
    return rows


def _one_protein(model, store, p: int, n_max: int, steps: int, n_starts: int, n_pairs: int, seed: int, group: str):
    t0 = time.perf_counter()
    members = np.flatnonzero(store.protein == p)[:n_max]
    q_true = store.quaternions[members]
    images = store.load_images(members)
    pi, pj, d_q = sample_uniform_pairs(
        q_true, np.zeros(len(members), np.int64), n_pairs, [seed, 41, p], symmetry=[group]
    )
    feats = embed_images(model, images)
    dist_mae = float(np.mean(np.abs(edge_distances(model, feats, pi, pj) - d_q)))
    cfg = RecoverConfig(graph="full", steps=steps, n_starts=n_starts, seed=seed)  # the gauge too, as a real run

    def features(copies):  # the images' embeddings are the ones above: only the copies are new
        return feats if copies is None else np.concatenate([feats, embed_images(model, inplane_copies(images, copies))])

    solved = solve_orientations(
        len(members), cfg, features=features,
        distances=lambda emb, i, j: edge_distances(model, emb, i, j),
        gauge_score=consistency_score(images, cfg),
    )  # fmt: skip
    m = orientation_metrics(solved.quaternions, q_true, group)
    return {
        "protein": p,
        "symmetry": group,
        "n_images": len(members),
        "dist_mae_rad": dist_mae,
        **{k: m[k] for k in ("err_o4_median", "err_rot_median", "err_dir_median", "acc20")},
        "time_s": time.perf_counter() - t0,
    }


@functools.lru_cache(maxsize=64)
def chance_err_rot_deg(n_images: int = 150, repeats: int = 5, symmetry: str = "C1") -> float:
    """Median ``err_rot`` (°) of random orientations against random truth (after the same registration, up to the
    point group ``symmetry``), averaged over ``repeats`` seeded draws: the level of a recovery that learned nothing
    (for 150 images 121° for C1, 96° for C2, 76° for D2, 57° for D7: more copies, lower chance)."""
    from orirec.geometry import uniform_quaternions

    draws = [orientation_metrics(uniform_quaternions(n_images, seed=s), uniform_quaternions(n_images, seed=1000 + s),
                                 symmetry) for s in range(repeats)]  # fmt: skip
    return float(np.mean([d["err_rot_median"] for d in draws]))


def summarize_rows(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Medians over proteins of the per-protein medians (deg), mean acc20 and mean distance MAE (rad)."""
    if not rows:
        return {}
    col = lambda k: np.asarray([r[k] for r in rows], dtype=np.float64)  # noqa: E731
    return {
        "n_proteins": len(rows),
        "err_o4_median": float(np.median(col("err_o4_median"))),
        "err_rot_median": float(np.median(col("err_rot_median"))),
        "err_dir_median": float(np.median(col("err_dir_median"))),
        "acc20": float(np.mean(col("acc20"))),
        "dist_mae_rad": float(np.mean(col("dist_mae_rad"))),
    }


def write_per_protein(out_dir: str | Path, rows: list[dict[str, Any]], title: str = "") -> dict[str, str]:
    """Write ``per_protein.{csv,md,json,png}`` (the plot: err_rot median vs radius of gyration and vs distance MAE).

    Returns the paths written.
    """
    import pandas as pd

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize_rows(rows)
    pd.DataFrame(rows, columns=COLUMNS).to_csv(out / "per_protein.csv", index=False)
    head = f"# {title}\n\n" if title else ""
    foot = "\n\nOver proteins: " + ", ".join(f"{k} {v:.3g}" for k, v in summary.items()) + "\n"
    (out / "per_protein.md").write_text(head + markdown_table(rows, TABLE) + foot)
    (out / "per_protein.json").write_text(json.dumps({"rows": rows, "summary": summary}, indent=2))
    paths = {"csv": str(out / "per_protein.csv"), "md": str(out / "per_protein.md")}
    if rows:
        paths["png"] = str(_plot(out / "per_protein.png", rows, title))
    return paths


def _plot(path: Path, rows: list[dict[str, Any]], title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    err = np.asarray([r["err_rot_median"] for r in rows], dtype=np.float64)
    rg = np.asarray([np.nan if r["rg_A"] is None else r["rg_A"] for r in rows], dtype=np.float64)
    mae = np.degrees(np.asarray([r["dist_mae_rad"] for r in rows], dtype=np.float64))
    sym = np.asarray([r["symmetry"] != "C1" for r in rows])
    chance = chance_err_rot_deg(int(np.median([r["n_images"] for r in rows])))
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for ax, x, label in ((axes[0], rg, "radius of gyration (Å)"), (axes[1], mae, "distance MAE (°)")):
        ax.scatter(x[~sym], err[~sym], s=18, label="C1")
        if sym.any():
            ax.scatter(x[sym], err[sym], s=30, marker="^", label="symmetric")
        ax.set_xlabel(label)
        ax.set_ylabel("err_rot median (°)")
        ax.axhline(20, color="grey", lw=0.8, ls="--")
        ax.axhline(chance, color="red", lw=0.8, ls=":", label="random orientations (C1)")
        ax.legend(frameon=False)
    if title:
        fig.suptitle(title)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

"""Data-scaling study (issue 9): how does a distance model do on unseen proteins as it sees more structures?

For each count N of training structures, a model is trained with the same budget (TrainConfig) on the first N
proteins of one seeded permutation of the training store's proteins (so the subsets are nested), then scored:

- ``val_mae_rad``: distance MAE (d_q uniform on [0, π]) on the validation store (unseen proteins of the ``val``
  split) when one is given; ``train_heldout_mae_rad``: the training run's best MAE on held-out images of its own
  proteins;
- ``test_mae_rad``: the same MAE on the test store (unseen proteins of the ``test`` split);
- end-to-end on the test store (:mod:`orirec.studies.per_protein`): orientations recovered per protein from the
  model's distances, medians over proteins of the per-protein ``err_rot`` / ``err_o4`` medians (°), mean acc@20.

Every N writes into ``OUT/n{N:03d}`` (training checkpoints, per-protein table); a finished N is not redone, so
an interrupted study resumes. ``OUT/scaling.{json,csv,md,png}`` are rewritten after each N.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from orirec.config import TrainConfig
from orirec.evaluate.distances import evaluate_model_distances
from orirec.pipeline.stages import stage_train, write_json
from orirec.store import open_store
from orirec.studies.per_protein import chance_err_rot_deg, per_protein_results, summarize_rows, write_per_protein
from orirec.studies.tables import markdown_table

__all__ = ["DEFAULT_COUNTS", "DEFAULT_TRAIN", "run_scaling", "training_subsets", "write_scaling"]

DEFAULT_COUNTS = (1, 10, 30, 100, 275)

#: the training budget of every point when no config is given (= pipelines/scaling-train.yaml): fresh images
#: every step with CTF and shifts, 24 epochs × 40 steps of 128 images
DEFAULT_TRAIN: dict[str, Any] = {
    "model": {"family": "vgg", "preset": "small", "downsample": 2},
    "epochs": 24,
    "batch_size": 128,
    "pairs_per_epoch": 5120,
    "optimizer": "adam",
    "lr": 1e-3,
    "on_the_fly": True,
    "augment": {"ctf": True, "shift_px": 2.0},
    "val_pairs": 2000,
    "num_threads": 2,
    "seed": 0,
}

TABLE = [
    ("n_structures", "structures", "{}"), ("train_time_s", "train (s)", "{:.0f}"),
    ("train_heldout_mae_rad", "held-out MAE (rad)", "{:.3f}"), ("val_mae_rad", "val MAE (rad)", "{:.3f}"),
    ("test_mae_rad", "test MAE (rad)", "{:.3f}"), ("test_err_rot_median", "test err_rot (°)", "{:.1f}"),
    ("test_err_o4_median", "test err_o4 (°)", "{:.1f}"), ("test_acc20", "test acc@20", "{:.0%}"),
    ("test_proteins_recovered", "proteins recovered", "{}"),
]  # fmt: skip


def training_subsets(n_proteins: int, counts, seed: int) -> dict[int, list[int]]:
    """Nested protein subsets: count N → the first N indices of one seeded permutation (counts clipped to
    ``n_proteins``, duplicates dropped), sorted."""
    if n_proteins < 1:
        raise ValueError("training store: has no proteins")
    order = np.random.default_rng([seed, 51]).permutation(n_proteins)
    out: dict[int, list[int]] = {}
    for c in counts:
        if int(c) < 1:
            raise ValueError(f"counts: must be >= 1, got {c}")
        n = min(int(c), n_proteins)
        out.setdefault(n, sorted(int(p) for p in order[:n]))
    return out


def _test_proteins(store_path: Path, k: int | None, seed: int) -> list[int] | None:
    """A seeded choice of ``k`` test proteins for the end-to-end recovery (None: all)."""
    present = np.unique(open_store(store_path).protein)
    if k is None or k >= len(present):
        return None
    return sorted(int(p) for p in np.random.default_rng([seed, 52]).choice(present, size=k, replace=False))


def run_scaling(
    train_store: str | Path,
    test_store: str | Path,
    out_dir: str | Path,
    train_cfg: TrainConfig,
    counts=DEFAULT_COUNTS,
    val_store: str | Path | None = None,
    images_per_protein: int = 150,
    recover_proteins: int | None = 12,
    recover_steps: int = 200,
    pairs_per_protein: int = 1000,
    seed: int = 0,
    tracker=None,
    say: Callable[[str], Any] = print,
    progress: bool = False,
    protein_progress: Callable[[int, int], Any] | None = None,
) -> list[dict[str, Any]]:
    """Run the study (module docstring); returns one row per count.

    ``tracker``: an :class:`orirec.tracking.Tracker` (one MLflow run per count and a summary run); ``progress``:
    training progress bars; ``protein_progress(done, total)``: called as test proteins are recovered.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    train_store, test_store = Path(train_store), Path(test_store)
    train = open_store(train_store)
    subsets = training_subsets(len(np.unique(train.protein)), counts, seed)
    test_sel = _test_proteins(test_store, recover_proteins, seed)
    infos = train.proteins
    rows: list[dict[str, Any]] = []
    for n, subset in subsets.items():
        run_dir = out / f"n{n:03d}"
        result_file = run_dir / "scaling_row.json"
        if result_file.is_file():
            rows.append(json.loads(result_file.read_text()))
            say(f"{n} structures: done before, kept ({result_file})")
            continue
        say(f"{n} structures: training ({train_cfg.epochs} epochs × {train_cfg.pairs_per_epoch} pairs)")
        cfg = train_cfg.model_copy(update={"proteins": subset})
        res = stage_train(cfg, train_store, run_dir, resume=True, progress=progress)
        ckpt = Path(res["checkpoint"])
        row: dict[str, Any] = {
            "n_structures": n,
            "proteins": [str(infos[p].get("id", p)) if p < len(infos) else str(p) for p in subset],
            "train_time_s": float(res.get("wall_time_s", res.get("time_s", float("nan")))),
            "train_heldout_mae_rad": float(res["best_val_mae"]),
            "best_epoch": int(res["best_epoch"]),
        }
        t0 = time.perf_counter()
        if val_store is not None:
            row["val_mae_rad"] = evaluate_model_distances(ckpt, val_store, pairs_per_protein, seed=seed)["overall"][
                "mae_rad"
            ]
        row["test_mae_rad"] = evaluate_model_distances(ckpt, test_store, pairs_per_protein, seed=seed)["overall"][
            "mae_rad"
        ]
        say(f"{n} structures: recovering test proteins ({images_per_protein} images each)")
        per = per_protein_results(
            ckpt, test_store, run_dir, images_per_protein, test_sel, steps=recover_steps, seed=seed,
            progress=protein_progress,
        )  # fmt: skip
        write_per_protein(run_dir, per, f"{n} training structures on {test_store.name}")
        summ = summarize_rows(per)
        row.update({f"test_{k}": v for k, v in summ.items() if k != "n_proteins"})
        row["test_proteins_recovered"] = summ["n_proteins"]
        row["eval_time_s"] = time.perf_counter() - t0
        result_file.write_text(json.dumps(row, indent=2))
        rows.append(row)
        say(
            f"{n} structures: test MAE {row['test_mae_rad']:.3f} rad, err_rot {row['test_err_rot_median']:.1f}°, "
            f"acc@20 {row['test_acc20']:.0%}"
        )
        write_scaling(out, rows)
        _track(tracker, row, run_dir)
    write_scaling(out, rows)
    if tracker is not None and tracker.enabled:
        with tracker.run("scaling-summary"):
            tracker.log_params({"train_store": str(train_store), "test_store": str(test_store), "counts": str(counts)})
            tracker.log_artifact(out / "scaling.png")
            tracker.log_artifact(out / "scaling.md")
    return rows


def _track(tracker, row: dict[str, Any], run_dir: Path) -> None:
    if tracker is None or not tracker.enabled:
        return
    with tracker.run(f"scaling-n{row['n_structures']:03d}"):
        tracker.log_params({"n_structures": row["n_structures"], "proteins": ",".join(row["proteins"])[:500]})
        tracker.log_metrics({k: v for k, v in row.items() if isinstance(v, int | float) and np.isfinite(v)})
        for name in ("per_protein.md", "per_protein.png"):
            if (run_dir / name).is_file():
                tracker.log_artifact(run_dir / name)


def write_scaling(out_dir: str | Path, rows: list[dict[str, Any]]) -> None:
    """Write ``scaling.{json,csv,md,png}``: the table and the curves (MAE and err_rot vs structures, log x)."""
    import pandas as pd

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = sorted(rows, key=lambda r: r["n_structures"])
    write_json(out / "scaling.json", {"rows": rows})
    flat = [{k: v for k, v in r.items() if not isinstance(v, list)} for r in rows]
    pd.DataFrame(flat).to_csv(out / "scaling.csv", index=False)
    (out / "scaling.md").write_text(markdown_table(rows, TABLE) + "\n")
    if rows:
        _plot(out / "scaling.png", rows)


def _plot(path: Path, rows: list[dict[str, Any]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = [r["n_structures"] for r in rows]
    get = lambda k: [r.get(k, np.nan) for r in rows]  # noqa: E731
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for key, label in (("train_heldout_mae_rad", "training proteins (held-out images)"),
                       ("val_mae_rad", "val split (unseen)"), ("test_mae_rad", "test split (unseen)")):  # fmt: skip
        a.plot(n, get(key), "o-", label=label)
    a.axhline(np.pi / 4, color="grey", ls="--", lw=0.8, label="chance (constant π/2)")
    a.set(xscale="log", xlabel="training structures", ylabel="distance MAE (rad)", title="distance error")
    a.legend(frameon=False, fontsize=8)
    b.plot(n, get("test_err_rot_median"), "o-", label="err_rot")
    b.plot(n, get("test_err_o4_median"), "s--", label="err_o4")
    b.axhline(20, color="grey", ls=":", lw=0.8)
    b.axhline(chance_err_rot_deg(), color="red", ls=":", lw=0.8, label="random orientations (err_rot)")
    b.set(xscale="log", xlabel="training structures", ylabel="median over test proteins (°)", title="orientations")
    b.legend(frameon=False, fontsize=8)
    fig.savefig(path, dpi=110)
    plt.close(fig)

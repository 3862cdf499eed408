"""``orirec compare``: every orientation estimator on the same test images, scored by DESIGN §6.

Distance estimators (siamese, euclidean, oracle, oracle-noise) go through the same recovery as a real run:
in-plane rotated copies join the pair graph, orientations are recovered from the distances
(:func:`orirec.recover.solve.solve_orientations`, which also resolves the detector-frame gauge without ground
truth). Orientation estimators (regress-*, cvae, aspire-cl, ab-initio) give orientations directly. For every
estimator: ``err_o4``, ``err_rot`` (registered by a global rotation and handedness only), ``err_dir``, acc@10/20,
R² of the registered rotation matrices, wall times, and FSC: between half-maps reconstructed with the estimator's
own orientations (no ground truth) and against the reference map with the orientations registered to the truth
(evaluation only, as ``orirec evaluate``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from orirec.config import ReconstructConfig, RecoverConfig
from orirec.estimators import EstimatorData, TrainingData, estimator_names, make_estimator
from orirec.estimators.aspire_cl import aspire_available
from orirec.estimators.cryodrgn_abinit import cryodrgn_available
from orirec.estimators.cryodrgn_abinit import missing_reason as cryodrgn_missing_reason
from orirec.estimators.relion_sgd import relion_available
from orirec.evaluate.metrics import orientation_metrics, symmetric_reference
from orirec.geometry import quat_to_matrix, register_rotation
from orirec.pipeline.refine import refine_step
from orirec.pipeline.stages import write_json
from orirec.reconstruct import fsc_report, reconstruct, reconstruct_half_maps
from orirec.store import open_store, reference_volume
from orirec.store.orientations import write_orientations
from orirec.studies.tables import markdown_table

__all__ = ["COLUMNS", "compare_estimators", "default_estimators", "rotation_r2", "tool_missing"]

NEEDS_TRAIN = {"euclidean", "regress-6d", "regress-quat", "regress-euler", "cvae"}

#: (key, header, format) of the printed table
COLUMNS = [
    ("estimator", "estimator", "{}"),
    ("err_o4_median", "err_o4 med (°)", "{:.1f}"),
    ("err_rot_median", "err_rot med (°)", "{:.1f}"),
    ("err_rot_mean", "err_rot mean (°)", "{:.1f}"),
    ("err_dir_median", "err_dir med (°)", "{:.1f}"),
    ("acc10", "acc@10", "{:.2f}"),
    ("acc20", "acc@20", "{:.2f}"),
    ("r2", "R²", "{:.2f}"),
    ("fsc_half_0143_A", "FSC half 0.143 (Å)", "{:.1f}"),
    ("fsc_ref_05_A", "FSC ref 0.5 (Å)", "{:.1f}"),
    ("time_fit_s", "fit (s)", "{:.1f}"),
    ("time_estimate_s", "estimate (s)", "{:.1f}"),
]


def default_estimators(model: Path | None, train_store: Path | None) -> list[str]:
    """All estimators that can run with what was given: siamese needs a model, the learned ones a training
    store, aspire-cl the optional ``aspire`` package, relion-sgd RELION's ``relion_refine``, cryodrgn-abinit a
    ``cryodrgn`` executable (``make cryodrgn-env``)."""
    out = []
    for name in estimator_names():
        if (name == "siamese" and model is None) or (name in NEEDS_TRAIN and train_store is None):
            continue
        if tool_missing(name) is None:
            out.append(name)
    return out


def tool_missing(name: str) -> str | None:
    """One line on why estimator ``name`` cannot run here (a peer whose tool is absent), or None when it can."""
    if name == "aspire-cl" and not aspire_available():
        return "the optional package 'aspire' is not installed; pip install 'orirec[aspire]'"
    if name == "relion-sgd" and not relion_available():
        return "RELION's relion_refine is not on the PATH (Debian: apt-get install relion)"
    if name == "cryodrgn-abinit" and not cryodrgn_available():
        return cryodrgn_missing_reason()
    return None


def rotation_r2(q_est: np.ndarray, q_true: np.ndarray) -> float:
    """R² of the rotation matrices' 9 entries after registration by a global rotation and handedness."""
    q_reg, _ = register_rotation(q_est, q_true)
    a, b = quat_to_matrix(q_reg).reshape(len(q_reg), 9), quat_to_matrix(q_true).reshape(len(q_true), 9)
    return float(1.0 - np.sum((a - b) ** 2) / np.sum((b - b.mean(axis=0)) ** 2))


def _training_data(train_store: Path, n_train: int | None) -> TrainingData:
    s = open_store(train_store)
    rows = np.arange(s.n_images if n_train is None else min(n_train, s.n_images))
    q = s.quaternions[rows]
    if not np.isfinite(q).all():
        raise ValueError(f"{train_store}: a training store needs ground-truth orientations (NaN found)")
    return TrainingData(s.load_images(rows), q, s.pixel_size_A, source=str(train_store))


def _scores(images, q, q_true, ref, pixel_size_A: float, rc: ReconstructConfig, sym: str) -> dict[str, float]:
    """One row's numbers for orientations ``q``: the errors of DESIGN §6 (for point group ``sym``), R² and the
    FSCs; for a symmetric protein all three use the symmetry copies of the truth that ``q`` matches."""
    q_true = symmetric_reference(q, q_true, sym)
    return {
        **orientation_metrics(q, q_true),
        "r2": rotation_r2(q, q_true),
        **_fsc(images, q, q_true, ref, pixel_size_A, rc),
    }


def _fsc(images, q, q_true, ref, pixel_size_A: float, rc: ReconstructConfig) -> dict[str, float]:
    h1, h2 = reconstruct_half_maps(images, q, pad=rc.pad, wiener=rc.wiener, seed=rc.seed)
    half = fsc_report(h1, h2, pixel_size_A)
    out = {"fsc_half_05_A": half["fsc_05_A"], "fsc_half_0143_A": half["fsc_0143_A"]}
    if ref is not None:
        q_reg, _ = register_rotation(q, q_true)
        rep = fsc_report(reconstruct(images, q_reg, pad=rc.pad, wiener=rc.wiener), ref, pixel_size_A)
        out.update({"fsc_ref_05_A": rep["fsc_05_A"], "fsc_ref_0143_A": rep["fsc_0143_A"]})
    return out


def compare_estimators(
    store: Path,
    out_dir: Path,
    names: list[str] | None = None,
    model: Path | None = None,
    train_store: Path | None = None,
    n: int = 1650,
    n_train: int | None = 2000,
    settings: Mapping[str, Any] | None = None,
    recover_cfg: RecoverConfig | None = None,
    reconstruct_cfg: ReconstructConfig | None = None,
    tracker=None,
    log=None,
    protein: int | None = None,
) -> list[dict[str, Any]]:
    """Run each estimator of ``names`` (default :func:`default_estimators`) on the first ``n`` images of
    ``store`` (of its protein ``protein``, a store index, when given: e.g. one unseen protein of a test store);
    write ``compare.md``, ``compare.csv``, ``compare.json`` (and estimator artifacts) under ``out_dir``; log each
    estimator as a nested MLflow run of ``tracker``. Returns one row per estimator."""
    settings = dict(settings or {})
    cfg = (recover_cfg or RecoverConfig()).model_copy(update={"seed": settings.get("seed", 0)})
    rc = reconstruct_cfg or ReconstructConfig()
    names = list(names) if names else default_estimators(model, train_store)
    if not names:
        raise ValueError("compare: no estimator can run (give --model, --train-store or --estimators)")
    known = estimator_names()
    for name in names:
        if name not in known:
            raise ValueError(f"compare: unknown estimator {name!r}; choose from {', '.join(known)}")
        if name in NEEDS_TRAIN and train_store is None:
            raise ValueError(f"compare: estimator {name!r} needs a training store (--train-store STORE)")
    s = open_store(store)
    if n < 3:
        raise ValueError(f"compare: --n must be at least 3, got {n}")
    if protein is None:
        rows = np.arange(min(n, s.n_images))
    else:
        rows = np.flatnonzero(s.protein == int(protein))[:n]
        if len(rows) < 3:
            raise ValueError(f"{store}: protein {protein} has {len(rows)} images; compare needs at least 3")
    q_true = s.quaternions[rows]
    if not np.isfinite(q_true).all():
        raise ValueError(f"{store}: no ground-truth orientations to compare against")
    images = s.load_images(rows)
    ref = (
        reference_volume(s.group, int(s.protein[0]))
        if "volumes" in s.group and len(set(s.protein[rows])) == 1
        else None
    )
    data = EstimatorData(images, s.pixel_size_A, q_true, s.max_shift_px, s.ctf_params(rows))
    sym = s.rows_symmetry(rows)  # errors up to the point group of a symmetric protein
    say = log or (lambda line: None)
    skipped = {name: why for name in names if (why := tool_missing(name)) is not None}
    for name, why in skipped.items():  # a peer whose tool is absent: the others still run
        say(f"{name}: skipped ({why})")
    names = [name for name in names if name not in skipped]
    if not names:
        raise ValueError(f"compare: none of the estimators can run here ({'; '.join(skipped.values())})")
    # bad settings fail before any work
    estimators = [make_estimator(name, settings, cfg) for name in names]
    needs_train = train_store is not None and any(e.needs_training for e in estimators)  # checked above: given
    train = _training_data(Path(train_store), n_train) if needs_train and train_store is not None else None
    (out_dir / "orientations").mkdir(parents=True, exist_ok=True)  # each estimator's, for orirec refine/evaluate
    results: list[dict[str, Any]] = []
    for est in estimators:
        say(f"{est.name}: running")
        row: dict[str, Any] = {"estimator": est.name, "kind": est.kind, "gauge": est.gauge_note}
        t0 = time.perf_counter()
        if est.needs_training and train is not None:
            row.update({f"fit_{k}": v for k, v in est.fit(train).items() if k != "time_fit_s"})
        row["time_fit_s"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        est.resume_in(out_dir)  # partial work (ab initio's restarts) kept beside this protein's table
        q = est.estimate(data)
        row.update(est.summary_row())
        row["time_estimate_s"] = time.perf_counter() - t1
        row.update(_scores(images, q, q_true, ref, s.pixel_size_A, rc, sym))
        artifacts = est.save_artifacts(out_dir, data)
        if artifacts:
            row["artifacts"] = [str(p) for p in artifacts]
        write_orientations(out_dir / "orientations" / f"{est.name}.csv", rows, q)
        results.append(row)
        say(f"{est.name}: err_rot median {row['err_rot_median']:.1f}° in {row['time_estimate_s']:.1f} s")
        if cfg.refine.rounds:  # the same projection-matching refinement after every estimator: a fair table
            say(f"{est.name}+refine: running")
            t2 = time.perf_counter()
            q, info = refine_step(
                cfg.refine, images, rows, q, s.pixel_size_A, out_dir / "refine" / est.name, cfg.seed,
                store_max_shift_px=s.max_shift_px,
            )  # fmt: skip
            ref_row = {**{k: row[k] for k in ("kind", "gauge", "time_fit_s")}, "estimator": f"{est.name}+refine"}
            ref_row["time_estimate_s"] = row["time_estimate_s"] + time.perf_counter() - t2
            ref_row.update({k: v for k, v in info.items() if k != "refine_rounds"})
            ref_row.update(_scores(images, q, q_true, ref, s.pixel_size_A, rc, sym))
            write_orientations(out_dir / "orientations" / f"{est.name}+refine.csv", rows, q)
            results.append(ref_row)
            say(f"{est.name}+refine: err_rot median {ref_row['err_rot_median']:.1f}°")
    _write_outputs(results, out_dir, store, train_store, len(rows), protein, skipped)
    _track(
        tracker,
        results,
        out_dir,
        {"store": str(store), "train_store": str(train_store), "n": len(rows), "protein": protein},
    )
    return results


def _write_outputs(results, out_dir: Path, store, train_store, n: int, protein: int | None = None,
                   skipped: Mapping[str, str] | None = None) -> None:  # fmt: skip
    import pandas as pd

    which = f"first {n} images" if protein is None else f"first {n} images of protein {protein}"
    header = f"Estimators on {store} ({which}; training store {train_store or '–'})\n\n"
    notes = "\n".join([*(f"- {r['estimator']}: gauge {r['gauge']}" for r in results),
                       *(f"- {name}: skipped ({why})" for name, why in (skipped or {}).items())])  # fmt: skip
    (out_dir / "compare.md").write_text(header + markdown_table(results, COLUMNS) + "\n\n" + notes + "\n")
    flat = [{k: v for k, v in r.items() if not isinstance(v, list | dict)} for r in results]
    pd.DataFrame(flat).to_csv(out_dir / "compare.csv", index=False)
    write_json(out_dir / "compare.json", {"store": str(store), "train_store": str(train_store), "results": results,
                                          "skipped": dict(skipped or {})})  # fmt: skip


def _track(tracker, results, out_dir: Path, params: dict[str, Any]) -> None:
    if tracker is None:
        return
    with tracker.run("compare"):
        tracker.log_params(params)
        for r in results:
            with tracker.run(r["estimator"], nested=True, tags={"kind": r["kind"]}):
                tracker.log_params({"estimator": r["estimator"], "gauge": r["gauge"]})
                tracker.log_metrics(
                    {k: v for k, v in r.items() if isinstance(v, int | float) and not isinstance(v, bool)}
                )
        for name in ("compare.md", "compare.csv", "compare.json"):
            tracker.log_artifact(out_dir / name)

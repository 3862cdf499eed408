"""One HTML page per run: the key numbers next to the loss curves, d_p vs d_q, viewing directions on the
sphere, the error histogram, the FSC curves and central slices of the map (PNGs beside the page).

Everything is read from the stage outputs of a run folder, so ``orirec report RUN_DIR`` regenerates the
page at any time. A plot whose inputs are missing is left out and listed as missing on the page.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import numpy as np

from orirec.evaluate import report_plots as P
from orirec.evaluate.metrics import orientation_errors, symmetric_reference
from orirec.geometry import quat_distance, register_rotation
from orirec.geometry.quaternions import viewing_direction
from orirec.store import open_store, reference_volume
from orirec.store.orientations import read_orientations

HEADLINE = (
    "err_o4_median",
    "err_rot_median",
    "err_dir_median",
    "acc10",
    "acc20",
    "dist_mae",
    "fsc_ref_recovered_05_A",
    "fsc_ref_true_05_A",
    "fsc_half_0143_A",
)

# Writes each image's natural size into the DOM once loaded, so a headless browser can check the plots loaded.
_SIZE_SCRIPT = """<script>
window.addEventListener('load', () => {
  for (const img of document.images) {
    img.dataset.naturalWidth = img.naturalWidth;
    img.dataset.loaded = img.complete && img.naturalWidth > 0 ? 'yes' : 'no';
  }
  document.body.dataset.imagesChecked = 'yes';
});
</script>"""


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def training_history(train_dir: Path) -> list[dict[str, Any]]:
    """Per-epoch history from ``train_result.json``, else from the last checkpoint."""
    hist = _read_json(train_dir / "train_result.json").get("history")
    if hist:
        return hist
    last = train_dir / "checkpoints" / "last.pt"
    if last.is_file():
        from orirec.models import load_checkpoint

        return (load_checkpoint(last).get("extra") or {}).get("history", [])
    return []


#: the evaluation's map from orientations registered to the ground truth (the reference's frame), in its folder
REGISTERED_MAP = "map_registered.mrc"


def write_report(
    out_dir: str | Path,
    store: str | Path,
    train_dir: str | Path,
    recover_dir: str | Path,
    map_path: str | Path,
    evaluate_dir: str | Path,
    title: str = "orirec run",
) -> dict[str, Any]:
    """Write ``out_dir/report.html`` and its PNGs; returns ``{"html": path, "plots": [...], "missing": [...]}``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    train_dir, recover_dir, evaluate_dir, map_path = (
        Path(train_dir),
        Path(recover_dir),
        Path(evaluate_dir),
        Path(map_path),
    )
    plots: dict[str, Path] = {}
    missing: dict[str, str] = {}

    history = training_history(train_dir)
    if history:
        plots["loss curves"] = P.plot_loss_curves(history, out / "loss_curves.png")
    else:
        missing["loss curves"] = f"no training history in {train_dir}"

    s = open_store(store)
    orient = recover_dir / "orientations.csv"
    q_true = q = idx = None
    if orient.is_file():
        idx, q = read_orientations(orient)
        q_true = s.quaternions[idx]
        if not np.isfinite(q_true).all():
            q_true = None
    if q is not None and q_true is not None:
        assert idx is not None  # read with q
        q_true = symmetric_reference(q, q_true, s.rows_symmetry(idx))  # the copies q matches (symmetric protein)
        errs = orientation_errors(q, q_true)
        plots["orientation errors"] = P.plot_error_histogram(errs, out / "error_histogram.png")
        q_reg, _ = register_rotation(q, q_true)
        plots["viewing directions"] = P.plot_view_directions(
            viewing_direction(q_true), viewing_direction(q_reg), errs["err_rot"], out / "view_directions.png"
        )
    else:
        missing["orientation errors"] = missing["viewing directions"] = f"no orientations / ground truth ({orient})"

    graph = recover_dir / "graph.npz"
    if graph.is_file() and q_true is not None:
        g = np.load(graph)
        d_q = quat_distance(q_true[g["i"]], q_true[g["j"]])
        plots["d_p vs d_q"] = P.plot_distance_scatter(d_q, g["d_p"].astype(np.float64), out / "distance_scatter.png")
    else:
        missing["d_p vs d_q"] = f"no recovery graph or ground truth ({graph})"

    curves = _read_json(evaluate_dir / "fsc_curves.json")
    if curves:
        plots["FSC"] = P.plot_fsc(curves, out / "fsc.png")
    else:
        missing["FSC"] = f"no FSC curves in {evaluate_dir / 'fsc_curves.json'}"

    volumes = _volumes(map_path, evaluate_dir / REGISTERED_MAP, s, idx)
    if volumes:
        registered = "reconstruction (registered)" in volumes
        plots["map slices"] = P.plot_central_slices(volumes, s.pixel_size_A, out / "map_slices.png", registered)
    else:
        missing["map slices"] = f"no map at {map_path}"

    numbers = {
        **{
            f"train_{k}": v
            for k, v in _read_json(train_dir / "train_result.json").items()
            if k in ("best_val_mae", "best_epoch", "epochs_run", "time_s")
        },
        **{
            f"recover_{k}": v
            for k, v in _read_json(recover_dir / "recover_result.json").items()
            if k in ("n_images", "n_edges", "l_or", "time_s", "time_refine_s", "refine_fsc_half_0143_A")
        },
        **_read_json(evaluate_dir / "metrics.json"),
    }
    page = out / "report.html"
    page.write_text(_html(title, numbers, plots, missing, out))
    return {"html": str(page), "plots": [str(p) for p in plots.values()], "missing": sorted(missing)}


def _volumes(map_path: Path, registered_path: Path, s, idx) -> dict[str, np.ndarray]:
    """The maps to slice: with a reference, the reconstruction registered onto it (evaluation's
    ``map_registered.mrc``, same frame) beside the reference; otherwise the reconstruction as recovered."""
    from orirec.structures.maps import read_map

    ref = None
    if idx is not None and "volumes" in s.group and len(np.unique(s.protein[idx])) == 1:
        ref = reference_volume(s.group, int(s.protein[idx][0]))
    if ref is not None and registered_path.is_file():
        return {"reconstruction (registered)": read_map(registered_path)[0], "reference": ref}
    if not map_path.is_file():
        return {}
    return {"reconstruction": read_map(map_path)[0], **({"reference": ref} if ref is not None else {})}


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return html.escape(str(v))


def _html(title: str, numbers: dict[str, Any], plots: dict[str, Path], missing: dict[str, str], out: Path) -> str:
    scalars = {k: v for k, v in numbers.items() if isinstance(v, (int, float, str))}
    order = [k for k in HEADLINE if k in scalars] + sorted(k for k in scalars if k not in HEADLINE)
    rows = "\n".join(f"<tr><th>{html.escape(k)}</th><td>{_fmt(scalars[k])}</td></tr>" for k in order)
    figs = "\n".join(
        f'<figure><img src="{p.relative_to(out).as_posix()}" alt="{html.escape(name)}">'
        f"<figcaption>{html.escape(name)}</figcaption></figure>"
        for name, p in plots.items()
    )
    miss = "".join(f"<li>{html.escape(k)}: {html.escape(v)}</li>" for k, v in missing.items())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:1em 2em}} .grid{{display:flex;flex-wrap:wrap;gap:1em}}
table{{border-collapse:collapse}} th,td{{padding:2px 8px;border-bottom:1px solid #ddd;text-align:left}}
figure{{margin:0}} img{{max-width:100%}}</style>
{_SIZE_SCRIPT}</head>
<body><h1>{html.escape(title)}</h1>
<p>Errors in degrees (DESIGN §6: err_o4 after the best O(4) alignment, err_rot after registration by a global
rotation and handedness only), distances in rad, FSC resolutions in Å.</p>
<div class="grid"><table id="numbers">{rows}</table></div>
<h2>Plots</h2><div class="grid" id="plots">{figs}</div>
{f'<h2>Missing</h2><ul id="missing">{miss}</ul>' if miss else ""}
</body></html>
"""

"""``orirec evaluate``: orientation errors, distance quality and FSC against the ground truth."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from orirec.cli.common import echo_table, user_errors


def evaluate(
    store: Annotated[Path, typer.Argument(help="projection store with ground truth (STORE.zarr)")],
    orientations: Annotated[
        Path,
        typer.Option(help="orientations of the store's rows: orirec CSV or STAR (orirec's, or RELION's run_data.star)"),
    ],
    graph: Annotated[Path | None, typer.Option(help="graph.npz from orirec recover (distance quality)")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="output folder for metrics.json")] = Path("evaluate"),
) -> None:
    """Metrics of DESIGN §6 (degrees): err_o4, err_rot, err_dir, acc@10/20, distance MAE, FSC (Å).

    Example: orirec evaluate runs/demo/projections.zarr --orientations runs/demo/recover/orientations.csv

    RELION refinement of imported particles: orirec evaluate p.zarr --orientations Refine3D/job019/run_data.star
    """
    from orirec.pipeline.stages import stage_evaluate

    with user_errors():
        res = stage_evaluate(store, orientations, out, graph=graph)
    echo_table(f"metrics ({out / 'metrics.json'})", res)


def evaluate_model(
    model: Annotated[Path, typer.Argument(help="checkpoint (best.pt) written by orirec train")],
    store: Annotated[Path, typer.Argument(help="projection store with ground-truth orientations (STORE.zarr)")],
    out: Annotated[Path, typer.Option("--out", "-o", help="output folder")] = Path("evaluate-model"),
    pairs_per_protein: Annotated[int, typer.Option(help="pairs drawn per protein (d_q uniform on [0, π])")] = 2000,
    bins: Annotated[int, typer.Option(help="equal d_q bins over [0, π]")] = 6,
    seed: Annotated[int, typer.Option(help="seed of the pairs")] = 0,
) -> None:
    """Distance quality of a trained model on a store: MAE/RMSE of d_p − d_q overall, per d_q bin, per protein,
    for proteins seen in training and unseen ones (distances.json, distances.md, dp_vs_dq.png in OUT).

    Example: orirec evaluate-model runs/demo/train/checkpoints/best.pt runs/demo/test.zarr --out runs/demo/dist
    """
    from orirec.evaluate.distances import evaluate_model_distances, write_outputs

    with user_errors():
        if pairs_per_protein < 1 or bins < 1:
            raise ValueError(f"--pairs-per-protein and --bins must be >= 1, got {pairs_per_protein}, {bins}")
        res = evaluate_model_distances(model, store, pairs_per_protein=pairs_per_protein, n_bins=bins, seed=seed)
        paths = write_outputs(res, out)
    rows = {f"{name} MAE (rad)": res[name]["mae_rad"] for name in ("overall", "seen", "unseen") if res[name]}
    rows.update({f"protein {r['id']} MAE (rad)": r["mae_rad"] for r in res["proteins"][:20]})
    echo_table(f"distance quality ({paths['json']})", rows)

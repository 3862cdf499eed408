"""``orirec refine``: projection-matching refinement of any orientations of a store's images."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from orirec.cli.common import echo_table, progress_bars, user_errors


def refine(
    store: Annotated[Path, typer.Argument(help="projection store (STORE.zarr)")],
    orientations: Annotated[
        Path, typer.Argument(help="orientations of store rows: orirec CSV (recover, compare) or STAR (orirec, RELION)")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="output folder")] = Path("runs/refine"),
    rounds: Annotated[int, typer.Option(help="rounds of local search (4: the whole default schedule)")] = 4,
    resolution: Annotated[float, typer.Option(help="low-pass of the matching (Å)")] = 20.0,
    box: Annotated[int | None, typer.Option(help="matching box (px); default: pixel = resolution / 2")] = None,
    max_shift: Annotated[
        float | None, typer.Option(help="in-plane shift search (px); default: the store's recorded shift range")
    ] = None,
    seed: Annotated[int, typer.Option(help="seed of the split into half-maps")] = 0,
    progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
) -> None:
    """Refine orientations by local projection matching against gold-standard half-maps (no ground truth).

    Each round, every image tries rotations on a grid in a ball around its orientation, against projections
    of the map of the other half of the images (default radius/step: 12°/4°, 4°/1.33°, 6°/2°, 2°/0.67°).

    Writes OUT/orientations.{csv,star}, OUT/orientations_unrefined.csv and OUT/refine_result.json.
    An interrupted run resumes from OUT/refine_checkpoint.npz; more --rounds extend a finished one.

    Example: orirec refine runs/demo/projections.zarr runs/demo/recover/orientations.csv --out runs/demo/refine

    Then: orirec evaluate runs/demo/projections.zarr --orientations runs/demo/refine/orientations.csv
    """
    from orirec.config import RefineConfig, validate
    from orirec.pipeline.refine import stage_refine

    with user_errors():
        cfg = validate(
            RefineConfig,
            {"rounds": rounds, "resolution_A": resolution, "box_px": box, "max_shift_px": max_shift},
            "command line",
        )
        with progress_bars(progress) as bars:
            res = stage_refine(cfg, store, orientations, out, seed=seed, progress=bars("refine"))
    echo_table(
        f"orientations {out / 'orientations.csv'}", {k: v for k, v in res.items() if isinstance(v, (int, float))}
    )

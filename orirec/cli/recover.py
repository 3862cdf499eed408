"""``orirec recover``: orientations from learned distances."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from orirec.cli.common import echo_table, progress_bars, user_errors


def recover(
    store: Annotated[Path | None, typer.Argument(help="projection store (STORE.zarr); not with --oracle")] = None,
    model: Annotated[Path | None, typer.Option(help="model checkpoint (e.g. RUN/train/checkpoints/best.pt)")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="output folder")] = Path("runs/recover"),
    max_images: Annotated[int | None, typer.Option(help="recover the first N images")] = None,
    graph: Annotated[str, typer.Option(help="pair graph: full or knn")] = "full",
    steps: Annotated[int, typer.Option(help="refinement steps")] = 300,
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    no_gauge: Annotated[bool, typer.Option("--no-gauge", help="skip gauge resolution (DESIGN §1.3)")] = False,
    oracle: Annotated[bool, typer.Option(help="recover N random orientations from exact distances")] = False,
    n: Annotated[int, typer.Option("--n", help="with --oracle: number of orientations")] = 1000,
    distance_noise: Annotated[float, typer.Option(help="with --oracle: Gaussian noise on d (rad)")] = 0.0,
    progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
) -> None:
    """Recover orientations; writes OUT/orientations.csv, OUT/orientations.star and OUT/graph.npz.

    Example: orirec recover runs/demo/projections.zarr --model runs/demo/train/checkpoints/best.pt --out rec

    Oracle (exact distances, noise σ rad): orirec recover --oracle --n 1650 --seed 0 --distance-noise 0.2
    """
    from orirec.config import RecoverConfig, validate
    from orirec.pipeline.stages import stage_recover

    with user_errors():
        cfg = validate(
            RecoverConfig,
            {"max_images": max_images, "graph": graph, "steps": steps, "seed": seed, "gauge": not no_gauge},
            "command line",
        )
        if oracle:
            from orirec.pipeline.oracle import oracle_recover

            with progress_bars(progress) as bars:
                res = oracle_recover(n, seed=seed, distance_noise_rad=distance_noise, cfg=cfg, progress=bars("recover"))
            echo_table("oracle recovery (degrees, seconds)", res)
            return
        if store is None or model is None:
            raise ValueError("recover needs STORE and --model (or --oracle)")
        if not model.is_file():
            raise FileNotFoundError(f"{model}: no such model checkpoint")
        with progress_bars(progress) as bars:
            res = stage_recover(cfg, store, model, out, progress=bars("recover"), gauge_progress=bars("gauge"))
    echo_table(
        f"orientations {out / 'orientations.csv'}", {k: v for k, v in res.items() if isinstance(v, (int, float, str))}
    )

"""``orirec train``: learn the orientation distance from a store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from orirec.cli.common import echo_table, user_errors


def train(
    store: Annotated[Path, typer.Argument(help="projection store (STORE.zarr)")],
    out: Annotated[Path, typer.Option("--out", "-o", help="run folder for checkpoints")] = Path("runs/train"),
    epochs: Annotated[int, typer.Option(help="epochs")] = 12,
    num_workers: Annotated[int, typer.Option(help="data-parallel workers (>1 uses Ray Train)")] = 1,
    preset: Annotated[str, typer.Option(help="model size: tiny, small or paper (DESIGN §1.1)")] = "small",
    batch_size: Annotated[int, typer.Option(help="pairs per step")] = 128,
    pairs_per_epoch: Annotated[int, typer.Option(help="pairs drawn per epoch")] = 12800,
    lr: Annotated[float, typer.Option(help="learning rate")] = 1e-3,
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    on_the_fly: Annotated[
        bool, typer.Option(help="simulate fresh images every step from the store's reference volumes")
    ] = False,
    resume: Annotated[bool, typer.Option(help="continue from OUT/checkpoints/last.pt")] = False,
    progress: Annotated[bool, typer.Option(help="show progress bars")] = True,
) -> None:
    """Train the Siamese distance network; the best checkpoint is OUT/checkpoints/best.pt.

    Example: orirec train runs/demo/projections.zarr --epochs 12 --out runs/mytrain
    """
    from orirec.config import TrainConfig, validate
    from orirec.pipeline.stages import stage_train

    with user_errors():
        cfg = validate(
            TrainConfig,
            {
                "model": {"preset": preset},
                "epochs": epochs,
                "num_workers": num_workers,
                "batch_size": batch_size,
                "pairs_per_epoch": pairs_per_epoch,
                "lr": lr,
                "seed": seed,
                "on_the_fly": on_the_fly,
            },
            "command line",
        )
        res = stage_train(cfg, store, out, resume=resume, progress=progress)
    echo_table(f"trained {out}", {k: v for k, v in res.items() if isinstance(v, (int, float, str))})

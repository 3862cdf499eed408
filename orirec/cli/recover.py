"""``orirec recover``: orientations from learned distances."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from orirec.cli.common import (
    TRACK_HELP,
    TRACKING_URI_HELP,
    config_default,
    config_help,
    echo_table,
    log_outcome,
    make_tracker,
    print_line,
    progress_bars,
    tracked_run,
    tracking_done,
    user_errors,
)
from orirec.config import RecoverConfig, RefineConfig

R = RecoverConfig


@contextlib.contextmanager
def _failed_rounds() -> Iterator[None]:
    """A part that failed in partitioned recovery: one line (part, round, resume hint) and exit code 1."""
    from orirec.recover.blocks import RecoveryRoundError

    try:
        yield
    except RecoveryRoundError as e:
        print_line("[bold red]error:[/]", str(e))
        raise typer.Exit(1) from None


def recover(
    store: Annotated[Path | None, typer.Argument(help="projection store (STORE.zarr); not with --oracle")] = None,
    model: Annotated[Path | None, typer.Option(help="model checkpoint (e.g. RUN/train/checkpoints/best.pt)")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="output folder")] = Path("runs/recover"),
    max_images: Annotated[int | None, typer.Option(help=config_help(R, "max_images"))] = config_default(
        R, "max_images"
    ),
    graph: Annotated[str, typer.Option(help=config_help(R, "graph"))] = config_default(R, "graph"),
    steps: Annotated[int, typer.Option(help=config_help(R, "steps"))] = config_default(R, "steps"),
    seed: Annotated[int, typer.Option(help=config_help(R, "seed"))] = config_default(R, "seed"),
    no_gauge: Annotated[bool, typer.Option("--no-gauge", help="skip gauge resolution (DESIGN §1.3)")] = False,
    oracle: Annotated[bool, typer.Option(help="recover N random orientations from exact distances")] = False,
    n: Annotated[int, typer.Option("--n", help="with --oracle: number of orientations")] = 1000,
    distance_noise: Annotated[float, typer.Option(help="with --oracle: Gaussian noise on d (rad)")] = 0.0,
    progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
    particles: Annotated[
        Path | None, typer.Option(help="particles STAR (+ .mrcs) instead of STORE: writes OUT/particles.star, map.mrc")
    ] = None,
    pixel_size: Annotated[
        float | None, typer.Option(help="with --particles: pixel size (Å) to import at; default keeps the whole box")
    ] = None,
    num_workers: Annotated[int, typer.Option(help=config_help(R, "num_workers"))] = config_default(R, "num_workers"),
    partitions: Annotated[int | None, typer.Option(help=config_help(R, "partitions"))] = config_default(
        R, "partitions"
    ),
    rounds: Annotated[int, typer.Option(help=config_help(R, "rounds"))] = config_default(R, "rounds"),
    embedding_noise: Annotated[float, typer.Option(help="with --oracle: noise σ on the stand-in embeddings")] = 0.0,
    refine_rounds: Annotated[int, typer.Option(help=config_help(RefineConfig, "rounds"))] = config_default(
        RefineConfig, "rounds"
    ),
    refine_resolution: Annotated[float, typer.Option(help=config_help(RefineConfig, "resolution_A"))] = config_default(
        RefineConfig, "resolution_A"
    ),
    track: Annotated[bool, typer.Option("--track/--no-track", help=TRACK_HELP + "; not with --oracle")] = True,
    tracking_uri: Annotated[str | None, typer.Option(help=TRACKING_URI_HELP)] = None,
    experiment: Annotated[str, typer.Option(help="MLflow experiment")] = "orirec-recover",
) -> None:
    """Recover orientations; writes OUT/orientations.csv, OUT/orientations.star and OUT/graph.npz.

    Example: orirec recover runs/demo/projections.zarr --model runs/demo/train/checkpoints/best.pt --out rec

    Your particles: orirec recover --model best.pt --particles particles.star --out rec  (STAR with angles + map)

    Oracle (exact distances, noise σ rad): orirec recover --oracle --n 1650 --seed 0 --distance-noise 0.2

    Refined by projection matching (gold-standard halves, 4 rounds): add --refine-rounds 4

    Partitioned on 2 Ray actors: orirec recover --oracle --n 10000 --graph knn --partitions 4 --num-workers 2

    Tracked in MLflow (OUT/mlflow.db, or $MLFLOW_TRACKING_URI, or --tracking-uri) unless --no-track.
    """
    from orirec.config import validate
    from orirec.pipeline.stages import stage_recover
    from orirec.store import open_store

    tracker = make_tracker(track, tracking_uri, experiment, out)
    with user_errors(), _failed_rounds():
        cfg = validate(
            RecoverConfig,
            {"max_images": max_images, "graph": graph, "steps": steps, "seed": seed, "gauge": not no_gauge}
            | {"num_workers": num_workers, "partitions": partitions, "rounds": rounds}
            | {"refine": {"rounds": refine_rounds, "resolution_A": refine_resolution}},
            "command line",
        )
        if oracle:
            from orirec.studies.oracle import oracle_recover

            for name, value in (("--distance-noise", distance_noise), ("--embedding-noise", embedding_noise)):
                if not (math.isfinite(value) and value >= 0):
                    raise ValueError(f"{name}: expected a finite value >= 0, got {value}")

            with progress_bars(progress) as bars:
                res = oracle_recover(
                    n, seed, distance_noise, cfg, progress=bars("recover"), embedding_noise=embedding_noise
                )
            echo_table("oracle recovery (degrees, seconds)", res)
            return
        if particles is not None:
            if model is None or not model.is_file():
                raise FileNotFoundError(f"{model}: no such model checkpoint (--model)")
            from orirec.config import ReconstructConfig
            from orirec.pipeline.particles import ImportOptions, recover_particles

            if not particles.is_file():
                raise FileNotFoundError(f"{particles}: no such particles STAR file (--particles)")
            out.mkdir(parents=True, exist_ok=True)
            params = {**cfg.model_dump(mode="json"), "particles": str(particles), "model": str(model)}
            with tracked_run(tracker, f"recover-{out.name}", params), progress_bars(progress) as bars:
                res = recover_particles(
                    cfg,
                    ReconstructConfig(),
                    model,
                    particles,
                    out,
                    ImportOptions(pixel_size_A=pixel_size),
                    progress=bars("recover"),
                    gauge_progress=bars("gauge"),
                    refine_progress=bars("refine"),
                )
                log_outcome(tracker, res, (out / "particles.star", out / "recover_result.json"))
            echo_table(f"particles {res['star']}", {k: v for k, v in res.items() if isinstance(v, (int, float, str))})
            tracking_done(tracker)
            return
        if store is None or model is None:
            raise ValueError("recover needs STORE and --model (or --oracle)")
        if not model.is_file():
            raise FileNotFoundError(f"{model}: no such model checkpoint")
        open_store(store)  # a bad store or --out fails here, before any MLflow run
        out.mkdir(parents=True, exist_ok=True)
        params = {**cfg.model_dump(mode="json"), "store": str(store), "model": str(model)}
        with tracked_run(tracker, f"recover-{out.name}", params), progress_bars(progress) as bars:
            res = dict(stage_recover(cfg, store, model, out, bars("recover"), bars("gauge"), bars("refine")))
            files = ("orientations.csv", "orientations.star", "recover_result.json")
            log_outcome(tracker, res, tuple(out / f for f in files))
    echo_table(
        f"orientations {out / 'orientations.csv'}", {k: v for k, v in res.items() if isinstance(v, (int, float, str))}
    )
    tracking_done(tracker)

"""``orirec compare``: every orientation estimator on the same test images, one table (DESIGN §6)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from orirec.cli.common import (
    TrackFlag,
    TrackingUri,
    config_default,
    config_help,
    console,
    make_tracker,
    tracking_done,
    user_errors,
)
from orirec.config import RecoverConfig, RefineConfig
from orirec.config.estimators import (
    ESTIMATOR_CONFIGS,
    AbInitioConfig,
    CVAEConfig,
    EuclideanConfig,
    OracleConfig,
    RegressionConfig,
)


def compare(
    store: Annotated[Path, typer.Argument(help="test store with ground-truth orientations (STORE.zarr)")],
    estimators: Annotated[
        str | None,
        typer.Option(
            help=f"comma-separated: {', '.join(ESTIMATOR_CONFIGS)} (default: all that can run with what is given)"
        ),
    ] = None,
    model: Annotated[Path | None, typer.Option(help="Siamese checkpoint (best.pt) for 'siamese'")] = None,
    train_store: Annotated[
        Path | None, typer.Option(help="training store (ground truth) for euclidean calibration, regress-*, cvae")
    ] = None,
    n: Annotated[int, typer.Option(help="test images: the first N of STORE")] = 1650,
    protein: Annotated[
        str | None,
        typer.Option(
            help="only images of this protein (store index), e.g. one unseen test protein; several (0,8,57) or "
            "'all': one comparison per protein in OUT/<protein>/ and one protein × estimator table, proteins.md"
        ),
    ] = None,
    n_train: Annotated[int, typer.Option(help="training images: the first N of --train-store")] = 2000,
    steps: Annotated[int, typer.Option(help=config_help(RegressionConfig, "steps"))] = config_default(
        RegressionConfig, "steps"
    ),
    cvae_steps: Annotated[int, typer.Option(help=config_help(CVAEConfig, "cvae_steps"))] = config_default(
        CVAEConfig, "cvae_steps"
    ),
    batch_size: Annotated[
        int, typer.Option(help=config_help(RegressionConfig, "batch_size", " (regress-*, cvae)"))
    ] = config_default(RegressionConfig, "batch_size"),
    lr: Annotated[float, typer.Option(help=config_help(RegressionConfig, "lr", " (regress-*, cvae)"))] = config_default(
        RegressionConfig, "lr"
    ),
    encoder: Annotated[
        str, typer.Option(help=config_help(RegressionConfig, "encoder_preset", " (regress-*, cvae)"))
    ] = config_default(RegressionConfig, "encoder_preset"),
    latent_dim: Annotated[int, typer.Option(help=config_help(CVAEConfig, "latent_dim"))] = config_default(
        CVAEConfig, "latent_dim"
    ),
    cvae_condition: Annotated[str, typer.Option(help=config_help(CVAEConfig, "cvae_condition"))] = config_default(
        CVAEConfig, "cvae_condition"
    ),
    grid_size: Annotated[int, typer.Option(help=config_help(CVAEConfig, "grid_size"))] = config_default(
        CVAEConfig, "grid_size"
    ),
    calibration_pairs: Annotated[
        int, typer.Option(help=config_help(EuclideanConfig, "calibration_pairs"))
    ] = config_default(EuclideanConfig, "calibration_pairs"),
    oracle_noise: Annotated[float, typer.Option(help=config_help(OracleConfig, "oracle_noise_rad"))] = config_default(
        OracleConfig, "oracle_noise_rad"
    ),
    gauge: Annotated[
        bool, typer.Option(help=config_help(RecoverConfig, "gauge", " (distance estimators)"))
    ] = config_default(RecoverConfig, "gauge"),
    graph: Annotated[
        str, typer.Option(help=config_help(RecoverConfig, "graph", " (distance estimators)"))
    ] = config_default(RecoverConfig, "graph"),
    recover_steps: Annotated[
        int, typer.Option(help=config_help(RecoverConfig, "steps", " (the recovery of distance estimators)"))
    ] = config_default(RecoverConfig, "steps"),
    ab_initio_iterations: Annotated[int, typer.Option(help=config_help(AbInitioConfig, "iterations"))] = config_default(
        AbInitioConfig, "iterations"
    ),
    ab_initio_restarts: Annotated[int, typer.Option(help=config_help(AbInitioConfig, "restarts"))] = config_default(
        AbInitioConfig, "restarts"
    ),
    particle_radius: Annotated[
        float | None, typer.Option(help=config_help(AbInitioConfig, "particle_radius_A"))
    ] = None,
    refine_rounds: Annotated[
        int, typer.Option(help="also refine every estimator's orientations by projection matching: an extra row each")
    ] = config_default(RefineConfig, "rounds"),
    refine_resolution: Annotated[float, typer.Option(help=config_help(RefineConfig, "resolution_A"))] = config_default(
        RefineConfig, "resolution_A"
    ),
    seed: Annotated[int, typer.Option(help="seed of every random step")] = 0,
    out: Annotated[Path, typer.Option("--out", "-o", help="output folder")] = Path("compare"),
    track: TrackFlag = True,
    tracking_uri: TrackingUri = None,
) -> None:
    """Compare orientation estimators on the same images: err_o4, err_rot, err_dir, acc@10/20, R², FSC, time.

    Writes compare.md, compare.csv, compare.json and OUT/orientations/ESTIMATOR.csv in OUT and prints the
    markdown table; with --refine-rounds, a row ESTIMATOR+refine follows each estimator's row. With several
    proteins (--protein 0,8,57 or all) each gets its own folder, the table is proteins.md and proteins.png plots
    err_rot against protein size; a sweep that was interrupted resumes after its last finished protein.

    Example: orirec compare test.zarr --train-store train.zarr --model runs/demo/train/checkpoints/best.pt
    --estimators siamese,euclidean,oracle,regress-6d --out runs/compare
    """
    from orirec.config import validate
    from orirec.studies.compare import COLUMNS, compare_estimators
    from orirec.studies.compare_proteins import PROTEIN_COLUMNS, compare_proteins
    from orirec.studies.tables import markdown_table

    with user_errors():
        names = [s.strip() for s in estimators.split(",") if s.strip()] if estimators else None
        counts = {"--calibration-pairs": calibration_pairs, "--n-train": n_train, "--steps": steps,
                  "--cvae-steps": cvae_steps, "--batch-size": batch_size, "--grid-size": grid_size,
                  "--latent-dim": latent_dim, "--ab-initio-iterations": ab_initio_iterations,
                  "--ab-initio-restarts": ab_initio_restarts}  # fmt: skip
        bad = [f"{k} {v}" for k, v in counts.items() if v < 1]
        if bad:
            raise ValueError(f"must be >= 1: {', '.join(bad)}")
        if cvae_condition not in ("quat", "euler"):
            raise ValueError(f"--cvae-condition: expected quat or euler, got {cvae_condition!r}")
        settings = {  # one flat mapping: each estimator's config (orirec.config.estimators) takes its own
            "seed": seed, "model": model, "oracle_noise_rad": oracle_noise, "steps": steps, "cvae_steps": cvae_steps,
            "batch_size": batch_size, "lr": lr, "encoder_preset": encoder, "latent_dim": latent_dim,
            "cvae_condition": cvae_condition, "grid_size": grid_size, "calibration_pairs": calibration_pairs,
            "iterations": ab_initio_iterations, "restarts": ab_initio_restarts, "particle_radius_A": particle_radius,
        }  # fmt: skip
        rcfg = validate(
            RecoverConfig,
            {"gauge": gauge, "graph": graph, "steps": recover_steps}
            | {"refine": {"rounds": refine_rounds, "resolution_A": refine_resolution}},
            "command line",
        )
        proteins = _proteins(store, protein)
        tracker = make_tracker(track, tracking_uri, "orirec-compare", out)
        kw = dict(model=model, train_store=train_store, n=n, n_train=n_train, settings=settings, recover_cfg=rcfg,
                  tracker=tracker,
                  log=lambda line: console.print(line, highlight=False, markup=False, emoji=False))  # fmt: skip
        if proteins is not None and len(proteins) > 1:
            rows = compare_proteins(store, out, proteins, names, **kw)
            typer.echo(markdown_table(rows, PROTEIN_COLUMNS))
            typer.echo(f"\n(written to {out / 'proteins.md'}, proteins.csv, proteins.json)")
            tracking_done(tracker)
            return
        rows = compare_estimators(store, out, names, protein=None if proteins is None else proteins[0], **kw)
    typer.echo(markdown_table(rows, COLUMNS))
    typer.echo(f"\n(written to {out / 'compare.md'}, compare.csv, compare.json)")
    tracking_done(tracker)


def _proteins(store: Path, spec: str | None) -> list[int] | None:
    """--protein: None, one index, a comma-separated list, or 'all' (every protein with images in STORE)."""
    if spec is None:
        return None
    if spec.strip() == "all":
        import numpy as np

        from orirec.store import open_store

        return np.unique(open_store(store).protein).tolist()
    try:
        return [int(p) for p in spec.split(",") if p.strip()]
    except ValueError:
        raise ValueError(f"--protein: expected store indices (0,8,57) or 'all', got {spec!r}") from None

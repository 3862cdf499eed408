"""orirec.config is the one home of defaults: the training loop, the command line and recover_orientations take
theirs from the typed configs (DESIGN §3), and every config field documents itself (the options' help)."""

import inspect
from pathlib import Path

import pytest
import typer

from orirec.cli.app import app
from orirec.cli.common import shown_default
from orirec.config import (
    PRESETS,
    ModelConfig,
    ReconstructConfig,
    RecoverConfig,
    RefineConfig,
    RunConfig,
    SimulateConfig,
    TrackingConfig,
    TrainConfig,
    TuneConfig,
)
from orirec.config.estimators import ESTIMATOR_CONFIGS, AbInitioConfig, CVAEConfig, EuclideanConfig, OracleConfig
from orirec.config.estimators import RegressionConfig as G
from orirec.config.models import AugmentConfig

S, T, M, R, F, U = SimulateConfig, TrainConfig, ModelConfig, RecoverConfig, RefineConfig, TuneConfig
ALL_CONFIGS = (S, M, AugmentConfig, T, F, R, ReconstructConfig, TrackingConfig, U, RunConfig,
               *set(ESTIMATOR_CONFIGS.values()))  # fmt: skip

#: ``orirec simulate`` option -> SimulateConfig field
SIMULATE_OPTIONS = {
    "n_per_structure": "n_per_structure",
    "box": "box_px",
    "pixel_size": "pixel_size_A",
    "resolution": "resolution_A",
    "sigma2": "sigma2",
    "shift": "shift_px",
    "shift_distribution": "shift_distribution",
    "orientations": "orientations",
    "preferred_kappa": "preferred_kappa",
    "uniform_fraction": "preferred_uniform_fraction",
    "normalize": "normalize",
    "symmetry": "symmetry",
    "seed": "seed",
    "shard_size": "shard_size",
    "ctf": "ctf",
    "pad": "pad",
    "sampling": "sampling",
    "compile": "compile",
    "backend": "backend",
    "device": "device",
}
#: option (command, parameter) -> the config field it sets: its default must be the field's
MAPPED = {
    **{("simulate", p): (S, f) for p, f in SIMULATE_OPTIONS.items()},
    **{("recover", p): (R, p) for p in ("max_images", "graph", "steps", "seed", "num_workers", "partitions", "rounds")},
    **{(c, "refine_rounds"): (F, "rounds") for c in ("recover", "ab-initio", "compare")},
    **{(c, "refine_resolution"): (F, "resolution_A") for c in ("recover", "ab-initio", "compare")},
    ("refine", "resolution"): (F, "resolution_A"),
    ("refine", "box"): (F, "box_px"),
    ("refine", "max_shift"): (F, "max_shift_px"),
    ("reconstruct", "pad"): (ReconstructConfig, "pad"),
    ("compare", "gauge"): (R, "gauge"),
    ("compare", "graph"): (R, "graph"),
    ("compare", "recover_steps"): (R, "steps"),
    **{
        ("compare", p): (G, f)
        for p, f in (("steps", "steps"), ("batch_size", "batch_size"), ("lr", "lr"), ("encoder", "encoder_preset"))
    },
    **{("compare", p): (CVAEConfig, p) for p in ("cvae_steps", "latent_dim", "cvae_condition", "grid_size")},
    ("compare", "calibration_pairs"): (EuclideanConfig, "calibration_pairs"),
    ("compare", "oracle_noise"): (OracleConfig, "oracle_noise_rad"),
    ("compare", "ab_initio_iterations"): (AbInitioConfig, "iterations"),
    ("compare", "ab_initio_restarts"): (AbInitioConfig, "restarts"),
    ("compare", "particle_radius"): (AbInitioConfig, "particle_radius_A"),
    **{
        ("ab-initio", p): (AbInitioConfig, p)
        for p in ("iterations", "restarts", "consensus", "subset", "num_workers", "device", "symmetry")
    },
    ("ab-initio", "resolution"): (AbInitioConfig, "resolution_end_A"),
    ("ab-initio", "particle_radius"): (AbInitioConfig, "particle_radius_A"),
    ("ab-initio", "max_shift"): (AbInitioConfig, "max_shift_px"),
    ("ab-initio", "minibatch"): (AbInitioConfig, "minibatch"),
    **{("tune", p): (U, p) for p in U.model_fields},
    ("tune", "seed"): (T, "seed"),
}
#: options whose help is their own words (a note on top of, or instead of, the field's description)
OWN_HELP = {
    ("simulate", "ctf"),
    ("ab-initio", "refine_rounds"),
    ("compare", "refine_rounds"),
    ("tune", "seed"),
    *{("ab-initio", p) for p in ("iterations", "resolution", "restarts", "consensus", "particle_radius")},
}
#: ``orirec train`` options default to None (a --config file's values stand); their help shows the default the
#: command line uses without one: the small preset's schedule and model, else TrainConfig's / ModelConfig's
TRAIN_SHOWN = {
    **{p: PRESETS["small"]["train"][p] for p in ("epochs", "batch_size", "pairs_per_epoch")},
    "preset": PRESETS["small"]["train"]["model"]["preset"],
    "family": M.model_fields["family"].default,
    **{p: T.model_fields[p].default for p in ("num_workers", "lr", "seed")},
}
#: options named like a field of their command's config that do not set it, or set it on purpose otherwise
OWN_DEFAULT = {
    ("simulate", "inputs"): "the INPUT argument: structures are named on the command line",
    ("recover", "no_gauge"): "--no-gauge turns RecoverConfig.gauge off (checked below)",
    ("refine", "rounds"): "the command refines: the whole schedule (checked below), where 0 turns it off in recover",
    ("compare", "seed"): "every estimator's seed (the seed field of each estimator's config)",
    ("train", "on_the_fly"): "None: a --config file's value stands (TrainConfig's default otherwise)",
    ("train", "init_from"): "None: a --config file's value stands (TrainConfig's default otherwise)",
}
#: the config models each command validates (its options are checked against their fields)
COMMAND_CONFIGS = {"simulate": (S,), "recover": (R,), "refine": (F,), "reconstruct": (ReconstructConfig,),
                   "ab-initio": (F,), "compare": (R,), "train": (T, M), "tune": (U, T)}  # fmt: skip


def _commands():
    return typer.main.get_command(app).commands


def _param(command: str, name: str):
    return next(p for p in _commands()[command].params if p.name == name)


def _default(model, field: str):
    return model.model_fields[field].get_default(call_default_factory=True)


def test_every_config_field_has_a_description():
    missing = [f"{m.__name__}.{k}" for m in ALL_CONFIGS for k, f in m.model_fields.items() if not f.description]
    assert not missing, f"fields without description= (the CLI help comes from there): {missing}"


def test_the_training_loop_fills_its_dict_from_train_config():
    import orirec.train
    from orirec.train.augment import DEFAULT_AUGMENT
    from orirec.train.loop import RUN_KEYS, _resolve
    from orirec.train.steps import make_loss

    assert not hasattr(orirec.train, "DEFAULT_CONFIG")
    cfg = _resolve({"store": "s.zarr", "out_dir": "out"})
    assert set(cfg) == set(T.model_fields) | set(RUN_KEYS)
    expected = T().model_dump(exclude={"model", "augment"})
    assert {k: cfg[k] for k in expected} == expected  # optimizer adam, device cpu, huber_delta, val_bins, ...
    assert cfg["model"] == T().model.model_dump(exclude_none=True)
    assert cfg["augment"] == DEFAULT_AUGMENT == AugmentConfig().model_dump()
    assert inspect.signature(make_loss).parameters["huber_delta"].default == T.model_fields["huber_delta"].default
    # a plain dict (Ray Train, tests) is validated as TrainConfig: bad values and unknown keys fail by name
    with pytest.raises(ValueError, match="unknown keys.*learning_rate"):
        _resolve({"store": "s", "out_dir": "o", "learning_rate": 1.0})
    with pytest.raises(ValueError, match="val_bins"):
        _resolve({"store": "s", "out_dir": "o", "val_bins": 0})
    with pytest.raises(ValueError, match="device must be one of"):
        _resolve({"store": "s", "out_dir": "o", "device": "tpu"})
    with pytest.raises(ValueError, match="'store' is required"):
        _resolve({"out_dir": "o"})


def test_cli_options_take_their_defaults_and_help_from_the_configs():
    commands = _commands()
    for (command, name), (model, field) in MAPPED.items():
        p = _param(command, name)
        got = str(p.default) if isinstance(p.default, Path) else p.default
        assert got == _default(model, field), f"orirec {command} --{name}: {got!r} is not {model.__name__}.{field}"
        if (command, name) not in OWN_HELP:
            assert model.model_fields[field].description in p.help, f"orirec {command} --{name}: help not the field's"
    for name, value in TRAIN_SHOWN.items():
        p = _param("train", name)
        assert p.default is None and p.help.endswith(shown_default(value)), (name, p.help)
    assert _param("recover", "no_gauge").default is (not R.model_fields["gauge"].default)
    assert _param("refine", "rounds").default == len(F.model_fields["schedule_deg"].default)
    # every option named like a field of its command's config is accounted for above
    for command, models in COMMAND_CONFIGS.items():
        for p in commands[command].params:
            name, fields_of = p.name, models
            if name.startswith("refine_") and command != "refine":
                name, fields_of = name.removeprefix("refine_"), (F,)
            names = (name, f"{name}_px", f"{name}_A", f"preferred_{name}")
            if any(f in m.model_fields for m in fields_of for f in names):
                key = (command, p.name)
                assert key in MAPPED or key in OWN_DEFAULT or (command == "train" and p.name in TRAIN_SHOWN), key


def test_recover_orientations_defaults_are_recover_config_defaults():
    from orirec.recover import recover_orientations

    params = inspect.signature(recover_orientations).parameters
    for name in ("n_starts", "steps", "seed", "loss"):
        assert params[name].default == R.model_fields[name].default, name


def test_the_pipeline_tune_stage_is_tune_config():
    from orirec.pipeline.spec import PipelineSpec

    assert PipelineSpec.model_fields["tune"].annotation == U | None

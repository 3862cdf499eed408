"""The one distance-learning training loop (DESIGN §1.1, §5), callable in-process or by Ray Train.

``train_loop_per_worker(config)`` has the shape Ray Train expects (``TorchTrainer(train_loop_per_worker=
..., train_loop_config=config)``) but imports no Ray: the Ray wrapper in ``orirec.distributed`` passes
``ray.train.report`` through ``config["report"]``. Data parallelism uses DistributedDataParallel iff
``torch.distributed.is_initialized()`` (rank and world size from it; see orirec.train.data for how the
pairs are split between ranks).

Config keys: the fields of :class:`orirec.config.TrainConfig` (the one home of their defaults, types and units;
the loop fills and validates its dict from it, so a plain dict from Ray Train or a test gets the same defaults as
``orirec train``) plus the keys of one run, :data:`RUN_KEYS`. Unknown keys are errors.
    store: path of the projection store (required).
    out_dir: run folder; checkpoints go to ``out_dir/checkpoints/{last,best}.pt`` (required).
    model: dict with ``family`` ("vgg" | "resnet" | "polar"), ``preset`` ("tiny" | "small" | "paper") and
        optional overrides (``channels``, ``kernels``, ``feature_dim``, ``norm``, ``distance``, ``downsample``,
        ...; see orirec.models.registry.build_model).
    epochs: total epochs (a resumed run continues up to this count).
    batch_size: GLOBAL pairs per optimizer step (256 as published); a multiple of the world size.
    lr: learning rate. lr_schedule: "constant" or "cosine" (see :func:`scheduled_lr`; a resumed run follows the
        curve of its new epoch count). optimizer: "rmsprop" (published) or "adam". loss: "l2" | "huber" | "l1" on
        d_p - d_q (rad); huber_delta: the Huber threshold (rad).
    pairs_per_epoch: training pairs drawn per epoch (d_q uniform on [0, π], within one protein).
    proteins: indices of the store's proteins to train (and validate) on; None: all (a data-scaling study trains
        on growing subsets of one store).
    on_the_fly: simulate every training batch afresh from the store's reference volumes (new orientations and
        noise each step); validation then uses a fixed seeded set of fresh images of each protein
        (``val_images``, half held out; ``val_fraction`` is not used); needs pairing "all".
    augment: dict of training augmentations (orirec.train.augment: ``shift_px``, ``rotate``, ``noise_sigma2``,
        ``ctf``, ``defocus_range_A``); rotation needs pairing "all", CTF needs on_the_fly.
    pairing: "all": each step embeds the distinct images of batch_size/2 uniform-distance pairs
        and trains on every within-protein pair among them, weighted to a uniform d_q (many more
        supervised pairs per forward pass); "pairs": exactly the sampled pairs, as published.
    val_fraction: fraction of images held out (per protein); val_pairs: fixed validation pairs.
    val_images: with on_the_fly, fresh images simulated once per protein for validation (half held out, so
        the validation pairs come from val_images/2 images per protein; more images, a steadier MAE).
    val_bins: number of equal d_q bins over [0, π] for the binned validation MAE.
    patience: stop after this many epochs without a better validation MAE (None: never).
    seed: seeds the model initialization, the split and each epoch's pairs.
    num_threads: torch threads in this worker (None: unchanged). num_workers: used by the Ray wrapper
        only (ignored here).
    device: "cpu", "cuda" (cuda:$LOCAL_RANK, as set by torchrun / Ray Train) or "auto" (cuda if
        available). Images stay in host memory; each batch is copied to the device.
    resume: continue from ``out_dir/checkpoints/last.pt`` when it exists (epoch count continues).
    init_from: a checkpoint whose weights start the training (same model config; the optimizer and the epoch
        count start afresh); ignored when resuming from ``last.pt``, which already holds the fine-tuned weights.
    report: optional callable(metrics: dict of scalars, checkpoint_dir: str | None), called on every
        rank after each epoch; checkpoint_dir is set on rank 0 only.
    progress: show a rich progress bar per epoch (rank 0).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from os import PathLike
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import numpy as np
import torch
import torch.distributed as dist
from pydantic import ValidationError
from torch import nn

from orirec.config import TrainConfig
from orirec.models import build_model, load_checkpoint, save_checkpoint
from orirec.store import open_store
from orirec.train.augment import augment_images, check_augment, is_active
from orirec.train.data import PairData
from orirec.train.fresh import FreshImages
from orirec.train.steps import (
    all_pairs_loss,
    binned_mae,
    deterministic_kernels,
    evaluate_pairs,
    make_loss,
    symmetry_operators,
    train_step,
)

__all__ = [
    "RUN_KEYS",
    "all_pairs_loss",
    "binned_mae",
    "evaluate_pairs",
    "make_loss",
    "scheduled_lr",
    "train_loop_per_worker",
    "train_step",
]

#: the keys of one run of the loop besides TrainConfig's (what is learnt, and how, is TrainConfig's): the store and
#: the run folder (required), resume, the per-epoch ``report`` callback and the progress bar
RUN_KEYS: dict[str, Any] = {"store": None, "out_dir": None, "resume": False, "report": None, "progress": False}


#: the cosine schedule ends at this fraction of the initial learning rate
COSINE_FLOOR = 0.05


def scheduled_lr(lr: float, schedule: str, epoch: int, epochs: int) -> float:
    """Learning rate of 0-based ``epoch`` out of ``epochs``: constant, or a half cosine from ``lr`` down to
    ``COSINE_FLOOR * lr`` at the last epoch."""
    if schedule == "constant" or epochs <= 1:
        return float(lr)
    t = min(max(epoch / (epochs - 1), 0.0), 1.0)
    return float(lr) * (COSINE_FLOOR + (1.0 - COSINE_FLOOR) * 0.5 * (1.0 + math.cos(math.pi * t)))


def _flat(entry: dict[str, Any]) -> dict[str, Any]:
    """Scalar-only view of a history entry (lists become key_<k>) for report/tracking callbacks."""
    out = {}
    for k, v in entry.items():
        if isinstance(v, list):
            out.update({f"{k}_{n}": x for n, x in enumerate(v)})
        else:
            out[k] = v
    return out


def _device(name: str) -> torch.device:
    """torch device for config["device"]: "cpu", "cuda" (index $LOCAL_RANK) or "auto"."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("train config: device 'cuda' asked but torch sees no CUDA device")
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    raise ValueError(f"train config: device must be 'cpu', 'cuda' or 'auto', got {name!r}")


def _validated(config: dict[str, Any]) -> dict[str, Any]:
    """TrainConfig's fields (its defaults filled in) from ``config``, validated by TrainConfig: ValueError naming
    each bad key. ``model`` and ``augment`` are left to build_model (families have keys of their own) and
    check_augment."""
    for key, field in TrainConfig.model_fields.items():  # a bad choice in the loop's own words
        allowed = get_args(field.annotation)
        if get_origin(field.annotation) is Literal and key in config and config[key] not in allowed:
            raise ValueError(f"train config: {key} must be one of {allowed}, got {config[key]!r}")
    given: dict[str, Any] = {
        k: str(v) if isinstance(v, PathLike) else v for k, v in config.items() if k in TrainConfig.model_fields
    }
    try:
        train = TrainConfig.model_validate({k: v for k, v in given.items() if k not in ("model", "augment")})
    except ValidationError as e:
        bad = [f"{'.'.join(map(str, err['loc']))}: {err['msg']} (got {err.get('input')!r})" for err in e.errors()]
        raise ValueError(f"train config: {'; '.join(bad)}") from None
    return {
        **train.model_dump(exclude={"model", "augment"}),
        "model": given.get("model", train.model.model_dump(exclude_none=True)),
        "augment": check_augment(given.get("augment")),
    }


def _resolve(config: dict[str, Any]) -> dict[str, Any]:
    known = set(TrainConfig.model_fields) | set(RUN_KEYS)
    unknown = set(config) - known
    if unknown:
        raise ValueError(f"train config: unknown keys {sorted(unknown)}; known: {sorted(known)}")
    cfg = {**RUN_KEYS, **{k: v for k, v in config.items() if k in RUN_KEYS}, **_validated(config)}
    for key in ("store", "out_dir"):
        if cfg[key] is None:
            raise ValueError(f"train config: {key!r} is required")
    if cfg["on_the_fly"] and cfg["pairing"] != "all":
        raise ValueError("train config: on_the_fly needs pairing 'all'")
    if cfg["augment"]["rotate"] and cfg["pairing"] != "all":
        raise ValueError("train config: augment.rotate changes d_q and needs pairing 'all'")
    if cfg["augment"]["ctf"] and not cfg["on_the_fly"]:
        raise ValueError("train config: augment.ctf needs on_the_fly (the CTF is applied to fresh clean projections)")
    return cfg


#: config keys a resumed run may change: how long and where it runs, not what it learns from or how (the model
#: is compared on its built config)
RESUMABLE_CHANGES = set(
    "epochs patience resume init_from report progress num_threads num_workers device out_dir model".split()
)


def _check_resume(last_path: Path, saved: dict[str, Any] | None, cfg: dict[str, Any]) -> None:
    """ValueError naming what differs when ``cfg`` asks to resume a run recorded (``saved``) with another store
    or other hyper-parameters (checkpoints that recorded no config are not checked)."""
    if not saved:
        return
    plain = lambda v: json.loads(json.dumps(v, default=str))  # noqa: E731 - as the checkpoint stored it
    differ = []
    for key in sorted(set(saved) | set(cfg)):
        if key in RESUMABLE_CHANGES or key not in saved or key not in cfg:
            continue
        was, now = saved[key], plain(cfg[key])
        if key == "store":
            same = Path(str(was)).resolve() == Path(str(now)).resolve()
        else:
            same = was == now
        if not same:
            differ.append(f"{key} {was} (now {now})")
    if differ:
        raise ValueError(
            f"resume: {last_path} was trained with {'; '.join(differ)}; resume with the same store and "
            "settings, or train into another --out"
        )


def train_loop_per_worker(config: dict[str, Any]) -> dict[str, Any]:
    """Train the Siamese distance network; see the module docstring for the config keys.

    Returns a dict with ``best_val_mae`` (rad), ``best_epoch``, ``epochs_run`` (total, resumed runs
    included), ``stopped_early``, ``wall_time_s``, ``pairs_per_s`` (training throughput of the last
    epoch, global pairs), ``history`` (one dict per epoch), ``checkpoint`` (best.pt), ``last_checkpoint``
    and the last epoch's metrics. Runs with deterministic kernels (:func:`deterministic_kernels`): the same
    seed, data and thread count give the same model.
    """
    with deterministic_kernels():
        return _train_loop(config)


def _train_loop(config: dict[str, Any]) -> dict[str, Any]:
    t_start = time.perf_counter()
    cfg = _resolve(config)
    if cfg["num_threads"]:
        torch.set_num_threads(int(cfg["num_threads"]))
    distributed = dist.is_available() and dist.is_initialized()
    rank, world = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
    if int(cfg["batch_size"]) % world:
        raise ValueError(f"train config: batch_size {cfg['batch_size']} is not a multiple of world size {world}")
    torch.manual_seed(int(cfg["seed"]))
    aug = cfg["augment"]
    fresh = None
    store = open_store(cfg["store"])
    if cfg["on_the_fly"]:
        ctf_range = tuple(aug["defocus_range_A"]) if aug["ctf"] else None
        fresh = FreshImages(store, seed=int(cfg["seed"]), ctf_defocus_range_A=ctf_range, proteins=cfg["proteins"])
        # Training never reads the store's images, so validation uses a fixed set of fresh images per protein
        # (half of them held out): enough pairs per protein however few images the store holds.
        data = PairData(*fresh.fixed_set(int(cfg["val_images"])), val_fraction=0.5, val_pairs=int(cfg["val_pairs"]),
                        seed=int(cfg["seed"]), symmetry=store.symmetries)  # fmt: skip
    else:
        data = PairData.from_store(
            store,
            val_fraction=float(cfg["val_fraction"]),
            val_pairs=int(cfg["val_pairs"]),
            seed=int(cfg["seed"]),
            proteins=cfg["proteins"],
        )
    sigma2_now = store.sigma2  # the noise already in the images (fresh images get the store's σ² too)
    device = _device(cfg["device"])
    model = build_model(cfg["model"], data.box_px).to(device)
    model_config = model.config
    opt_cls = torch.optim.RMSprop if cfg["optimizer"] == "rmsprop" else torch.optim.Adam
    optimizer = opt_cls(model.parameters(), lr=float(cfg["lr"]))
    loss_fn = make_loss(cfg["loss"], cfg["huber_delta"])
    sym_ops = symmetry_operators(store.symmetries)  # symmetry-aware d_q (None: all C1)
    if sym_ops is not None:
        sym_ops = sym_ops.to(device)
    if cfg["pairing"] == "all":
        pair_loss = make_loss(cfg["loss"], cfg["huber_delta"], reduction="none")

        def step_fn(net: nn.Module, optimizer: torch.optim.Optimizer, batch, rng) -> float:
            x, q, prot = batch
            x, q = augment_images(x, q, aug, rng, sigma2_now)
            assert q is not None  # orientations go in, so they come out
            x, q, prot = x.to(device), q.to(device), prot.to(device)
            optimizer.zero_grad(set_to_none=True)
            seed = int(rng.integers(2**62))  # the pair family's subset of supervised pairs, from the step's stream
            loss = all_pairs_loss(net, pair_loss, x, q, prot, seed=seed, symmetry=sym_ops)
            loss.backward()
            optimizer.step()
            return float(loss.detach())
    else:

        def step_fn(net: nn.Module, optimizer: torch.optim.Optimizer, batch, rng) -> float:
            xi, xj, d = batch
            if is_active(aug):
                xi, _ = augment_images(xi, None, aug, rng, sigma2_now)
                xj, _ = augment_images(xj, None, aug, rng, sigma2_now)
            return train_step(net, optimizer, loss_fn, (xi, xj, d))

    ckpt_dir = Path(cfg["out_dir"]) / "checkpoints"
    last_path, best_path = ckpt_dir / "last.pt", ckpt_dir / "best.pt"

    history: list[dict[str, Any]] = []
    best_mae, best_epoch, start_epoch = math.inf, 0, 0
    if cfg["resume"] and last_path.is_file():
        ck = load_checkpoint(last_path)
        _check_resume(last_path, (ck.get("extra") or {}).get("config"), cfg)
        if ck["model_config"] != model_config:
            raise ValueError(f"resume: {last_path} holds model {ck['model_config']}, the config asks {model_config}")
        model.load_state_dict(ck["state_dict"])
        if ck.get("optimizer_state") is not None:
            optimizer.load_state_dict(ck["optimizer_state"])
        extra = ck.get("extra") or {}
        history = list(extra.get("history", []))
        best_mae, best_epoch, start_epoch = (
            extra.get("best_val_mae", math.inf),
            extra.get("best_epoch", 0),
            ck["epoch"],
        )
    elif cfg["init_from"]:
        ck = load_checkpoint(cfg["init_from"])
        if ck["model_config"] != model_config:
            raise ValueError(
                f"init_from: {cfg['init_from']} holds model {ck['model_config']}, the config asks {model_config}"
            )
        model.load_state_dict(ck["state_dict"])
    ids = [device.index] if device.type == "cuda" else None
    net: nn.Module = nn.parallel.DistributedDataParallel(model, device_ids=ids) if distributed else model
    steps = PairData.steps_per_epoch(cfg["pairs_per_epoch"], cfg["batch_size"])
    show = bool(cfg["progress"]) and rank == 0
    stopped_early, pairs_per_s = False, float("nan")

    for epoch in range(start_epoch, int(cfg["epochs"])):
        if cfg["patience"] and epoch - best_epoch >= int(cfg["patience"]) and best_epoch > 0:
            stopped_early = True
            break
        t0 = time.perf_counter()
        lr_now = scheduled_lr(float(cfg["lr"]), cfg["lr_schedule"], epoch, int(cfg["epochs"]))
        for group in optimizer.param_groups:
            group["lr"] = lr_now
        net.train()
        total = 0.0
        if cfg["on_the_fly"]:
            assert fresh is not None  # made for on-the-fly training
            batches = fresh.image_batches(epoch, steps, int(cfg["batch_size"]) // world, rank)
        elif cfg["pairing"] == "all":
            batches = data.image_batches(epoch, cfg["pairs_per_epoch"], cfg["batch_size"], rank, world)
        else:
            batches = data.batches(epoch, cfg["pairs_per_epoch"], cfg["batch_size"], rank, world)
        with _progress(show, f"epoch {epoch + 1}/{cfg['epochs']}", steps) as advance:
            for step, batch in enumerate(batches):
                rng = np.random.default_rng([int(cfg["seed"]), 21, epoch, rank, step])  # augmentation stream
                total += step_fn(net, optimizer, batch, rng)
                advance()
        train_time = time.perf_counter() - t0
        train_loss = total / steps
        if distributed:
            t = torch.tensor([train_loss], dtype=torch.float64, device=device)
            dist.all_reduce(t)
            train_loss = float(t) / world
        pairs_per_s = steps * int(cfg["batch_size"]) / train_time
        entry = {
            "epoch": epoch + 1,
            "train_loss": train_loss,
            "lr": lr_now,
            **evaluate_pairs(model, data, loss_fn, int(cfg["val_bins"]), rank, world),
            "pairs_per_s": pairs_per_s,
            "epoch_time_s": time.perf_counter() - t0,
        }
        history.append(entry)
        if entry["val_mae"] < best_mae:
            best_mae, best_epoch = entry["val_mae"], epoch + 1
        if rank == 0:
            extra = {
                "history": history,
                "best_val_mae": best_mae,
                "best_epoch": best_epoch,
                "config": {k: v for k, v in cfg.items() if k != "report"},
            }
            save_checkpoint(last_path, model, model_config, epoch + 1, optimizer.state_dict(), entry, extra)
            if best_epoch == epoch + 1:
                save_checkpoint(best_path, model, model_config, epoch + 1, None, entry, extra)
        if cfg["report"] is not None:
            cfg["report"](_flat(entry), str(ckpt_dir) if rank == 0 else None)

    last = history[-1] if history else {}
    return {
        **{k: v for k, v in last.items() if k != "epoch"},
        "best_val_mae": best_mae,
        "best_epoch": best_epoch,
        "epochs_run": len(history),
        "stopped_early": stopped_early,
        "pairs_per_s": pairs_per_s,
        "wall_time_s": time.perf_counter() - t_start,
        "history": history,
        "checkpoint": str(best_path),
        "last_checkpoint": str(last_path),
    }


class _progress:
    """Context manager yielding an ``advance()`` callable; a rich progress bar when enabled."""

    def __init__(self, enabled: bool, label: str, total: int) -> None:
        self.enabled, self.label, self.total = enabled, label, total
        self._bar: Any = None  # a rich Progress while the bar shows

    def __enter__(self) -> Callable[[], None]:
        if not self.enabled:
            return lambda: None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

        bar = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
        )
        self._bar = bar
        bar.start()
        task = bar.add_task(self.label, total=self.total)
        return lambda: bar.advance(task)

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.stop()

"""Named presets: tiny (tests, seconds), small (the demo, minutes on 2 cores), paper (DESIGN §1 setting), full."""

from __future__ import annotations

from typing import Any

from orirec.config.models import RunConfig

PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {
        "simulate": {"n_per_structure": 300, "box_px": 24, "pixel_size_A": 3.0, "shard_size": 128},
        "train": {
            "model": {"preset": "tiny"},
            "epochs": 2,
            "batch_size": 64,
            "pairs_per_epoch": 1024,
            "val_pairs": 256,
        },
        "recover": {"max_images": 150, "steps": 50, "n_starts": 4},
    },
    "small": {
        "simulate": {"n_per_structure": 5000, "box_px": 48, "pixel_size_A": 2.5},
        "train": {
            "model": {"preset": "small"},
            "epochs": 12,
            "batch_size": 128,
            "pairs_per_epoch": 12800,
            "val_pairs": 2000,
        },
        "recover": {"max_images": 1000, "steps": 300, "refine": {"rounds": 4}},
    },
    "paper": {
        "simulate": {"n_per_structure": 5000, "box_px": 116, "pixel_size_A": 3.667},
        "train": {
            "model": {"preset": "paper"},
            "epochs": 150,
            "batch_size": 256,
            "optimizer": "rmsprop",
            "pairs_per_epoch": 100000,
        },
        "recover": {"max_images": 1650, "steps": 1000},
    },
    "full": {
        "simulate": {"n_per_structure": 10000, "box_px": 128, "pixel_size_A": 2.0},
        "train": {"model": {"preset": "paper"}, "epochs": 200, "pairs_per_epoch": 200000},
        "recover": {"graph": "knn", "steps": 2000},
    },
}


def run_preset(name: str, **overrides: Any) -> RunConfig:
    """The :class:`RunConfig` of a named preset, with nested ``overrides`` merged on top."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return RunConfig.model_validate(deep_merge(PRESETS[name], overrides))


def deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``base`` with ``top`` merged in recursively (``top`` wins)."""
    out = dict(base)
    for k, v in top.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out

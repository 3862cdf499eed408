"""YAML load/dump of configs, stamped with the orirec version; clear errors naming file and key."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from orirec.config.presets import deep_merge
from orirec.config.provenance import version_info

M = TypeVar("M", bound=BaseModel)


def describe_validation_error(err: ValidationError, source: str) -> str:
    """One line naming the source and every offending key."""
    parts = []
    for e in err.errors():
        loc = ".".join(str(x) for x in e["loc"]) or "<root>"
        msg = "unknown config key" if e["type"] == "extra_forbidden" else e["msg"]
        parts.append(f"{loc}: {msg}")
    return f"{source}: invalid config: " + "; ".join(parts)


def validate(model: type[M], data: dict[str, Any], source: str = "config") -> M:
    """Validate ``data`` as ``model``, raising ValueError with a one-line message."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise ValueError(describe_validation_error(e, source)) from None


def load_yaml(path: str | Path, model: type[M], overrides: dict[str, Any] | None = None) -> M:
    """Load a YAML config file into ``model``, merging nested ``overrides`` on top."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_bytes().decode("utf-8")) or {}
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not a YAML text file (not UTF-8: byte {e.start})") from None
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: not valid YAML ({e})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: top level must be a mapping")
    return validate(model, deep_merge(data, overrides or {}), str(path))


def dump_yaml(cfg: BaseModel, path: str | Path) -> None:
    """Write ``cfg`` as YAML, stamped with the orirec version (and git commit) that wrote it where its model has
    those fields (see :func:`~orirec.config.provenance.version_info`)."""
    data = cfg.model_dump(mode="json")
    data.update({k: v for k, v in version_info().items() if k in type(cfg).model_fields})
    Path(path).write_text(yaml.safe_dump(data, sort_keys=False))


def parse_set(items: list[str]) -> dict[str, Any]:
    """Turn ``["train.epochs=3", "simulate.sigma2=16"]`` into a nested dict (values parsed as YAML)."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--set expects key=value, got {item!r}")
        key, raw = item.split("=", 1)
        node = out
        *parents, leaf = key.strip().split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = yaml.safe_load(raw)
    return out

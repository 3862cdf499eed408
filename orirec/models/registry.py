"""Encoder families behind one config: ``build_model`` (from a preset + overrides) and ``model_from_config``
(from the exact keyword arguments saved in a checkpoint).

Families: "vgg" (:class:`SiameseNet`, the published stack), "resnet" (:class:`ResNetEncoder`, residual
blocks with normalization), "polar" (:class:`PolarEncoder`, rotation-equivariant polar front end), "pair"
(:class:`PairNet`, Fourier line tokens and a learned common-line distance head that sees both images),
"commonlines" (:class:`CommonLineNet`, explicit per-band common-line coherence maps and a learned head). The
presets "tiny" / "small" / "paper" give ``channels``, ``kernels`` and ``feature_dim`` to every family.
"""

from __future__ import annotations

from typing import Any

from orirec.config import ModelConfig
from orirec.models.commonlines import CommonLineNet
from orirec.models.encoder import EncoderBase
from orirec.models.pair import PairNet
from orirec.models.polar import PolarEncoder
from orirec.models.resnet import ResNetEncoder
from orirec.models.siamese import SiameseNet, encoder_preset

__all__ = ["FAMILIES", "build_model", "model_from_config"]

FAMILIES: dict[str, type[EncoderBase]] = {
    "vgg": SiameseNet,
    "resnet": ResNetEncoder,
    "polar": PolarEncoder,
    "pair": PairNet,
    "commonlines": CommonLineNet,
}

#: config keys each family accepts beyond the common ones
_FAMILY_KEYS = {
    "vgg": {"pool_every"},
    "resnet": set(),
    "polar": {"n_radii", "n_angles"},
    "pair": {"n_radii", "n_angles", "pair_batch"},
    "commonlines": {"n_radii", "n_angles", "pair_batch"},
}
_COMMON = {"preset", "family", "channels", "kernels", "feature_dim", "norm", "distance", "downsample", "in_size"}


def _family_class(name: str) -> type[EncoderBase]:
    if name not in FAMILIES:
        raise ValueError(f"model family: unknown {name!r}; choose one of {sorted(FAMILIES)}")
    return FAMILIES[name]


def build_model(model_config: dict[str, Any] | None, in_size: int) -> EncoderBase:
    """Build an encoder from a config dict: ``family`` and ``preset`` (defaults: ModelConfig's) plus
    optional overrides ``channels``, ``kernels``, ``feature_dim``, ``norm``, ``distance``, ``downsample`` and
    the family's own keys (vgg: ``pool_every``; polar: ``n_radii``, ``n_angles``; pair: ``n_radii``,
    ``n_angles``, ``pair_batch``; commonlines: the same three; both ignore ``distance``). None values are ignored;
    ``in_size`` (px) is the image box."""
    cfg = {k: v for k, v in dict(model_config or {}).items() if v is not None}
    family = cfg.pop("family", ModelConfig.model_fields["family"].default)
    cls = _family_class(family)
    unknown = set(cfg) - _COMMON - _FAMILY_KEYS[family]
    if unknown:
        raise ValueError(
            f"model config: unknown keys {sorted(unknown)} for family {family!r}; "
            f"known: {sorted(_COMMON | _FAMILY_KEYS[family])}"
        )
    kwargs: dict[str, Any] = encoder_preset(cfg.pop("preset", ModelConfig.model_fields["preset"].default))
    cfg.pop("in_size", None)
    kwargs.update(cfg)
    return cls(in_size=int(in_size), **kwargs)


def model_from_config(config: dict[str, Any]) -> EncoderBase:
    """Rebuild an encoder from ``model.config`` (as saved in a checkpoint); no ``family`` means "vgg"
    (checkpoints written before the families existed)."""
    cfg = dict(config)
    return _family_class(cfg.pop("family", "vgg"))(**cfg)

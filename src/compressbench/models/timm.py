"""Every timm architecture by name: ``model: {name: "timm:resnet18"}``.

The registry serves the ``timm:`` name family from here (``registry.models.add_source``): a name timm
knows (``timm.is_model``) is registered on first use with a spec built from timm's ``PretrainedCfg``
(classifier and first-conv module names, published tags) — nothing but timm is imported, so a checkpoint
may name these models. The network is built with ``pretrained=False`` for the dataset (its classes,
channels and, for fixed-size models such as ViT, its image size); weights enter only through
``model.weights`` (a file, or ``timm:<tag>``: :mod:`.published`). Keyword arguments that would make timm
load or download weights are refused.

``width`` (a derived distillation student): ViTs scale their embedding dimension (a multiple of the head
count); every other architecture is narrowed channel-wise by Torch-Pruning (:func:`.hub.narrow`).
"""

from __future__ import annotations

import difflib
import sys
from typing import Any

from torch import nn

from ..data.base import DataMeta
from ..registry import UnknownNameError
from ..specs import ModelSpec
from .hub import check_kwargs, family_name, narrow
from .published import timm_weights

PREFIX = "timm:"
BLOCKED = (
    "pretrained",
    "pretrained_cfg",
    "pretrained_cfg_overlay",
    "checkpoint_path",
    "cache_dir",
    "features_only",
    "pretrained_strict",
)


def _vit_width(net: nn.Module, width: float) -> dict[str, Any] | None:
    heads = getattr(getattr(getattr(net, "blocks", [None])[0], "attn", None), "num_heads", None)
    if not heads or not hasattr(net, "embed_dim"):
        return None
    return {"embed_dim": max(heads, int(round(net.embed_dim * width / heads)) * heads)}


def _factory(arch: str, cfg: Any):
    def factory(meta: DataMeta, width: float = 1.0, **kwargs: Any) -> nn.Module:
        import timm

        check_kwargs(PREFIX + arch, kwargs, BLOCKED)
        size = {"img_size": tuple(meta.size)} if getattr(cfg, "fixed_input_size", False) else {}
        args = dict(pretrained=False, num_classes=meta.num_classes, in_chans=meta.channels, **size)
        net = timm.create_model(arch, **args, **kwargs)
        if width != 1.0:
            wk = _vit_width(net, width)
            if wk is not None:
                return timm.create_model(arch, **args, **{**kwargs, **wk})
            net = narrow(net, meta, width, cfg.classifier if cfg else None)
        return net

    factory.__doc__ = f"timm {arch} (random init; weights via model.weights)"
    return factory


def _filter(state_dict: dict, net: nn.Module) -> dict:
    """timm's own converter for ``net``'s architecture (``checkpoint_filter_fn`` of its module), if any."""
    fn = getattr(sys.modules.get(type(net).__module__), "checkpoint_filter_fn", None)
    return fn(state_dict, net) if callable(fn) else state_dict


def source(name: str) -> tuple[Any, ModelSpec]:
    """The registry source of ``timm:<arch>`` names."""
    import timm

    arch = name[len(PREFIX) :]
    if "." in arch and timm.is_model(arch.split(".", 1)[0]):
        raise UnknownNameError(
            "model",
            name,
            [],
            f"'{name}': give the architecture as model.name "
            f"('timm:{arch.split('.', 1)[0]}') and the pretrained tag as model.weights "
            f"('timm:{arch.split('.', 1)[1]}')",
        )
    if not arch or not timm.is_model(arch):
        close = difflib.get_close_matches(arch, timm.list_models(), n=1, cutoff=0.6)
        hint = f"; did you mean 'timm:{close[0]}'?" if close else ""
        raise UnknownNameError(
            "model",
            name,
            [],
            f"unknown timm architecture '{arch}'{hint} "
            f"(timm {timm.__version__} has {len(timm.list_models())}: timm.list_models())",
        )
    cfg = timm.models.get_pretrained_cfg(arch)
    module = timm.models.model_entrypoint(arch).__module__
    spec = ModelSpec(
        family=family_name(module),
        classifier=getattr(cfg, "classifier", None),
        first_conv=getattr(cfg, "first_conv", None),
        published=timm_weights(arch),
        filter_weights=_filter,
        description=f"timm {arch}",
    )
    return _factory(arch, cfg), spec

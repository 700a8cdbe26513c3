"""Every torchvision classification model by name: ``model: {name: "torchvision:mobilenet_v3_small"}``.

Served to the registry like :mod:`.timm` (``torchvision:`` names; only torchvision is imported). Built
with ``weights=None`` for the dataset's classes; torchvision's constructors take no input-channel count,
so for a dataset with other than 3 channels the first convolution is rebuilt (:func:`.hub.set_in_channels`);
ViTs get the dataset's image size. Published weights: any member of the architecture's weights enum
(``model.weights: torchvision:IMAGENET1K_V1``, :mod:`.published`). ``width`` narrows channel-wise
(:func:`.hub.narrow`).

torchvision names no classifier or first conv (timm's ``PretrainedCfg`` does): they are found by
position — the last and the first conv / linear module — which is right for every classification
model torchvision ships.
"""

from __future__ import annotations

import difflib
from typing import Any

from torch import nn

from ..data.base import DataMeta
from ..registry import UnknownNameError
from ..specs import ModelSpec
from .hub import check_kwargs, family_name, narrow, set_in_channels
from .published import torchvision_weights
from .weights import module_path

PREFIX = "torchvision:"
BLOCKED = ("weights", "progress", "weights_backbone")


def _classification_models() -> list[str]:
    import torchvision.models as tvm

    return tvm.list_models(module=tvm)


def _factory(arch: str, family: str):
    def factory(meta: DataMeta, width: float = 1.0, **kwargs: Any) -> nn.Module:
        from torchvision.models import get_model

        check_kwargs(PREFIX + arch, kwargs, BLOCKED)
        size = {"image_size": meta.size[0]} if family == "vit" else {}
        net = get_model(arch, weights=None, num_classes=meta.num_classes, **size, **kwargs)
        stem = module_path(net, None, last=False)
        if stem and meta.channels != 3:
            set_in_channels(net, stem, meta.channels)
        return narrow(net, meta, width, None) if width != 1.0 else net

    factory.__doc__ = f"torchvision {arch} (random init; weights via model.weights)"
    return factory


def source(name: str) -> tuple[Any, ModelSpec]:
    """The registry source of ``torchvision:<model>`` names."""
    arch = name[len(PREFIX) :]
    known = _classification_models()
    if arch not in known:
        close = difflib.get_close_matches(arch, known, n=1, cutoff=0.6)
        hint = f"; did you mean 'torchvision:{close[0]}'?" if close else ""
        raise UnknownNameError(
            "model",
            name,
            [],
            f"unknown torchvision classification model '{arch}'{hint} "
            f"(known: torchvision.models.list_models(module=torchvision.models))",
        )
    from torchvision.models import get_model_builder

    family = family_name(get_model_builder(arch).__module__)
    spec = ModelSpec(family=family, published=torchvision_weights(arch), description=f"torchvision {arch}")
    return _factory(arch, family), spec

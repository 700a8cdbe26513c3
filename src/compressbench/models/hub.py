"""What the library-backed model families (``timm:<arch>``, ``torchvision:<model>``) share.

* :func:`narrow` — a width multiplier for *any* architecture: the freshly built network with every
  channel group cut to ``width`` of its channels by Torch-Pruning's dependency graph (local, uniform
  ratio; the classifier's outputs and the input channels stay). The shapes depend only on the
  architecture and ``width``, so a checkpoint of a narrowed model rebuilds by narrowing again. A derived
  distillation student of a timm / torchvision parent is this (``distill`` searches ``width``).
* :func:`check_kwargs` — a checkpoint may name these models with kwargs; the ones that would make the
  library load or download weights are refused (weights enter only through ``model.weights``).
* :func:`set_in_channels` — for libraries whose constructors take no ``in_chans``: the first
  convolution rebuilt for the dataset's channels.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any, Iterable

import torch
from torch import nn

from ..data.base import DataMeta

log = logging.getLogger(__name__)

FAMILY_NAMES = {"vision_transformer": "vit", "mobilenetv2": "mobilenetv2", "mobilenetv3": "mobilenetv3"}


def family_name(module: str) -> str:
    """``timm.models.vision_transformer`` -> ``vit``; ``torchvision.models.resnet`` -> ``resnet``."""
    short = module.rsplit(".", 1)[-1].lstrip("_")
    return FAMILY_NAMES.get(short, short)


def check_kwargs(name: str, kwargs: dict[str, Any], blocked: Iterable[str]) -> None:
    bad = sorted(set(kwargs) & set(blocked))
    if bad:
        raise TypeError(
            f"{name}: model.kwargs {bad} would load or download weights; give weights with model.weights instead"
        )


def narrow(net: nn.Module, meta: DataMeta, width: float, classifier: str | None) -> nn.Module:
    """``net`` with every prunable channel group cut to ``width`` of its channels (in place; see above)."""
    if width >= 1.0:
        if width > 1.0:
            raise TypeError(f"width {width:g} > 1: a library model can be narrowed, not widened")
        return net
    import torch_pruning as tp

    from .weights import module_path

    head = module_path(net, classifier, last=True)
    ignored = [net.get_submodule(head)] if head else []
    example = torch.rand(1, meta.channels, *meta.size)
    was_training = net.training
    net.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Torch-Pruning's notes on unwrapped parameters (layer scales)
        pruner = tp.pruner.MetaPruner(
            net,
            example,
            importance=tp.importance.GroupMagnitudeImportance(p=1),
            global_pruning=False,
            pruning_ratio=1.0 - width,
            max_pruning_ratio=1.0 - width,
            ignored_layers=ignored,
        )
        pruner.step()
    net.zero_grad(set_to_none=True)
    net.train(was_training)
    return net


def set_in_channels(net: nn.Module, path: str, channels: int) -> None:
    """Rebuild the convolution at ``path`` with ``channels`` input channels (fresh weights)."""
    old = net.get_submodule(path)
    if not isinstance(old, nn.Conv2d) or old.in_channels == channels:
        return
    new = nn.Conv2d(
        channels,
        old.out_channels,
        old.kernel_size,
        old.stride,
        old.padding,
        old.dilation,
        old.groups if old.groups == 1 else channels,
        old.bias is not None,
        old.padding_mode,
    )
    parent, _, child = path.rpartition(".")
    setattr(net.get_submodule(parent) if parent else net, child, new)

"""Pruning importance criteria, registered apart from the methods that prune (Torch-Pruning's split:
``torch_pruning/pruner/importance.py`` scores, the pruner decides how much to remove and when).

* ``registry.channel_criteria``: ``fn() -> importance``, a Torch-Pruning importance that scores channel
  groups (``prune.structured``'s ``criterion``);
* ``registry.weight_criteria``: a ``torch.nn.utils.prune`` method class that scores single weights
  (``prune.unstructured``'s ``criterion``).

A new criterion is one registration (a plug-in's too: ``criterion: "my_pkg.mod:obj"``); the methods'
``criterion`` fields are validated against these registries with the config (unknown name: one line with
a "did you mean"). ``CriterionSpec.gradients``: the criterion reads loss gradients, which the method
accumulates on a few training batches before scoring (first-order Taylor). Nothing is scored here: the
criteria are Torch-Pruning's and PyTorch's own.
"""

from __future__ import annotations

from typing import Any

from torch.nn.utils import prune

from ..catalog.methods import check_criterion  # noqa: F401 (torch-free: compressbench.catalog)
from ..registry import channel_criteria, weight_criteria


def _tp() -> Any:
    import torch_pruning as tp  # imported when a criterion is built, not when this module is

    return tp


@channel_criteria.register("l1")
def group_l1() -> Any:
    return _tp().importance.GroupMagnitudeImportance(p=1)


@channel_criteria.register("l2")
def group_l2() -> Any:
    return _tp().importance.GroupMagnitudeImportance(p=2)


@channel_criteria.register("bn_scale")
def bn_scale() -> Any:
    return _tp().importance.BNScaleImportance()


@channel_criteria.register("taylor", gradients=True)
def group_taylor() -> Any:
    return _tp().importance.GroupTaylorImportance()


@channel_criteria.register("random")
def group_random() -> Any:
    return _tp().importance.RandomImportance()


weight_criteria.register("l1", prune.L1Unstructured)
weight_criteria.register("random", prune.RandomUnstructured)

"""Soft Filter Pruning (He et al., IJCAI 2018): filters are zeroed, not removed, while the model trains.

After every training epoch the lowest-L2 filters of each layer (rate ``P`` per layer) are set to zero;
the zeroed filters keep receiving gradients and may grow back, and the next epoch's selection is made
afresh. After the last epoch the selection is zeroed once more and then **physically removed**, so the
result is a smaller dense model like ``prune.structured``'s.

Filters are selected with Torch-Pruning's dependency graph (``tp.pruner.MetaPruner``, local ratio ``P``)
and the paper's criterion, the L2 norm of the filters (:class:`FilterL2`; where layers are coupled —
residual branches that must keep matching channels — the norm over all the group's filters). Zeroing
sets those filters (conv / linear out-channel weights and biases) to zero, as the paper does; the
BatchNorm after them stays, so the zeroed filters keep receiving gradients. The final removal prunes,
with the same criterion, the groups selected after the last epoch.

Budgets: the knob is the per-layer rate; for a params / bytes / FLOPs budget the shared solver searches
the rate on one-shot hard pruning of the parent (the final architecture depends only on the rate).
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from pydantic import Field
from torch import nn

from ..costs import TrainingCost
from ..interfaces import CompressContext, CompressResult, FinetuneParams, Params
from ..registry import methods
from ..specs import Knob
from .budget import Solution
from .common import clone, finetune, layer_table
from .structured import StructuredParams, _pruner, attention_blocker, dry_run, resize_step

log = logging.getLogger(__name__)


class SoftFilterParams(Params):
    rate: float = Field(0.3, ge=0, lt=1)  # the knob: fraction of each layer's filters pruned (no budget)
    train: FinetuneParams = FinetuneParams(epochs=1.0)  # the soft-pruning training run (zeroing after each epoch)
    finetune: FinetuneParams = FinetuneParams(epochs=0.0)  # optional fine-tuning after the removal
    max_layer_ratio: float = Field(0.9, gt=0, lt=1)
    round_to: int | None = Field(None, ge=1)


def _structured(params: SoftFilterParams) -> StructuredParams:
    return StructuredParams(criterion="l2", scope="local", max_layer_ratio=params.max_layer_ratio,
                            round_to=params.round_to)


_FILTERS = (nn.modules.conv._ConvNd, nn.Linear)


def _filter_deps(group: Any, dg: Any) -> list[tuple[nn.Module, list[int]]]:
    """(layer, out-channel indices) of every conv / linear whose filters the group removes."""
    return [(dep.target.module, list(idxs)) for dep, idxs in group
            if dg.is_out_channel_pruning_fn(dep.handler) and isinstance(dep.target.module, _FILTERS)]


class FilterL2:
    """Torch-Pruning importance: the L2 norm of the filters a channel group removes (SFP's criterion)."""

    def __init__(self) -> None:
        self.dg: Any = None  # set once the pruner (and its dependency graph) exists

    @torch.no_grad()
    def __call__(self, group: Any) -> torch.Tensor:
        sq = torch.zeros(len(group[0].idxs))
        for layer, idxs in _filter_deps(group, self.dg):
            sq += layer.weight.detach()[idxs].flatten(1).float().pow(2).sum(1).cpu()
        return sq.sqrt()


def _sfp_pruner(model: nn.Module, ctx: CompressContext, params: SoftFilterParams, rate: float) -> Any:
    imp = FilterL2()
    pruner = _pruner(model, ctx.meta, _structured(params), rate, importance=imp)  # traces: needs autograd
    imp.dg = pruner.DG
    return pruner


def soft_zero(model: nn.Module, ctx: CompressContext, params: SoftFilterParams, rate: float) -> int:
    """Zero (not remove) the filters that pruning at ``rate`` would remove; returns how many."""
    if rate <= 0:
        return 0
    was_training = model.training
    pruner = _sfp_pruner(model, ctx, params, rate)
    zeroed = 0
    for group in pruner.step(interactive=True):
        for layer, idxs in _filter_deps(group, pruner.DG):
            with torch.no_grad():
                layer.weight[idxs] = 0
                if getattr(layer, "bias", None) is not None:
                    layer.bias[idxs] = 0
            zeroed += len(idxs)
    model.train(was_training)
    return zeroed


def _hard(model: nn.Module, rate: float, ctx: CompressContext, params: SoftFilterParams) -> nn.Module:
    """The transform (for budgets and the final removal): remove the filters selected at ``rate``."""
    if rate > 0:
        _sfp_pruner(model, ctx, params, rate).step()
        model.zero_grad(set_to_none=True)
    return model.eval()


def check_soft_filter(model: nn.Module, ctx: CompressContext, params: SoftFilterParams) -> str | None:
    return attention_blocker(model) or dry_run(model, ctx, lambda m: _hard(m, 0.3, ctx, params))


@methods.register("prune.soft_filter", params=SoftFilterParams, check_model=check_soft_filter,
                  budgets=("knob", "params", "bytes", "flops"),
                  family="pruning",
                  knob=Knob("rate", lo=0.0, hi=lambda p: p.max_layer_ratio * 0.999, shrinks=True,
                            default=lambda p: p.rate, hint="raise max_layer_ratio",
                            valid=lambda v: None if 0 <= v < 1 else "must be in [0, 1)"),
                  apply=_hard, wants_model=False, changes_architecture=True, needs_training_data=True, version=1,
                  cost=lambda p: TrainingCost(input_epochs=p.train.epochs, epochs=p.finetune.epochs),
                  description="Soft Filter Pruning (He et al. 2018): lowest-L2 filters zeroed after every epoch, "
                              "still trained, removed at the end (Torch-Pruning groups)")
def soft_filter(parent: nn.Module, ctx: CompressContext, sol: Solution, params: SoftFilterParams) -> CompressResult:
    rate = float(sol.knob)
    model = clone(parent).cpu()
    history: list[dict[str, Any]] = []

    def epoch_end(m: nn.Module, epoch: int) -> None:
        history.append({"epoch": epoch, "zeroed": soft_zero(m, ctx, params, rate)})

    soft_zero(model, ctx, params, rate)  # SFP starts from the pretrained model with the first selection zeroed
    finetune(model, ctx, params.train, desc="soft filter pruning", epoch_end=epoch_end)
    model = _hard(model, rate, ctx, params)  # remove the groups selected now (the last zeroed ones, grown back or not)
    model = finetune(model, ctx, params.finetune, desc="finetune(soft filter)").eval()
    return CompressResult(model=model, record={"rate": rate, "epochs": params.train.epochs, "zeroing": history,
                                               "layers": {n: v["shape"] for n, v in layer_table(model).items()}},
                          steps=[resize_step(model)])

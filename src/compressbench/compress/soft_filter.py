"""Soft Filter Pruning (He et al., IJCAI 2018): filters are zeroed, not removed, while the model trains.

After every training epoch the lowest-L2 filters of each layer (rate ``P`` per layer) are set to zero;
the next epoch's selection is made afresh, so a zeroed filter that grows back may stay. After training
the selection is zeroed once more and then **physically removed**, so the result is a smaller dense
model like ``prune.structured``'s — and the same function as the zeroed model it trained (checked on
every run: logits within 1e-4 on a batch of training images, ``record["removal_check"]``).

Filters are selected with Torch-Pruning's dependency graph (``tp.pruner.MetaPruner``, local ratio ``P``)
and the paper's criterion, the L2 norm of the filters (:class:`FilterL2`; where layers are coupled —
residual branches that must keep matching channels — the norm over all the group's filters).

**Zeroing a channel zeroes everything that makes it emit a value**: the conv / linear filters and biases
and the scale and shift of the per-channel normalisation after them (BatchNorm; without affine
parameters, its running mean). Zeroing only the filters, as the paper's code does (its ``Mask`` masks
conv weights, BatchNorm untouched), leaves each zeroed channel emitting BatchNorm's constant
β − γμ/√(σ²+ε), which passes the ReLU where positive; removing the channel drops it, so the small model
is not the one trained. Measured (``digits``, cnn5 / resnet8 at width 0.5, 4-epoch parents, rate 0.3,
3 epochs): masked → removed top-1 62.1 → 44.8 % and 10.7 → 10.7 % (max |Δlogit| 5.0 and 2.9); and the
masked model itself is poor, because a zeroed filter regrows within a step (BatchNorm rescales any
non-zero filter to full scale) and the final zeroing leaves BatchNorm's running statistics of the
regrown filter behind. Folding ReLU(constant) into the next layer's bias at removal (the other fix; the
paper's ``get_small_model`` does it for the BatchNorm before each residual sum) is not exact: the next
convolution zero-pads its input, so a constant channel contributes a border-dependent map, not a bias,
and after a residual sum and ReLU it is not additive at all. With the scale and shift zeroed the same
runs give 97.1 % and 85.1 % with removal exact to 2e-6.

The price: a zeroed channel outputs exactly 0, so its filter gets no gradient; it regrows only through
the optimizer's state (SGD momentum / Adam moments carried over from before the zeroing), which is why
zeroing happens **after** each epoch — the paper's Algorithm 1 — and not also before the first (the
paper's code zeroes a pretrained model before training; with a fresh optimizer the zeroed filters would
never move again, and re-selection would be a no-op). In the runs above every zeroed filter was non-zero
again at the next epoch's end (``record["zeroing"][i]["regrown"]``), but the L2 selection kept picking
the same ones (``newly_zeroed`` 0 after the first zeroing). Training shorter than one epoch zeroes only
at the end (then it is one-shot L2 pruning of the trained model; ``finetune`` recovers).

Groups whose channels feed a normalisation across channels (LayerNorm over channels — ConvNeXt's
residual stream —, GroupNorm with several channels per group) are never zeroed: removing a zeroed
channel there changes the statistics of the others, so no zeroing equals its removal.

Budgets: the knob is the per-layer rate; for a params / bytes / FLOPs budget the shared solver searches
the rate on one-shot hard pruning of the parent (the final architecture depends only on the rate).
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import torch
from torch import nn

from ..catalog.methods import SoftFilterParams  # noqa: F401 (torch-free: compressbench.catalog)
from ..costs import TrainingCost
from ..interfaces import CompressContext, CompressResult
from ..registry import methods
from ..specs import Knob
from .budget import Solution
from .common import (
    SAME_FUNCTION_TOL,
    check_same_function,
    clone,
    finetune,
    first_unplain_module,
    input_shape,
    layer_table,
    logit_gap,
)
from .structured import StructuredParams, _pruner, attention_blocker, dry_run, resize_step

log = logging.getLogger(__name__)


def _structured(params: SoftFilterParams) -> StructuredParams:
    return StructuredParams(
        criterion="l2", scope="local", max_layer_ratio=params.max_layer_ratio, round_to=params.round_to
    )


_FILTERS = (nn.modules.conv._ConvNd, nn.Linear)
_CHANNEL_NORMS = (nn.modules.batchnorm._BatchNorm, nn.modules.instancenorm._InstanceNorm)


def _filter_deps(group: Any, dg: Any) -> list[tuple[nn.Module, list[int]]]:
    """(layer, out-channel indices) of every conv / linear whose filters the group removes."""
    return [
        (dep.target.module, list(idxs))
        for dep, idxs in group
        if dg.is_out_channel_pruning_fn(dep.handler) and isinstance(dep.target.module, _FILTERS)
    ]


def _mixes_channels(m: nn.Module) -> bool:
    """A normalisation whose statistics span several channels (removing one changes the others)."""
    return isinstance(m, nn.LayerNorm) or (isinstance(m, nn.GroupNorm) and m.num_groups != m.num_channels)


class FilterL2:
    """Torch-Pruning importance: the L2 norm of the filters a channel group removes (SFP's criterion);
    None (the group is not pruned) for a group whose channels feed a cross-channel normalisation."""

    def __init__(self) -> None:
        self.dg: Any = None  # set once the pruner (and its dependency graph) exists

    @torch.no_grad()
    def __call__(self, group: Any) -> torch.Tensor | None:
        if any(_mixes_channels(dep.target.module) for dep, _ in group):
            return None
        sq = torch.zeros(len(group[0].idxs))
        for layer, idxs in _filter_deps(group, self.dg):
            sq += layer.weight.detach()[idxs].flatten(1).float().pow(2).sum(1).cpu()
        return sq.sqrt()


def _sfp_pruner(model: nn.Module, ctx: CompressContext, params: SoftFilterParams, rate: float) -> Any:
    imp = FilterL2()
    pruner = _pruner(model, ctx.meta, _structured(params), rate, importance=imp)  # traces: needs autograd
    imp.dg = pruner.DG
    return pruner


@torch.no_grad()
def _zero_group(group: Any, dg: Any) -> list[tuple[nn.Module, list[int]]]:
    """Make the group's channels emit exactly 0: zero the filters (weights, biases) and the scale and
    shift of the per-channel normalisations (without affine parameters: the running mean). Returns the
    zeroed (layer, filter indices)."""
    for dep, idxs in group:
        m = dep.target.module
        if isinstance(m, _CHANNEL_NORMS):
            ix = list(idxs)
            if m.weight is not None:
                m.weight[ix] = 0
                m.bias[ix] = 0
            elif m.running_mean is not None:
                m.running_mean[ix] = 0
    filters = _filter_deps(group, dg)
    for layer, ix in filters:
        layer.weight[ix] = 0
        if getattr(layer, "bias", None) is not None:
            layer.bias[ix] = 0
    return filters


def soft_zero(model: nn.Module, ctx: CompressContext, params: SoftFilterParams, rate: float) -> set[tuple[str, int]]:
    """Zero (not remove) the channels that pruning at ``rate`` would remove (see :func:`_zero_group`);
    returns the zeroed filters as (layer name, index)."""
    if rate <= 0:
        return set()
    was_training = model.training
    names = {id(m): n for n, m in model.named_modules()}
    pruner = _sfp_pruner(model, ctx, params, rate)
    zeroed = {
        (names[id(layer)], i)
        for group in pruner.step(interactive=True)
        for layer, idxs in _zero_group(group, pruner.DG)
        for i in idxs
    }
    model.train(was_training)
    return zeroed


def _nonzero(model: nn.Module, filters: set[tuple[str, int]]) -> int:
    """How many of ``filters`` (layer name, index) are not all-zero."""
    mods = dict(model.named_modules())
    return sum(1 for name, i in filters if bool(mods[name].weight.detach()[i].any()))


def _hard(model: nn.Module, rate: float, ctx: CompressContext, params: SoftFilterParams) -> nn.Module:
    """The transform (for budgets and the final removal): remove the filters selected at ``rate``."""
    if rate > 0:
        _sfp_pruner(model, ctx, params, rate).step()
        model.zero_grad(set_to_none=True)
    return model.eval()


KNOB = Knob(
    "rate",
    lo=0.0,
    hi=lambda p: p.max_layer_ratio * 0.999,
    shrinks=True,
    default=lambda p: p.rate,
    hint="raise max_layer_ratio",
    valid=lambda v: None if 0 <= v < 1 else "must be in [0, 1)",
)


def check_soft_filter(model: nn.Module, ctx: CompressContext, params: SoftFilterParams) -> str | None:
    """``check_model``: as ``prune.structured``'s, and (networks beyond the zoo's plain blocks) zeroing at
    rate 0.3 on a copy must be the same function as removing (an activation with f(0) ≠ 0 after a
    zeroed channel would break it)."""
    blocked = attention_blocker(model) or dry_run(
        "prune.soft_filter", model, ctx, params, KNOB.bounds(params)[1], lambda m, r: _hard(m, r, ctx, params)
    )
    if blocked or first_unplain_module(getattr(model, "net", model)) is None:
        return blocked
    m = copy.deepcopy(model).cpu().eval()
    soft_zero(m, ctx, params, 0.3)
    masked = copy.deepcopy(m)
    gap = logit_gap(masked, _hard(m, 0.3, ctx, params), torch.rand(4, *input_shape(ctx.meta)[1:]))
    if not gap <= SAME_FUNCTION_TOL:
        return (
            f"zeroing its filters is not the same function as removing them here (max |Δlogit| {gap:.2g} on "
            f"random images): an op after a zeroed channel turns 0 into a value (use prune.structured)"
        )
    return None


@methods.register(
    "prune.soft_filter",
    check_model=check_soft_filter,
    family="pruning",
    knob=KNOB,
    apply=_hard,
    wants_model=False,
    changes_architecture=True,
    needs_training_data=True,
    cost=lambda p: TrainingCost(input_epochs=p.train.epochs, epochs=p.finetune.epochs),
)
def soft_filter(parent: nn.Module, ctx: CompressContext, sol: Solution, params: SoftFilterParams) -> CompressResult:
    rate = float(sol.knob)
    model = clone(parent).cpu()
    history: list[dict[str, Any]] = []
    last: set[tuple[str, int]] = set()

    def epoch_end(m: nn.Module, epoch: int) -> None:  # Algorithm 1: zero after every epoch's updates
        nonlocal last
        regrown = _nonzero(m, last)
        now = soft_zero(m, ctx, params, rate)
        history.append({"epoch": epoch, "zeroed": len(now), "regrown": regrown, "newly_zeroed": len(now - last)})
        last = now

    finetune(model, ctx, params.train, desc="soft filter pruning", epoch_end=epoch_end)
    soft_zero(model, ctx, params, rate)  # the final selection (unchanged right after an epoch's zeroing)
    masked = copy.deepcopy(model).eval()
    model = _hard(model, rate, ctx, params)  # remove exactly the zeroed channels: the lowest L2 norms (0)
    gap = check_same_function(masked, model, ctx, "prune.soft_filter: removing the zeroed channels")
    tuned = params.finetune.epochs > 0
    model = finetune(model, ctx, params.finetune, desc="finetune(soft filter)").eval()
    return CompressResult(
        model=model,
        record={
            "rate": rate,
            "epochs": params.train.epochs,
            "zeroing": history,
            "removal_check": gap,
            "layers": {n: v["shape"] for n, v in layer_table(model).items()},
        },
        steps=[resize_step(model)],
        trained=None if tuned else masked,
    )

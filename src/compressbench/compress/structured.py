"""Structured (channel / filter) pruning with Torch-Pruning's dependency graph.

Channels are **physically removed** (coupled layers — BatchNorm, the next conv, residual
branches — are pruned consistently by ``tp.pruner.MetaPruner``), so parameters, bytes and FLOPs
really shrink. Criteria: L1 / L2 magnitude, BatchNorm scale (network slimming), first-order
Taylor (gradients on a few training batches) or random. Local (same ratio per layer) or global
(ranked across layers) scope; one-shot or iterative with fine-tuning between steps.

Shared budgets: bisection on Torch-Pruning's ``pruning_ratio`` (on copies of the model) until the
achieved params / bytes / FLOPs fraction is within ±2 % of the target; iterative pruning aims each
step at an interpolated target so the final step lands on the budget.

Save / reload: the step records the new channel counts of every resized layer; the rebuilder
resizes a freshly built parent to them (shapes only), after which the state dict loads.
"""

from __future__ import annotations

import copy
import logging
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoint import register_rebuilder
from ..interfaces import Budget, CompressContext, CompressResult, FinetuneParams, Params
from ..registry import methods
from .common import (
    BudgetError,
    check_fraction,
    clone,
    finetune,
    fraction_of,
    fractions,
    get_module,
    head_name,
    input_shape,
    layer_table,
    model_stats,
    search_knob,
    within,
)

log = logging.getLogger(__name__)

BUDGETS = ("knob", "params", "bytes", "flops")


class StructuredParams(Params):
    criterion: Literal["l1", "l2", "bn_scale", "taylor", "random"] = "l1"
    scope: Literal["local", "global"] = "global"
    ratio: float = 0.5  # the knob: Torch-Pruning's channel pruning ratio (used without a budget)
    iterative_steps: int = 1  # >1: prune in steps with fine-tuning in between
    step_finetune: FinetuneParams = FinetuneParams(epochs=0.25)  # between iterative steps
    finetune: FinetuneParams = FinetuneParams(epochs=0.5)  # after the last step
    max_layer_ratio: float = 0.9  # never remove more than this fraction of one layer's channels
    round_to: int | None = None  # keep channel counts multiples of this (e.g. 8 for SIMD)
    taylor_batches: int = 4


def check_budget(budget: Budget | None, params: StructuredParams) -> str | None:
    msg = check_fraction(budget, BUDGETS, "prune.structured")
    if msg is None and budget is not None and budget.kind == "knob" and not 0 <= budget.value < 1:
        msg = f"prune.structured: knob (pruning ratio) must be in [0, 1), got {budget.value:g}"
    return msg


def _importance(criterion: str):
    import torch_pruning as tp

    return {"l1": lambda: tp.importance.GroupMagnitudeImportance(p=1),
            "l2": lambda: tp.importance.GroupMagnitudeImportance(p=2),
            "bn_scale": lambda: tp.importance.BNScaleImportance(),
            "taylor": lambda: tp.importance.GroupTaylorImportance(),
            "random": lambda: tp.importance.RandomImportance()}[criterion]()


def _pruner(model: nn.Module, meta: Any, params: StructuredParams, ratio: float, steps: int = 1):
    import torch_pruning as tp

    head = head_name(model)
    ignored = [get_module(model, head)] if head else []
    example = torch.rand(*input_shape(meta))
    return tp.pruner.MetaPruner(model, example, importance=_importance(params.criterion),
                                global_pruning=params.scope == "global", pruning_ratio=ratio,
                                iterative_steps=steps, max_pruning_ratio=params.max_layer_ratio,
                                ignored_layers=ignored, round_to=params.round_to)


def _taylor_grads(model: nn.Module, ctx: CompressContext, n_batches: int) -> None:
    """Accumulate loss gradients on a few training batches (Taylor importance needs them)."""
    model.zero_grad(set_to_none=True)
    model.train()
    g = torch.Generator().manual_seed(ctx.seed)
    for i, (x, y, _) in enumerate(ctx.data.train.batches(64, shuffle=True, generator=g)):
        if i >= n_batches:
            break
        F.cross_entropy(model(x), y).backward()
    model.eval()


def prune_once(model: nn.Module, ctx: CompressContext, params: StructuredParams, ratio: float) -> nn.Module:
    """Prune ``model`` in place by Torch-Pruning ratio ``ratio`` (one shot); returns it."""
    if ratio <= 0:
        return model
    torch.manual_seed(ctx.seed)  # random importance is reproducible
    pruner = _pruner(model, ctx.meta, params, ratio)
    if params.criterion == "taylor":
        _taylor_grads(model, ctx, params.taylor_batches)
    pruner.step()
    model.zero_grad(set_to_none=True)
    return model.eval()


def resize_step(model: nn.Module) -> dict[str, Any]:
    """Channel counts and tensor shapes of every conv / linear / BN layer (enough to rebuild the
    architecture, independent of later steps that rename or fold the tensors)."""
    mods: dict[str, dict[str, Any]] = {}
    for n, m in model.named_modules():
        if isinstance(m, nn.modules.conv._ConvNd):
            attrs: dict[str, Any] = {"in_channels": m.in_channels, "out_channels": m.out_channels, "groups": m.groups}
        elif isinstance(m, nn.Linear):
            attrs = {"in_features": m.in_features, "out_features": m.out_features}
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            attrs = {"num_features": m.num_features}
        else:
            continue
        shapes = {k: list(t.shape) for k, t in list(m.named_parameters(recurse=False))
                  + list(m.named_buffers(recurse=False)) if t is not None and t.dim() > 0}
        mods[n] = {"attrs": attrs, "shapes": shapes}
    return {"kind": "prune.structured", "modules": mods}


@methods.register("prune.structured", params=StructuredParams, budgets=BUDGETS, check_budget=check_budget,
                  family="pruning", version=1,
                  description="channel pruning that removes filters (Torch-Pruning dependency graph): "
                              "L1/L2/BN-scale/Taylor/random, local or global, one-shot or iterative")
def structured(parent: nn.Module, ctx: CompressContext, budget: Budget | None,
               params: StructuredParams) -> CompressResult:
    msg = check_budget(budget, params)
    if msg:
        raise BudgetError(msg)
    model = clone(parent).cpu()
    ps = model_stats(parent, ctx.meta)
    k_steps = max(1, params.iterative_steps)
    record: dict[str, Any] = {"criterion": params.criterion, "scope": params.scope, "iterative_steps": k_steps,
                              "parent": ps.to_dict()}
    if budget is None or budget.kind == "knob":
        ratio = budget.value if budget is not None else params.ratio
        record["knobs"] = {"ratio": ratio}
        record["knob"] = ratio
        if k_steps == 1:
            prune_once(model, ctx, params, ratio)
        else:  # Torch-Pruning's own iterative schedule, fine-tuning between steps
            torch.manual_seed(ctx.seed)
            pruner = _pruner(model, ctx.meta, params, ratio, steps=k_steps)
            for k in range(k_steps):
                if params.criterion == "taylor":
                    _taylor_grads(model, ctx, params.taylor_batches)
                pruner.step()
                model.zero_grad(set_to_none=True)
                if k < k_steps - 1:
                    finetune(model, ctx, params.step_finetune, desc=f"finetune(structured {k + 1}/{k_steps})")
    else:
        kind, target = budget.kind, budget.value
        ratios = []
        for k in range(1, k_steps + 1):
            step_target = 1 - (1 - target) * k / k_steps
            base = model
            best: dict[str, Any] = {}

            def evaluate(r: float, base=base, best=best, step_target=step_target) -> float:
                cand = prune_once(copy.deepcopy(base), ctx, params, r)
                val = fraction_of(cand, ctx.meta, ps, kind)
                if not best or abs(val - step_target) < abs(best["val"] - step_target):
                    best.update(val=val, model=cand, ratio=r)
                return val

            start = fractions(ps, model_stats(base, ctx.meta))[kind]
            if not within(start, step_target):
                hi_r = params.max_layer_ratio * 0.999
                lo_val = evaluate(hi_r)
                if lo_val > step_target * (1 + 0.02):
                    raise BudgetError(f"prune.structured: {kind}={target:g} is unreachable — at the maximum "
                                      f"per-layer ratio {params.max_layer_ratio:g} the model keeps {lo_val:.3f} "
                                      f"of the parent (raise max_layer_ratio)")
                search_knob(evaluate, step_target, 0.0, hi_r, decreasing=True, what=f"prune.structured {kind}",
                            seen=[(hi_r, lo_val), (0.0, start)])
                model = best["model"]
                ratios.append(best["ratio"])
            if k < k_steps:
                finetune(model, ctx, params.step_finetune, desc=f"finetune(structured {k}/{k_steps})")
        record["knobs"] = {"ratio": ratios[-1] if ratios else 0.0, "step_ratios": ratios}
        record["knob"] = record["knobs"]["ratio"]
        record["target"] = {"kind": kind, "value": target}
    model = finetune(model, ctx, params.finetune, desc="finetune(structured)")
    model.eval()
    cs = model_stats(model, ctx.meta)
    achieved = fractions(ps, cs)
    if budget is not None and budget.kind != "knob":
        record["within_tolerance"] = within(achieved[budget.kind], budget.value)
    record["child"] = cs.to_dict()
    record["layers"] = {n: v["shape"] for n, v in layer_table(model).items()}
    return CompressResult(model=model, record=record, steps=[resize_step(model)], achieved=achieved)


@register_rebuilder("prune.structured")
def rebuild_resized(model: nn.Module, step: dict, state_dict: dict) -> nn.Module:
    """Resize conv / linear / BN layers to the recorded channel counts and tensor shapes."""
    for name, spec in step["modules"].items():
        m = get_module(model, name)
        for k, v in spec["attrs"].items():
            setattr(m, k, v)
        for tname, shape in spec["shapes"].items():
            t = getattr(m, tname)
            if list(t.shape) == list(shape):
                continue
            new = torch.zeros(shape, dtype=t.dtype)
            setattr(m, tname, nn.Parameter(new, requires_grad=t.requires_grad) if isinstance(t, nn.Parameter) else new)
    return model

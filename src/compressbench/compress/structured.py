"""Structured (channel / filter) pruning with Torch-Pruning's dependency graph.

Channels are **physically removed** (coupled layers — BatchNorm, the next conv, residual
branches — are pruned consistently by ``tp.pruner.MetaPruner``), so parameters, bytes and FLOPs
really shrink. Criteria (``registry.channel_criteria``, :mod:`.criteria`): L1 / L2 magnitude, BatchNorm
scale (network slimming), first-order Taylor (gradients on a few training batches), random, or a
registered plug-in's. Local (same ratio per layer) or global
(ranked across layers) scope; one-shot or iterative with fine-tuning between steps.

Shared budgets: the shared solver (``compress.budget``) searches Torch-Pruning's ``pruning_ratio``
(the knob; the transform prunes a copy one-shot) until the achieved params / bytes / FLOPs fraction
is within ±2 % of the target; iterative pruning solves each step itself, aiming at an interpolated
target so the final step lands on the budget.

Save / reload: the step records the new channel counts of every resized layer; the rebuilder
resizes a freshly built parent to them (shapes only), after which the state dict loads.

No model here is ever evaluated masked: Torch-Pruning removes each channel together with its BatchNorm
and the next layer's inputs in one step — one-shot, at every iterative step, and as a pipeline stage —
so the model fine-tuned, measured and saved is the physically smaller one. (The hazard of removing a
zeroed channel whose BatchNorm still emits a constant exists only where a method trains a masked model
first: ``prune.soft_filter``, which zeroes the BatchNorm too and checks the removal.)
"""

from __future__ import annotations

import copy
import logging
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..catalog.methods import StructuredParams  # noqa: F401 (torch-free: compressbench.catalog)
from ..checkpoint import register_rebuilder
from ..costs import TrainingCost
from ..interfaces import CompressContext, CompressResult
from ..registry import channel_criteria, methods
from ..specs import Knob
from .budget import Solution, solve_knob
from .common import clone, finetune, first_unplain_module, get_module, head_name, input_shape, layer_table
from .dryrun import smallest_end

log = logging.getLogger(__name__)


def _pruner(
    model: nn.Module, meta: Any, params: StructuredParams, ratio: float, steps: int = 1, importance: Any = None
):
    """Torch-Pruning's MetaPruner for ``model`` (the classifier head is never pruned); ``importance``
    overrides the criterion's."""
    import torch_pruning as tp

    head = head_name(model)
    ignored = [get_module(model, head)] if head else []
    example = torch.rand(*input_shape(meta))
    return tp.pruner.MetaPruner(
        model,
        example,
        importance=importance or channel_criteria.get(params.criterion)(),
        global_pruning=params.scope == "global",
        pruning_ratio=ratio,
        iterative_steps=steps,
        max_pruning_ratio=params.max_layer_ratio,
        ignored_layers=ignored,
        round_to=params.round_to,
    )


def _taylor_grads(model: nn.Module, ctx: CompressContext, n_batches: int) -> None:
    """Accumulate loss gradients on a few training batches (a gradient criterion, e.g. Taylor, reads them)."""
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
    if params.needs_gradients:
        _taylor_grads(model, ctx, params.taylor_batches)
    pruner.step()
    model.zero_grad(set_to_none=True)
    return model.eval()


def resize_step(model: nn.Module) -> dict[str, Any]:
    """Channel counts and tensor shapes of every conv / linear / norm layer, and the tensor shapes of any
    other module holding its own parameters (e.g. ConvNeXt's layer scales) — enough to rebuild the
    architecture, independent of later steps that rename or fold the tensors."""
    from ..models import Normalize

    mods: dict[str, dict[str, Any]] = {}
    for n, m in model.named_modules():
        if isinstance(m, nn.modules.conv._ConvNd):
            attrs: dict[str, Any] = {"in_channels": m.in_channels, "out_channels": m.out_channels, "groups": m.groups}
        elif isinstance(m, nn.Linear):
            attrs = {"in_features": m.in_features, "out_features": m.out_features}
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            attrs = {"num_features": m.num_features}
        elif isinstance(m, nn.LayerNorm):
            attrs = {"normalized_shape": list(m.normalized_shape)}
        elif isinstance(m, Normalize) or not list(m.parameters(recurse=False)):
            continue
        else:
            attrs = {}
        shapes = {
            k: list(t.shape)
            for k, t in list(m.named_parameters(recurse=False)) + list(m.named_buffers(recurse=False))
            if t is not None and t.dim() > 0
        }
        mods[n] = {"attrs": attrs, "shapes": shapes}
    return {"kind": "prune.structured", "modules": mods}


def _prune(model: nn.Module, ratio: float, ctx: CompressContext, params: StructuredParams) -> nn.Module:
    """The transform: one-shot pruning at Torch-Pruning ratio ``ratio`` (in place)."""
    return prune_once(model, ctx, params, ratio)


def _knob_range(v: float) -> str | None:
    return None if 0 <= v < 1 else "must be in [0, 1)"


def dry_run(
    name: str,
    model: nn.Module,
    ctx: CompressContext,
    params: Any,
    knob: float,
    transform: Callable[[nn.Module, float], nn.Module],
) -> str | None:
    """Why ``transform(copy, knob)`` (channel removal at the knob's smallest end) fails on ``model`` or removes
    nothing (None: it works; plain networks — the model zoo — are not dry-run). Guarded and memoized
    (:func:`.dryrun.smallest_end`): the budget check of ``validate`` reuses the same dry run."""
    if first_unplain_module(getattr(model, "net", model)) is None:
        return None
    dr = smallest_end(name, model, ctx.meta, params, lambda m: transform(m, knob), knob)
    if dr.error:
        return dr.error if dr.error.startswith("gave up") else f"Torch-Pruning cannot remove its channels ({dr.error})"
    if dr.fractions["params"] >= 1 and knob > 0.3:  # the largest ratio removes nothing: does a small one?
        return dry_run(name, model, ctx, params, 0.3, transform)
    if dr.fractions["params"] >= 1:
        return (
            f"Torch-Pruning finds no channel group it can remove (at {KNOB.name}={knob:.3g} the model keeps "
            f"all its parameters: every group is coupled to something it cannot shrink)"
        )
    return None


def attention_blocker(model: nn.Module) -> str | None:
    """Multi-head attention (a module with ``num_heads`` and a ``qkv`` projection, or per-head ``qkvs`` as in
    EfficientViT's cascaded group attention): removing channels
    of its projections breaks the head split unless Torch-Pruning is told each architecture's heads,
    which this method does not do (measured on ViT-tiny: errors, or a ratio-to-size curve that is
    not monotone). Refused rather than pruned wrongly."""
    for n, m in model.named_modules():
        if isinstance(getattr(m, "num_heads", None), int) and (hasattr(m, "qkv") or hasattr(m, "qkvs")):
            return (
                f"multi-head attention ({n}: {m.num_heads} heads) — Torch-Pruning needs each architecture's "
                f"head layout, which channel pruning here does not set (prune the MLPs with lowrank, or use "
                f"unstructured pruning / distillation)"
            )
    return None


def check_structured(model: nn.Module, ctx: CompressContext, params: StructuredParams) -> str | None:
    """``check_model``: no multi-head attention, and one-shot pruning at the largest ratio on a copy must remove
    channels and run (a gradient criterion, which needs data, is dry-run as L1: the graph is the same)."""
    blocked = attention_blocker(model)
    if blocked:
        return blocked
    p = params.model_copy(update={"criterion": "l1"}) if params.needs_gradients else params
    return dry_run("prune.structured", model, ctx, p, KNOB.bounds(p)[1], lambda m, r: prune_once(m, ctx, p, r))


def structured_cost(p: StructuredParams) -> TrainingCost:
    """``compressbench plan``: the fine-tunes between iterative steps (counted at the final size) and after
    the last one; a gradient criterion's batches (64 images) at every step."""
    taylor = 64 * p.taylor_batches * p.iterative_steps if p.needs_gradients else 0
    return TrainingCost(
        epochs=p.finetune.epochs + p.step_finetune.epochs * (p.iterative_steps - 1), gradient_images=taylor, batch=64
    )


KNOB = Knob(
    "ratio",
    lo=0.0,
    hi=lambda p: p.max_layer_ratio * 0.999,
    shrinks=True,
    default=lambda p: p.ratio,
    hint="raise max_layer_ratio",
    valid=_knob_range,
)


@methods.register(
    "prune.structured",
    family="pruning",
    knob=KNOB,
    apply=_prune,
    own_budget=lambda p: p.iterative_steps > 1,
    changes_architecture=True,
    check_model=check_structured,
    cost=structured_cost,
    needs_training_data=True,
)
def structured(parent: nn.Module, ctx: CompressContext, sol: Solution, params: StructuredParams) -> CompressResult:
    k_steps = params.iterative_steps
    record: dict[str, Any] = {"criterion": params.criterion, "scope": params.scope, "iterative_steps": k_steps}
    if sol.model is not None:  # one shot at the solved ratio
        model = sol.model
    elif sol.knob is not None:  # Torch-Pruning's own iterative schedule, fine-tuning between steps
        model = clone(parent).cpu()
        torch.manual_seed(ctx.seed)
        pruner = _pruner(model, ctx.meta, params, sol.knob, steps=k_steps)
        for k in range(k_steps):
            if params.needs_gradients:
                _taylor_grads(model, ctx, params.taylor_batches)
            pruner.step()
            model.zero_grad(set_to_none=True)
            if k < k_steps - 1:
                finetune(model, ctx, params.step_finetune, desc=f"finetune(structured {k + 1}/{k_steps})")
    else:  # a shared budget, iteratively: each step aims at an interpolated target, re-solved after fine-tuning
        model, ratios = _iterative_to_budget(parent, ctx, sol, params)
        record["knobs"] = {"ratio": ratios[-1] if ratios else 0.0, "step_ratios": ratios}
        record["knob"] = record["knobs"]["ratio"]
    model = finetune(model, ctx, params.finetune, desc="finetune(structured)")
    model.eval()
    record["layers"] = {n: v["shape"] for n, v in layer_table(model).items()}
    return CompressResult(model=model, record=record, steps=[resize_step(model)])


def _iterative_to_budget(
    parent: nn.Module, ctx: CompressContext, sol: Solution, params: StructuredParams
) -> tuple[nn.Module, list[float]]:
    kind, target = sol.budget.kind, sol.budget.value
    k_steps = params.iterative_steps
    model, ratios = clone(parent).cpu(), []
    for k in range(1, k_steps + 1):
        step_target = 1 - (1 - target) * k / k_steps
        base = model
        ratio, _ = solve_knob(
            "prune.structured",
            KNOB,
            lambda r, base=base: prune_once(copy.deepcopy(base), ctx, params, r),
            sol.parent_stats,
            ctx.meta,
            kind,
            step_target,
            params,
        )
        model = prune_once(copy.deepcopy(base), ctx, params, ratio)
        ratios.append(ratio)
        if k < k_steps:
            finetune(model, ctx, params.step_finetune, desc=f"finetune(structured {k}/{k_steps})")
    return model, ratios


@register_rebuilder("prune.structured")
def rebuild_resized(model: nn.Module, step: dict, state_dict: dict) -> nn.Module:
    """Resize conv / linear / BN layers to the recorded channel counts and tensor shapes."""
    for name, spec in step["modules"].items():
        m = get_module(model, name)
        for k, v in spec["attrs"].items():
            setattr(m, k, tuple(v) if isinstance(getattr(m, k, None), tuple) else v)
        for tname, shape in spec["shapes"].items():
            t = getattr(m, tname)
            if list(t.shape) == list(shape):
                continue
            new = torch.zeros(shape, dtype=t.dtype)
            setattr(m, tname, nn.Parameter(new, requires_grad=t.requires_grad) if isinstance(t, nn.Parameter) else new)
    return model

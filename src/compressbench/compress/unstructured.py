"""Unstructured (weight) pruning with ``torch.nn.utils.prune``.

Magnitude (L1) or random, per layer (``local``) or over all prunable layers (``global``), on conv
and linear weights (the classifier head optional). Masks stay in place during fine-tuning (so
pruned weights cannot regrow) and are made permanent with ``prune.remove`` afterwards: the saved
model holds plain dense tensors with zeros, no ``weight_orig`` / ``weight_mask``.

A ``params`` budget counts **nonzero** parameters of the whole model (biases, BatchNorm and any
unpruned layer included) as a fraction of the parent's parameters; the number of weights to
remove is solved exactly rather than searched. Dense bytes and FLOPs do not change — the
record carries the theoretical sparse size (bitmask + values) for reference.
"""

from __future__ import annotations

import logging
from typing import Literal

from torch import nn
from torch.nn.utils import prune

from ..checkpoint import register_rebuilder
from ..interfaces import Budget, CompressContext, CompressResult, FinetuneParams, Params
from ..measure.sizes import sparse_payload_bytes
from ..registry import methods
from .common import (
    BudgetError,
    check_fraction,
    clone,
    finetune,
    fractions,
    head_name,
    layer_table,
    model_stats,
    within,
)

log = logging.getLogger(__name__)

BUDGETS = ("knob", "params")


class UnstructuredParams(Params):
    criterion: Literal["l1", "random"] = "l1"
    scope: Literal["local", "global"] = "global"
    sparsity: float = 0.5  # the knob: fraction of prunable weights set to zero (used without a budget)
    include_head: bool = False  # prune the classifier head too
    finetune: FinetuneParams = FinetuneParams(epochs=0.5)


def check_budget(budget: Budget | None, params: UnstructuredParams) -> str | None:
    msg = check_fraction(budget, BUDGETS, "prune.unstructured")
    if msg is None and budget is not None and budget.kind == "knob" and not 0 <= budget.value < 1:
        msg = f"prune.unstructured: knob (sparsity) must be in [0, 1), got {budget.value:g}"
    return msg


def prunable_layers(model: nn.Module, include_head: bool) -> list[tuple[str, nn.Module]]:
    head = head_name(model)
    return [(n, m) for n, m in model.named_modules()
            if isinstance(m, (nn.Linear, nn.modules.conv._ConvNd)) and (include_head or n != head)]


def apply_masks(model: nn.Module, layers: list[tuple[str, nn.Module]], n_prune: int | float, criterion: str,
                scope: str) -> None:
    """Attach pruning masks removing ``n_prune`` weights (int) or that fraction (float)."""
    method = prune.L1Unstructured if criterion == "l1" else prune.RandomUnstructured
    if scope == "global":
        prune.global_unstructured([(m, "weight") for _, m in layers], pruning_method=method, amount=n_prune)
        return
    total = sum(m.weight.numel() for _, m in layers)
    frac = n_prune / total if isinstance(n_prune, int) else n_prune
    for _, m in layers:
        method.apply(m, "weight", amount=int(round(frac * m.weight.numel())))


@methods.register("prune.unstructured", params=UnstructuredParams, budgets=BUDGETS, check_budget=check_budget,
                  family="pruning", version=1,
                  description="unstructured L1/random weight pruning (torch.nn.utils.prune), local or global; "
                              "params = nonzero parameters")
def unstructured(parent: nn.Module, ctx: CompressContext, budget: Budget | None,
                 params: UnstructuredParams) -> CompressResult:
    msg = check_budget(budget, params)
    if msg:
        raise BudgetError(msg)
    model = clone(parent).cpu()
    ps = model_stats(parent, ctx.meta)
    layers = prunable_layers(model, params.include_head)
    if not layers:
        raise BudgetError("prune.unstructured: the model has no conv/linear layers to prune")
    w_total = sum(m.weight.numel() for _, m in layers)
    w_nonzero = sum(int((m.weight != 0).sum()) for _, m in layers)
    if budget is not None and budget.kind == "params":
        other_nonzero = ps.params_nonzero - w_nonzero
        keep = int(round(budget.value * ps.params)) - other_nonzero
        if keep <= 0:
            raise BudgetError(f"prune.unstructured: params={budget.value:g} is unreachable — the unpruned "
                              f"parameters alone are {other_nonzero / ps.params:.3f} of the parent"
                              + ("" if params.include_head else " (try include_head: true)"))
        n_prune: int | float = max(0, w_total - keep)
        sparsity = n_prune / w_total
    else:
        sparsity = budget.value if budget is not None else params.sparsity
        n_prune = int(round(sparsity * w_total))
    apply_masks(model, layers, n_prune, params.criterion, params.scope)
    model = finetune(model, ctx, params.finetune, desc="finetune(unstructured)")
    for _, m in layers:
        prune.remove(m, "weight")
    model.eval()
    cs = model_stats(model, ctx.meta)
    achieved = fractions(ps, cs, nonzero=True)
    b_sparse = sparse_payload_bytes(model)
    record = {"knobs": {"sparsity": sparsity}, "knob": sparsity, "criterion": params.criterion,
              "scope": params.scope,
              "parent": ps.to_dict(), "child": cs.to_dict(), "bytes_sparse": b_sparse,
              "bytes_sparse_fraction": b_sparse / ps.bytes,
              "layers": {n: v for n, v in layer_table(model).items() if n in dict(layers)}}
    if budget is not None:
        record["target"] = {"kind": budget.kind, "value": budget.value}
        if budget.kind == "params":
            record["within_tolerance"] = within(achieved["params"], budget.value)
    steps = [{"kind": "prune.unstructured", "sparsity": sparsity}]
    return CompressResult(model=model, record=record, steps=steps, achieved=achieved)


@register_rebuilder("prune.unstructured")
def _rebuild(model: nn.Module, step: dict, state_dict: dict) -> nn.Module:
    """Unstructured pruning keeps the architecture: nothing to rebuild (the step is informational)."""
    return model

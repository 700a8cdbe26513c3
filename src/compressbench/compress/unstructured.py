"""Unstructured (weight) pruning with ``torch.nn.utils.prune``.

A weight criterion (``registry.weight_criteria``, :mod:`.criteria`: magnitude ``l1``, ``random``, or a
registered plug-in's ``torch.nn.utils.prune`` method), per layer (``local``) or over all prunable layers
(``global``), on conv
and linear weights (the classifier head optional). Masks stay in place during fine-tuning (so
pruned weights cannot regrow) and are made permanent with ``prune.remove`` afterwards: the saved
model holds plain dense tensors with zeros, no ``weight_orig`` / ``weight_mask``.

A ``params`` budget counts **nonzero** parameters of the whole model (biases, BatchNorm and any
unpruned layer included) as a fraction of the parent's parameters; the number of weights to
remove is solved exactly (``Knob.exact``) rather than searched. Dense bytes and FLOPs do not
change — the record carries the theoretical sparse size (bitmask + values) for reference.
"""

from __future__ import annotations

import logging
from typing import Any

from torch import nn
from torch.nn.utils import prune

from ..catalog.methods import UnstructuredParams  # noqa: F401 (torch-free: compressbench.catalog)
from ..checkpoint import register_rebuilder
from ..interfaces import CompressContext, CompressResult
from ..measure.sizes import sparse_payload_bytes
from ..registry import methods, weight_criteria
from ..specs import Knob
from .budget import BudgetError, Solution
from .common import ModelStats, finetune, head_name, layer_table

log = logging.getLogger(__name__)


def prunable_layers(model: nn.Module, include_head: bool) -> list[tuple[str, nn.Module]]:
    head = head_name(model)
    layers = [
        (n, m)
        for n, m in model.named_modules()
        if isinstance(m, (nn.Linear, nn.modules.conv._ConvNd)) and (include_head or n != head)
    ]
    if not layers:
        raise BudgetError("prune.unstructured: the model has no conv/linear layers to prune")
    return layers


def apply_masks(
    model: nn.Module, layers: list[tuple[str, nn.Module]], n_prune: int, criterion: str, scope: str
) -> None:
    """Attach pruning masks removing ``n_prune`` weights (globally ranked, or the same fraction per layer)."""
    method = weight_criteria.get(criterion)
    if scope == "global":
        prune.global_unstructured([(m, "weight") for _, m in layers], pruning_method=method, amount=n_prune)
        return
    frac = n_prune / sum(m.weight.numel() for _, m in layers)
    for _, m in layers:
        method.apply(m, "weight", amount=int(round(frac * m.weight.numel())))


def attach_masks(model: nn.Module, sparsity: float, ctx: CompressContext, params: UnstructuredParams) -> nn.Module:
    """The transform: masks zeroing ``sparsity`` of the prunable weights (in place; masks stay attached)."""
    layers = prunable_layers(model, params.include_head)
    apply_masks(
        model, layers, int(round(sparsity * sum(m.weight.numel() for _, m in layers))), params.criterion, params.scope
    )
    return model


def exact_sparsity(
    ref: ModelStats, parent: nn.Module, kind: str, target: float, params: UnstructuredParams
) -> float | None:
    """A params budget in closed form: zero exactly enough weights that ``target`` of the parent's
    parameters stay nonzero (everything not prunable counts as kept)."""
    if kind != "params":
        return None
    layers = prunable_layers(parent, params.include_head)
    w_total = sum(m.weight.numel() for _, m in layers)
    other_nonzero = ref.params_nonzero - sum(int((m.weight != 0).sum()) for _, m in layers)
    keep = int(round(target * ref.params)) - other_nonzero
    if keep <= 0:
        raise BudgetError(
            f"prune.unstructured: params={target:g} is unreachable — the unpruned parameters alone "
            f"are {other_nonzero / ref.params:.3f} of the parent"
            + ("" if params.include_head else " (try include_head: true)")
        )
    return max(0, w_total - keep) / w_total


def _knob_range(v: float) -> str | None:
    return None if 0 <= v < 1 else "must be in [0, 1)"


def check_unstructured(model: nn.Module, ctx: CompressContext, params: UnstructuredParams) -> str | None:
    try:
        prunable_layers(model, params.include_head)
    except BudgetError as e:
        return str(e)
    return None


@methods.register(
    "prune.unstructured",
    check_model=check_unstructured,
    family="pruning",
    knob=Knob(
        "sparsity",
        lo=0.0,
        hi=0.999,
        shrinks=True,
        default=lambda p: p.sparsity,
        exact=exact_sparsity,
        valid=_knob_range,
    ),
    apply=attach_masks,
    sparsifies=True,
    needs_training_data=True,
)
def unstructured(parent: nn.Module, ctx: CompressContext, sol: Solution, params: UnstructuredParams) -> CompressResult:
    model = sol.model
    layers = prunable_layers(model, params.include_head)
    model = finetune(model, ctx, params.finetune, desc="finetune(unstructured)")
    for _, m in layers:
        prune.remove(m, "weight")
    model.eval()
    b_sparse = sparse_payload_bytes(model)
    record: dict[str, Any] = {
        "criterion": params.criterion,
        "scope": params.scope,
        "bytes_sparse": b_sparse,
        "bytes_sparse_fraction": b_sparse / sol.parent_stats.bytes,
        "layers": {n: v for n, v in layer_table(model).items() if n in dict(layers)},
    }
    return CompressResult(model=model, record=record, steps=[{"kind": "prune.unstructured", "sparsity": sol.knob}])


@register_rebuilder("prune.unstructured")
def _rebuild(model: nn.Module, step: dict, state_dict: dict) -> nn.Module:
    """Unstructured pruning keeps the architecture: nothing to rebuild (the step is informational)."""
    return model

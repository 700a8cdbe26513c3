"""The ``sensitivity`` evaluator: for each conv / linear layer, the drop in clean and in corrupted top-1 when
that layer **alone** is quantized to int8 or pruned — which layers a compression can touch and which it must
spare. It feeds the goal's accuracy-aware int8 fallback (:mod:`compressbench.goal.fallback`), which keeps the
most sensitive layers in float.

* ``quantize``: the layer wrapped as ``QuantStub → layer → DeQuantStub`` with torch.ao's default static qconfig
  for the engine (per-channel int8 weights, calibrated int8 activations at its input and output: real int8
  kernels), calibrated on training images (the validation split when there is one), everything else float. No
  conv-bn fusion: the layer is measured as it is, before any neighbour is folded into it.
* ``prune``: the layer's weights pruned by L1 magnitude at ``prune_ratio`` (``torch.nn.utils.prune``, masks made
  permanent), everything else untouched, no fine-tuning.

Each perturbed model is measured on the evaluation subset, clean and under ``corruptions`` × ``severities``
(corrupted once, before the layers are visited: every layer sees the same images). Rows: ``clean_top1`` /
``corr_top1`` of the model itself (no condition), and per layer and op ``clean_drop`` / ``corr_drop`` (the
model's value minus the perturbed one's: positive = the perturbation costs accuracy) with condition
``{layer, op}``. The drops declare the roles of the summary metrics they explain (clean and corruption
accuracy), which is how the fallback matches them to a goal's constraints without naming an evaluator.
"""

from __future__ import annotations

import copy
import logging
import warnings
from dataclasses import dataclass
from itertools import islice
from typing import Callable

import torch
from torch import nn

from ..catalog.evaluators import (  # noqa: F401 (torch-free: compressbench.catalog)
    DEFAULT_CORRUPTIONS,
    SensitivityParams,
)
from ..costs import CostContext, EvalCost
from ..interfaces import EvalContext, Measurement
from ..progress import progress_bar
from ..registry import evaluators
from ..specs import CLEAN_ACCURACY, CORRUPTION_ACCURACY, MetricSpec

log = logging.getLogger(__name__)


def quantizable(model: nn.Module) -> list[str]:
    """The conv / linear layers of a model, by module path."""
    return [n for n, m in model.named_modules() if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear))]


def quantize_alone(model: nn.Module, name: str, calib: list[torch.Tensor], backend: str) -> nn.Module:
    """A copy of ``model`` with layer ``name`` alone in int8 (see the module docstring)."""
    from torch.ao import quantization as tq

    m = copy.deepcopy(model).cpu().eval()
    torch.backends.quantized.engine = backend
    island = nn.Sequential(tq.QuantStub(), m.get_submodule(name), tq.DeQuantStub())
    island.qconfig = tq.get_default_qconfig(backend)
    m.set_submodule(name, island)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tq.prepare(m, inplace=True)
        with torch.inference_mode():
            for x in calib:
                m(x)
        tq.convert(m, inplace=True)
    return m


def prune_alone(model: nn.Module, name: str, ratio: float) -> nn.Module:
    """A copy of ``model`` with layer ``name``'s weights L1-pruned at ``ratio`` (mask made permanent)."""
    from torch.nn.utils import prune

    m = copy.deepcopy(model).eval()
    layer = m.get_submodule(name)
    prune.l1_unstructured(layer, "weight", amount=ratio)
    prune.remove(layer, "weight")
    return m


def sensitivity_cost(p: SensitivityParams, ctx: CostContext) -> EvalCost:
    """``compressbench plan``: (1 + layers × ops) passes over the clean and corrupted images (the layer count is
    not known before the model is built: 8 assumed)."""
    cells = 1 + len(p.corruptions) * len(p.severities)
    return EvalCost(forward=(1 + 8 * len(p.ops)) * cells * ctx.images(-1 if p.subset is None else p.subset))


@dataclass(frozen=True)
class _Op:
    """One per-layer operation: what it needs and how it builds the model with that layer alone changed."""

    needs_calibration: bool
    apply: Callable[..., nn.Module]  # (model, layer, calib, backend, params) -> the changed copy


OPS: dict[str, _Op] = {
    "quantize": _Op(True, lambda model, name, calib, backend, params: quantize_alone(model, name, calib, backend)),
    "prune": _Op(False, lambda model, name, calib, backend, params: prune_alone(model, name, params.prune_ratio)),
}


@evaluators.register(
    "sensitivity",
    cost=sensitivity_cost,
    metrics=(
        MetricSpec(
            "clean_drop",
            label="Clean top-1 drop",
            fmt="pct",
            higher_is_better=False,
            where={"layer": "*"},
            role=CLEAN_ACCURACY,
            table=None,
            description="clean top-1 of the model minus that with the layer alone quantized / pruned",
        ),
        MetricSpec(
            "corr_drop",
            label="Corrupted top-1 drop",
            fmt="pct",
            higher_is_better=False,
            where={"layer": "*"},
            role=CORRUPTION_ACCURACY,
            table=None,
            description="mean corrupted top-1 of the model minus that with the layer alone quantized / pruned",
        ),
        MetricSpec(
            "clean_top1",
            label="Clean top-1 (sensitivity subset)",
            fmt="pct",
            higher_is_better=True,
            where={},
            exact=True,
            table=None,
        ),
        MetricSpec(
            "corr_top1",
            label="Corrupted top-1 (sensitivity subset)",
            fmt="pct",
            higher_is_better=True,
            where={},
            exact=True,
            table=None,
        ),
    ),
    report="compressbench.evaluate.sensitivity_report:tables",
    figures="compressbench.evaluate.sensitivity_report:figures",
)
def sensitivity(model: nn.Module, ctx: EvalContext, params: SensitivityParams) -> list[Measurement]:
    from ..compress.quantize import default_backend
    from .corruptions.core import corrupt

    model = model.eval()
    images = ctx.eval_set(params.subset if params.subset is not None else -1)
    clean = [(x, y) for x, y, _ in images.batches(params.batch_size)]
    corrupted = []  # corrupted once: every layer's perturbation sees the same images
    for name in params.corruptions:
        for sev in params.severities:
            for x, y, idx in images.batches(params.batch_size, uint8=True):
                corrupted.append((corrupt(x, idx, name, sev, seed=params.seed).float().div_(255), y))
    dev = torch.device("cpu")

    @torch.inference_mode()
    def top1(m: nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
        m = m.to(dev)
        ok = sum(int((m(x.to(dev)).argmax(1) == y.to(dev)).sum()) for x, y in batches)
        return ok / max(1, sum(len(y) for _, y in batches))

    base_clean, base_corr = top1(model, clean), top1(model, corrupted) if corrupted else float("nan")
    out = [Measurement("clean_top1", base_clean), Measurement("corr_top1", base_corr)]
    layers = params.layers if params.layers is not None else quantizable(model)
    unknown = [n for n in layers if n not in dict(model.named_modules())]
    if unknown:
        raise ValueError(
            f"sensitivity: the model has no layer '{unknown[0]}' (layers: {', '.join(quantizable(model))})"
        )
    calib: list[torch.Tensor] = []
    if any(OPS[op].needs_calibration for op in params.ops):
        val = getattr(ctx.data, "val", None)
        src = val if val is not None and len(val) else ctx.data.train
        g = torch.Generator().manual_seed(ctx.seed)
        calib = [x for x, _, _ in islice(src.batches(64, shuffle=True, generator=g), params.calibration_batches)]
    backend = default_backend()
    with progress_bar(
        total=len(layers) * len(params.ops), desc="sensitivity", unit="layer", disable=not ctx.progress
    ) as bar:
        for name in layers:
            for op in params.ops:
                try:
                    m = OPS[op].apply(model, name, calib, backend, params)
                except Exception as e:  # a layer torch.ao cannot quantize alone: say so, measure the rest
                    log.warning("sensitivity: %s of %s failed: %s", op, name, e)
                    bar.update(1)
                    continue
                cond = {"layer": name, "op": op}
                out.append(Measurement("clean_drop", base_clean - top1(m, clean), cond))
                if corrupted:
                    out.append(Measurement("corr_drop", base_corr - top1(m, corrupted), cond))
                bar.update(1)
    return out


def drops_by_role(rows, variant: str, op: str = "quantize") -> dict[str, dict[str, float]]:
    """From a store's rows of this evaluator (a DataFrame with ``variant``, ``metric``, ``value`` and the
    condition columns ``c_layer`` / ``c_op``): {role: {layer: mean drop over seeds}} of ``variant`` for ``op`` —
    the roles its declarations give the drops (clean / corruption accuracy)."""
    roles = {m.name: m.role for m in evaluators.spec("sensitivity").metrics if m.role}
    out: dict[str, dict[str, float]] = {}
    if rows is None or len(rows) == 0 or "c_layer" not in rows or "c_op" not in rows:
        return out
    sub = rows[(rows["variant"] == variant) & (rows["c_op"] == op) & rows["metric"].isin(list(roles))]
    for (metric, layer), v in sub.groupby(["metric", "c_layer"], sort=False)["value"].mean().items():
        out.setdefault(roles[metric], {})[str(layer)] = float(v)
    return out

"""Pipelines: a sequence of registered methods applied one after another, e.g.
``prune.structured -> finetune -> quantize.static`` or ``distill -> quantize.static``.

The variant's budget goes to one stage (``budget_stage``; default: the first stage that supports
the budget's kind); the other stages run without a budget. Each stage's params are validated by
that stage's own schema at config time, and each stage runs through the same entry point as a
lone method (``compress.budget.compress``). Steps of all stages are concatenated, so the rebuilders
replay them in order on reload. ``achieved`` is measured on the final model against the original
parent: params count nonzero values when any stage sparsifies (its spec says so), FLOPs are the
product of the stages' FLOPs fractions (int8 kernels are not counted).

Also registers ``finetune`` (plain fine-tuning with the experiment's recipe) for use as a stage.
"""

from __future__ import annotations

import logging
from typing import Any

from torch import nn

from ..catalog.methods import (  # noqa: F401 (torch-free: compressbench.catalog)
    FinetuneOnly,
    PipelineParams,
    Stage,
    _budget_stage,
    check_pipeline_budget,
    stage_list,
)
from ..interfaces import CompressContext, CompressResult
from ..registry import methods
from .budget import Solution, capabilities, compress, measure_result
from .common import clone, finetune

log = logging.getLogger(__name__)


@methods.register("pipeline", family="pipeline")
def pipeline(parent: nn.Module, ctx: CompressContext, sol: Solution, params: PipelineParams) -> CompressResult:
    budget = sol.budget
    b_idx = _budget_stage(budget, params)
    ps = sol.parent_stats
    model, steps, stages, flops_frac = parent, [], [], 1.0
    for i, (name, sp) in enumerate(stage_list(params)):
        res = compress(name, model, ctx, budget if i == b_idx else None, sp)
        model = res.model
        steps += res.steps
        flops_frac *= res.achieved.get("flops", 1.0)
        stages.append(
            {
                "method": name,
                "budget": budget.label() if i == b_idx and budget else None,
                "achieved_vs_input": res.achieved,
                "record": res.record,
            }
        )
    cs, achieved = measure_result(
        ps,
        model,
        ctx.meta,
        sparsifies=capabilities("pipeline", params)["sparsifies"],
        flops=int(round(flops_frac * ps.flops)),
    )
    record: dict[str, Any] = {
        "stages": stages,
        "parent": ps.to_dict(),
        "child": cs.to_dict(),
        "knobs": {s["method"]: s["record"]["knobs"] for s in stages if "knobs" in s["record"]},
    }
    if b_idx is not None and "knob" in stages[b_idx]["record"]:
        record["knob"] = stages[b_idx]["record"]["knob"]
    if budget is not None and budget.kind != "knob":
        record["target"] = {"stage": b_idx}
    return CompressResult(model=model, record=record, steps=steps, achieved=achieved, stats=cs)


@methods.register("finetune", family="pipeline", needs_training_data=True)
def finetune_method(parent: nn.Module, ctx: CompressContext, sol: Solution, params: FinetuneOnly) -> CompressResult:
    if any("quantized" in type(m).__module__ for m in parent.modules()):
        raise ValueError("finetune: cannot train an int8-converted model; put finetune before quantization")
    model = finetune(clone(parent).cpu(), ctx, params, desc="finetune").eval()
    return CompressResult(model=model, record={"epochs": params.epochs})

"""Pipelines: a sequence of registered methods applied one after another, e.g.
``prune.structured -> finetune -> quantize.static`` or ``distill -> quantize.static``.

The variant's budget goes to one stage (``budget_stage``; default: the first stage that supports
the budget's kind); the other stages run without a budget. Each stage's params are validated by
that stage's own schema at config time. Steps of all stages are concatenated, so the rebuilders
replay them in order on reload. ``achieved`` is measured on the final model against the original
parent (FLOPs: the product of the stages' FLOPs fractions, since int8 kernels are not counted).

Also registers ``finetune`` (plain fine-tuning with the experiment's recipe) for use as a stage.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import model_validator
from torch import nn

from ..interfaces import Budget, CompressContext, CompressResult, FinetuneParams, Params
from ..registry import methods
from .common import BudgetError, check_fraction, clone, finetune, fractions, model_stats, within

log = logging.getLogger(__name__)

BUDGETS = ("knob", "params", "bytes", "flops")


class Stage(Params):
    method: str
    params: dict[str, Any] = {}


class PipelineParams(Params):
    stages: list[Stage]
    budget_stage: int | None = None  # index of the stage that receives the budget

    @model_validator(mode="after")
    def _check_stages(self) -> PipelineParams:
        if not self.stages:
            raise ValueError("pipeline needs at least one stage")
        for i, st in enumerate(self.stages):
            if st.method == "pipeline":
                raise ValueError(f"pipeline stage {i}: pipelines cannot be nested")
            spec = methods.spec(st.method)  # unknown name -> error with did-you-mean
            try:
                spec.params.model_validate(st.params)
            except Exception as e:  # pydantic's message names the field
                raise ValueError(f"pipeline stage {i} ({st.method}): {e}") from e
        if self.budget_stage is not None and not 0 <= self.budget_stage < len(self.stages):
            raise ValueError(f"budget_stage {self.budget_stage} is out of range (0..{len(self.stages) - 1})")
        return self


def _budget_stage(budget: Budget | None, params: PipelineParams) -> int | None:
    if budget is None:
        return None
    if params.budget_stage is not None:
        return params.budget_stage
    for i, st in enumerate(params.stages):
        if budget.kind in methods.spec(st.method).budgets:
            return i
    return None


def check_budget(budget: Budget | None, params: PipelineParams) -> str | None:
    msg = check_fraction(budget, BUDGETS, "pipeline")
    if msg or budget is None:
        return msg
    i = _budget_stage(budget, params)
    if i is None:
        return f"pipeline: no stage supports a '{budget.kind}' budget ({[s.method for s in params.stages]})"
    st = params.stages[i]
    if budget.kind not in methods.spec(st.method).budgets:
        return f"pipeline: stage {i} ({st.method}) does not support '{budget.kind}' budgets"
    check = methods.spec(st.method).check_budget
    sub = check(budget, methods.spec(st.method).params.model_validate(st.params)) if check else None
    if sub:
        return f"pipeline stage {i}: {sub}"
    if budget.kind == "bytes" and any(s.method.startswith("quantize.") for s in params.stages[i + 1:]):
        return ("pipeline: a bytes budget cannot be matched before a quantization stage (it changes the bytes "
                "again); budget params or flops instead")
    return None


@methods.register("pipeline", params=PipelineParams, budgets=BUDGETS, check_budget=check_budget, family="pipeline",
                  version=1, description="a sequence of methods, e.g. prune.structured -> finetune -> "
                                         "quantize.static; the budget goes to one stage")
def pipeline(parent: nn.Module, ctx: CompressContext, budget: Budget | None, params: PipelineParams) -> CompressResult:
    msg = check_budget(budget, params)
    if msg:
        raise BudgetError(msg)
    b_idx = _budget_stage(budget, params)
    ps = model_stats(parent, ctx.meta)
    model, steps, stages, flops_frac = parent, [], [], 1.0
    for i, st in enumerate(params.stages):
        sp = methods.spec(st.method).params.model_validate(st.params)
        res = methods.get(st.method)(model, ctx, budget if i == b_idx else None, sp)
        model = res.model
        steps += res.steps
        flops_frac *= res.achieved.get("flops", 1.0)
        stages.append({"method": st.method, "budget": budget.label() if i == b_idx and budget else None,
                       "achieved_vs_input": res.achieved, "record": res.record})
    nonzero = any(s.method == "prune.unstructured" for s in params.stages)
    cs = model_stats(model, ctx.meta, flops=int(round(flops_frac * ps.flops)))
    achieved = fractions(ps, cs, nonzero=nonzero)
    record: dict[str, Any] = {"stages": stages, "parent": ps.to_dict(), "child": cs.to_dict(),
                              "knobs": {s["method"]: s["record"]["knobs"] for s in stages if "knobs" in s["record"]}}
    if b_idx is not None and "knob" in stages[b_idx]["record"]:
        record["knob"] = stages[b_idx]["record"]["knob"]
    if budget is not None and budget.kind != "knob":
        record["target"] = {"kind": budget.kind, "value": budget.value, "stage": b_idx}
        record["within_tolerance"] = within(achieved[budget.kind], budget.value)
    return CompressResult(model=model, record=record, steps=steps, achieved=achieved)


class FinetuneOnly(FinetuneParams):
    pass


def _finetune_budget(budget: Budget | None, params: FinetuneOnly) -> str | None:
    return None if budget is None else "finetune takes no budget"


@methods.register("finetune", params=FinetuneOnly, budgets=(), check_budget=_finetune_budget, family="pipeline",
                  version=1,
                  description="fine-tune with the experiment's recipe (a pipeline stage between methods)")
def finetune_method(parent: nn.Module, ctx: CompressContext, budget: Budget | None,
                    params: FinetuneOnly) -> CompressResult:
    if budget is not None:
        raise BudgetError("finetune takes no budget")
    if any("quantized" in type(m).__module__ for m in parent.modules()):
        raise ValueError("finetune: cannot train an int8-converted model; put finetune before quantization")
    model = finetune(clone(parent).cpu(), ctx, params, desc="finetune").eval()
    ps = model_stats(parent, ctx.meta)
    return CompressResult(model=model, record={"epochs": params.epochs},
                          achieved=fractions(ps, model_stats(model, ctx.meta)))

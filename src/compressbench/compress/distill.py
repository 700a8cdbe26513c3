"""Knowledge distillation (Hinton et al. 2015) into a smaller student, offline teacher = the parent.

Loss ``α·T²·KL(softmax(z_t/T) ‖ softmax(z_s/T)) + (1−α)·CE(z_s, y)`` — the training loop's own
``kd_loss`` (``ctx.train(..., teacher=parent)``), so distillation uses the same recipe, seeding
and progress as every other training run.

The student is either named explicitly (``student: {model: cnn5, width: 0.5}``) or derived from
the parent's family (its model name and kwargs from ``ctx.parent_spec``), scaled in width
(the knob, relative to the parent's width) and optionally in depth (``depth_scale`` for ResNets).
For a shared budget the width is bisected on freshly built (untrained) students until their
params / bytes / FLOPs fraction is within ±2 % of the target — cheap, since no training is needed
to count — and then only the chosen student is trained.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from torch import nn

from ..checkpoint import register_rebuilder
from ..data.base import DataMeta
from ..interfaces import Budget, CompressContext, CompressResult, Params
from ..models import ModelName, create_model
from ..registry import methods
from ..train import seed_everything
from .common import BudgetError, check_fraction, fraction_of, fractions, model_stats, search_knob, within

log = logging.getLogger(__name__)

BUDGETS = ("knob", "params", "bytes", "flops")


class StudentSpec(Params):
    model: ModelName  # a registered model or "pkg.mod:factory" (resolved = imported when validated)
    width: float = 1.0
    kwargs: dict[str, Any] = {}


class DistillParams(Params):
    student: StudentSpec | None = None  # None: the parent's family, scaled
    width: float = 0.5  # the knob: student width relative to the parent's (derived) / the spec's (explicit)
    depth_scale: float | None = None  # e.g. 0.5 halves the blocks per ResNet stage (factories with depth_scale)
    alpha: float = 0.9
    temperature: float = 4.0
    epochs: float = 3.0  # the student trains from scratch: use the baseline's epochs
    lr: float = 0.05  # scratch-training learning rate (set to the baseline's)
    optimizer: Literal["sgd", "adam", "adamw"] | None = None
    schedule: Literal["cosine", "onecycle", "step", "constant"] | None = None


def check_budget(budget: Budget | None, params: DistillParams) -> str | None:
    msg = check_fraction(budget, BUDGETS, "distill")
    if msg is None and budget is not None and budget.kind == "knob" and budget.value <= 0:
        msg = f"distill: knob (student width) must be > 0, got {budget.value:g}"
    return msg


def _student_base(ctx: CompressContext, params: DistillParams) -> tuple[str, float, dict[str, Any]]:
    if params.student is not None:
        return params.student.model, params.student.width, dict(params.student.kwargs)
    spec = ctx.parent_spec or {}
    if "model" not in spec:
        raise ValueError("distill: no 'student' given and the parent spec has no model name to derive one from")
    return spec["model"], float(spec.get("width", 1.0)), dict(spec.get("kwargs", {}))


def build_student(name: str, meta: DataMeta, width: float, kwargs: dict[str, Any]) -> nn.Module:
    try:
        return create_model(name, meta, width=width, **kwargs)
    except TypeError as e:
        raise ValueError(f"distill: cannot build student '{name}' with width={width:g}, {kwargs}: {e}") from e


@methods.register("distill", params=DistillParams, budgets=BUDGETS, check_budget=check_budget,
                  family="distillation", version=1,
                  description="Hinton knowledge distillation into a named student or the parent's family "
                              "scaled in width (searched to a budget) and depth")
def distill(parent: nn.Module, ctx: CompressContext, budget: Budget | None, params: DistillParams) -> CompressResult:
    msg = check_budget(budget, params)
    if msg:
        raise BudgetError(msg)
    name, base_width, kwargs = _student_base(ctx, params)
    if params.depth_scale is not None:
        kwargs["depth_scale"] = params.depth_scale
    ps = model_stats(parent, ctx.meta)
    record: dict[str, Any] = {"student": name, "derived": params.student is None, "alpha": params.alpha,
                              "temperature": params.temperature, "epochs": params.epochs, "parent": ps.to_dict()}
    if budget is None or budget.kind == "knob":
        scale = budget.value if budget is not None else params.width
    else:
        kind, target = budget.kind, budget.value

        def evaluate(s: float) -> float:
            return fraction_of(build_student(name, ctx.meta, base_width * s, kwargs), ctx.meta, ps, kind)

        hi, hi_val = 1.0, evaluate(1.0)
        while hi_val < target and hi < 8:
            hi *= 2
            hi_val = evaluate(hi)
        lo_val = evaluate(0.01)
        if lo_val > target * 1.02:
            raise BudgetError(f"distill: {kind}={target:g} is unreachable — the narrowest '{name}' student keeps "
                              f"{lo_val:.3f} of the parent (try depth_scale or a smaller student model)")
        scale, _, hist = search_knob(evaluate, target, 0.01, hi, decreasing=False, what=f"distill {kind}",
                                     seen=[(0.01, lo_val), (hi, hi_val)])
        record["target"] = {"kind": kind, "value": target}
        record["search"] = [[k, v] for k, v in hist]
    width = base_width * scale
    seed_everything(ctx.seed)
    student = build_student(name, ctx.meta, width, kwargs)
    record["knob"] = scale
    record["knobs"] = {"width": scale, "student_width": width, **({"depth_scale": params.depth_scale}
                                                                 if params.depth_scale is not None else {})}
    parent.eval()
    out = ctx.train(student, epochs=params.epochs, lr=params.lr, optimizer=params.optimizer, schedule=params.schedule,
                    teacher=parent, kd_alpha=params.alpha, kd_temperature=params.temperature, desc="distill")
    student = (out if out is not None else student).cpu().eval()
    cs = model_stats(student, ctx.meta)
    achieved = fractions(ps, cs)
    if budget is not None and budget.kind != "knob":
        record["within_tolerance"] = within(achieved[budget.kind], budget.value)
    record["child"] = cs.to_dict()
    step = {"kind": "distill.student", "model": name, "width": width, "kwargs": kwargs,
            "meta": ctx.meta.to_dict()}
    return CompressResult(model=student, record=record, steps=[step], achieved=achieved)


@register_rebuilder("distill.student")
def _rebuild_student(model: nn.Module, step: dict, state_dict: dict) -> nn.Module:
    """The student replaces the parent architecture entirely."""
    return create_model(step["model"], DataMeta.from_dict(step["meta"]), width=step["width"], **step["kwargs"])

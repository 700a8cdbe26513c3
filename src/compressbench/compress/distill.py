"""Knowledge distillation (Hinton et al. 2015) into a smaller student, offline teacher = the parent.

Loss ``α·T²·KL(softmax(z_t/T) ‖ softmax(z_s/T)) + (1−α)·CE(z_s, y)`` — the training loop's own
``kd_loss`` (``ctx.train(..., teacher=parent)``), so distillation uses the same recipe, seeding
and progress as every other training run; ``loss`` picks the variants the reference studies used
(``hinton_2t2``: 2T²α·KL, ``reverse_kl``: KL(student ‖ teacher)); ``alpha: 0`` trains the student on
the labels alone.

The student is either named explicitly (``student: {model: cnn5, width: 0.5}``) or derived from
the parent's family (its model name and kwargs from ``ctx.parent_spec``), scaled in width
(the knob, relative to the parent's width) and optionally in depth (``depth_scale`` for ResNets).
For a shared budget the shared solver (``compress.budget``) searches the width (the knob) on freshly
built, untrained students until their params / bytes / FLOPs fraction is within ±2 % of the target —
cheap, since no training is needed to count — and then only the chosen student is trained.

A uniform width moves every layer's channel count at once, so the fractions it can reach are steps: cnn5
at half width on 16 px digits jumps from 0.4853 to 0.5109 of its parent's parameters, and a 0.5 budget
cannot be met within ±2 % by any width. Then (only then: a width already within tolerance is kept as
is) the student is built at the smallest width that keeps at least the target and **trimmed** to it
with Torch-Pruning (global L1 ranking of the untrained student's channel groups, the trim ratio searched
by the same solver): channel by channel, so the step is one channel of one layer. The record says so
(``trim``: width before, ratio, achieved before and after); the checkpoint replays the trim (a resize
step after the student step). A student Torch-Pruning cannot trim keeps its width: the variant is
then stored with ``budget_matched`` 0 and labelled "budget not matched" in the report and the run's table.

``adapt: {method: coral, weight: λ}`` adds Deep CORAL to the student's loss (unlabeled target batches,
:mod:`compressbench.adapt`): distillation and adaptation in one training run.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from torch import nn

from ..catalog.methods import DistillParams, StudentSpec  # noqa: F401 (torch-free: compressbench.catalog)
from ..checkpoint import register_rebuilder
from ..costs import TrainingCost
from ..data.base import DataMeta
from ..interfaces import CompressContext, CompressResult, FinetuneParams
from ..models import create_model
from ..registry import methods
from ..specs import SHARED_BUDGETS, Knob
from ..train import seed_everything
from .budget import Solution, solve_knob, within
from .common import first_unplain_module, fraction_of
from .dryrun import guarded, one_line
from .structured import KNOB as STRUCTURED_KNOB
from .structured import StructuredParams, prune_once, resize_step

log = logging.getLogger(__name__)


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


def fresh_student(parent: nn.Module, scale: float, ctx: CompressContext, params: DistillParams) -> nn.Module:
    """The transform: an untrained student at ``scale`` × the base width (the parent is not used)."""
    name, base_width, kwargs = _student_kwargs(ctx, params)
    return build_student(name, ctx.meta, base_width * scale, kwargs)


def _student_kwargs(ctx: CompressContext, params: DistillParams) -> tuple[str, float, dict[str, Any]]:
    name, base_width, kwargs = _student_base(ctx, params)
    if params.depth_scale is not None:
        kwargs["depth_scale"] = params.depth_scale
    return name, base_width, kwargs


def _match_budget(
    student: nn.Module, ctx: CompressContext, sol: Solution, params: DistillParams
) -> tuple[nn.Module, float, dict[str, Any] | None]:
    """(student, width scale, trim record): ``student`` as the solver built it when it meets a shared
    budget within tolerance (or there is none); else the smallest width at or above the target, trimmed
    channel-wise to it (see the module docstring)."""
    b = sol.budget
    if b is None or b.kind not in SHARED_BUDGETS:
        return student, float(sol.knob), None

    def frac(m: nn.Module) -> float:
        return fraction_of(m, ctx.meta, sol.parent_stats, b.kind)

    before = frac(student)
    if within(before, b.value):
        return student, float(sol.knob), None
    history = sol.record.get("search", [])
    over = sorted(k for k, v in history if v >= b.value)
    if not over:  # the solver could not bracket the target: nothing to trim from
        return student, float(sol.knob), {"error": f"no width keeps {b.value:g} of the parent's {b.kind}"}
    hi = over[0]
    lo = max((k for k, v in history if v < b.value and k < hi), default=0.0)
    for _ in range(40):  # bisect to the width where a channel count steps over the target
        if hi - lo < 1e-5:
            break
        mid = 0.5 * (lo + hi)
        if frac(fresh_student(student, mid, ctx, params)) >= b.value:
            hi = mid
        else:
            lo = mid
    seed_everything(ctx.seed)  # the trimmed student's initial weights are reproducible per job
    base = fresh_student(student, hi, ctx, params)
    trim = StructuredParams(criterion="l1", scope="global", finetune=FinetuneParams(epochs=0))
    record: dict[str, Any] = {"width_scale": hi, "achieved_untrimmed": frac(base), "uniform_best": before}
    try:
        ratio, hist = solve_knob(
            "distill (student trim)",
            STRUCTURED_KNOB,
            lambda r: prune_once(copy.deepcopy(base), ctx, trim, r),
            sol.parent_stats,
            ctx.meta,
            b.kind,
            b.value,
            trim,
        )
        trimmed = prune_once(base, ctx, trim, ratio)
    except Exception as e:  # e.g. a student Torch-Pruning cannot prune: keep the uniform width, say so
        log.warning("distill: cannot trim the student to %s=%g (%s): the budget is not matched", b.kind, b.value, e)
        return student, float(sol.knob), {**record, "error": f"{type(e).__name__}: {e}"}
    record.update(ratio=ratio, achieved=frac(trimmed), search=[[k, v] for k, v in hist])
    return trimmed, hi, record


def _knob_range(v: float) -> str | None:
    return None if v > 0 else "must be > 0"


def check_student(parent: nn.Module, ctx: CompressContext, params: DistillParams) -> str | None:
    """``check_model``: the student can be built (at its width and at half of it, as a budget search
    does) — e.g. a derived student needs an architecture that can be narrowed."""
    name, base, kwargs = _student_kwargs(ctx, params)
    for scale in (1.0, 0.5):
        width = base * scale * params.width
        if first_unplain_module(getattr(parent, "net", parent)) is None:  # the zoo narrows natively: no guard
            try:
                build_student(name, ctx.meta, width, kwargs)
                error = None
            except Exception as e:
                error = one_line(e)
        else:  # narrowing a library network runs Torch-Pruning (efficientvit_m0: > 300 s, 8.5 GB unguarded)
            error = guarded(
                parent,
                ctx.meta,
                lambda _m, w=width: build_student(name, ctx.meta, w, kwargs),
                f"building the student {name} at width {width:g}",
            ).error
        if error:
            extra = f" with {kwargs}" if kwargs else ""
            return (
                error
                if error.startswith("gave up")
                else f"cannot build the student {name} at width {width:g}{extra} ({error})"
            )
    return None


@methods.register(
    "distill",
    family="distillation",
    knob=Knob(
        "width",
        lo=0.01,
        hi=1.0,
        grow_hi=8.0,
        shrinks=False,
        default=lambda p: p.width,
        hint="try depth_scale or a smaller student model",
        valid=_knob_range,
    ),
    apply=fresh_student,
    apply_on_copy=False,
    changes_architecture=True,
    needs_training_data=True,
    adapts=lambda p: p.adapt,
    check_model=check_student,
    cost=lambda p: TrainingCost(epochs=p.epochs, teacher=True, adapt=p.adapt is not None),
)
def distill(parent: nn.Module, ctx: CompressContext, sol: Solution, params: DistillParams) -> CompressResult:
    name, base_width, kwargs = _student_kwargs(ctx, params)
    parent.eval()
    student, scale, trim = _match_budget(sol.model, ctx, sol, params)  # built after seeding with the job's seed
    width = base_width * scale
    record: dict[str, Any] = {
        "student": name,
        "derived": params.student is None,
        "alpha": params.alpha,
        "temperature": params.temperature,
        "loss": params.loss,
        "epochs": params.epochs,
        **({"adapt": {**params.adapt.model_dump(), "label": params.adapt.label()}} if params.adapt is not None else {}),
        "knobs": {
            "student_width": width,
            **({"depth_scale": params.depth_scale} if params.depth_scale is not None else {}),
        },
    }
    if trim is not None:
        record.update(trim=trim, knob=scale)
    out = ctx.train(
        student,
        epochs=params.epochs,
        lr=params.lr,
        optimizer=params.optimizer,
        schedule=params.schedule,
        teacher=parent,
        kd_alpha=params.alpha,
        kd_temperature=params.temperature,
        kd_kind=params.loss,
        desc="distill",
        **({"adapt": params.adapt} if params.adapt is not None else {}),
    )
    student = (out if out is not None else student).cpu().eval()
    step = {"kind": "distill.student", "model": name, "width": width, "kwargs": kwargs, "meta": ctx.meta.to_dict()}
    steps = [step] + ([resize_step(student)] if trim is not None and "ratio" in trim else [])
    return CompressResult(model=student, record=record, steps=steps)


@register_rebuilder("distill.student")
def _rebuild_student(model: nn.Module, step: dict, state_dict: dict) -> nn.Module:
    """The student replaces the parent architecture entirely."""
    return create_model(step["model"], DataMeta.from_dict(step["meta"]), width=step["width"], **step["kwargs"])

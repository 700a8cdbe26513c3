"""Matched budgets, solved once for every method (Torch-Pruning's Importance / Pruner split).

A method declares a :class:`~compressbench.specs.Knob` (the one number it turns: a pruning ratio, a
student width, a rank ratio) and a cheap transform ``apply(model, knob, ctx, params) -> model`` (no
training). This module turns the experiment's budget into that knob:

* no budget → the knob's default (from the params); ``knob`` budget → that value;
* ``params`` / ``bytes`` / ``flops`` budget (fractions of the parent) → the knob's closed form
  (``Knob.exact``) if it has one, else a safeguarded regula-falsi search over ``apply`` on copies of
  the parent, until the achieved fraction is within ±2 % (:data:`TOLERANCE`);

and :func:`compress` (the one entry point the runner, the pipeline and tests use) runs the method on
the solved knob, measures the result against the parent and records target, achieved and tolerance
the same way for every method (the result's stats travel with it: the compress job does not measure
the model again).

Budget semantics (fractions of the parent):

* ``params`` — parameters of the compressed model / the parent's. For methods that leave zeros in
  dense tensors (``MethodSpec.sparsifies``) the numerator counts **nonzero** values.
* ``bytes`` — dense bytes of the serialised state dict (what a checkpoint's weights cost).
* ``flops`` — dense FLOPs of one forward pass at batch 1 (2 × MACs). For quantized models
  (``MethodSpec.quantizes``) the FLOPs of the float graph they were converted from.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from typing import Any, Callable

from torch import nn

from ..config.resolve import check_budget  # noqa: F401 (re-exported: run again before any work)
from ..interfaces import Budget, CompressContext, CompressResult
from ..registry import methods
from ..specs import Knob, MethodSpec
from ..train import seed_everything
from .common import ModelStats, first_unplain_module, fraction_of, fractions, model_stats
from .dryrun import parent_stats as guarded_stats
from .dryrun import smallest_end

log = logging.getLogger(__name__)

TOLERANCE = 0.02  # relative tolerance on shared budgets
SIZE_KINDS = ("params", "bytes", "flops")  # the achieved fractions every compressed variant records


class BudgetError(ValueError):
    """A budget cannot be met by a method (one readable line)."""


def within(achieved: float, target: float, tol: float = TOLERANCE) -> bool:
    return abs(achieved - target) <= tol * target + 1e-12


# --------------------------------------------------------------------------- checks (validate time)
def check_model(name: str, model: nn.Module, ctx: CompressContext, params: Any) -> str | None:
    """Why method ``name`` cannot handle ``model`` (``MethodSpec.check_model``; a composite method: its
    first stage that cannot). Used by ``validate``; ``model`` is left unchanged."""
    spec = methods.spec(name)
    if spec.stages is not None:
        for st_name, st_params in spec.stages(params):
            msg = check_model(st_name, model, ctx, st_params)
            if msg:
                return f"stage {st_name}: {msg}"
        return None
    return spec.check_model(model, ctx, params) if spec.check_model else None


def unreachable(
    name: str, parent: nn.Module, ctx: CompressContext, params: Any, kind: str, target: float
) -> str | None:
    """Validate's budget check for a method with a knob: the closed form (``Knob.exact``) raising
    :class:`BudgetError`, or the guarded dry run at the knob's smallest end (:func:`.dryrun.smallest_end`)
    keeping more than ``target`` (with :data:`TOLERANCE`), as :func:`solve_knob` would find at run time. A dry
    run that fails is ``check_model``'s business, not this check's (None). Not dry-run, as in ``check_model``:
    networks of plain building blocks (every layer shrinks: the model zoo, torchvision's ResNets), and knobs
    that grow the model from (near) nothing (a student's width, a rank ratio); the run's search still checks
    them."""
    spec = methods.spec(name)
    knob = spec.knob
    if knob.exact is not None:
        try:
            knob.exact(guarded_stats(parent, ctx.meta), parent, kind, target, params)
        except BudgetError as e:
            return str(e).split(" is unreachable — ", 1)[-1]
        return None
    if not knob.shrinks or first_unplain_module(getattr(parent, "net", parent)) is None:
        return None  # a width / rank grows from (near) nothing; plain blocks shrink everywhere (not dry-run)
    small = knob.bounds(params)[1]
    dr = smallest_end(
        name, parent, ctx.meta, params, lambda m: spec.apply(m, small, ctx, params), small, nonzero=spec.sparsifies
    )
    got = dr.fractions.get(kind)
    if dr.error or got is None or got <= target * (1 + TOLERANCE):
        return None
    hint = f" ({knob.hint})" if knob.hint else ""
    return (
        f"at {knob.name}={small:.4g} (the smallest model it can make) the parent as built now keeps {got:.3f} "
        f"of its {kind}{hint}"
    )


# --------------------------------------------------------------------------- the search
def search_knob(
    evaluate: Callable[[float], float],
    target: float,
    lo: float,
    hi: float,
    *,
    decreasing: bool = True,
    tol: float = TOLERANCE,
    max_iter: int = 20,
    what: str = "knob",
    seen: list[tuple[float, float]] = (),
) -> tuple[float, float, list[tuple[float, float]]]:
    """Find a knob in ``[lo, hi]`` with ``evaluate(knob)`` ≈ ``target`` (monotone ``evaluate``).

    Safeguarded regula falsi: interpolate inside the bracket, but never closer than 10 % of the
    bracket to its ends, so that step-shaped functions (whole channels) still converge like
    bisection; smooth ones converge in a few evaluations (each evaluation compresses a copy).
    ``decreasing``: the fraction falls as the knob grows (pruning ratio); otherwise it rises
    (student width, rank ratio). ``seen``: (knob, value) pairs already measured. Stops once within
    ``tol / 3`` (a margin) and returns the best ``(knob, achieved, history)`` seen."""
    history: list[tuple[float, float]] = list(seen)
    known = dict(history)

    def ev(k: float) -> float:
        if k not in known:
            known[k] = evaluate(k)
            history.append((k, known[k]))
        return known[k]

    a, b = lo, hi
    fa, fb = ev(a), ev(b)
    sign = -1.0 if decreasing else 1.0
    for _ in range(max_iter):
        best = min(history, key=lambda kv: abs(kv[1] - target))
        if within(best[1], target, tol / 3) or b - a < 1e-6:
            break
        x = a + (target - fa) * (b - a) / (fb - fa) if fb != fa else 0.5 * (a + b)
        margin = 0.1 * (b - a)
        x = min(max(x, a + margin), b - margin)
        fx = ev(x)
        if sign * (fx - target) < 0:  # knob too small
            a, fa = x, fx
        else:
            b, fb = x, fx
    best = min(history, key=lambda kv: abs(kv[1] - target))
    if not within(best[1], target, tol):
        log.warning(
            "%s search: best achieved %.4f for target %.4f (outside ±%.0f %%)", what, best[1], target, tol * 100
        )
    return best[0], best[1], history


def solve_knob(
    name: str,
    knob: Knob,
    transform: Callable[[float], nn.Module],
    ref: ModelStats,
    meta: Any,
    kind: str,
    target: float,
    params: Any,
    nonzero: bool = False,
) -> tuple[float, list[tuple[float, float]]]:
    """The knob at which ``transform(knob)`` (a compressed copy) keeps ``target`` of ``ref`` in ``kind``.

    Evaluates the range's ends (growing ``hi`` up to ``knob.grow_hi`` while the target is not
    bracketed), fails with :class:`BudgetError` when even the smallest end keeps more than the target,
    then searches. ``nonzero``: a params budget counts nonzero parameters. Returns (knob, history of
    (knob, fraction))."""
    lo, hi = knob.bounds(params)

    def frac(k: float) -> float:
        return fraction_of(transform(k), meta, ref, kind, nonzero)

    big, small = (lo, hi) if knob.shrinks else (hi, lo)  # the knob values giving the largest / smallest model
    big_val = frac(big)
    if knob.grow_hi is not None and not knob.shrinks:
        while big_val < target and hi < knob.grow_hi:
            hi *= 2
            big, big_val = hi, frac(hi)
    small_val = frac(small)
    if small_val > target * (1 + TOLERANCE):
        hint = f" ({knob.hint})" if knob.hint else ""
        raise BudgetError(
            f"{name}: {kind}={target:g} is unreachable — at {knob.name}={small:g} the model keeps "
            f"{small_val:.3f} of the parent{hint}"
        )
    value, _, history = search_knob(
        frac, target, lo, hi, decreasing=knob.shrinks, what=f"{name} {kind}", seen=[(small, small_val), (big, big_val)]
    )
    return value, history


@dataclass
class Solution:
    """What the solver hands a method: the budget, the parent's stats, and — for a method with a knob —
    the knob and the parent transformed at it (``apply``, seeded with the job's seed), plus how the
    knob was found. ``knob``/``model`` are None for methods without a knob and for ``own_budget``."""

    budget: Budget | None
    parent_stats: ModelStats
    knob: float | None = None
    model: nn.Module | None = None
    record: dict[str, Any] = field(default_factory=dict)


def solve(
    name: str,
    parent: nn.Module,
    ctx: CompressContext,
    budget: Budget | None,
    params: Any,
    ref: ModelStats | None = None,
) -> Solution:
    """Turn ``budget`` into method ``name``'s knob and apply it (see the module docstring)."""
    spec = methods.spec(name)
    ref = ref or model_stats(parent, ctx.meta)
    knob = spec.knob
    if knob is None or spec.apply is None:
        return Solution(budget, ref)
    record: dict[str, Any] = {}
    itself = spec.own_budget is not None and spec.own_budget(params)
    if itself and budget is not None and budget.kind != "knob":
        return Solution(budget, ref)  # the method solves the shared budget itself
    if budget is None:
        value = knob.default(params) if knob.default else knob.bounds(params)[1]
    elif budget.kind == "knob":
        value = budget.value
    else:
        value = knob.exact(ref, parent, budget.kind, budget.value, params) if knob.exact else None
        if value is None:
            value, history = solve_knob(
                name,
                knob,
                lambda k: apply(spec, parent, k, ctx, params),
                ref,
                ctx.meta,
                budget.kind,
                budget.value,
                params,
                nonzero=spec.sparsifies,
            )
            record["search"] = [[k, v] for k, v in history]
    if itself or not spec.wants_model:  # the method applies the knob itself
        return Solution(budget, ref, float(value), None, record)
    seed_everything(ctx.seed)  # random criteria and fresh students are reproducible per job
    return Solution(budget, ref, float(value), apply(spec, parent, value, ctx, params), record)


def apply(spec: MethodSpec, model: nn.Module, knob: float, ctx: CompressContext, params: Any) -> nn.Module:
    """``spec.apply`` at ``knob``, on a CPU copy of ``model`` unless the transform builds a new model."""
    return spec.apply(_copy(model) if spec.apply_on_copy else model, knob, ctx, params)


def _copy(model: nn.Module) -> nn.Module:
    m = copy.deepcopy(model).cpu()
    m.eval()
    return m


# --------------------------------------------------------------------------- the entry point
def capabilities(name: str, params: Any) -> dict[str, bool]:
    """What a variant made by method ``name`` is: the method's capability flags, or for a composite
    method (a pipeline) the union over its stages. ``adapts``: it trains on unlabeled target-domain
    images (:func:`adaptations`)."""
    spec = methods.spec(name)
    if spec.stages is not None:
        out = {k: False for k in CAPABILITIES}
        for st_name, st_params in spec.stages(params):
            for k, v in capabilities(st_name, st_params).items():
                out[k] = out[k] or v
        return out
    flags = {k: bool(getattr(spec, k)) for k in CAPABILITIES if k != "adapts"}
    flags["adapts"] = bool(adaptations(name, params))
    return flags


CAPABILITIES = ("sparsifies", "quantizes", "changes_architecture", "needs_training_data", "adapts")


def adaptations(name: str, params: Any) -> list[Any]:
    """The domain adaptations (``adapt.AdaptParams``) method ``name`` applies with ``params``, stages
    of a composite method included, in order."""
    spec = methods.spec(name)
    if spec.stages is not None:
        return [a for st_name, st_params in spec.stages(params) for a in adaptations(st_name, st_params)]
    a = spec.adapts(params) if spec.adapts is not None else None
    return [a] if a is not None else []


def composition(name: str, params: Any) -> dict[str, str]:
    """What a variant is made of, for tables that pair variants: ``compression`` — its compressing
    stages joined by '+' ('' when it only adapts, e.g. ``adapt.coral`` on the baseline) — and ``adapt``
    — the labels of the adaptations it applies ('' for none)."""
    spec = methods.spec(name)
    if spec.stages is not None:
        parts = [composition(n, p) for n, p in spec.stages(params)]
        return {
            "compression": "+".join(c["compression"] for c in parts if c["compression"]),
            "adapt": "+".join(c["adapt"] for c in parts if c["adapt"]),
        }
    return {
        "compression": name if spec.compresses else "",
        "adapt": "+".join(a.label() for a in adaptations(name, params)),
    }


def measure_result(
    parent_stats: ModelStats, model: nn.Module, meta: Any, *, sparsifies: bool, flops: int | None = None
) -> tuple[ModelStats, dict[str, float]]:
    """Stats of a compressed model and its achieved fractions of the parent."""
    cs = model_stats(model, meta, flops=flops)
    return cs, fractions(parent_stats, cs, nonzero=sparsifies)


def compress(name: str, parent: nn.Module, ctx: CompressContext, budget: Budget | None, params: Any) -> CompressResult:
    """Run method ``name`` on ``parent`` at ``budget``: check, solve the knob, run, measure, record.

    The parent is never modified. ``result.achieved`` holds the achieved params / bytes / FLOPs
    fractions; ``result.record`` the knob, target, tolerance check, parent and child stats and the
    method's own record."""
    spec: MethodSpec = methods.spec(name)
    msg = check_budget(name, budget, params)
    if msg:
        raise BudgetError(msg)
    ps = model_stats(parent, ctx.meta)
    sol = solve(name, parent, ctx, budget, params, ps)
    res = methods.get(name)(parent, ctx, sol, params)
    record: dict[str, Any] = {**sol.record, **res.record, "composition": composition(name, params)}
    if sol.knob is not None and spec.knob is not None:
        record["knob"] = res.record.get("knob", sol.knob)  # a method may refine the solved knob (distill's trim)
        record.setdefault("knobs", {})[spec.knob.name] = record["knob"]
    cs = res.stats
    if res.achieved:  # a composite method measured itself (against the same parent)
        achieved = dict(res.achieved)
        missing = [k for k in SIZE_KINDS if k not in achieved]
        if missing:  # it measured only part: the rest is measured here, as for any method
            cs, measured = measure_result(
                ps,
                res.model,
                ctx.meta,
                sparsifies=spec.sparsifies,
                flops=ps.flops if capabilities(name, params)["quantizes"] else None,
            )
            achieved.update((k, measured[k]) for k in missing)
    else:
        flops = res.flops if res.flops is not None else (ps.flops if spec.quantizes else None)
        cs, achieved = measure_result(ps, res.model, ctx.meta, sparsifies=spec.sparsifies, flops=flops)
        record["parent"], record["child"] = ps.to_dict(), cs.to_dict()
    if budget is not None:
        record["target"] = {"kind": budget.kind, "value": budget.value, **record.get("target", {})}
        if budget.kind != "knob":
            record["within_tolerance"] = within(achieved[budget.kind], budget.value)
    return CompressResult(
        model=res.model, record=record, steps=res.steps, achieved=achieved, stats=cs, trained=res.trained
    )

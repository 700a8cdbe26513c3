"""``goal:`` in the experiment file: the tolerances a user ships under, checked against what the experiment measures.

::

    goal:
      objective: {minimize: latency_b1_ms}     # latency_b1_ms | onnx_latency_b1_ms | latency_b1_ms@<format>
                                               # | bytes | flops | params
      constraints:                             # the most each metric may lose against the parent
        clean_top1: 1.0                        # points (a percentage metric) ...
        corr_top1: 2.0
        ece: 0.02                              # ... or the metric's own units
        target_top1: 5%                        # ... or a share of the parent's value
      confidence: 0.95                         # a constraint holds when the one-sided upper bound of the drop is
                                               # within it
      search: {points: 10, fallback: true}     # how each family's budget range is walked (compressbench.goal)

The classes are part of the schema (:mod:`.schema`); :func:`check_goal` compares the names with the metric
declarations of the experiment's evaluators — a constraint names a summary metric with a direction, the
objective a metric some declaration says it measures (``MetricSpec(objective=...)``) — and says what is wrong
in one line with the field path. The search and the decision are :mod:`compressbench.goal`.
"""

from __future__ import annotations

import difflib
from typing import Any, Iterable

from .schema import GOAL_OBJECTIVES, GoalConfig, Tolerance, parse_tolerance


def _dym(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.5)
    return f"; did you mean '{close[0]}'?" if close else ""


def objectives_of(specs: dict[str, Any]) -> dict[str, list[tuple[str, Any]]]:
    """objective -> [(evaluator, MetricSpec)] of the declarations that measure it, in ``specs``' order."""
    out: dict[str, list[tuple[str, Any]]] = {}
    for ev, spec in specs.items():
        for m in spec.metrics:
            if m.show.objective:
                out.setdefault(m.show.objective, []).append((ev, m))
    return out


def constraint_metrics(specs: dict[str, Any]) -> dict[str, tuple[str, Any]]:
    """summary key -> (evaluator, its main declaration) of the metrics a constraint may name (a direction is
    declared); a fallback declaration only where no main one declares the key."""
    out: dict[str, tuple[str, Any]] = {}
    for fallback in (False, True):
        for ev, spec in specs.items():
            for m in spec.metrics:
                if m.show.summary and m.show.fallback == fallback and m.show.higher_is_better is not None:
                    out.setdefault(m.column, (ev, m))
    return out


def check_goal(goal: GoalConfig, evaluations: list[Any], n_variants: int, n_parts: int) -> str | None:
    """Why the goal cannot be searched for on this experiment (one line with the field path), or None.

    ``evaluations``: the resolved evaluations (``.evaluator``, ``.variants``, ``.index``); ``n_variants``: how
    many variants the file lists; ``n_parts``: its experiments (one per source domain)."""
    from ..job_metrics import JOB_SPECS
    from ..registry import evaluators

    if n_parts > 1:
        return (
            "goal: a file with several source domains (dataset.source: [...]) runs several experiments; the "
            "search decides for one: give one source"
        )
    if n_variants == 0:
        return "goal: the experiment lists no variants to choose from (add variants: with budgets to search)"
    specs = {e.evaluator: evaluators.spec(e.evaluator) for e in evaluations}
    restricted = {e.evaluator: e.index for e in evaluations if e.variants is not None}
    everyone = {**specs, **{k: JOB_SPECS[k] for k in ("train", "compress")}}  # + the runner's own rows
    objectives = objectives_of(everyone)
    want = goal.objective.minimize
    if want not in objectives:
        where = sorted(
            {ev for ev in evaluators.names() for m in evaluators.spec(ev).metrics if m.show.objective == want}
        )
        if where or want in GOAL_OBJECTIVES:
            how = f"add evaluator: {where[0]}" if where else "add an evaluator that measures it"
            return (
                f"goal.objective.minimize: '{want}' is not measured by this experiment's evaluators ({how}); "
                f"measured here: {', '.join(sorted(objectives))}"
            )
        known = sorted(set(objectives) | set(GOAL_OBJECTIVES))
        return (
            f"goal.objective.minimize: unknown objective '{want}'{_dym(want, known)}; allowed: "
            f"{', '.join(GOAL_OBJECTIVES)}, latency_b1_ms@<format> (measured here: "
            f"{', '.join(sorted(objectives))})"
        )
    ev0 = objectives[want][0][0]
    if ev0 in restricted:
        return (
            f"goal.objective.minimize: '{want}' comes from evaluations[{restricted[ev0]}], which measures only the "
            f"variants it lists; the search needs it on every variant (remove its 'variants')"
        )
    metrics = constraint_metrics(specs)
    for key, raw in goal.constraints.items():
        path = f"goal.constraints.{key}"
        if key not in metrics:
            undirected = sorted(
                {
                    m.column
                    for s in specs.values()
                    for m in s.metrics
                    if m.show.summary and m.show.higher_is_better is None
                }
            )
            if key in undirected:
                return f"{path}: '{key}' declares no direction (better higher or lower), so it has no drop"
            return (
                f"{path}: '{key}' is not a metric this experiment's evaluators declare{_dym(key, metrics)}; "
                f"known: {', '.join(sorted(metrics)) or 'none (add evaluations)'}"
            )
        ev, _ = metrics[key]
        if ev in restricted:
            return (
                f"{path}: '{key}' comes from evaluations[{restricted[ev]}], which measures only the variants it "
                f"lists; a constraint must be measured on every variant (remove its 'variants')"
            )
        parse_tolerance(raw)  # checked by the schema already
    return None


def describe_tolerance(tol: Tolerance, fmt: str) -> str:
    """``1 pt`` / ``0.02`` / ``2 % of the parent``."""
    if tol.relative:
        return f"{100 * tol.value:g} % of the parent"
    if fmt == "pct":
        return f"{tol.value:g} pt{'s' if tol.value != 1 else ''}"
    return f"{tol.value:g}"


def tolerance_units(tol: Tolerance, fmt: str, parent_value: float) -> float:
    """The tolerance in the metric's stored units: points of a percentage metric are hundredths (its values are
    fractions), a relative tolerance a share of ``parent_value``'s magnitude."""
    if tol.relative:
        return tol.value * abs(parent_value)
    return tol.value / 100 if fmt == "pct" else tol.value


__all__ = [
    "GoalConfig",
    "Tolerance",
    "parse_tolerance",
    "check_goal",
    "objectives_of",
    "constraint_metrics",
    "describe_tolerance",
    "tolerance_units",
    "GOAL_OBJECTIVES",
]

"""``findings:`` in the experiment file: claims declared before the run, tested on its results.

Three forms (``metric`` is a summary key the experiment's evaluators declare — ``clean_top1``,
``corr_top1``, ``robust_top1``, ``target_top1``, ``gap`` ... — or a selection of one evaluator's rows)::

    findings:
      - claim: "KD keeps more robust accuracy than structured pruning at equal size"
        compare: {a: "distill@params=0.25", b: "prune.structured@params=0.25"}
        metric: robust_top1
        expect: a > b                       # a > b | a < b | a ~= b (with margin: 0.01)
      - claim: "as the compression ratio increases, accuracy on the unseen domain falls"
        trend: l1-filter                    # a variants entry's name (its budgets, largest first), or a list
        parent: true                        # the parent as the first, uncompressed point
        metric: target_top1
        expect: decreases                   # as compression grows: decreases | increases
      - claim: "int8 keeps the parent's accuracy under Gaussian noise"
        vs_parent: [quantize.static]        # or: all — one test per variant, a = the variant, b = the parent
        metric: {evaluator: corruptions, metric: top1, where: {corruption: gaussian_noise}}
        expect: a ~= b
        margin: 0.01                        # in the metric's own units (accuracies are fractions: 1 point)

The classes are part of the experiment schema (:mod:`.schema`, the bottom of the import graph);
:func:`check_findings` compares the names with what the experiment produces, given as plain
data. The statistics and verdicts are :mod:`compressbench.findings` (docs/findings.md).
"""

from __future__ import annotations

import difflib
from typing import Any, Iterable, Mapping

from .schema import BASELINE, Finding, MetricRef
from .schema import FINDING_ALL as ALL
from .schema import FINDING_ORDER as ORDER
from .schema import FINDING_TREND as TREND
from .schema import FindingPair as Pair


# ---------------------------------------------------------------- what the experiment produces
def _dym(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def _known(names: Iterable[str], limit: int = 12) -> str:
    names = list(names)
    more = f", ... ({len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def trend_members(label: str, budgets: Mapping[str, tuple[str | None, float | None]]) -> list[str]:
    """The variants of a budgets list named ``label`` (the variant name before ``@``), least compressed
    first: ``budgets`` maps each variant name to (budget kind, target). Only shared budget kinds (params,
    bytes, flops: a fraction of the parent, smaller = more compressed) order a trend by themselves."""
    members = [
        (n, t)
        for n, (k, t) in budgets.items()
        if "@" in n and n.split("@", 1)[0] == label and k not in (None, "knob") and t is not None
    ]
    return [n for n, _ in sorted(members, key=lambda m: -float(m[1]))]


def _metric_problem(
    where: str, metric: str | MetricRef, keys: list[str], evaluator_metrics: Mapping[str, Iterable[str]]
) -> str | None:
    """Why a finding's ``metric`` (a summary key, or an evaluator's metric) is not one this experiment
    produces, or None."""
    if isinstance(metric, str):
        if metric in keys:
            return None
        return (
            f"{where}.metric: '{metric}' is not a metric this experiment produces{_dym(metric, keys)}"
            f"; known: {_known(keys, 40)} (or {{evaluator: ..., metric: ..., where: ...}})"
        )
    evs = list(evaluator_metrics)
    if metric.evaluator not in evaluator_metrics:
        return (
            f"{where}.metric.evaluator: '{metric.evaluator}' is not among this experiment's evaluations"
            f"{_dym(metric.evaluator, evs)}; known: {', '.join(evs)}"
        )
    declared = sorted(set(evaluator_metrics[metric.evaluator]))
    if metric.metric not in declared:
        return (
            f"{where}.metric.metric: evaluator '{metric.evaluator}' declares no metric "
            f"'{metric.metric}'{_dym(metric.metric, declared)}; known: {_known(declared, 40)}"
        )
    return None


def _named_variants(where: str, f: Finding) -> tuple[list[tuple[str, str]], str | None]:
    """The variants a finding names explicitly, each with its field path, or why its pairing cannot be
    tested (a variant compared with itself, the parent with the parent)."""
    if f.compare is not None:
        if f.compare.a == f.compare.b:
            return [], f"{where}.compare: a and b are the same variant '{f.compare.a}'"
        return [(f"{where}.compare.a", f.compare.a), (f"{where}.compare.b", f.compare.b)], None
    if isinstance(f.trend, list):
        return [(f"{where}.trend[{j}]", v) for j, v in enumerate(f.trend)], None
    if isinstance(f.vs_parent, list):
        if BASELINE in f.vs_parent:
            return [], f"{where}.vs_parent: the parent ('{BASELINE}') is not compared with itself"
        return [(f"{where}.vs_parent[{j}]", v) for j, v in enumerate(f.vs_parent)], None
    return [], None


def _variants_problem(where: str, f: Finding, budgets: Mapping[str, tuple[str | None, float | None]]) -> str | None:
    """Why the variants a finding compares are not ones this experiment produces (a named variant, a budgets
    list with fewer than two ordered points, ``vs_parent: all`` without variants), or None."""
    names = list(budgets)
    named, problem = _named_variants(where, f)
    if problem is not None:
        return problem
    for path, v in named:
        if v not in budgets:
            return f"{path}: unknown variant '{v}'{_dym(v, names)}; the experiment produces: {_known(names)}"
    if isinstance(f.trend, str) and len(trend_members(f.trend, budgets)) < 2:
        labels = sorted({n.split("@", 1)[0] for n in names if "@" in n})
        return (
            f"{where}.trend: '{f.trend}' names no budgets list of at least 2 params/bytes/flops "
            f"budgets{_dym(f.trend, labels)}; lists: {', '.join(labels) or 'none'} (or list the "
            f"variants, least compressed first)"
        )
    if f.vs_parent == ALL and len(names) < 2:
        return f"{where}.vs_parent: the experiment has no variant besides the parent"
    return None


def check_findings(
    findings: list[Finding],
    budgets: Mapping[str, tuple[str | None, float | None]],
    metric_keys: Iterable[str],
    evaluator_metrics: Mapping[str, Iterable[str]],
) -> str | None:
    """Why a finding cannot be tested on this experiment's results (one line, with its field path), or None.

    ``budgets``: every variant the experiment produces (the baseline included) -> (budget kind, target);
    ``metric_keys``: the summary keys its evaluators declare; ``evaluator_metrics``: evaluator -> the
    metric names it declares (for the mapping form)."""
    keys = sorted(set(metric_keys))
    ids: dict[str, int] = {}
    for i, f in enumerate(findings):
        where = f"findings[{i}]"
        fid = f.id or f"F{i + 1}"
        if fid in ids:
            return f"{where}.id: duplicate finding id '{fid}' (also findings[{ids[fid]}])"
        ids[fid] = i
        problem = _metric_problem(where, f.metric, keys, evaluator_metrics) or _variants_problem(where, f, budgets)
        if problem is not None:
            return problem
    return None


def experiment_check(findings: list[Finding], variants: Iterable[Any], evaluator_names: Iterable[str]) -> str | None:
    """:func:`check_findings` for a validated experiment: its resolved variants (``.name``, ``.budget``) and
    the evaluators it runs (their declared metrics from the registry, plus the runner's own rows)."""
    if not findings:
        return None
    from ..job_metrics import JOB_SPECS
    from ..registry import evaluators

    budgets: dict[str, tuple[str | None, float | None]] = {BASELINE: (None, None)}
    for v in variants:
        budgets[v.name] = (v.budget.kind, float(v.budget.value)) if v.budget is not None else (None, None)
    specs = {**{ev: evaluators.spec(ev) for ev in evaluator_names}, **JOB_SPECS}
    keys = {m.column for s in specs.values() for m in s.metrics if m.show.summary}
    names = {ev: [m.name for m in s.metrics] for ev, s in specs.items()}
    return check_findings(findings, budgets, keys, names)


__all__ = [
    "Finding",
    "Pair",
    "MetricRef",
    "ORDER",
    "TREND",
    "ALL",
    "BASELINE",
    "trend_members",
    "check_findings",
    "experiment_check",
]

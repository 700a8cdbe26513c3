"""Where the report finds metric declarations: the evaluator registry, plus the rows the runner's own
jobs write (``compressbench.job_metrics``). An evaluator this installation does not know has no
declarations: its rows still render, generically, from the store alone."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cache
from typing import Any, Callable

from ..specs import EvaluatorSpec, MetricSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Decl:
    """One metric declaration and the evaluator that declared it."""

    evaluator: str
    spec: MetricSpec


def known_specs() -> dict[str, EvaluatorSpec]:
    """Every declaring evaluator: the runner's jobs first, then the registered evaluators."""
    from ..job_metrics import JOB_SPECS
    from ..registry import evaluators

    out = dict(JOB_SPECS)
    for name, spec in evaluators.items():
        out.setdefault(name, spec)
    return out


def specs_for(evaluators: list[str]) -> dict[str, EvaluatorSpec | None]:
    """Every known declaring evaluator, plus ``evaluators`` seen in a store (None: not installed here)."""
    known: dict[str, EvaluatorSpec | None] = dict(known_specs())
    for name in evaluators:
        known.setdefault(name, None)
    return known


def declarations(specs: dict[str, EvaluatorSpec | None]) -> list[Decl]:
    """All metric declarations, in evaluator then declaration order."""
    return [Decl(ev, m) for ev, spec in specs.items() if spec is not None for m in spec.metrics]


def evaluator_order(specs: dict[str, EvaluatorSpec | None], present: list[str]) -> list[str]:
    """Evaluators with rows, in the order of their first declared metric's ``order`` (the summary's
    order); undeclared evaluators after them, in store order."""
    def rank(ev: str) -> float:
        spec = specs.get(ev)
        return min((m.order for m in spec.metrics), default=1e9) if spec else 2e9

    return sorted(present, key=lambda ev: (rank(ev), present.index(ev)))


@cache
def _import(path: str) -> Any:
    from ..registry import import_object

    return import_object(path)


def hook(obj: Callable[..., Any] | str | None) -> Callable[..., Any] | None:
    """A declared hook: a callable, or a ``"pkg.mod:fn"`` string imported on first use."""
    if obj is None or callable(obj):
        return obj
    return _import(obj)

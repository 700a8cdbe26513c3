"""Where the report finds metric declarations: first the store (each run records the declarations of the
evaluators it used, :mod:`compressbench.declarations`), then — for a store written before that, and for
the code parts of a declaration (``derive``, report and figure hooks) — the evaluators registered in this
installation, plus the rows the runner's own jobs write (``compressbench.job_metrics``). An evaluator with
neither has no declarations: its rows still render, generically, from the store alone. No name read
from the store is ever imported."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Callable, Mapping

from ..declarations import spec_from_record
from ..specs import EvaluatorSpec, MetricSpec, ReportOption
from .tables import ReportOptions

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Decl:
    """One metric declaration and the evaluator that declared it."""

    evaluator: str
    spec: MetricSpec


@dataclass
class Declared:
    """The specs the report renders with (None: an evaluator with rows but no declarations) and notes on
    what was left out because its code is not installed here."""

    specs: dict[str, EvaluatorSpec | None]
    notes: list[str] = field(default_factory=list)


def known_specs() -> dict[str, EvaluatorSpec]:
    """Every declaring evaluator this installation has: the runner's jobs first, then the registered ones."""
    from ..job_metrics import JOB_SPECS
    from ..registry import evaluators

    out = dict(JOB_SPECS)
    for name, spec in evaluators.items():
        out.setdefault(name, spec)
    return out


def specs_for(evaluators: list[str], stored: Mapping[str, Mapping[str, Any]] | None = None) -> Declared:
    """Every known declaring evaluator, with the declarations stored for it where there are some (``stored``:
    evaluator -> record), plus ``evaluators`` seen in a store (None: no declarations anywhere)."""
    known = known_specs()
    specs: dict[str, EvaluatorSpec | None] = dict(known)
    notes: list[str] = []
    for name, record in (stored or {}).items():
        try:
            rendered = spec_from_record(name, record, known.get(name))
        except Exception as e:  # a record another version wrote: say so, render from the code (or generically)
            log.warning(
                "stored declarations of %s not readable (%s: %s); using this installation's", name, type(e).__name__, e
            )
            continue
        specs[name] = rendered.spec
        notes += rendered.notes
    for name in evaluators:
        specs.setdefault(name, None)
    return Declared(specs, notes)


def declarations(specs: dict[str, EvaluatorSpec | None]) -> list[Decl]:
    """All metric declarations, in evaluator then declaration order."""
    return [Decl(ev, m) for ev, spec in specs.items() if spec is not None for m in spec.metrics]


def evaluator_order(specs: dict[str, EvaluatorSpec | None], present: list[str]) -> list[str]:
    """Evaluators with rows, in the order of their first declared metric's ``order`` (the summary's
    order); undeclared evaluators after them, in store order."""

    def rank(ev: str) -> float:
        spec = specs.get(ev)
        return min((m.show.order for m in spec.metrics), default=1e9) if spec else 2e9

    return sorted(present, key=lambda ev: (rank(ev), present.index(ev)))


def report_options() -> dict[str, tuple[ReportOption, list[str]]]:
    """The report options the registered evaluators declare: name -> (declaration, evaluators declaring it)."""
    out: dict[str, tuple[ReportOption, list[str]]] = {}
    for name, spec in known_specs().items():
        for opt in spec.report_options:
            out.setdefault(opt.name, (opt, []))[1].append(name)
    return out


@cache
def _import(path: str) -> Any:
    from ..registry import import_object

    return import_object(path)


def hook(obj: Callable[..., Any] | str | None) -> Callable[..., Any] | None:
    """A declared hook of a registered evaluator: a callable, or a ``"pkg.mod:fn"`` string its registration
    names, imported on first use (never a name read from the store: see :mod:`compressbench.declarations`)."""
    if obj is None or callable(obj):
        return obj
    return _import(obj)


def checked_options(opts: ReportOptions) -> ReportOptions:
    """``opts`` with every evaluator option checked against its declaration (text parsed, e.g. ``"8/255"``);
    an option no registered evaluator declares, or a bad value, is a ``ValueError`` (one line)."""
    declared = report_options()
    values = {}
    for name, raw in opts.values.items():
        if name not in declared:
            raise ValueError(f"unknown report option '{name}' (declared: {', '.join(sorted(declared)) or 'none'})")
        opt = declared[name][0]
        try:
            values[name] = opt.value(raw)
        except ValueError as e:
            raise ValueError(f"{opt.flag} {e}") from None
    return ReportOptions(opts.confidence, **values)

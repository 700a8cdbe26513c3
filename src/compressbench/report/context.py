"""What the report's pieces and the evaluators' report hooks work with: one experiment's data, the
report options, the metric declarations, and the summary columns computed from them.

A summary column is the key of one or more declarations (``MetricSpec.summary``): the main
declaration fills it; ``fallback`` declarations fill it only when the main one has no rows. A plain
declaration reads rows (:func:`.data.per_seed`); a ``derive`` hook computes the column from other
columns or rows (``ctx.column(key)``, ``ctx.values(metric)``), e.g. relative to the baseline.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import pandas as pd

from ..specs import ANY, EvaluatorSpec, MetricSpec
from .data import ExperimentData, empty_series, per_seed, reduce_rows, select_rows
from .declared import Decl, declarations, hook, specs_for
from .tables import Column, ReportOptions, Table, aggregate, seeds_note

log = logging.getLogger(__name__)


@dataclass
class Derived:
    """What a ``derive`` hook may return instead of a bare Series: values per (variant, seed), notes for
    under the summary table, and a label that depends on the data (e.g. the ε used)."""

    values: pd.Series
    notes: list[str] = field(default_factory=list)
    label: str | None = None
    condition: str = ""  # the measurement protocol used (``MetricSpec.protocol``), if any


@dataclass
class ColumnResult:
    """A summary column: presentation from its main declaration, values from the first that has rows."""

    key: str
    label: str
    fmt: str
    values: pd.Series
    notes: list[str]
    source: Decl | None = None
    condition: str = ""


class SummaryColumns:
    """The summary columns of one experiment, computed lazily (a derived column may read others)."""

    def __init__(self, ctx: ReportContext):
        self.ctx = ctx
        self.by_key: dict[str, list[Decl]] = {}
        for d in sorted((d for d in declarations(ctx.specs) if d.spec.summary),
                        key=lambda d: (d.spec.fallback, d.spec.order)):
            self.by_key.setdefault(d.spec.column, []).append(d)
        self.keys = sorted(self.by_key, key=lambda k: self.by_key[k][0].spec.order)
        self._done: dict[str, ColumnResult] = {}
        self._busy: set[str] = set()

    def all(self) -> list[ColumnResult]:
        return [self.column(k) for k in self.keys]

    def column(self, key: str) -> ColumnResult:
        if key in self._done:
            return self._done[key]
        if key not in self.by_key:
            return ColumnResult(key, key, "g", empty_series(), [])
        if key in self._busy:
            raise RuntimeError(f"summary column '{key}' depends on itself")
        self._busy.add(key)
        try:
            self._done[key] = res = self._compute(key)
        finally:
            self._busy.discard(key)
        return res

    def _compute(self, key: str) -> ColumnResult:
        decls = self.by_key[key]
        main = decls[0]
        out = Derived(empty_series())
        used = None
        for d in decls:
            out = self.evaluate(d)
            if out.values.notna().any():
                used = d
                break
        notes = list(out.notes)
        if used is not None and used.spec.fallback:
            tmpl = used.spec.note or "{name}: from the {evaluator} job (no {primary} rows)."
            notes.append(tmpl.format(name=main.spec.name, label=main.spec.title, evaluator=used.evaluator,
                                     primary=main.evaluator, condition=""))
        values, label = out.values, out.label or main.spec.title
        values, label = rescale(values, main.spec, label)
        return ColumnResult(key, label, main.spec.fmt, values, notes, used, out.condition)

    def evaluate(self, d: Decl) -> Derived:
        """One declaration's values per (variant, seed), and its notes."""
        spec = d.spec
        if spec.derive is not None:
            try:
                r = hook(spec.derive)(self.ctx.at(d.evaluator))
            except Exception:  # a derived column must never take the report down
                log.exception("derived metric %s of %s failed; left blank", spec.name, d.evaluator)
                return Derived(empty_series())
            return r if isinstance(r, Derived) else Derived(r)
        rows, cond = select_rows(self.ctx.data, d.evaluator, spec)
        values = reduce_rows(rows, spec)
        notes = []
        if spec.protocol and cond and len(values) and not spec.fallback:
            notes.append((spec.note or "{name}: {condition}.").format(
                name=spec.name, label=spec.title, condition=cond, evaluator=d.evaluator, primary=d.evaluator))
        for k, v in spec.where.items():  # e.g. the mean over several suites: say so
            if v == ANY and len(rows):
                vals = sorted({str(x) for x in self.ctx.data.cond(k)[rows.index].dropna()})
                if len(vals) > 1:
                    notes.append(f"{spec.title}: {spec.aggregate} over the {k}s {', '.join(vals)}.")
        return Derived(values, notes, condition=cond if len(values) else "")


def rescale(values: pd.Series, spec: MetricSpec, label: str) -> tuple[pd.Series, str]:
    """Apply a declaration's ``scale`` steps: the first whose ``below`` exceeds the largest value."""
    if not spec.scale:
        return values, label
    top = float(values.max()) if values.notna().any() else math.inf
    for below, divisor, step_label in spec.scale:
        if top < below:
            return values / divisor, step_label
    return values, label


class ReportContext:
    """One experiment, the options and the declarations, seen from one evaluator (``evaluator``): its own
    rows (``rows``, ``cond``), its metrics per (variant, seed) (``values``), the summary columns
    (``column``), and a table builder (``table``). Hooks receive it; :meth:`at` moves to another
    evaluator sharing the caches."""

    def __init__(self, data: ExperimentData, options: ReportOptions, specs: dict[str, EvaluatorSpec | None],
                 evaluator: str = "", _shared: tuple[SummaryColumns, dict] | None = None):
        self.data, self.options, self.specs, self.evaluator = data, options, specs, evaluator
        if _shared is None:
            self.summary = SummaryColumns(self)
            self._memo: dict[Any, Any] = {}
        else:
            self.summary, self._memo = _shared

    @classmethod
    def build(cls, data: ExperimentData, options: ReportOptions | None = None) -> ReportContext:
        return cls(data, options or ReportOptions(), specs_for(data.evaluators))

    def at(self, evaluator: str) -> ReportContext:
        return ReportContext(self.data, self.options, self.specs, evaluator, (self.summary, self._memo))

    @property
    def spec(self) -> EvaluatorSpec | None:
        return self.specs.get(self.evaluator)

    @property
    def rows(self) -> pd.DataFrame:
        """This evaluator's successful rows (one per measurement, latest version)."""
        return self.data.df[self.data.df["evaluator"] == self.evaluator]

    def cond(self, key: str) -> pd.Series:
        """Condition ``key`` of :attr:`rows` (None where absent)."""
        return self.data.cond(key)[self.rows.index]

    def metric(self, name: str) -> MetricSpec:
        """This evaluator's declaration of ``name`` (a bare one when undeclared)."""
        spec = self.spec
        m = next((m for m in spec.metrics if m.name == name and m.derive is None), None) if spec else None
        return m or MetricSpec(name)

    def values(self, name: str, **changes: Any) -> pd.Series:
        """Metric ``name`` of this evaluator per (variant, seed), as declared (fields overridden by
        ``changes``, e.g. ``where={}, exact=True``)."""
        return per_seed(self.data, self.evaluator, replace(self.metric(name), **changes))[0]

    def column(self, key: str) -> pd.Series:
        """A summary column per (variant, seed) (empty when nothing fills it)."""
        return self.summary.column(key).values

    def memo(self, key: Any, fn: Callable[[], Any]) -> Any:
        """Compute once per report (e.g. two derived columns from one computation)."""
        if key not in self._memo:
            self._memo[key] = fn()
        return self._memo[key]

    def table(self, name: str, title: str, per: pd.DataFrame, columns: list[Column],
              notes: list[str] | None = None) -> Table:
        """A variant × column table of mean ± CI over seeds; ``per``: index (variant, seed), a column per
        ``Column.key``. The seeds note comes first."""
        return aggregate(name, title, self.data, per, columns, self.options.confidence,
                         notes=[seeds_note(self.data), *(notes or [])])

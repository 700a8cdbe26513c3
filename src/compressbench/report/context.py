"""What the report's pieces and the evaluators' report hooks work with: one experiment's data, the
report options, the metric declarations, and the summary columns computed from them.

A summary column is the key of one or more declarations (``Presentation.summary``): the main
declaration fills it; ``fallback`` declarations fill it only when the main one has no rows. A plain
declaration reads rows (:func:`.data.per_seed`); a ``derive`` hook computes the column from other
columns or rows (``ctx.column(key)``, ``ctx.role(role)``, ``ctx.values(metric)``), e.g. relative to the
baseline. Hooks read the report options their evaluator declares with ``ctx.option(name)``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import pandas as pd

from ..specs import ANY, EvaluatorSpec, MetricSpec
from .data import ExperimentData, empty_series, per_seed, reduce_rows, select_rows
from .declared import Decl, Declared, declarations, hook, specs_for
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
    """A summary column: presentation from its main declaration (``main``), values per (variant, seed) from
    the first declaration that has rows (``source``), as stored — a declared ``scale`` is applied where the
    column is shown (:func:`rescale`)."""

    key: str
    label: str
    fmt: str
    values: pd.Series
    notes: list[str]
    source: Decl | None = None
    condition: str = ""
    main: MetricSpec | None = None


class SummaryColumns:
    """The summary columns of one experiment, computed lazily (a derived column may read others)."""

    def __init__(self, ctx: ReportContext):
        self.ctx = ctx
        self.by_key: dict[str, list[Decl]] = {}
        for d in sorted(
            (d for d in declarations(ctx.specs) if d.spec.show.summary),
            key=lambda d: (d.spec.show.fallback, d.spec.show.order),
        ):
            self.by_key.setdefault(d.spec.column, []).append(d)
        self.keys = sorted(self.by_key, key=lambda k: self.by_key[k][0].spec.show.order)
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
        if used is not None and used.spec.show.fallback:
            tmpl = used.spec.show.note or "{name}: from the {evaluator} job (no {primary} rows)."
            notes.append(
                tmpl.format(
                    name=main.spec.name,
                    label=main.spec.title,
                    evaluator=used.evaluator,
                    primary=main.evaluator,
                    condition="",
                )
            )
        return ColumnResult(
            key, out.label or main.spec.title, main.spec.show.fmt, out.values, notes, used, out.condition, main.spec
        )

    def evaluate(self, d: Decl) -> Derived:
        """One declaration's values per (variant, seed), and its notes."""
        spec, sel = d.spec, d.spec.select
        if sel.derive is not None:
            try:
                r = hook(sel.derive)(self.ctx.at(d.evaluator))
            except Exception:  # a derived column must never take the report down
                log.exception("derived metric %s of %s failed; left blank", spec.name, d.evaluator)
                return Derived(empty_series())
            return r if isinstance(r, Derived) else Derived(r)
        rows, cond = select_rows(self.ctx.data, d.evaluator, spec)
        values = reduce_rows(rows, spec)
        notes = []
        if sel.protocol and cond and len(values) and not spec.show.fallback:
            notes.append(
                (spec.show.note or "{name}: {condition}.").format(
                    name=spec.name, label=spec.title, condition=cond, evaluator=d.evaluator, primary=d.evaluator
                )
            )
        for k, v in sel.where.items():  # e.g. the mean over several suites: say so
            if v == ANY and len(rows):
                vals = sorted({str(x) for x in self.ctx.data.cond(k)[rows.index].dropna()})
                if len(vals) > 1:
                    notes.append(f"{spec.title}: {sel.aggregate} over the {k}s {', '.join(vals)}.")
        return Derived(values, notes, condition=cond if len(values) else "")


def rescale(values: pd.Series, spec: MetricSpec, label: str) -> tuple[pd.Series, str]:
    """Apply a declaration's ``scale`` steps: the first whose ``below`` exceeds the largest value."""
    if not spec.show.scale:
        return values, label
    top = float(values.max()) if values.notna().any() else math.inf
    for below, divisor, step_label in spec.show.scale:
        if top < below:
            return values / divisor, step_label
    return values, label


class ReportContext:
    """One experiment, the options and the declarations, seen from one evaluator (``evaluator``): its own
    rows (``rows``, ``cond``), its metrics per (variant, seed) (``values``), the summary columns
    (``column``, ``role``), its report options (``option``) and a table builder (``table``). Hooks receive
    it; :meth:`at` moves to another evaluator sharing the caches. ``notes``: what the declarations could
    not render here (code this installation does not have), shown under the summary table."""

    def __init__(
        self,
        data: ExperimentData,
        options: ReportOptions,
        declared: Declared,
        evaluator: str = "",
        _shared: tuple[SummaryColumns, dict] | None = None,
    ):
        self.data, self.options, self.evaluator = data, options, evaluator
        self.specs, self.notes, self._declared = declared.specs, declared.notes, declared
        if _shared is None:
            self.summary = SummaryColumns(self)
            self._memo: dict[Any, Any] = {}
        else:
            self.summary, self._memo = _shared

    @classmethod
    def build(cls, data: ExperimentData, options: ReportOptions | None = None) -> ReportContext:
        return cls(data, options or ReportOptions(), specs_for(data.evaluators, data.declared))

    def at(self, evaluator: str) -> ReportContext:
        return ReportContext(self.data, self.options, self._declared, evaluator, (self.summary, self._memo))

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
        m = next((m for m in spec.metrics if m.name == name and m.select.derive is None), None) if spec else None
        return m or MetricSpec(name)

    def values(self, name: str, **changes: Any) -> pd.Series:
        """Metric ``name`` of this evaluator per (variant, seed), as declared (fields overridden by
        ``changes``, e.g. ``where={}, exact=True``)."""
        return per_seed(self.data, self.evaluator, replace(self.metric(name), **changes))[0]

    def column(self, key: str) -> pd.Series:
        """A summary column per (variant, seed) (empty when nothing fills it)."""
        return self.summary.column(key).values

    def role_key(self, role: str) -> str | None:
        """The key of the summary column whose main declaration has ``role`` (``MetricSpec.role``, e.g.
        ``specs.CLEAN_ACCURACY``): how one evaluator's hooks read another's number without naming it."""
        return next((k for k in self.summary.keys if self.summary.by_key[k][0].spec.role == role), None)

    def role(self, role: str) -> pd.Series:
        """The summary column declared with ``role``, per (variant, seed) (empty when none is)."""
        key = self.role_key(role)
        return self.column(key) if key is not None else empty_series()

    def option(self, name: str) -> Any:
        """A report option (``EvaluatorSpec.report_options``): the value given, else its declared default."""
        if name in self.options.values:
            return self.options.values[name]
        for spec in (self.spec, *self.specs.values()):
            opt = next((o for o in spec.report_options if o.name == name), None) if spec is not None else None
            if opt is not None:
                return opt.default_value
        raise KeyError(f"no evaluator declares the report option '{name}'")

    def memo(self, key: Any, fn: Callable[[], Any]) -> Any:
        """Compute once per report (e.g. two derived columns from one computation)."""
        if key not in self._memo:
            self._memo[key] = fn()
        return self._memo[key]

    def table(
        self, name: str, title: str, per: pd.DataFrame, columns: list[Column], notes: list[str] | None = None
    ) -> Table:
        """A variant × column table of mean ± CI over seeds; ``per``: index (variant, seed), a column per
        ``Column.key``. The seeds note comes first."""
        return aggregate(
            name, title, self.data, per, columns, self.options.confidence, notes=[seeds_note(self.data), *(notes or [])]
        )

"""Detail tables: per evaluator, its own ``report`` hook's tables, plus one generic table — variant ×
(metric, condition), mean ± CI over seeds — of the metrics it declares with ``table`` set and of any
metric it does not declare. An evaluator this installation does not know gets the generic table of
all its rows, so no measurement stored is left out of the report."""

from __future__ import annotations

import logging
from dataclasses import replace

import pandas as pd

from ..specs import MetricSpec
from .context import ReportContext
from .data import ExperimentData, reduce_rows, select_rows
from .declared import evaluator_order, hook
from .summary import summary_table
from .tables import Column, ReportOptions, Table

log = logging.getLogger(__name__)

_UNIT_FORMATS = {"ms": "ms", "B": "bytes"}


def _slug(s: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in s).strip("-").lower()


def _table_metrics(ctx: ReportContext) -> dict[str, list[MetricSpec]]:
    """Table name -> the declarations (bare ones for undeclared metrics) it shows, in order."""
    spec = ctx.spec
    decls = list(spec.metrics) if spec else []
    present = list(dict.fromkeys(ctx.rows["metric"]))
    names = [m for m in dict.fromkeys(m.name for m in decls) if m in present]
    names += [m for m in present if m not in names]
    out: dict[str, list[MetricSpec]] = {}
    for name in names:
        mine = [m for m in decls if m.name == name]
        if mine:
            m = next((m for m in mine if m.show.table is not None), None)
            if m is None:
                continue
        else:
            units = ctx.rows.loc[ctx.rows["metric"] == name, "unit"].dropna()
            m = MetricSpec(
                name,
                unit=units.iloc[0] if len(units) else "",
                fmt=_UNIT_FORMATS.get(units.iloc[0] if len(units) else "", "g"),
            )  # type: ignore[arg-type]
        out.setdefault(m.show.table or ctx.evaluator, []).append(m)
    return out


def generic_tables(ctx: ReportContext) -> list[Table]:
    """The evaluator's generic table(s): a column per (metric, condition)."""
    out = []
    for table, metrics in _table_metrics(ctx).items():
        per: dict[str, pd.Series] = {}
        columns = []
        for m in metrics:
            rows, _ = select_rows(ctx.data, ctx.evaluator, replace(m, protocol=()))
            for cond, g in rows.groupby(rows["condition"].fillna(""), sort=True):
                key = m.name if cond == "" else f"{m.name}[{cond}]"
                per[key] = reduce_rows(g, m)
                columns.append(
                    Column.of(
                        key, m.title if cond == "" else f"{m.title} ({cond})", m.show.fmt, per[key], m.show.description
                    )
                )
        if columns:
            frame = pd.DataFrame(per)
            frame.index = frame.index.set_names(["variant", "seed"])
            out.append(ctx.table(_slug(table), f"{ctx.data.name}: {table}", frame, columns))
    return out


def evaluator_tables(ctx: ReportContext) -> list[Table]:
    """Every evaluator's detail tables, evaluators in summary order; table names made unique."""
    out: list[Table] = []
    present = list(dict.fromkeys(ctx.data.df["evaluator"]))
    for ev in evaluator_order(ctx.specs, present):
        c = ctx.at(ev)
        spec = c.spec
        if spec is not None and spec.report is not None:
            try:
                out += hook(spec.report)(c) or []
            except Exception:  # a table must never take the report down
                log.exception("report tables of evaluator %s failed; skipped", ev)
        out += generic_tables(c)
    seen = {"summary"}
    for t in out:
        base, i = t.name, 2
        while t.name in seen:
            t.name, i = f"{base}-{i}", i + 1
        seen.add(t.name)
    return out


def all_tables(
    data: ExperimentData, opts: ReportOptions | None = None, ctx: ReportContext | None = None
) -> list[Table]:
    """The summary table, then every evaluator's detail tables."""
    ctx = ctx or ReportContext.build(data, opts)
    return [summary_table(data, ctx.options, ctx), *evaluator_tables(ctx)]

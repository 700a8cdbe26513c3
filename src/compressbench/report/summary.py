"""The summary table (one row per variant, a column per summary declaration) and the table
``compressbench run`` prints (a column per ``console`` declaration) — both drawn from declarations."""

from __future__ import annotations

import math

import pandas as pd

from .context import ReportContext, rescale
from .data import ExperimentData
from .declared import declarations
from .tables import CELL_FORMATS, Column, ReportOptions, Table, aggregate, seeds_note


def summary_table(data: ExperimentData, opts: ReportOptions | None = None, ctx: ReportContext | None = None) -> Table:
    """One row per variant: every summary column some variant has a number for (blank cells where a
    variant lacks it); the first column always shows."""
    opts = opts or ReportOptions()
    ctx = ctx or ReportContext.build(data, opts)
    cols = ctx.summary.all()
    shown = [c for i, c in enumerate(cols) if i == 0 or c.values.notna().any()]
    per = pd.DataFrame({c.key: c.values for c in shown if len(c.values)})
    for c in shown:
        if c.key not in per:
            per[c.key] = math.nan
    if per.empty:
        per = pd.DataFrame(columns=[c.key for c in shown],
                           index=pd.MultiIndex.from_tuples([], names=["variant", "seed"]))
    per.index = per.index.set_names(["variant", "seed"])
    notes = [seeds_note(data)] + [n for c in shown for n in c.notes] + ctx.notes
    if not data.errors.empty:
        failed = sorted(set(data.errors["variant"]) - set(data.df["variant"]))
        if failed:
            notes.append(f"No numbers for {', '.join(failed)}: every job failed (see Failed jobs).")
    columns = [Column.of(c.key, c.label, c.fmt) for c in shown]
    return aggregate("summary", f"{data.name}: summary", data, per, columns, opts.confidence, notes=notes)


def console_summary(data: ExperimentData) -> tuple[list[str], list[list[str]], list[str]]:
    """The run's printed table: (headers, rows, notes). Variants in the order they first appear in the
    store; a cell is the mean over seeds of the declaration's value (scaled as declared)."""
    ctx = ReportContext.build(data)
    decls = sorted((d for d in declarations(ctx.specs) if d.spec.show.console is not None),
                   key=lambda d: d.spec.show.order)
    order = list(data.df.sort_values("id")["variant"].drop_duplicates()) if len(data.df) else []
    cells: list[list[str]] = [[v] for v in order]
    for d in decls:
        means = ctx.summary.evaluate(d).values.groupby(level=0).mean()
        means, _ = rescale(means, d.spec, "")
        fmt = CELL_FORMATS[d.spec.show.fmt].console
        for row, v in zip(cells, order, strict=True):
            x = means.get(v, math.nan)
            row.append(fmt(x) if x == x else d.spec.show.console.missing)  # type: ignore[union-attr]
    headers = ["variant"] + [d.spec.show.console.title for d in decls]  # type: ignore[union-attr]
    notes = [d.spec.show.console.note for d in decls if d.spec.show.console.note]  # type: ignore[union-attr]
    return headers, cells, notes

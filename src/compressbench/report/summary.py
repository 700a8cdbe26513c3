"""The summary table (one row per variant, a column per summary declaration) and the table
``compressbench run`` prints (a column per ``console`` declaration) — both drawn from declarations."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..job_metrics import budget_not_matched
from ..specs import MetricSpec
from .context import ReportContext, rescale
from .data import BASELINE, ExperimentData, baseline_value
from .declared import declarations
from .tables import CELL_FORMATS, Column, ReportOptions, Table, aggregate, seeds_note


@dataclass
class SummaryColumn:
    """One column of the summary before aggregation over seeds: values per (variant, seed), its label and
    format, its hover text (``note``), whether it leads, and, for a change-vs-parent column, which way is
    better (``good``) around ``neutral``."""

    key: str
    label: str
    fmt: str
    values: pd.Series
    note: str = ""
    lead: bool = False
    good: int = 0
    neutral: float = 0.0
    spec: MetricSpec | None = None

    def column(self, values: pd.Series | None = None) -> Column:
        """The table column (a size column's unit chosen from ``values``, default its own)."""
        c = Column.of(self.key, self.label, self.fmt, self.values if values is None else values, self.note)
        c.good, c.neutral = self.good, self.neutral
        return c


DELTA_NOTE = (
    "Δ pp: the variant minus its parent (the baseline of the same seed), in percentage points; "
    "× parent: the variant's value over its parent's (0.50× = half); blank for the baseline itself. "
    "In the HTML, green: better, red: worse (as each metric declares higher or lower is better), "
    "where the 95 % interval excludes no change (one seed: wherever it changed)."
)


def delta_column(c: SummaryColumn) -> SummaryColumn | None:
    """The change of ``c`` vs the parent per (variant, seed): points for a percentage, a ratio otherwise;
    None when the declaration has no direction or no variant has a parent value."""
    spec = c.spec
    if spec is None or spec.show.higher_is_better is None or not len(c.values):
        return None
    base = np.array([baseline_value(c.values, seed) for _, seed in c.values.index], dtype=float)
    good = 1 if spec.show.higher_is_better else -1
    if spec.show.fmt == "pct":
        values = c.values - base
        key, label, fmt, neutral, how = f"{c.key}_delta_pp", "Δ pp", "delta_pct", 0.0, "minus"
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            values = c.values / np.where(base > 0, base, np.nan)
        key, label, fmt, neutral, how = f"{c.key}_ratio", "× parent", "ratio", 1.0, "over"
    values = values.astype(float).dropna()
    values = values[values.index.get_level_values(0) != BASELINE]  # the parent itself: blank, not "+0.00"
    if values.empty:
        return None
    note = (
        f"{c.label}: the variant's value {how} its parent's (the baseline of the same seed); "
        f"{'higher' if good > 0 else 'lower'} is better"
    )
    return SummaryColumn(key, label, fmt, values, note, True, good, neutral)


def summary_columns(ctx: ReportContext, scaled: bool = True) -> tuple[list[SummaryColumn], list[str]]:
    """The summary's columns — every summary declaration some variant has a number for (the first always),
    the ``lead`` ones first, each followed by its change vs the parent — and the notes under the table
    (protocols, fallbacks, what each derived column computes). ``scaled``: apply declared ``scale`` steps
    (False: as stored, for a table across experiments that scales their union)."""
    cols = ctx.summary.all()
    shown = [c for i, c in enumerate(cols) if i == 0 or c.values.notna().any()]
    lead = [c for c in shown if c.main is not None and c.main.show.lead]
    out: list[SummaryColumn] = []
    notes: list[str] = []
    for c in [*lead, *(c for c in shown if c not in lead)]:
        values, label = c.values, c.label
        if scaled and c.main is not None:
            values, label = rescale(values, c.main, label)
        desc = c.main.show.description if c.main is not None else ""
        col = SummaryColumn(c.key, label, c.fmt, values, desc, c in lead, spec=c.main)
        out.append(col)
        d = delta_column(col) if c in lead else None
        if d is not None:
            out.append(d)
        notes += c.notes
        if c.main is not None and c.main.select.derive is not None and desc:
            notes.append(f"{label}: {desc}.")  # what a derived column computes
    if any(c.fmt in ("delta_pct", "ratio") for c in out):
        notes.append(DELTA_NOTE)
    return out, notes


def lead_count(cols: list[SummaryColumn]) -> int | None:
    """How many leading columns the HTML shows before "show all columns" (None: all, nothing to hide)."""
    n = sum(c.lead for c in cols)
    return n if 0 < n < len(cols) else None


def summary_table(data: ExperimentData, opts: ReportOptions | None = None, ctx: ReportContext | None = None) -> Table:
    """One row per variant: the leading columns (accuracy clean / corrupted / robust, size, latency, each
    with its change vs the parent), then every other summary column some variant has a number for (blank
    cells where a variant lacks it); the first column always shows."""
    opts = opts or ReportOptions()
    ctx = ctx or ReportContext.build(data, opts)
    cols, col_notes = summary_columns(ctx)
    per = pd.DataFrame({c.key: c.values for c in cols if len(c.values)})
    for c in cols:
        if c.key not in per:
            per[c.key] = math.nan
    if per.empty:
        per = pd.DataFrame(
            columns=[c.key for c in cols], index=pd.MultiIndex.from_tuples([], names=["variant", "seed"])
        )
    per.index = per.index.set_names(["variant", "seed"])
    notes = [seeds_note(data)] + col_notes + ctx.notes
    notes += [f"{v}: {msg}." for v, msg in budget_not_matched(data.df).items()]
    if not data.errors.empty:
        failed = sorted(set(data.errors["variant"]) - set(data.df["variant"]))
        if failed:
            notes.append(f"No numbers for {', '.join(failed)}: every job failed (see Failed jobs).")
    t = aggregate(
        "summary", f"{data.name}: summary", data, per, [c.column() for c in cols], opts.confidence, notes=notes
    )
    t.lead = lead_count(cols)
    return t


def console_summary(data: ExperimentData) -> tuple[list[str], list[list[str]], list[str]]:
    """The run's printed table: (headers, rows, notes). Variants in the report's order (the baseline, then
    the experiment file's); a cell is the mean over seeds of the declaration's value (scaled as declared).
    A column whose evaluator has no rows in this experiment (it did not run) is left out."""
    ctx = ReportContext.build(data)
    present = set(data.evaluators)
    decls = sorted(
        (d for d in declarations(ctx.specs) if d.spec.show.console is not None and d.evaluator in present),
        key=lambda d: d.spec.show.order,
    )
    order = [v for v in data.variant_order if v in set(data.df["variant"])]
    misses = budget_not_matched(data.df)
    cells: list[list[str]] = [[v + (" (budget not matched)" if v in misses else "")] for v in order]
    for d in decls:
        means = ctx.summary.evaluate(d).values.groupby(level=0).mean()
        means, _ = rescale(means, d.spec, "")
        fmt = CELL_FORMATS[d.spec.show.fmt].console
        for row, v in zip(cells, order, strict=True):
            x = means.get(v, math.nan)
            row.append(fmt(x) if x == x else d.spec.show.console.missing)  # type: ignore[union-attr]
    headers = ["variant"] + [d.spec.show.console.title for d in decls]  # type: ignore[union-attr]
    notes = [d.spec.show.console.note for d in decls if d.spec.show.console.note]  # type: ignore[union-attr]
    notes += [f"{v}: {msg}." for v, msg in misses.items()]
    return headers, cells, notes

"""Study tables: the layouts an experiment file declares under ``report.tables`` (``compressbench.layouts``),
drawn from the store like every other table (mean ± 95 % CI over seeds), written as CSV / Markdown /
LaTeX and shown in the HTML next to the standard report. The layout is read from the experiment's
latest run in the store, so the report stays a pure function of the store.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import pandas as pd

from ..layouts import ReportLayout, StudyColumn, StudyTable
from ..specs import ANY, MetricSpec
from .data import BASELINE, ExperimentData, per_seed, series_of
from .stats import mean_ci
from .tables import Column, Table

log = logging.getLogger(__name__)


def layout_of(data: ExperimentData) -> ReportLayout | None:
    """The ``report`` layout of the experiment's latest run (None: none declared)."""
    for run in reversed(data.runs):
        cfg = run.get("config_json") or {}
        name = cfg.get("name", data.name)  # a sibling experiment (<name>.<source>) runs its parent's config
        if (data.name == name or data.name.startswith(f"{name}.")) and cfg.get("report"):
            try:
                return ReportLayout.model_validate(cfg["report"])
            except Exception as e:  # a layout written by another version: say so, draw the rest
                log.warning("experiment %s: study tables not drawn (%s)", data.name, str(e).splitlines()[0])
                return None
    return None


def _spec(col: StudyColumn) -> MetricSpec:
    where = {k: (ANY if v == "*" else v) for k, v in col.where.items()}
    return MetricSpec(col.metric, where=where, exact=col.exact, aggregate=col.aggregate, tag=col.tag)


def _family(method: str) -> str:
    if method == BASELINE:
        return BASELINE
    from ..registry import methods

    return methods.spec(method).family if method in methods else method


def _groups(data: ExperimentData, table: StudyTable) -> list[tuple[str, list[str]]]:
    """(group label, variants) blocks; each non-trivial group starts with the baseline."""
    v = data.variants.set_index("variant")
    order = data.variant_order
    if table.group_by == "none":
        return [("", order)]
    key = {"family": lambda n: _family(v.at[n, "method"]), "method": lambda n: v.at[n, "method"], "name": series_of}[
        table.group_by
    ]
    groups: dict[str, list[str]] = {}
    for n in order:
        if v.at[n, "method"] != BASELINE:
            groups.setdefault(key(n), []).append(n)
    base = [n for n in order if v.at[n, "method"] == BASELINE]
    return [(g, base + members) for g, members in groups.items()]


def _row_label(data: ExperimentData, variant: str, how: str) -> str:
    r = data.variants.set_index("variant").loc[variant]
    if r["method"] == BASELINE:
        return BASELINE
    kind, target = r["budget_kind"], r["budget_target"]
    if kind is None or (isinstance(target, float) and math.isnan(target)):
        return variant
    if how == "reduction" and kind != "knob":
        return f"{(1 - float(target)) * 100:.0f} % smaller ({kind})"
    return f"{kind}={float(target):g}"


def study_table(data: ExperimentData, table: StudyTable, confidence: float = 0.95) -> Table:
    """One declared study table."""
    keys = [f"c{i}" for i in range(len(table.columns))]
    per = {k: per_seed(data, c.evaluator, _spec(c))[0] * c.scale for k, c in zip(keys, table.columns)}
    rows: list[tuple[str, dict[str, Any]]] = []
    method = data.variants.set_index("variant")["method"]
    for group, variants in _groups(data, table):
        for v in variants:
            text = {"group": group} if table.group_by != "none" else {}
            if table.row_label != "variant":  # a label of its own (else the variant column says it)
                text["row"] = _row_label(data, v, table.row_label)
            text.update({"variant": v, "method": method[v]})
            rows.append((f"{group}/{v}", text))
    index = [k for k, _ in rows]
    text_df = pd.DataFrame([t for _, t in rows], index=index)
    mean = pd.DataFrame(index=index, columns=keys, dtype=float)
    ci, n = mean.copy(), mean.copy()
    for row_key, t in rows:
        for k in keys:
            s = per[k]
            vals = s.loc[t["variant"]].tolist() if t["variant"] in s.index.get_level_values(0) else []
            e = mean_ci(vals, confidence)
            mean.at[row_key, k], ci.at[row_key, k], n.at[row_key, k] = e.mean, e.ci, e.n
    columns = [Column.of(k, c.label, c.fmt, per[k]) for k, c in zip(keys, table.columns)]
    notes = [
        f"{c.label}: {c.evaluator} · {c.metric}"
        + (f" where {c.where}" if c.where else "")
        + (f" × {c.scale:g}" if c.scale != 1 else "")
        for c in table.columns
    ]
    for k, c in zip(keys, table.columns):  # validate cannot know an evaluator's conditions: the report says it
        if per[k].dropna().empty:
            msg = (
                f"column '{c.label}' matches no row ({c.evaluator} · {c.metric}"
                + (f" where {c.where}" if c.where else "")
                + "): check its metric and where"
            )
            log.warning("study table %s: %s", table.name, msg)
            notes.append(f"EMPTY {msg}")
    return Table(f"study-{table.name}", table.title, text_df, columns, mean, ci, n, notes)


def study_tables(data: ExperimentData, confidence: float = 0.95) -> list[Table]:
    """Every study table the experiment declares (none: [])."""
    layout = layout_of(data)
    return [study_table(data, t, confidence) for t in layout.tables] if layout else []

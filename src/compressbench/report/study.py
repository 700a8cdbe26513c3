"""Study sections: one run of several sibling experiments (``<name>.<part>``, e.g. one per source domain
of a domain-shift study, ``config.experiment_parts``) seen together.

Every sibling keeps its own section. In addition, the evaluators that declare ``gathers`` get one section
``<name>`` in which their report and figure hooks see the rows of all siblings at once (their conditions
tell the siblings apart, e.g. ``source``) — e.g. the full Office-31 table of six source → target pairs.
Only those evaluators' rows (and the runner's own job rows: sizes and achieved budgets, for figure axes)
are gathered.
"""

from __future__ import annotations

import logging

import pandas as pd

from ..store import ResultStore
from .context import ReportContext
from .data import ExperimentData, _variant_table, latest_config, load_experiment
from .declared import hook, specs_for
from .plots import Plotter
from .tables import ReportOptions, Table

log = logging.getLogger(__name__)


def study_groups(names: list[str]) -> dict[str, list[str]]:
    """``{study: [siblings]}``: experiments ``<study>.<part>`` (at least two) whose study name is not an
    experiment of its own."""
    groups: dict[str, list[str]] = {}
    for n in names:
        if "." in n:
            groups.setdefault(n.rsplit(".", 1)[0], []).append(n)
    return {s: ms for s, ms in groups.items() if len(ms) >= 2 and s not in names}


def gathering(specs: dict) -> list[str]:
    return [ev for ev, spec in specs.items() if spec is not None and spec.gathers]


def study_data(store: ResultStore, name: str, members: list[str]) -> ExperimentData | None:
    """The gathering evaluators' rows of every sibling as one :class:`ExperimentData` (None: none)."""
    from ..job_metrics import JOB_SPECS

    parts = [load_experiment(store, m) for m in members]
    declared = {ev: rec for p in parts for ev, rec in p.declared.items()}
    evs = gathering(specs_for(sorted({e for p in parts for e in p.evaluators}), declared).specs)
    # the gathering evaluators' rows, and the runner's own job rows (sizes, achieved budgets) for the axes
    keep = [p.df[p.df["evaluator"].isin([*evs, *JOB_SPECS])] for p in parts]
    df = pd.concat(keep, ignore_index=True)
    if not df["evaluator"].isin(evs).any():
        return None
    errors = pd.concat([p.errors[p.errors["evaluator"].isin(evs)] for p in parts], ignore_index=True)
    seeds = sorted({s for p in parts for s in p.seeds})
    runs = list({r["run_id"]: r for p in parts for r in p.runs}.values())
    variants = _variant_table(df, latest_config(runs))
    return ExperimentData(name, df, errors, variants, seeds, [], runs, declared)


def study_section(
    store: ResultStore, name: str, members: list[str], out_dir, fig_formats: set[str], opts: ReportOptions
) -> tuple[ExperimentData, list[Table], list] | None:
    """(data, tables, figures) of one study: each gathering evaluator's hooks over all siblings."""
    data = study_data(store, name, members)
    if data is None:
        return None
    ctx = ReportContext.build(data, opts)
    tables: list[Table] = []
    plotter = Plotter(data, out_dir / "figures", fig_formats, opts, ctx) if fig_formats else None
    for ev in gathering(ctx.specs):
        spec = ctx.specs[ev]
        if ev not in set(data.df["evaluator"]):
            continue
        try:
            tables += hook(spec.report)(ctx.at(ev)) or [] if spec.report is not None else []
            if plotter is not None and spec.figures is not None:
                hook(spec.figures)(ctx.at(ev), plotter)
        except Exception:  # a study section must never take the report down
            log.exception("study section %s: hooks of %s failed", name, ev)
    return data, tables, (plotter.figures if plotter is not None else [])

"""The report: tables (CSV / Markdown / LaTeX), figures (PNG / SVG) and one self-contained HTML page,
drawn from the results store alone.

``build_report(store_path, out_dir)`` is a pure function of the store: it reads rows, artifacts and
runs and writes::

    out_dir/report.html                       every experiment, images embedded
    out_dir/<experiment>/summary.{csv,md,tex} one row per variant
    out_dir/<experiment>/<table>.{csv,md,tex} every evaluator's detail tables, when measured
    out_dir/<experiment>/figures/*.{png,svg}

Given several stores (or a folder of them), a comparison table across them leads the page
(``out_dir/comparison/``, :mod:`.compare`) and each store's experiments go to ``out_dir/<store>/``.

What goes where is drawn from metric declarations (``specs.MetricSpec``, ``EvaluatorSpec.report`` /
``figures``) — those each run stored with its rows (:mod:`compressbench.declarations`), else this
installation's — and the report options evaluators declare (``EvaluatorSpec.report_options``, a flag
each): nothing here knows an evaluator, a metric or an option by name (docs/report.md).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Sequence

from .compare import find_stores, open_stores
from .context import Derived, ReportContext
from .data import ExperimentData, load_experiment
from .declared import checked_options, report_options
from .detail import all_tables
from .html import _slug, comparison_html, experiment_html, page
from .layout import study_tables
from .plots import Figure, Plotter
from .stats import Estimate, mean_ci
from .summary import console_summary, summary_table
from .tables import Column, ReportOptions, Table

__all__ = [
    "build_report",
    "add_report_arguments",
    "report_command",
    "ReportOptions",
    "ReportContext",
    "Derived",
    "summary_table",
    "console_summary",
    "all_tables",
    "load_experiment",
    "mean_ci",
    "Estimate",
    "ExperimentData",
    "Table",
    "Column",
    "Figure",
    "FORMATS",
]

log = logging.getLogger(__name__)

FORMATS = ("html", "csv", "md", "tex", "png", "svg")


def build_report(
    store_path: str | Path | Sequence[str | Path],
    out_dir: str | Path,
    experiment: str | None = None,
    formats: tuple[str, ...] | list[str] | set[str] = FORMATS,
    options: ReportOptions | None = None,
) -> Path:
    """Write the report for ``experiment`` (default: every experiment) of one store, or of several
    (a list of store files and/or folders of stores: then a comparison table across them leads the page,
    and each store's experiments go to ``out_dir/<store>/<experiment>/``), into ``out_dir``.

    Returns the HTML page's path (or the output directory when ``html`` is not among ``formats``)."""
    fmts = set(formats)
    unknown = fmts - set(FORMATS)
    if unknown:
        raise ValueError(f"unknown report format(s) {sorted(unknown)}; choose from {', '.join(FORMATS)}")
    opts = checked_options(options or ReportOptions())
    paths = find_stores([store_path] if isinstance(store_path, (str, Path)) else list(store_path))
    several = len(paths) > 1
    stores = open_stores(paths)
    picked = [
        (label, store, [n for n in store.experiments() if experiment is None or n == experiment])
        for label, store in stores
    ]
    if experiment is not None and not any(names for _, _, names in picked):
        has = ", ".join(n for _, s, _ in picked for n in s.experiments()) or "none"
        raise ValueError(f"experiment '{experiment}' not in {', '.join(map(str, paths))} (has: {has})")
    if not any(names for _, _, names in picked):
        raise ValueError(f"the store {', '.join(map(str, paths))} has no results yet")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sections: list[str] = []
    parts: list[tuple[ExperimentData, ReportContext]] = []
    for label, store, names in picked:
        base = out / _slug(label) if several else out
        for name in names:
            data = load_experiment(store, name)
            data.source = label if several else ""
            ctx = ReportContext.build(data, opts)
            parts.append((data, ctx))
            sections.append(_experiment_section(data, ctx, base / _slug(name), out, fmts, opts))
        sections += _studies(store, names, base, out, fmts, opts)
    if several:
        sections.insert(0, _comparison_section(parts, out / "comparison", out, fmts, opts))
    from ..findings import report_section  # the declared findings, tested: first on the page

    findings = [
        report_section(store.path, names, out / _slug(label) if several else out, fmts, opts)
        for label, store, names in picked
        if names
    ]
    from ..goal import report_section as decision_section  # the goal's decision: before the findings

    decisions = [
        decision_section(store.path, names, out / _slug(label) if several else out, fmts, opts)
        for label, store, names in picked
        if names
    ]
    sections[:0] = decisions + findings
    if "html" not in fmts:
        return out
    every = [n for _, _, names in picked for n in names]
    title = f"compressbench report: {', '.join(dict.fromkeys(every))}"
    path = out / "report.html"
    path.write_text(page([x for x in sections if x], title, [str(p) for p in paths]), encoding="utf-8")
    return path


def _experiment_section(
    data: ExperimentData, ctx: ReportContext, exp_dir: Path, out: Path, fmts: set[str], opts: ReportOptions
) -> str:
    """One experiment's tables and figures written to ``exp_dir``; its HTML section ("" without html)."""
    tables = all_tables(data, opts, ctx) + study_tables(data, opts.confidence)
    for t in tables:
        t.write(exp_dir, fmts)
    figures = (
        Plotter(data, exp_dir / "figures", _figure_formats(fmts), opts, ctx).draw_all() if _figure_formats(fmts) else []
    )
    log.info(
        "experiment %s: %d variants, %d seeds, %d tables, %d figures",
        data.name,
        len(data.variant_order),
        len(data.seeds),
        len(tables),
        len(figures),
    )
    if "html" not in fmts:
        return ""
    return experiment_html(data, tables, figures, str(exp_dir.relative_to(out)), ctx.specs)


def _comparison_section(
    parts: list[tuple[ExperimentData, ReportContext]], exp_dir: Path, out: Path, fmts: set[str], opts: ReportOptions
) -> str:
    """The table across stores (``out/comparison/comparison.*``) and its figure."""
    from .compare import comparison_figures, comparison_table

    table, shown = comparison_table(parts, opts.confidence)
    table.write(exp_dir, fmts)
    figs = comparison_figures(table, shown, exp_dir / "figures", _figure_formats(fmts)) if _figure_formats(fmts) else []
    return comparison_html(table, figs, str(exp_dir.relative_to(out))) if "html" in fmts else ""


def _figure_formats(fmts: set[str]) -> set[str]:
    """Figure files to write: those asked for, and PNG for the HTML page."""
    return fmts & {"png", "svg"} or ({"png"} if "html" in fmts else set())


def _studies(store, names: list[str], base: Path, out: Path, fmts: set[str], opts: ReportOptions) -> list[str]:
    """Sections gathering sibling experiments (``<name>.<part>``, e.g. one per source domain) for the
    evaluators that declare ``gathers`` (:mod:`.study`); their tables and figures go to ``base/<name>/``."""
    from .study import study_groups, study_section

    sections = []
    for name, members in study_groups(names).items():
        exp_dir = base / _slug(name)
        res = study_section(store, name, members, exp_dir, _figure_formats(fmts), opts)
        if res is None:
            continue
        data, tables, figures = res
        for t in tables:
            t.write(exp_dir, fmts)
        if "html" in fmts:
            sections.append(
                experiment_html(
                    data, tables, figures, str(exp_dir.relative_to(out)), ReportContext.build(data, opts).specs
                )
            )
    return sections


def add_report_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``compressbench report STORE --out DIR [--experiment NAME] [--formats ...]``, and a flag
    per report option the registered evaluators declare (``--main-eps`` ...)."""
    parser.add_argument(
        "store",
        nargs="+",
        help="results store(s): SQLite files written by `compressbench run`, or folders of them; "
        "several: one report with a comparison table across them",
    )
    parser.add_argument("--out", "-o", default="report", help="output directory (default: ./report)")
    parser.add_argument("--experiment", "-e", default=None, help="only this experiment (default: all)")
    parser.add_argument(
        "--formats",
        nargs="+",
        default=list(FORMATS),
        choices=FORMATS,
        metavar="FMT",
        help=f"any of {' '.join(FORMATS)} (default: all)",
    )
    parser.add_argument(
        "--redact",
        action="store_true",
        help="for sharing: replace absolute paths, the platform string, CPU/GPU model and host name in "
        "the report's text files with placeholders (docs/reliability.md)",
    )
    for name, (opt, owners) in report_options().items():
        parser.add_argument(
            opt.flag,
            dest=f"option_{name}",
            default=None,
            metavar=name.upper(),
            choices=list(opt.choices) or None,
            help=f"{opt.help} (default {opt.default}; declared by {', '.join(owners)})",
        )


def report_command(args: argparse.Namespace) -> int:
    """Run the ``report`` subcommand; prints the report's path. Returns the exit code."""
    import sys

    given = {k.removeprefix("option_"): v for k, v in vars(args).items() if k.startswith("option_") and v is not None}
    try:
        opts = ReportOptions(**given)
        path = build_report(
            args.store,
            args.out,
            experiment=args.experiment,
            formats=tuple(getattr(args, "formats", FORMATS)),
            options=opts,
        )
        if getattr(args, "redact", False):
            from .compare import find_stores, open_stores
            from .redact import redact_folder, secrets

            paths = find_stores(list(args.store))
            n = redact_folder(args.out, secrets([s for _, s in open_stores(paths)], paths))
            log.info("--redact: %d file(s) of the report redacted", n)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"report written: {path}")
    return 0

"""Declared findings, tested: ``findings:`` in an experiment file (:mod:`compressbench.config.findings`)
become verdicts — holds / contradicted / inconclusive — with the paired difference, its interval (over
seeds, or a paired bootstrap over images with one seed: :mod:`compressbench.stats`), the counts it rests
on and Holm-adjusted p-values across the file's findings (docs/findings.md).

``evaluate_store(store)`` tests the findings each experiment's run declared (or given ones); the report
puts them first (:func:`report_section`), ``compressbench run`` and ``compressbench findings STORE`` print
them. Everything is a function of the store and the outcomes files its rows point to; nothing is written
but the tables asked for.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ..config.findings import Finding
from ..report.data import load_experiment, load_store
from ..report.declared import checked_options, report_options
from ..report.tables import ReportOptions
from ..stats import DEFAULT_BOOTSTRAP
from .engine import (
    CONTRADICTED,
    HOLDS,
    INCONCLUSIVE,
    FindingsResult,
    Verdict,
    decide,
    evaluate,
    evaluate_experiment,
    findings_of,
    metric_values,
    replicate_values,
)
from .render import frame, print_console, to_html, to_markdown

log = logging.getLogger(__name__)

__all__ = [
    "evaluate_store",
    "evaluate",
    "evaluate_experiment",
    "decide",
    "findings_of",
    "metric_values",
    "replicate_values",
    "FindingsResult",
    "Verdict",
    "HOLDS",
    "CONTRADICTED",
    "INCONCLUSIVE",
    "report_section",
    "print_findings",
    "frame",
    "to_markdown",
    "to_html",
    "print_console",
    "add_findings_arguments",
    "findings_command",
]


def evaluate_store(
    store_path: str | Path,
    experiments: list[str] | None = None,
    findings: list[Finding] | None = None,
    options: ReportOptions | None = None,
    n_boot: int = DEFAULT_BOOTSTRAP,
    boot_seed: int = 0,
) -> list[FindingsResult]:
    """Test findings on a store's experiments (default: all): ``findings`` on each, or each one's own."""
    store = load_store(store_path)
    names = experiments if experiments is not None else store.experiments()
    unknown = [n for n in names if n not in store.experiments()]
    if unknown:
        raise ValueError(f"experiment '{unknown[0]}' not in {store_path} (has: {', '.join(store.experiments())})")
    datas = [load_experiment(store, n) for n in names]
    return evaluate(datas, findings, options, n_boot, boot_seed)


def report_section(
    store_path: str | Path, names: list[str], out: Path, formats: set[str], options: ReportOptions | None = None
) -> str:
    """The report's findings: ``findings.csv`` / ``findings.md`` in ``out`` (as ``formats`` ask) and the HTML
    section ("" when no experiment declares findings). A failure is logged, never fatal to the report."""
    try:
        results = evaluate_store(store_path, names, options=options)
    except Exception:  # the findings must never take the report down
        log.exception("findings not tested")
        return ""
    if not any(r.tests for r in results):
        return ""
    out.mkdir(parents=True, exist_ok=True)
    if "csv" in formats:
        frame(results).to_csv(out / "findings.csv", index=False)
    if "md" in formats:
        (out / "findings.md").write_text("### Findings\n\n" + to_markdown(results))
    return to_html(results) if "html" in formats else ""


def print_findings(store_path: str | Path, experiments: list[str], findings: list[Finding] | None = None) -> None:
    """What ``compressbench run`` prints after its tables (nothing when no finding is declared)."""
    if findings is not None and not findings:
        return
    try:
        results = evaluate_store(store_path, experiments, findings)
    except ValueError:  # no rows at all (every job failed)
        return
    print_console(results)


# ---------------------------------------------------------------- compressbench findings STORE
def add_findings_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("store", help="results store (SQLite file written by `compressbench run`)")
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="test this experiment file's findings (default: those "
        "declared by each experiment's latest run in the store)",
    )
    parser.add_argument("--scale", metavar="NAME", help="with --config: the file's scale that was run")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", help="with --config: override a field")
    parser.add_argument("--experiment", "-e", action="append", help="only this experiment (repeatable)")
    parser.add_argument(
        "--confidence",
        type=float,
        default=0.95,
        help="confidence of the intervals; verdicts at 1 − confidence after Holm (default 0.95)",
    )
    parser.add_argument(
        "--bootstrap",
        type=int,
        default=DEFAULT_BOOTSTRAP,
        metavar="N",
        help=f"bootstrap replicates for one-seed tests (default {DEFAULT_BOOTSTRAP})",
    )
    for name, (opt, owners) in report_options().items():  # the report's options: numbers as the report's
        parser.add_argument(
            opt.flag,
            dest=f"option_{name}",
            default=None,
            metavar=name.upper(),
            choices=list(opt.choices) or None,
            help=f"{opt.help} (default {opt.default}; declared by {', '.join(owners)})",
        )
    parser.add_argument("--csv", metavar="FILE", help="also write the verdicts as CSV")
    parser.add_argument("--md", metavar="FILE", help="also write them as Markdown")


def findings_command(args: argparse.Namespace) -> int:
    """``compressbench findings``: print (and optionally write) the verdicts; exit 2 on bad input."""
    from ..errors import UserError

    if not 0.5 <= args.confidence < 1:
        raise UserError(f"--confidence must be in [0.5, 1), got {args.confidence}")
    if not 100 <= args.bootstrap <= 100_000:
        raise UserError(f"--bootstrap must be between 100 and 100000 replicates, got {args.bootstrap}")
    given = {k.removeprefix("option_"): v for k, v in vars(args).items() if k.startswith("option_") and v is not None}
    try:
        opts = checked_options(ReportOptions(args.confidence, **given))
    except ValueError as e:
        raise UserError(str(e)) from None
    findings, names = None, args.experiment
    if args.config:
        from ..config import parse_override
        from ..validate import load_config

        exp = load_config(args.config, dict(parse_override(kv) for kv in args.set or []), scale=args.scale)
        findings = list(exp.findings)
        if not findings:
            raise UserError(f"{args.config}: declares no findings")
        names = names or [p.name for p in exp.parts]
    elif args.scale or args.set:
        raise UserError("--scale / --set apply to --config FILE")
    try:
        results = evaluate_store(args.store, names, findings, opts, args.bootstrap)
    except ValueError as e:
        raise UserError(str(e)) from None
    if not any(r.tests for r in results):
        print("no findings declared (add `findings:` to the experiment file, or pass --config FILE)")
        return 0
    print_console(results)
    if args.csv:
        frame(results).to_csv(args.csv, index=False)
        print(f"wrote {args.csv}")
    if args.md:
        Path(args.md).write_text(to_markdown(results))
        print(f"wrote {args.md}")
    return 0

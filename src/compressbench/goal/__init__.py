"""From measurements to a decision: state the tolerances, get the variant to ship.

``goal:`` in an experiment file (:mod:`compressbench.config.goal`) names an objective to minimise (latency on a
runtime, bytes, FLOPs, parameters) and constraints on how much each metric may drop from the parent (clean and
corrupted accuracy, robust accuracy, target-domain accuracy, calibration ...), at a confidence.

* :mod:`.search` — ``compressbench search CONFIG`` (and ``run`` with a goal): for every family under
  ``variants``, bisection over its budget range for the most compressed budget meeting every constraint, each
  probe an ordinary compress + evaluate job of the DAG (cached, resumable, on the experiment's executor); int8
  that breaks a constraint gets the accuracy-aware fallback (:mod:`.fallback`).
* :mod:`.assess` / :mod:`.decision` — on any store: every variant's drops with confidence bounds, the
  recommended variant per objective with its gains, the Pareto fronts, the rejected candidates and why, the
  monotonicity violations. ``compressbench recommend STORE`` runs nothing.
* :mod:`.render` — the console, Markdown, the report's first section and its figure.

docs/goal.md describes the whole.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from ..config.schema import GoalConfig
from ..errors import UserError
from ..report.data import load_experiment, load_store
from ..report.tables import ReportOptions
from .assess import Assessment, Candidate, Drop, assess
from .decision import Decision, Violation, decide
from .render import lines, pareto_figure, print_decision, to_html, to_markdown

log = logging.getLogger(__name__)

__all__ = [
    "decide_store",
    "goal_of",
    "Assessment",
    "Candidate",
    "Drop",
    "Decision",
    "Violation",
    "assess",
    "decide",
    "lines",
    "print_decision",
    "to_html",
    "to_markdown",
    "pareto_figure",
    "report_section",
    "add_recommend_arguments",
    "recommend_command",
]


def goal_of(data: Any) -> GoalConfig | None:
    """The goal of the experiment's latest run config, if it declared one (None when it did not, or it does not
    read under this version)."""
    from ..report.data import latest_config

    cfg = latest_config(data.runs) or {}
    g = cfg.get("goal")
    if not g:
        return None
    try:
        return GoalConfig.model_validate(g)
    except Exception as e:  # written by another version
        log.warning("experiment %s: its goal does not read here (%s)", data.name, str(e).splitlines()[0])
        return None


def decide_store(
    store_path: str | Path,
    goal: GoalConfig | None = None,
    experiments: list[str] | None = None,
    accept_noisy: bool | None = None,
    options: ReportOptions | None = None,
    n_boot: int | None = None,
) -> list[Decision]:
    """The decision on each experiment of a store (default: all) for ``goal`` (default: the goal each one's
    latest run declared; experiments without one are skipped). Runs nothing, writes nothing."""
    from ..stats import DEFAULT_BOOTSTRAP

    store = load_store(store_path)
    names = experiments if experiments is not None else store.experiments()
    unknown = [n for n in names if n not in store.experiments()]
    if unknown:
        raise UserError(f"experiment '{unknown[0]}' not in {store_path} (has: {', '.join(store.experiments())})")
    out = []
    for name in names:
        data = load_experiment(store, name)
        g = goal or goal_of(data)
        if g is None:
            continue
        a = assess(data, g, options, n_boot or DEFAULT_BOOTSTRAP)
        out.append(decide(a, accept_noisy))
    return out


def report_section(
    store_path: str | Path, names: list[str], out: Path, formats: set[str], options: ReportOptions | None = None
) -> str:
    """The report's decision section (first on the page) for the experiments whose latest run declared a goal:
    ``decision.md`` and the Pareto figure in ``out`` as ``formats`` ask; "" when none did. A failure is logged,
    never fatal to the report."""
    try:
        decisions = decide_store(store_path, experiments=names, options=options)
    except Exception:  # the decision must never take the report down
        log.exception("decision not made")
        return ""
    if not decisions:
        return ""
    out.mkdir(parents=True, exist_ok=True)
    if "md" in formats:
        (out / "decision.md").write_text(to_markdown(decisions))
    figs: dict[str, str] = {}
    fig_formats = formats & {"png", "svg"} or ({"png"} if "html" in formats else set())
    for dec in decisions:
        try:
            paths = pareto_figure(dec, out / "figures" / dec.experiment, fig_formats)
        except Exception:  # a figure must never take the report down
            log.exception("decision figure for %s not drawn", dec.experiment)
            paths = []
        png = next((p for p in paths if p.suffix == ".png"), None)
        if png is not None:
            import base64

            data = base64.b64encode(png.read_bytes()).decode()
            figs[dec.experiment] = (
                f'<figure><img alt="decision: Pareto fronts" src="data:image/png;base64,{data}">'
                f"<figcaption>Each constraint metric's drop against the objective; shaded: the "
                f"tolerance; line: the Pareto front; ringed: the recommendation.</figcaption>"
                f"</figure>"
            )
    return to_html(decisions, figs) if "html" in formats else ""


# ---------------------------------------------------------------- compressbench recommend STORE
def add_recommend_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("store", help="results store (SQLite file written by `compressbench run` / `search`)")
    parser.add_argument(
        "--objective",
        metavar="NAME",
        help="minimise this: latency_b1_ms, onnx_latency_b1_ms, "
        "latency_b1_ms@<format>, bytes, flops, params (default: the goal the run declared)",
    )
    parser.add_argument(
        "--max-drop",
        action="append",
        metavar="METRIC=TOL",
        default=[],
        help="a constraint: the most METRIC may drop from the parent, in points (percentage "
        "metrics), the metric's units, or '2%%' of the parent's value; repeatable, e.g. "
        "--max-drop clean_top1=1 --max-drop corr_top1=2",
    )
    parser.add_argument(
        "--confidence",
        type=float,
        default=None,
        help="one-sided confidence of the bounds (default: the goal's, else 0.95)",
    )
    parser.add_argument("--accept-noisy", action="store_true", help="let timings flagged noisy decide")
    parser.add_argument("--config", metavar="FILE", help="take the goal from this experiment file")
    parser.add_argument("--experiment", "-e", action="append", help="only this experiment (repeatable)")
    parser.add_argument("--bootstrap", type=int, default=None, metavar="N", help="bootstrap replicates (default 2000)")
    parser.add_argument("--md", metavar="FILE", help="also write the decision as Markdown")


def _goal_from_args(args: argparse.Namespace) -> GoalConfig | None:
    from pydantic import ValidationError

    from ..config.params import one_line_error

    base: dict[str, Any] = {}
    if args.config:
        from ..config import read_experiment

        raw = read_experiment(args.config)
        base = dict(raw.get("goal") or {})
        if not base:
            raise UserError(f"{args.config}: declares no goal")
    cons = dict(base.get("constraints") or {})
    for item in args.max_drop:
        k, sep, v = item.partition("=")
        if not sep or not k.strip():
            raise UserError(f"--max-drop: expected METRIC=TOLERANCE (e.g. clean_top1=1), got {item!r}")
        v = v.strip()
        try:
            cons[k.strip()] = float(v)
        except ValueError:
            cons[k.strip()] = v
    if args.objective:
        base["objective"] = {"minimize": args.objective}
    if cons:
        base["constraints"] = cons
    if args.confidence is not None:
        base["confidence"] = args.confidence
    if not base:
        return None
    if "objective" not in base or "constraints" not in base:
        raise UserError("give both --objective and at least one --max-drop (or --config FILE with a goal)")
    try:
        return GoalConfig.model_validate(base)
    except ValidationError as e:
        raise UserError(str(one_line_error(e, root=GoalConfig)).replace("error: ", "")) from None


def check_against(goal: GoalConfig, decisions: list[Decision]) -> None:
    """One line when the store cannot answer the goal: an objective no declaration measures, a constraint no
    evaluator declares."""
    for dec in decisions:
        a = dec.assessment
        if goal.objective.minimize not in a.objectives:
            raise UserError(
                f"--objective: '{goal.objective.minimize}' is not measured in experiment '{a.experiment}' "
                f"(measured: {', '.join(a.objectives) or 'nothing'})"
            )
        for key in goal.constraints:
            if a.candidates and all(c.drops[key].reason.startswith("no metric") for c in a.candidates):
                raise UserError(f"--max-drop {key}: no evaluator of experiment '{a.experiment}' declares '{key}'")


def recommend_command(args: argparse.Namespace) -> int:
    """``compressbench recommend``: print the decision for a goal on an existing store; runs nothing."""
    goal = _goal_from_args(args)
    if args.bootstrap is not None and not 100 <= args.bootstrap <= 100_000:
        raise UserError(f"--bootstrap must be between 100 and 100000, got {args.bootstrap}")
    try:
        decisions = decide_store(
            args.store, goal, args.experiment, True if args.accept_noisy else None, n_boot=args.bootstrap
        )
    except ValueError as e:
        raise UserError(str(e)) from None
    if not decisions:
        print("no goal: the runs in this store declared none; give --objective and --max-drop (or --config FILE)")
        return 0
    if goal is not None:
        check_against(goal, decisions)
    print_decision(decisions)
    if args.md:
        Path(args.md).write_text(to_markdown(decisions))
        print(f"wrote {args.md}")
    return 0

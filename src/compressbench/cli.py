"""The ``compressbench`` command: a thin shell over the library.

Subcommands: run · search · validate · plan · list · results · report · findings · recommend · profile ·
corrupt · compare · export · verify · remeasure · export-mlflow.
Errors in user input print one line and exit with code 2 (no traceback, no work started);
``run`` exits 1 when any job failed (after printing the summary), 0 when all succeeded.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import time
import typing
from pathlib import Path
from typing import Callable

EXIT_USAGE = 2  # bad input: one line on stderr, nothing done
EXIT_JOBS_FAILED = 1  # `run` finished, but at least one job failed (its row holds the error)

# Subcommands implemented in their own modules: (module, add_arguments, command, help)
_HOOKS: dict[str, tuple[str, str, str, str]] = {
    "report": (
        "compressbench.report",
        "add_report_arguments",
        "report_command",
        "write tables, plots and a self-contained HTML report from a results store",
    ),
    "profile": (
        "compressbench.profile_cli",
        "add_profile_arguments",
        "profile_command",
        "measure params, bytes, FLOPs, latency and throughput of a saved model or package.module:factory",
    ),
    "corrupt": (
        "compressbench.evaluate.corruptions",
        "add_corrupt_arguments",
        "corrupt_command",
        "write a corrupted copy of a dataset in the CIFAR-10-C layout",
    ),
    "findings": (
        "compressbench.findings",
        "add_findings_arguments",
        "findings_command",
        "test the findings an experiment file declares on a results store: holds / contradicted / "
        "inconclusive, paired statistics, Holm",
    ),
    "compare": (
        "compressbench.compare",
        "add_compare_arguments",
        "compare_command",
        "which non-timing values and which recorded environment fields differ between two stores",
    ),
    "recommend": (
        "compressbench.goal",
        "add_recommend_arguments",
        "recommend_command",
        "the variant to ship for a goal (objective + tolerated drops) on an existing store: recommended "
        "variant per objective, gains, losses with CIs, Pareto fronts, rejected candidates; runs nothing",
    ),
    "verify": (
        "compressbench.verify",
        "add_verify_arguments",
        "verify_command",
        "check that every number in a results store is the one measured: each row's hash and, with --cache, "
        "each row re-derived from its job record; exit 1 if any fails",
    ),
    "export": (
        "compressbench.deploy.cli",
        "add_export_arguments",
        "export_command",
        "export a variant of a study to a deployment runtime (onnx, executorch, openvino, pt2, safetensors), "
        "verify it there and write its model card",
    ),
    "remeasure": (
        "compressbench.remeasure",
        "add_remeasure_arguments",
        "remeasure_command",
        "re-time a store's noisy timing rows (--all: every variant's) on the models in the run's cache; "
        "the quieter measurement is kept, the other recorded as superseded",
    ),
    "export-mlflow": (
        "compressbench.tracking",
        "add_export_mlflow_arguments",
        "export_mlflow_command",
        "copy a results store to MLflow: one run per variant x seed (params, every row as a metric)",
    ),
}


def _fail(msg: str) -> int:
    one_line = " ".join(str(msg).splitlines())  # a message from deep inside may carry line breaks
    print(f"error: {one_line}", file=sys.stderr)
    return EXIT_USAGE


def _overrides(items: list[str] | None) -> dict[str, object]:
    from .config.text import parse_override

    return dict(parse_override(kv) for kv in items or [])


def _setup_logging(verbose: int) -> None:
    level = logging.DEBUG if verbose > 1 else logging.INFO if verbose >= 0 else logging.WARNING
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname).1s %(message)s", datefmt="%H:%M:%S", stream=sys.stderr
    )
    for noisy in ("matplotlib", "PIL", "torch", "onnx", "onnxruntime", "onnxscript"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # torch's C++-extension helper, imported by some libraries, warns "No CUDA runtime is found, using CUDA_HOME=..."
    # on any machine with nvcc but no GPU; nothing here builds extensions, so the line only alarms (issue 25)
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)


def cmd_validate(args: argparse.Namespace) -> int:
    from .config.text import scale_names
    from .plan import plan
    from .validate import load_config

    # the file as written, and every override profile it declares (a preset's smoke scale never rots)
    scales = [args.scale] if args.scale else [None, *scale_names(args.config)]
    for scale in scales:
        t0 = time.perf_counter()
        exp = load_config(args.config, _overrides(args.set), scale=scale, executor=args.executor, address=args.address)
        jobs = plan(exp)
        kinds = {k: sum(1 for j in jobs if j.kind == k) for k in ("train", "compress", "evaluate")}
        label = f" [scale {scale}]" if scale else ""
        print(
            f"{args.config}{label}: OK — experiment '{exp.name}', {len(exp.seeds)} seed(s), {len(exp.variants)} "
            f"variant(s) + baseline, {len(exp.evaluations)} evaluation(s) -> {kinds['train']} train, "
            f"{kinds['compress']} compress, {kinds['evaluate']} evaluate jobs ({time.perf_counter() - t0:.2f}s)"
        )
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    """The job DAG without running it: counts, what is cached, and a compute estimate (``estimate``)."""
    import json

    from .estimate import estimate, render, to_json
    from .validate import load_config

    out = []
    for config in args.config:  # several configs: one table each (a --json FILE then holds a list)
        exp = load_config(config, _overrides(args.set), scale=args.scale)
        est = estimate(exp, gpu=args.gpu, utilisation=args.gpu_util, cpu_gflops=args.cpu_gflops)
        print(render(est, config + (f" [scale {args.scale}]" if args.scale else "")))
        out.append(to_json(est))
    if args.json:
        try:
            Path(args.json).write_text(json.dumps(out[0] if len(out) == 1 else out, indent=1))
        except OSError as e:
            return _fail(f"--json: cannot write {args.json} ({e.strerror or type(e).__name__})")
        print(f"wrote {args.json}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from .runner import run
    from .validate import load_config

    exp = load_config(
        args.config, _overrides(args.set), scale=args.scale, executor=args.executor, address=args.address
    )  # validated before any work
    if exp.goal is not None:  # tolerances: the budgets lists are search ranges (compressbench.goal)
        return _search(exp, args)
    t0 = time.perf_counter()
    summary = run(exp, progress=None if not args.no_progress else False)
    _print_run(summary, time.perf_counter() - t0)
    if not args.quiet:
        for part in exp.parts:  # one table per experiment (one per source domain, if several)
            _print_summary(summary.store, part.name)
        if exp.findings:  # the declared claims, tested (compressbench.findings)
            from .findings import print_findings

            print_findings(summary.store, [p.name for p in exp.parts], list(exp.findings))
    return EXIT_JOBS_FAILED if summary.failed else 0


def _print_run(summary, seconds: float) -> None:
    print(
        f"experiment '{summary.experiment}': {summary.jobs} jobs — {summary.ran} ran, {summary.cached} cached, "
        f"{summary.failed} failed ({seconds:.1f}s)"
    )
    for what, err in summary.failures:
        print(f"  FAILED {what}: {err}")
    print(f"results: {summary.store}")


def _search(exp, args: argparse.Namespace) -> int:
    """``run`` / ``search`` of an experiment with a goal: the search, its summary, the decision."""
    from .goal import print_decision
    from .goal.search import search

    t0 = time.perf_counter()
    res = search(
        exp,
        progress=None if not args.no_progress else False,
        accept_noisy=True if getattr(args, "accept_noisy", False) else None,
    )
    _print_run(res.summary, time.perf_counter() - t0)
    print("\n".join(res.lines()))
    if res.decision is not None:
        print_decision([res.decision])
    return EXIT_JOBS_FAILED if res.summary.failed else 0


def cmd_search(args: argparse.Namespace) -> int:
    from .errors import ConfigError
    from .validate import load_config

    exp = load_config(args.config, _overrides(args.set), scale=args.scale, executor=args.executor, address=args.address)
    if exp.goal is None:
        raise ConfigError(
            f"{args.config}: declares no goal; add goal: {{objective: {{minimize: latency_b1_ms}}, "
            f"constraints: {{clean_top1: 1.0}}}} (docs/goal.md)"
        )
    return _search(exp, args)


def _print_summary(store_path: Path, experiment: str) -> None:
    """The run's tables: the study tables the file declares (``report.tables``), else a column per metric
    declared with ``console=`` (``specs.MetricSpec``)."""
    from .report.console import print_run_tables

    print_run_tables(store_path, experiment)


def cmd_list(args: argparse.Namespace) -> int:
    from .registry import ALL

    what = args.what
    regs = ALL if what == "all" else {what: ALL[what]}
    for kind, reg in regs.items():
        print(f"{kind}:")
        for name in reg.names():
            spec = reg.declared(name)  # a built-in's declaration: its code (torch) is not imported
            desc = spec.description or (getattr(reg.get(name), "__doc__", "") or "").strip().split("\n")[0]
            line = f"  {name:<24} {desc}"
            extras = []
            if spec.budgets:
                extras.append("budgets: " + ", ".join(spec.budgets))
            if spec.suites:
                extras.append(f"suite: {', '.join(spec.suites)}")
            extras.append(f"v{spec.version}")
            print(line + ("  [" + "; ".join(extras) + "]" if extras else ""))
            schema = spec.params
            if schema is not None and args.verbose_params:
                for fname, f in schema.model_fields.items():
                    print(f"      {_param_line(fname, f)}")
        for prefix, desc in reg.sources().items():
            print(f"  {prefix + '<name>':<24} {desc}")
    return 0


_BOUNDS = (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<="))


def _bounds(metadata: list) -> str:
    """Range constraints of a field (``>= 1, <= 5``) from its pydantic / annotated-types metadata."""
    out = [f"{sym} {getattr(m, attr)}" for m in metadata for attr, sym in _BOUNDS if hasattr(m, attr)]
    return ", ".join(out)


def _type_name(ann) -> str:
    """A readable type: Literal['l1', 'l2'], float | None, list[int >= 1], FinetuneParams."""
    import types

    origin, args = typing.get_origin(ann), typing.get_args(ann)
    if origin is typing.Annotated:
        inner, meta = _type_name(args[0]), [m for a in args[1:] for m in getattr(a, "metadata", [a])]
        rng = _bounds(meta)
        return f"{inner} {rng}" if rng else inner
    if origin is typing.Union or isinstance(ann, types.UnionType):
        return " | ".join(_type_name(a) for a in args)
    if origin is typing.Literal:
        return f"Literal[{', '.join(repr(a) for a in args)}]"
    if origin is not None:
        name = getattr(origin, "__name__", str(origin).replace("typing.", ""))
        return f"{name}[{', '.join(_type_name(a) for a in args)}]"
    if ann is type(None):
        return "None"
    return ann.__name__ if isinstance(ann, type) else str(ann).replace("typing.", "")


def _param_line(fname: str, f) -> str:
    """``name: type, range (default ...)`` of one schema field for ``list --params``."""
    ann = _type_name(f.annotation)
    rng = _bounds(f.metadata)
    if f.is_required():
        default = "required"
    else:
        value = repr(f.get_default(call_default_factory=True))
        default = f"default {value if len(value) <= 80 else value[:77] + '...'}"
    return f"{fname}: {ann}{', ' + rng if rng else ''} ({default})"


def cmd_results(args: argparse.Namespace) -> int:
    from .store import load_results

    if args.superseded:
        return _print_superseded(args)
    df = load_results(args.store, args.experiment)
    if args.metric:
        df = df[df["metric"].isin(args.metric)]
    if args.evaluator:
        df = df[df["evaluator"].isin(args.evaluator)]
    cols = [
        "experiment",
        "variant",
        "method",
        "budget_kind",
        "budget_target",
        "budget_achieved",
        "seed",
        "evaluator",
        "condition",
        "metric",
        "value",
        "tag",
        "error",
    ]
    if args.csv:
        df[cols + ["unit", "job_key", "run_id", "created_at"]].to_csv(args.csv, index=False)
        print(f"wrote {len(df)} rows to {args.csv}")
        return 0
    if df.empty:
        print("no results")
        return 0
    import pandas as pd

    with pd.option_context("display.max_rows", args.limit, "display.width", 200, "display.max_columns", 20):
        print(df[cols].to_string(index=False, max_rows=args.limit))
    return 0


def _print_superseded(args: argparse.Namespace) -> int:
    """``results --superseded``: the store's ``superseded`` table, oldest first."""
    from .store import ResultStore

    p = Path(args.store)
    if not p.is_file():
        raise FileNotFoundError(f"no results store at {p}")
    sups = [
        s for s in ResultStore(p).superseded(args.experiment) if not args.evaluator or s["evaluator"] in args.evaluator
    ]
    if not sups:
        print("no superseded measurements (nothing was re-timed by `compressbench remeasure`)")
        return 0
    for s in sups[: args.limit]:
        print(
            f"{s['at'][:19]}  {s['experiment']} / {s['variant']} seed {s['seed']} {s['evaluator']}: job "
            f"{s['job_key'][:12]} superseded by job {s['by_job_key'][:12]} (run {s['run_id']}): {s['why']}"
        )
    return 0


def _hooked(name: str) -> tuple[Callable, Callable] | None:
    mod_name, add_name, cmd_name, _ = _HOOKS[name]
    try:
        mod = importlib.import_module(mod_name)
    except ImportError:
        return None
    add, cmd = getattr(mod, add_name, None), getattr(mod, cmd_name, None)
    return (add, cmd) if add and cmd else None


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line too (``error: ...; see --help``), exit code 2."""

    def error(self, message: str) -> typing.NoReturn:
        _fail(f"{message} (see '{self.prog} --help')")
        raise SystemExit(EXIT_USAGE)


def _executor_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--executor",
        metavar="NAME",
        help="run the jobs with this executor (local, ray), overriding the "
        "config's 'executor' (its options are kept when the name is the same)",
    )
    p.add_argument(
        "--address",
        metavar="ADDR",
        help="ray executor: the cluster to join ('auto', 'ray://HOST:10001', "
        "'HOST:PORT'); without it a local Ray instance sized to this machine is started",
    )


def build_parser(hook_names: tuple[str, ...] = ()) -> argparse.ArgumentParser:
    p = _Parser(
        prog="compressbench",
        description="Compress image classifiers at matched budgets "
        "and measure accuracy, robustness and real efficiency.",
    )
    p.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv: debug)")
    p.add_argument("-q", "--quiet", action="store_true", help="less output")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    r = sub.add_parser(
        "run", help="run an experiment (cached: unchanged jobs are not re-run); exit code 1 if any job failed"
    )
    r.add_argument("config", help="experiment YAML")
    set_help = (
        "override a config field (the value is YAML), e.g. train.epochs=1 or variants.0.budget={params: 0.5}; "
        "repeatable"
    )
    r.add_argument("--set", action="append", metavar="KEY=VALUE", help=set_help)
    scale_help = "apply an override profile the file declares under 'scales:' (e.g. smoke: the same study, tiny)"
    r.add_argument("--scale", metavar="NAME", help=scale_help)
    _executor_flags(r)
    r.add_argument("--no-progress", action="store_true", help="no progress bars")
    r.add_argument("-q", "--quiet", action="store_true", help="do not print the summary table")
    r.add_argument("--accept-noisy", action="store_true", help="with a goal: let timings flagged noisy decide")
    r.set_defaults(fn=cmd_run)
    se = sub.add_parser(
        "search",
        help="search an experiment's goal: per family, the most compressed budget meeting "
        "every constraint (bisection through the cached job DAG), the int8 fallback, the decision",
    )
    se.add_argument("config", help="experiment YAML with a goal: block")
    se.add_argument("--set", action="append", metavar="KEY=VALUE", help=set_help)
    se.add_argument("--scale", metavar="NAME", help=scale_help)
    _executor_flags(se)
    se.add_argument("--no-progress", action="store_true", help="no progress bars")
    se.add_argument("--accept-noisy", action="store_true", help="let timings flagged noisy decide")
    se.set_defaults(fn=cmd_search)
    v = sub.add_parser("validate", help="check an experiment file (fast, no work started)")
    v.add_argument("config")
    v.add_argument("--set", action="append", metavar="KEY=VALUE", help=set_help)
    v.add_argument("--scale", metavar="NAME", help="validate only this scale (default: the file and every scale)")
    _executor_flags(v)
    v.set_defaults(fn=cmd_validate)
    from .costs import DEFAULT_GPU, DEFAULT_UTILISATION, GPUS  # no torch: --help stays instant

    pl = sub.add_parser(
        "plan",
        help="the job DAG without running it: jobs per kind, what is cached, and estimated "
        "compute (TFLOP, GPU-hours on a reference GPU, CPU-hours here); writes nothing",
        description="Estimate: passes over images declared by each method / evaluator / attack "
        "(docs/extending.md) × forward FLOPs per image of the model (a budgeted variant: that "
        "fraction of the parent's; a training step = 3 forward FLOPs, an attack step = 2). "
        "GPU-h = FLOPs / (peak × utilisation); CPU-h = per model call, a per-call overhead + its FLOPs / "
        "a marginal rate, both measured in a few seconds on the experiment's model (training steps, "
        "inference, input gradients, each at the smallest and a large batch, on one thread in CPU time, "
        "the fastest of a few calls: a busy machine does not inflate them), plus fixed costs measured "
        "here: the run's process start once, a model build and checkpoint round trip per job (data "
        "decoding is not counted).",
    )
    pl.add_argument("config", nargs="+", help="experiment YAML(s)")
    pl.add_argument("--set", action="append", metavar="KEY=VALUE", help=set_help)
    pl.add_argument("--scale", metavar="NAME", help=scale_help)
    pl.add_argument(
        "--gpu",
        default=DEFAULT_GPU,
        metavar="NAME",
        help=f"reference GPU for GPU-hours: {', '.join(GPUS)} (default {DEFAULT_GPU}: "
        f"{GPUS[DEFAULT_GPU].name}, {GPUS[DEFAULT_GPU].peak_tflops:g} TFLOPS "
        f"{GPUS[DEFAULT_GPU].precision})",
    )
    pl.add_argument(
        "--gpu-util",
        type=float,
        default=DEFAULT_UTILISATION,
        metavar="FRACTION",
        help=f"sustained share of the GPU's peak (default {DEFAULT_UTILISATION:g})",
    )
    pl.add_argument(
        "--cpu-gflops",
        type=float,
        metavar="GFLOPS",
        help="this machine's sustained GFLOP per CPU-second for all work, instead of measuring it "
        "(no per-call overheads)",
    )
    pl.add_argument("--json", metavar="FILE", help="also write the estimate (assumptions, totals, every job) as JSON")
    pl.set_defaults(fn=cmd_plan)
    ls = sub.add_parser(
        "list", help="list registered models, datasets, methods, evaluators, corruptions, attacks, executors"
    )
    ls.add_argument(
        "what",
        nargs="?",
        default="all",
        choices=[
            "all",
            "models",
            "datasets",
            "methods",
            "evaluators",
            "corruptions",
            "attacks",
            "channel_criteria",
            "weight_criteria",
            "adapt_losses",
            "executors",
        ],
    )
    ls.add_argument("--params", dest="verbose_params", action="store_true", help="show each entry's parameters")
    ls.set_defaults(fn=cmd_list)
    res = sub.add_parser("results", help="print or export the rows of a results store")
    res.add_argument("store")
    res.add_argument("--experiment")
    res.add_argument("--metric", action="append")
    res.add_argument("--evaluator", action="append")
    res.add_argument("--csv", help="write CSV here instead of printing")
    res.add_argument("--limit", type=int, default=60, help="rows to print")
    res.add_argument(
        "--superseded",
        action="store_true",
        help="list the measurements a re-timing replaced "
        "(`compressbench remeasure`): which job, by which, when and why (readers use the kept one)",
    )
    res.set_defaults(fn=cmd_results)
    for name in _HOOKS:
        hp = sub.add_parser(name, help=_HOOKS[name][3])
        if name in hook_names:
            hooked = _hooked(name)
            if hooked:
                hooked[0](hp)
                hp.set_defaults(fn=hooked[1])
                continue
        hp.set_defaults(fn=lambda a, n=name: _fail(f"'{n}' is not available in this installation"))
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # only import a hooked subcommand's module when it is the one asked for (keeps startup fast)
    hook = next((a for a in argv if a in _HOOKS), None)
    parser = build_parser((hook,) if hook else ())
    args = parser.parse_args(argv)
    if not getattr(args, "fn", None):
        parser.print_help()
        return EXIT_USAGE
    _setup_logging(-1 if args.quiet else args.verbose)
    if args.verbose < 2:  # torch's deprecation chatter about int8 tensors says nothing to a CLI user
        import warnings

        for msg in (
            "TypedStorage is deprecated",
            "torch.quantize_per_tensor",
            "torch.ao.quantization is deprecated",
            "Please use quant_min and quant_max",
        ):
            warnings.filterwarnings("ignore", message=f".*{msg}")
    from .errors import UserError

    try:
        return int(args.fn(args) or 0)
    except (UserError, FileNotFoundError) as e:
        return _fail(str(e))
    except BrokenPipeError:  # e.g. `compressbench list | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("interrupted: finished jobs are cached; run again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

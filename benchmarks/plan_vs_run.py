"""`compressbench plan`'s estimate against a measured run, on the same machine.

Claim: the CPU time ``compressbench plan`` predicts for an experiment is within a stated factor of the
CPU time (user + sys, the run's process and every process it started) that ``compressbench run``
really takes; this script measures the factor and where it comes from.

Conditions: the estimate is made here, just before the run (its CPU rate measured then, on the
experiment's model, with the run's threads); the run is a fresh ``python -m compressbench run`` with an
empty cache and store in a temporary folder; CPU time from ``resource.getrusage(RUSAGE_CHILDREN)``
around it. Per job kind, the estimate's wall-clock share (CPU hours × the wall/CPU ratio of the rate
measurement) is compared with the jobs' own wall-clock seconds (their ``result.json``): the rest of the
measured time is the run's fixed cost (start-up, validation, data decoding, the store).

    .venv/bin/python benchmarks/plan_vs_run.py configs/quickstart.yaml [--scale smoke] [--set train.epochs=1]

Per kind, the estimate's CPU seconds are also compared with the jobs' own CPU seconds (``result.json``'s
``cpu_seconds``): on a loaded machine wall-clock time is mostly waiting. ``--against DIR`` re-estimates
against a run kept with ``--keep DIR`` (same config and options) instead of running again: the estimate is
new (made with an empty cache of its own: DIR is only read), the measured CPU time is the kept run's
(``DIR/run.json``) and the per-kind CPU its jobs' records (``DIR/cache/jobs``). The plan's own cost is
printed too: CPU time of ``estimate()`` in this process plus its start-up probe's child.

    .venv/bin/python benchmarks/plan_vs_run.py configs/quickstart.yaml --against /tmp/qs1 [--tag loaded]

Prints a Markdown summary and writes ``benchmarks/results/plan_vs_run-<experiment>[-<tag>].json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("COMPRESSBENCH_PROGRESS", "0")

from compressbench.config import parse_override  # noqa: E402
from compressbench.estimate import estimate  # noqa: E402
from compressbench.measure.hardware import cpu_id, cpu_model  # noqa: E402
from compressbench.validate import load_config  # noqa: E402


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("config")
    ap.add_argument("--scale")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument(
        "--keep",
        metavar="DIR",
        help="run in DIR (new, empty) and keep its cache and store, e.g. to "
        "compare the store with another run's (default: a temporary folder)",
    )
    ap.add_argument(
        "--against",
        metavar="DIR",
        help="re-estimate against the run kept in DIR (--keep DIR) instead of running again (DIR is only read)",
    )
    ap.add_argument(
        "--tag",
        help="suffix of the JSON's name (e.g. loaded / quiet), so one run can be re-estimated under several conditions",
    )
    args = ap.parse_args()
    if args.keep:
        Path(args.keep).mkdir(parents=True, exist_ok=False)
    kept = args.keep or args.against
    with (
        contextlib.nullcontext(kept) if kept else tempfile.TemporaryDirectory(prefix="cb-plan-vs-run-") as tmp,
        tempfile.TemporaryDirectory(prefix="cb-plan-vs-run-est-") as own,
    ):
        # against a kept run, the estimate gets an empty cache of its own: the kept folder is never written
        where = own if args.against else tmp
        sets = [*args.set, f"cache_dir={where}/cache", f"store={where}/results.sqlite"]
        exp = load_config(args.config, dict(parse_override(s) for s in sets), scale=args.scale)
        t0, c0, k0 = time.perf_counter(), time.process_time(), _children_cpu()
        est = estimate(exp)
        plan_s, plan_cpu = time.perf_counter() - t0, time.process_time() - c0 + _children_cpu() - k0
        cmd = [
            sys.executable,
            "-m",
            "compressbench",
            "-q",
            "run",
            args.config,
            "--quiet",
            "--no-progress",
            *(["--scale", args.scale] if args.scale else []),
            *[a for s in sets for a in ("--set", s)],
        ]
        if args.against:
            run = json.loads((Path(tmp) / "run.json").read_text())
            cpu, wall = run["cpu_s"], run["wall_s"]
        else:
            c0, w0 = _children_cpu(), time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True)
            cpu, wall = _children_cpu() - c0, time.perf_counter() - w0
            if proc.returncode != 0:
                sys.exit(f"the run failed ({proc.returncode}): {proc.stderr[-2000:]}")
            (Path(tmp) / "run.json").write_text(json.dumps({"cpu_s": cpu, "wall_s": wall, "cmd": cmd}))
        job_s: dict[str, float] = {}
        job_cpu: dict[str, float] = {}
        job_n: dict[str, int] = {}
        # every job record of the run, by its own kind (a kept run's keys may predate a component's version bump)
        for path in sorted((Path(tmp) / "cache" / "jobs").glob("*/result.json")):
            rec = json.loads(path.read_text())
            job_s[rec["kind"]] = job_s.get(rec["kind"], 0.0) + float(rec.get("seconds", 0.0))
            job_cpu[rec["kind"]] = job_cpu.get(rec["kind"], 0.0) + float(rec.get("cpu_seconds", 0.0))
            job_n[rec["kind"]] = job_n.get(rec["kind"], 0) + 1
    r = est.rates
    est_cpu = sum(est.cpu_hours(c) for c in est.costs) * 3600 + (est.fixed.startup if est.fixed else 0.0)
    kinds = {}
    for kind in ("train", "compress", "evaluate"):
        cs = [c for c in est.costs if c.job.kind == kind]
        kinds[kind] = {
            "jobs": len(cs),
            "tflop": sum(c.flops for c in cs) / 1e12,
            "est_wall_s": sum(est.cpu_hours(c) for c in cs) * 3600 * r.wall_per_cpu,
            "measured_wall_s": job_s.get(kind, 0.0),
            "est_cpu_s": sum(est.cpu_hours(c) for c in cs) * 3600,
            "measured_cpu_s": job_cpu.get(kind, 0.0),
            "measured_jobs": job_n.get(kind, 0),
        }
    out = {
        "config": args.config,
        "scale": args.scale,
        "set": args.set,
        "experiment": exp.name,
        "jobs": len(est.costs),
        "plan_seconds": plan_s,
        "rates": r.to_dict(),
        "estimated_cpu_s": est_cpu,
        "measured_cpu_s": cpu,
        "ratio": est_cpu / cpu,
        "measured_wall_s": wall,
        "jobs_wall_s": sum(job_s.values()),
        "kinds": kinds,
        "load_before": r.load,
        "cpu": cpu_model(),
        "cpu_id": cpu_id(),
        "against": args.against,
        "plan_cpu_s": plan_cpu,
    }
    print(
        f"{args.config}{' --scale ' + args.scale if args.scale else ''} {' '.join(args.set)}: "
        f"{len(est.costs)} jobs, {sum(k['tflop'] for k in kinds.values()):.3g} TFLOP"
    )
    print(
        f"rate: training {r.train_cpu / 1e9:.3g}, inference {r.infer_cpu / 1e9:.3g} GFLOP per CPU-second "
        f"({r.threads} threads, batch {r.train_batch} / {r.infer_batch}, load {r.load:.1f}); "
        f"plan took {plan_s:.1f} s ({plan_cpu:.1f} s CPU, its start-up probe included)"
    )
    print(
        f"per call: inference {r.infer_call * 1e3:.3g} ms + FLOPs at {r.infer_marginal / 1e9:.3g} GFLOP/s, "
        f"training step {r.train_call * 1e3:.3g} ms + {r.train_marginal / 1e9:.3g}, "
        f"input gradient {r.grad_call * 1e3:.3g} ms + {r.grad_marginal / 1e9:.3g} (CPU time)"
    )
    print(
        f"CPU time: estimated {est_cpu:.0f} s, measured {cpu:.0f} s (user + sys) -> ratio {est_cpu / cpu:.2f}; "
        f"wall {wall:.0f} s, of which jobs {sum(job_s.values()):.0f} s"
    )
    print(
        "| kind | jobs | TFLOP | est. CPU s | measured CPU s (jobs) | ratio | est. wall s | measured wall s (jobs) "
        "| ratio |\n|---|---|---|---|---|---|---|---|---|"
    )
    for kind, k in kinds.items():
        ratio = k["est_wall_s"] / k["measured_wall_s"] if k["measured_wall_s"] else float("nan")
        c_ratio = k["est_cpu_s"] / k["measured_cpu_s"] if k["measured_cpu_s"] else float("nan")
        print(
            f"| {kind} | {k['jobs']} | {k['tflop']:.3g} | {k['est_cpu_s']:.1f} | {k['measured_cpu_s']:.1f} | "
            f"{c_ratio:.2f} | {k['est_wall_s']:.1f} | {k['measured_wall_s']:.1f} | {ratio:.2f} |"
        )
    res = Path(__file__).with_name("results")
    res.mkdir(exist_ok=True)
    tag = f"-{args.tag}" if args.tag else ""
    (res / f"plan_vs_run-{exp.name}{tag}.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

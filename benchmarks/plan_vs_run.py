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

Prints a Markdown summary and writes ``benchmarks/results/plan_vs_run-<experiment>.json``.
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
    args = ap.parse_args()
    if args.keep:
        Path(args.keep).mkdir(parents=True, exist_ok=False)
    with (
        contextlib.nullcontext(args.keep) if args.keep else tempfile.TemporaryDirectory(prefix="cb-plan-vs-run-")
    ) as tmp:
        sets = [*args.set, f"cache_dir={tmp}/cache", f"store={tmp}/results.sqlite"]
        exp = load_config(args.config, dict(parse_override(s) for s in sets), scale=args.scale)
        t0 = time.perf_counter()
        est = estimate(exp)
        plan_s = time.perf_counter() - t0
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
        c0, w0 = _children_cpu(), time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        cpu, wall = _children_cpu() - c0, time.perf_counter() - w0
        if proc.returncode != 0:
            sys.exit(f"the run failed ({proc.returncode}): {proc.stderr[-2000:]}")
        job_s: dict[str, float] = {}
        for c in est.costs:
            rec = json.loads((Path(tmp) / "cache" / "jobs" / c.job.key / "result.json").read_text())
            job_s[c.job.kind] = job_s.get(c.job.kind, 0.0) + float(rec.get("seconds", 0.0))
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
    }
    print(
        f"{args.config}{' --scale ' + args.scale if args.scale else ''} {' '.join(args.set)}: "
        f"{len(est.costs)} jobs, {sum(k['tflop'] for k in kinds.values()):.3g} TFLOP"
    )
    print(
        f"rate: training {r.train_cpu / 1e9:.3g}, inference {r.infer_cpu / 1e9:.3g} GFLOP per CPU-second "
        f"({r.threads} threads, batch {r.train_batch} / {r.infer_batch}, load {r.load:.1f}); "
        f"plan took {plan_s:.1f} s"
    )
    print(
        f"CPU time: estimated {est_cpu:.0f} s, measured {cpu:.0f} s (user + sys) -> ratio {est_cpu / cpu:.2f}; "
        f"wall {wall:.0f} s, of which jobs {sum(job_s.values()):.0f} s"
    )
    print("| kind | jobs | TFLOP | est. wall s | measured wall s (jobs) | ratio |\n|---|---|---|---|---|---|")
    for kind, k in kinds.items():
        ratio = k["est_wall_s"] / k["measured_wall_s"] if k["measured_wall_s"] else float("nan")
        print(
            f"| {kind} | {k['jobs']} | {k['tflop']:.3g} | {k['est_wall_s']:.1f} | {k['measured_wall_s']:.1f} | "
            f"{ratio:.2f} |"
        )
    res = Path(__file__).with_name("results")
    res.mkdir(exist_ok=True)
    (res / f"plan_vs_run-{exp.name}.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()

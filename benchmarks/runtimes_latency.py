"""Batch-1 latency of every variant of a study in PyTorch eager and its deployment runtimes, side by side.

Claim: the quickstart's variants, each exported and verified (``compressbench.deploy``: agreement with
the in-framework variant on the run's evaluation subset), then timed in PyTorch eager (the variant's own
checkpoint), ONNX Runtime, ExecuTorch-XNNPACK and OpenVINO with one protocol — a fresh process per
measurement, 1 thread, ``--warmup`` calls, ``--repeats`` batch-1 samples → median and IQR — interleaved
(every runtime of a variant back to back, ``--rounds`` rounds over all variants), so that the load of a
shared machine falls on all runtimes alike. A cell is the median over rounds of the per-process median;
its IQR is the median over rounds of the per-process IQR.

    .venv/bin/python benchmarks/runtimes_latency.py results/quickstart.sqlite [--cache DIR] [--rounds 3]

Prints a Markdown table and writes ``benchmarks/results/runtimes_latency.json`` (and the exports, with
their model cards, under ``--out``). Nothing is written into the store: the exports verify with
``engine.export_one``, not ``compressbench export``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("COMPRESSBENCH_PROGRESS", "0")

from compressbench.checkpoint import load_model, worker_trust  # noqa: E402
from compressbench.deploy.engine import evidence, export_one  # noqa: E402
from compressbench.deploy.formats import formats, missing_reason, runtime_name  # noqa: E402
from compressbench.deploy.locate import locate  # noqa: E402
from compressbench.deploy.verify import VerifySettings, timings  # noqa: E402
from compressbench.measure.fresh import run_worker  # noqa: E402
from compressbench.measure.hardware import hardware_info  # noqa: E402
from compressbench.measure.profiling import timing_job  # noqa: E402
from compressbench.store import ResultStore  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("store")
    ap.add_argument("--cache", help="the run's cache folder (default: the one its config names)")
    ap.add_argument("--out", default="/tmp/runtimes_latency", help="where the exports go")
    ap.add_argument("--formats", nargs="+", default=["onnx", "executorch", "openvino"])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--json", default=str(Path(__file__).parent / "results" / "runtimes_latency.json"))
    args = ap.parse_args()
    fmts = [f for f in args.formats if missing_reason(f) is None]
    for f in set(args.formats) - set(fmts):
        print(f"skipped {f}: {missing_reason(f)}")
    settings = VerifySettings(threads=1, warmup=args.warmup, repeats=args.repeats, throughput_batch=0)
    store = ResultStore(args.store)
    exp = store.experiments()[0]
    variants = list(dict.fromkeys(r["variant"] for r in store.rows(exp, evaluator="compress") if r["error"] is None))
    t0 = time.perf_counter()
    hw = hardware_info("cpu", 1)
    artifacts: dict[tuple[str, str], object] = {}
    checks: dict[tuple[str, str], dict] = {}
    ckpts, shape = {}, None
    for v in variants:  # export and verify once
        loc = locate(args.store, v, cache=args.cache)
        model, ck = load_model(loc.model_path)
        data, eval_size = loc.dataset()
        shape = (1, data.meta.channels, *data.meta.size)
        ev = evidence(model, data.eval_subset(eval_size), data, settings.calib_batches, loc.seed or 0)
        ckpts[v] = loc.model_path
        for f in fmts:
            w, rows = export_one(
                f, model, ck, Path(args.out) / v / f, shape, ev, settings.model_copy(update={"timing": False})
            )
            checks[v, f] = {m.metric: m.value for m in rows} | {
                "reason": next(
                    (m.condition.get("reason") for m in rows if m.metric == "verified" and m.value != 1.0), None
                )
            }
            if w is not None:
                artifacts[v, f] = w
                checks[v, f]["dtype"] = w.dtype
            print(
                f"exported {v} -> {f}: agreement {checks[v, f].get('agreement')} {checks[v, f]['reason'] or ''}",
                flush=True,
            )
    samples: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for r in range(args.rounds):  # interleaved timing rounds
        for v in variants:
            job = timing_job(
                "torch",
                shape,
                settings.profile(),
                target={"kind": "checkpoint", "path": str(ckpts[v]), **worker_trust()},
                device="cpu",
            )
            job["throughput_batch"] = 0
            lat = run_worker(job, settings.timeout_s)["latency"]
            samples.setdefault((v, "torch"), []).append((lat["median_ms"], lat["iqr_ms"]))
            for f in fmts:
                if (v, f) not in artifacts:
                    continue
                ms = {m.metric: m.value for m in timings(f, artifacts[v, f], shape, settings)}
                samples.setdefault((v, f), []).append((ms["latency_b1_ms"], ms["latency_b1_iqr_ms"]))
        print(
            f"round {r + 1}/{args.rounds} done ({time.perf_counter() - t0:.0f}s, load {os.getloadavg()[0]:.1f})",
            flush=True,
        )
    cells = {
        f"{v}|{rt}": {
            "median_ms": statistics.median(m for m, _ in s),
            "iqr_ms": statistics.median(i for _, i in s),
            "rounds": [m for m, _ in s],
        }
        for (v, rt), s in samples.items()
    }
    runtimes = ["torch"] + fmts
    names = {"torch": f"PyTorch eager (torch {hw['torch']})"} | {
        f: f"{formats.spec(f).label} ({runtime_name(f)})" for f in fmts
    }
    print("\n| variant | " + " | ".join(names[r] for r in runtimes) + " | fastest |")
    print("|---|" + "---|" * (len(runtimes) + 1))
    for v in variants:
        row = []
        for rt in runtimes:
            c = cells.get(f"{v}|{rt}")
            dt = "" if rt == "torch" else f" {checks.get((v, rt), {}).get('dtype', '')}"
            row.append(
                f"{c['median_ms']:.3f} ± {c['iqr_ms']:.3f}{dt}"
                if c
                else f"failed: {checks.get((v, rt), {}).get('reason')}"
            )
        best = min((rt for rt in runtimes if f"{v}|{rt}" in cells), key=lambda rt: cells[f"{v}|{rt}"]["median_ms"])
        print(f"| {v} | " + " | ".join(row) + f" | {best} |")
    out = {
        "claim": __doc__.splitlines()[0],
        "store": args.store,
        "rounds": args.rounds,
        "repeats": args.repeats,
        "warmup": args.warmup,
        "threads": 1,
        "hardware": hw,
        "seconds": time.perf_counter() - t0,
        "cells": cells,
        "checks": {f"{v}|{f}": c for (v, f), c in checks.items()},
        "runtimes": names,
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=1, default=str))
    print(
        f"\nwrote {args.json} ({out['seconds']:.0f}s; CPU {hw['cpu']}, {hw['logical_cores']} logical cores, "
        f"load {hw.get('loadavg_1m')})"
    )


if __name__ == "__main__":
    main()

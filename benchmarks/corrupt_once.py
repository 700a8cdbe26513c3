"""Corrupt once, evaluate many: the corruptions evaluator on a 224-px study of several variants, each variant
alone (every variant corrupts the evaluation images again: main's code before issue 27) vs the group form
(each corrupted batch made once and scored by every variant), side by side on the same machine.

Claim: for V variants the group form spends the corruption work once instead of V times, so the evaluator's
time falls by nearly V× when corrupting costs more than the models' forward passes (small models at 224 px),
and every non-timing row is the same.

Conditions: the synthetic dataset at 224 px (3 channels, 500 test images by default), a small convolutional
classifier (stride-4 stem, see ``_model``; its FLOPs are printed), five variants (the parent, three copies
with 30 / 50 / 70 % of their smallest weights zeroed, a dynamically quantized int8 copy), every corruption of
the default suite at severities 1–5, one process per measurement (``--threads`` torch threads). "before"
runs the per-variant evaluator from ``--before-src`` (a copy of main's ``src`` before the change, e.g.
``git archive <commit> src | tar -x -C /tmp/before``), "after" the group form from this tree; both in fresh
processes, interleaved, best of ``--repeat``. "alone" runs this tree's evaluator once per variant (this tree's
corruption kernels, no sharing): before / alone is what the faster kernels bought, alone / after what
corrupting once bought, and alone's rows must equal after's exactly. before's rows are compared with after's
and the differing ones are counted per corruption (corruptions whose version was bumped since ``--before-src``
may differ by a level in a few pixels).

    .venv/bin/python benchmarks/corrupt_once.py --before-src /tmp/before/src [--n 500] [--repeat 1] \
        [--modes after,alone,before]

Prints a Markdown table and writes ``benchmarks/results/corrupt_once.json``.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _model(num_classes: int):
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(3, 16, 4, stride=4),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(32, 64, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(64, num_classes),
    )


def _variants(model):
    import torch
    import torch.ao.quantization as tq
    from torch import nn

    out = {"baseline": model}
    for frac in (0.3, 0.5, 0.7):
        m = copy.deepcopy(model)
        with torch.no_grad():
            for p in m.parameters():
                if p.dim() > 1:
                    p[p.abs() < p.abs().flatten().quantile(frac)] = 0
        out[f"pruned{int(frac * 100)}"] = m.eval()
    out["dynamic"] = tq.quantize_dynamic(copy.deepcopy(model), {nn.Linear}, dtype=torch.qint8).eval()
    return out


def worker(mode: str, n: int, threads: int, out: Path) -> None:
    """One measurement in this process: build the data and variants, time the evaluator alone / as a group."""
    import torch

    from compressbench.data import load_dataset
    from compressbench.evaluate.corruptions import CorruptionsParams
    from compressbench.evaluate.corruptions import evaluator as ev
    from compressbench.interfaces import EvalContext, VariantInfo

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory(prefix="cb-corrupt-once-") as tmp:
        bundle = load_dataset("synthetic", cache_dir=Path(tmp) / "cache", n_train=8, n_test=n, size=224)
        models = _variants(_model(bundle.meta.num_classes).eval())

        def ctx(name: str) -> EvalContext:
            return EvalContext(
                data=bundle,
                meta=bundle.meta,
                device=torch.device("cpu"),
                seed=0,
                workdir=Path(tmp) / name,
                variant=VariantInfo(name=name, method=name, capabilities={}, is_parent=False),
                load_parent=lambda: models["baseline"],
                eval_size=n,
                progress=False,
            )

        p = CorruptionsParams(severities=[1, 2, 3, 4, 5])
        t0 = time.perf_counter()
        if mode == "after":  # "alone" and "before" both score each variant on its own
            rows = ev.corruptions_group([(m, ctx(k)) for k, m in models.items()], p)
        else:
            rows = [ev.corruptions_evaluator(m, ctx(k), p) for k, m in models.items()]
        secs = time.perf_counter() - t0
    from compressbench.measure.flops import count_flops

    out.write_text(
        json.dumps(
            {
                "seconds": secs,
                "variants": list(models),
                "flops": count_flops(models["baseline"], (1, 3, 224, 224)),
                "rows": [
                    [[m.metric, json.dumps(m.condition, sort_keys=True), m.tag, m.value] for m in r] for r in rows
                ],
            }
        )
    )


def _diff_by_corruption(a: list, b: list) -> dict[str, int]:
    """Rows of ``a`` and ``b`` (same order) that differ, counted per corruption named in the condition."""
    out: dict[str, int] = {}
    for ra, rb in zip(a, b, strict=True):
        for x, y in zip(ra, rb, strict=True):
            if x != y:
                name = json.loads(x[1]).get("corruption", x[0])
                out[name] = out.get(name, 0) + 1
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before-src", required=True, help="main's src before the change (the per-variant path)")
    ap.add_argument("--n", type=int, default=500, help="evaluation images")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--modes", default="after,alone,before", help="which sides to run, in this order")
    ap.add_argument("--out", default=str(HERE / "results" / "corrupt_once.json"))
    ap.add_argument("--worker", nargs=2, metavar=("MODE", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args.worker[0], args.n, args.threads, Path(args.worker[1]))
    modes = args.modes.split(",")
    here_src = str(HERE.parent / "src")
    srcs = {"before": str(Path(args.before_src).resolve()), "alone": here_src, "after": here_src}
    res: dict[str, list[dict]] = {m: [] for m in modes}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeat):
            for mode in modes:
                out = Path(tmp) / f"{mode}{r}.json"
                env = {**os.environ, "PYTHONPATH": srcs[mode], "COMPRESSBENCH_PROGRESS": "0"}
                cmd = [sys.executable, __file__, "--before-src", args.before_src, "--n", str(args.n)]
                cmd += ["--threads", str(args.threads), "--worker", mode, str(out)]
                t0 = time.strftime("%H:%M:%S")
                subprocess.run(cmd, env=env, check=True)
                res[mode].append(json.loads(out.read_text()))
                load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
                print(f"{mode} #{r}: {res[mode][-1]['seconds']:.1f} s (from {t0}; load {load})", flush=True)
    best = {m: min(res[m], key=lambda x: x["seconds"]) for m in modes}
    ref = best.get("after") or best[modes[0]]
    nrows = sum(len(r) for r in ref["rows"])
    summary = {"n": args.n, "threads": args.threads, "repeat": args.repeat, "variants": ref["variants"]}
    summary |= {"flops": ref["flops"], "rows": nrows, "load_end": os.getloadavg()}
    summary |= {f"{m}_s": [x["seconds"] for x in res[m]] for m in modes}
    print("\n| variants | images | cells | " + " | ".join(f"{m} s" for m in modes) + " |")
    print("|---|---|---|" + "---|" * len(modes))
    cells = " | ".join(f"{best[m]['seconds']:.1f}" for m in modes)
    print(f"| {len(ref['variants'])} | {args.n} | 75 | {cells} |")
    bad = False
    for a, b in (("before", "after"), ("alone", "after"), ("before", "alone")):
        if a in best and b in best:
            ratio = best[a]["seconds"] / best[b]["seconds"]
            diff = _diff_by_corruption(best[a]["rows"], best[b]["rows"])
            summary[f"ratio_{a}_{b}"] = ratio
            summary[f"rows_differ_{a}_{b}"] = diff
            print(f"{a} / {b}: {ratio:.2f}x; rows differing: {sum(diff.values())} of {nrows} {diff or ''}")
            bad |= a == "alone" and bool(diff)
    print(f"model: {ref['flops'] / 1e6:.1f} MFLOP per 224-px image; threads {args.threads}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=1))
    if bad:
        sys.exit("this tree's rows differ between the group form and each variant alone")


if __name__ == "__main__":
    main()

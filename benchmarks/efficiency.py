"""Efficiency benchmark: what compression really buys on this CPU (CIFAR-style ResNet-18).

Side by side, in one run, each variant timed in its own fresh process:

* ``fp32``            — the parent (random weights: speed does not depend on them);
* ``unstructured90``  — 90 % of conv/linear weights zeroed (``prune.unstructured``, masks removed);
* ``unstructured90-masked`` — the same with ``torch.nn.utils.prune`` masks still attached;
* ``structured50``    — 50 % of channels removed (``prune.structured``, Torch-Pruning);
* ``int8``            — static int8 PTQ (``quantize.static``, torch.ao eager, x86 kernels);
* ONNX Runtime fp32 and static int8 (QDQ) of the parent, fp32 of the pruned models, int8 of ``int8``.

Targets (issue 4): unstructured latency ratio ≈ 1.0 and compressed bytes ≤ 0.15 × dense;
structured b1 speedup ≥ 2.5×; int8 b1 speedup ≥ 3× and bytes ≤ 0.27×.

Run (repo root)::

    .venv/bin/python benchmarks/efficiency.py                 # 1 thread, batch 64, 50 repeats
    .venv/bin/python benchmarks/efficiency.py --threads 2 --repeats 100

Variants are built with the registered methods (``--impl registered``, saved with
``checkpoint.save_model`` and reloaded in the worker by ``checkpoint.load_model``); ``--impl direct``
calls torch.nn.utils.prune / Torch-Pruning / torch.ao FX directly and rebuilds each variant in the
worker through the ``efficiency:worker_variant`` factory. Calibration data for int8 are random
uniform images (speed and size do not depend on them).
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

from compressbench.data.base import DataMeta  # noqa: E402
from compressbench.measure.fresh import run_worker  # noqa: E402
from compressbench.measure.hardware import hardware_info  # noqa: E402
from compressbench.measure.onnxrt import export_onnx, quantize_onnx_static  # noqa: E402
from compressbench.measure.profiling import ProfileSettings, static_profile, timing_job  # noqa: E402
from compressbench.models import create_model  # noqa: E402
from compressbench.profile_cli import render_table  # noqa: E402

log = logging.getLogger("bench.efficiency")

META = DataMeta("cifar10-shape", 10, 3, (32, 32), (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
SPEC = {"model": "cifar_resnet18", "width": 1.0, "kwargs": {}, "meta": META.to_dict()}
SHAPE = (1, 3, 32, 32)
SEED = 0


def baseline() -> nn.Module:
    torch.manual_seed(SEED)
    return create_model("cifar_resnet18", META).eval()


def _random_bundle(n: int = 512):
    from compressbench.data.base import DatasetBundle, ImageSet

    g = torch.Generator().manual_seed(SEED)
    x = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    s = ImageSet(x, y)
    return DatasetBundle(META, s, s)


def _ctx(workdir: Path):
    from compressbench.interfaces import CompressContext

    def no_train(model, **kw):  # fine-tuning is off (epochs 0): speed/size only
        return model

    return CompressContext(
        data=_random_bundle(),
        meta=META,
        device=torch.device("cpu"),
        seed=SEED,
        workdir=workdir,
        train=no_train,
        accuracy=lambda *a, **k: float("nan"),
        parent_spec=SPEC,
        progress=False,
    )


# --------------------------------------------------------------------------- building variants
def build_registered(name: str, parent: nn.Module, workdir: Path) -> tuple[nn.Module, list[dict]]:
    """A variant from compressbench's registered methods (no fine-tuning)."""
    from compressbench.compress import compress
    from compressbench.interfaces import Budget
    from compressbench.registry import methods

    method, params, budget = {
        "unstructured90": ("prune.unstructured", {"sparsity": 0.9, "finetune": {"epochs": 0}}, Budget("knob", 0.9)),
        "structured50": ("prune.structured", {"ratio": 0.5, "finetune": {"epochs": 0}}, Budget("knob", 0.5)),
        "int8": ("quantize.static", {"calibration_batches": 4, "batch_size": 64}, None),
    }[name]
    p = methods.spec(method).params.model_validate(params)
    res = compress(method, parent, _ctx(workdir), budget, p)
    return res.model.eval(), res.steps


def build_direct(name: str, parent: nn.Module) -> nn.Module:
    """A variant straight from the libraries (torch.nn.utils.prune, Torch-Pruning, torch.ao FX)."""
    m = copy.deepcopy(parent).eval()
    if name.startswith("unstructured90"):
        from torch.nn.utils import prune

        layers = [
            (mod, "weight") for n, mod in m.named_modules() if isinstance(mod, (nn.Conv2d, nn.Linear)) and n != "net.fc"
        ]
        prune.global_unstructured(layers, prune.L1Unstructured, amount=0.9)
        if not name.endswith("masked"):
            for mod, p in layers:
                prune.remove(mod, p)
        return m
    if name == "structured50":
        import torch_pruning as tp

        pr = tp.pruner.MagnitudePruner(
            m,
            torch.rand(*SHAPE),
            importance=tp.importance.GroupMagnitudeImportance(p=1),
            pruning_ratio=0.5,
            ignored_layers=[m.net.fc],
        )
        pr.step()
        return m.eval()
    if name == "int8":
        from torch.ao.quantization import get_default_qconfig_mapping
        from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

        torch.backends.quantized.engine = "x86"
        q = prepare_fx(m, get_default_qconfig_mapping("x86"), (torch.rand(*SHAPE),))
        g = torch.Generator().manual_seed(SEED)
        with torch.no_grad():
            for _ in range(4):
                q(torch.rand(64, *SHAPE[1:], generator=g))
        return convert_fx(q)
    if name == "fp32":
        return m
    raise ValueError(f"unknown variant '{name}'")


def worker_variant(name: str) -> nn.Module:
    """Factory the fresh-process worker calls (``efficiency:worker_variant``) for variants that have
    no checkpoint (masked models, ``--impl direct``)."""
    return build_direct(name, baseline())


# --------------------------------------------------------------------------- run
def _median(xs: list[float]) -> float:
    return float(statistics.median(xs))


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=64, help="throughput batch")
    ap.add_argument("--repeats", type=int, default=50, help="batch-1 samples per round")
    ap.add_argument("--throughput-repeats", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="round-robin timing rounds (each variant once per round, fresh process each time); "
        "figures are medians over rounds, speedups medians of per-round ratios",
    )
    ap.add_argument("--no-onnx", action="store_true")
    ap.add_argument("--impl", choices=["auto", "registered", "direct"], default="auto")
    ap.add_argument("--variants", default="fp32,unstructured90,unstructured90-masked,structured50,int8")
    ap.add_argument("--out", default=str(HERE / "results" / "efficiency.json"))
    ap.add_argument("--recheck", metavar="JSON", help="re-print table and targets of a saved result (no timing)")
    return ap.parse_args(argv)


def _recheck(path: str) -> int:
    """Re-derive the min-based speedups and the targets of a saved result, print them and save them back."""
    from rich.console import Console

    saved = json.loads(Path(path).read_text())
    add_min_speedups(saved["variants"])
    saved["checks"] = evaluate_targets(saved["variants"])
    Console(width=160).print(render_table(saved["variants"], ref="fp32"))
    for c in saved["checks"]:
        print(f"{'PASS' if c['pass'] else 'MISS'}  {c['what']}: {c['value']:.3f} (target {c['target']})")
    Path(path).write_text(json.dumps(saved, indent=1, default=str))
    return 0


def _resolve_impl(impl: str) -> str:
    """``auto``: the registered methods when all three are there, else the libraries directly."""
    if impl != "auto":
        return impl
    try:
        from compressbench.registry import methods

        return (
            "registered"
            if all(m in methods for m in ("prune.unstructured", "prune.structured", "quantize.static"))
            else "direct"
        )
    except Exception as e:  # noqa: BLE001 — in-progress methods must not block the benchmark
        log.warning("registered methods unavailable (%s): using the libraries directly", e)
        return "direct"


def _build(name: str, parent: nn.Module, impl: str, wd: Path) -> tuple[nn.Module, list[dict] | None, str]:
    """The variant ``name``, its compression steps (None: built directly, no checkpoint) and how it was built;
    a registered method that fails falls back to the libraries."""
    if name == "fp32":
        return parent, [], impl
    if name.endswith("masked") or impl == "direct":
        return build_direct(name, parent), None, "direct"
    try:
        model, steps = build_registered(name, parent, wd / name)
        return model, steps, impl
    except Exception as e:  # noqa: BLE001
        log.warning("%s: registered method failed (%s) — building it directly", name, e)
        return build_direct(name, parent), None, "direct"


def _worker_target(name: str, model: nn.Module, steps: list[dict] | None, wd: Path) -> dict:
    """How the fresh timing process gets the variant: a saved checkpoint, or this file's factory."""
    if steps is not None:
        from compressbench.checkpoint import save_model

        return {"kind": "checkpoint", "path": str(save_model(model, wd / f"{name}.pt", SPEC, steps))}
    return {
        "kind": "factory",
        "target": "efficiency:worker_variant",
        "kwargs": {"name": name},
        "input_shape": list(SHAPE),
        "sys_path": [str(HERE), str(HERE.parent / "src")],
    }


def _onnx_jobs(
    name: str, model: nn.Module, wd: Path, params: ProfileSettings, rep: dict, jobs: dict[str, dict[str, dict]]
) -> None:
    """Export the variant to ONNX and add its ONNX Runtime timing jobs (fp32; for the parent also static int8
    QDQ) to ``jobs[name]``, with their sources and bytes in ``rep["onnx"]``."""
    rep["onnx"] = {}
    if name == "int8":  # torch.ao int8 modules do not export: ORT int8 of the float parent
        if "onnx-int8" in jobs["fp32"]:  # same file: timed once, under fp32, reported for both
            rep["onnx"]["int8"] = {"source": "onnxruntime static int8 (QDQ) of the fp32 parent"}
        return
    fp = export_onnx(model, wd / f"{name}.onnx", SHAPE)
    jobs[name]["onnx-fp32"] = timing_job("onnx", SHAPE, params, path=fp)
    rep["onnx"]["fp32"] = {"source": "variant", "bytes": fp.stat().st_size}
    if name == "fp32":
        rng = np.random.default_rng(SEED)
        calib = [rng.random((16, *SHAPE[1:]), dtype=np.float32) for _ in range(4)]
        q = quantize_onnx_static(fp, wd / "fp32_int8.onnx", calib)
        jobs[name]["onnx-int8"] = timing_job("onnx", SHAPE, params, path=q)
        rep["onnx"]["int8"] = {"source": "onnxruntime static int8 (QDQ), random calibration", "bytes": q.stat().st_size}


def _build_all(
    names: list[str], parent: nn.Module, impl: str, wd: Path, args: argparse.Namespace, params: ProfileSettings, console
) -> tuple[dict[str, dict], dict[str, dict[str, dict]]]:
    """Step 1: build every variant, save it, count its static figures, export ONNX. Returns the reports and
    the timing jobs (variant -> {"torch" | "onnx-fp32" | "onnx-int8": job})."""
    reps: dict[str, dict] = {}
    jobs: dict[str, dict[str, dict]] = {}
    for name in names:
        t0 = time.time()
        model, steps, how = _build(name, parent, impl, wd)
        target = _worker_target(name, model, steps, wd)
        rep = static_profile(model, SHAPE)
        rep.pop("layers", None)
        rep["hardware"] = hardware_info("cpu", args.threads)
        rep["settings"] = {
            "threads": args.threads,
            "throughput_batch": args.batch,
            "warmup": args.warmup,
            "repeats": args.repeats,
            "throughput_repeats": args.throughput_repeats,
            "rounds": args.rounds,
            "device": "cpu",
        }
        rep["build"] = {"impl": how, "target_kind": target["kind"]}
        jobs[name] = {"torch": timing_job("torch", SHAPE, params, target=target, device="cpu")}
        if not args.no_onnx and not name.endswith("masked"):
            _onnx_jobs(name, model, wd, params, rep, jobs)
        rep["build"]["seconds"] = time.time() - t0
        reps[name] = rep
        console.print(f"[dim]built {name}: {time.time() - t0:.0f} s ({how}, {target['kind']})[/dim]")
    return reps, jobs


def _time_rounds(
    names: list[str], jobs: dict[str, dict[str, dict]], rounds: int, console
) -> dict[str, dict[str, list[dict]]]:
    """Step 2: round-robin timing, every measurement in a fresh process; the order rotates each round so
    drift hits every variant alike."""
    results: dict[str, dict[str, list[dict]]] = {n: {k: [] for k in jobs[n]} for n in names}
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            for kind, job in jobs[name].items():
                results[name][kind].append(run_worker(job))
        console.print(f"[dim]round {r + 1}/{rounds} done, load {os.getloadavg()[0]:.1f}[/dim]")
    return results


def _aggregate(names: list[str], results: dict[str, dict[str, list[dict]]], reps: dict[str, dict]) -> None:
    """Step 3: medians over rounds into ``reps``; speedups as medians of per-round ratios to fp32."""
    base_lat = [x["latency"]["median_ms"] for x in results["fp32"]["torch"]]
    for name in names:
        for kind, runs in results[name].items():
            agg = {
                "latency": {
                    "median_ms": _median([x["latency"]["median_ms"] for x in runs]),
                    "iqr_ms": _median([x["latency"]["iqr_ms"] for x in runs]),
                },
                "throughput": {"img_s": _median([x["throughput"]["img_s"] for x in runs])},
                "peak_mem_mb": _median([x["peak_mem_mb"] for x in runs if x.get("peak_mem_mb") is not None] or [0]),
                "peak_mem_scope": runs[0].get("peak_mem_scope"),
                "process": "fresh",
                "rounds": runs,
            }
            if kind == "torch":
                ratios = [b / x["latency"]["median_ms"] for b, x in zip(base_lat, runs, strict=True)]
                agg["speedup_b1"] = _median(ratios)
                reps[name]["torch"] = agg
            else:
                reps[name]["onnx"][kind.split("-", 1)[1]].update(agg)
    add_min_speedups(reps)
    if "int8" in reps and "int8" in (reps["int8"].get("onnx") or {}) and "int8" in reps["fp32"].get("onnx", {}):
        reps["int8"]["onnx"]["int8"] = {
            **reps["fp32"]["onnx"]["int8"],
            "source": "onnxruntime static int8 (QDQ) of the fp32 parent",
        }


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    if args.recheck:
        return _recheck(args.recheck)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from rich.console import Console

    console = Console(width=max(160, Console().width))
    load_before = os.getloadavg()
    t_start = time.time()
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    if "fp32" not in names:
        names.insert(0, "fp32")
    parent = baseline()
    impl = _resolve_impl(args.impl)
    params = ProfileSettings(
        threads=args.threads,
        throughput_batch=args.batch,
        repeats=args.repeats,
        throughput_repeats=args.throughput_repeats,
        warmup=args.warmup,
        fresh_process=True,
    )
    with tempfile.TemporaryDirectory(prefix="cb-bench-eff-") as td:
        reps, jobs = _build_all(names, parent, impl, Path(td), args, params, console)
        results = _time_rounds(names, jobs, args.rounds, console)
    _aggregate(names, results, reps)
    console.print(render_table(reps, ref="fp32"))
    checks = evaluate_targets(reps)
    for c in checks:
        console.print(f"{'PASS' if c['pass'] else 'MISS'}  {c['what']}: {c['value']:.3f} (target {c['target']})")
    out = {
        "command": "python benchmarks/efficiency.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "impl": impl,
        "load_avg_before": load_before,
        "load_avg_after": os.getloadavg(),
        "wall_seconds": time.time() - t_start,
        "checks": checks,
        "variants": reps,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1, default=str))
    console.print(
        f"load average before {load_before[0]:.2f}, after {out['load_avg_after'][0]:.2f} "
        f"(on {os.cpu_count()} logical cores) · {out['wall_seconds']:.0f} s · wrote {args.out}"
    )
    return 0


def add_min_speedups(reps: dict[str, dict]) -> None:
    """Load-robust companion of the median speedup: per round, fp32's fastest call / the variant's
    fastest call; median over rounds. On a shared CPU other processes only ever add time, so the
    minimum is the least contaminated estimate — reported *next to* the median, labelled."""
    base = [x["latency"]["min_ms"] for x in reps["fp32"]["torch"]["rounds"]]
    for rep in reps.values():
        t = rep.get("torch")
        if t and "rounds" in t:
            t["speedup_b1_min"] = _median([b / x["latency"]["min_ms"] for b, x in zip(base, t["rounds"], strict=True)])
            t["speedup_throughput"] = t["throughput"]["img_s"] / reps["fp32"]["torch"]["throughput"]["img_s"]


def evaluate_targets(reps: dict[str, dict]) -> list[dict]:
    """The issue's acceptance numbers, computed from the profiles."""
    out = []
    if "fp32" not in reps or "torch" not in reps["fp32"]:
        return out
    f = reps["fp32"]
    dense = f["bytes"]["torch.save"]

    def add(what, value, target, ok):
        out.append({"what": what, "value": value, "target": target, "pass": bool(ok)})

    if "unstructured90" in reps:
        u = reps["unstructured90"]
        r = u["torch"]["speedup_b1"]
        add("unstructured90 b1 speedup (≈ 1: zeros are not skipped)", r, "0.9–1.1", 0.9 <= r <= 1.1)
        best = min(v for k, v in u["bytes"].items() if k != "torch.save")
        add(
            "  same, min-based (load-robust)",
            u["torch"]["speedup_b1_min"],
            "0.9–1.1",
            0.9 <= u["torch"]["speedup_b1_min"] <= 1.1,
        )
        add("unstructured90 compressed bytes / fp32 dense", best / dense, "≤ 0.15", best / dense <= 0.15)
    if "structured50" in reps:
        r = reps["structured50"]["torch"]["speedup_b1"]
        add("structured50 b1 speedup", r, "≥ 2.5", r >= 2.5)
        rm = reps["structured50"]["torch"]["speedup_b1_min"]
        add("  same, min-based (load-robust)", rm, "≥ 2.5", rm >= 2.5)
    if "int8" in reps:
        q = reps["int8"]
        r = q["torch"]["speedup_b1"]
        add("int8 b1 speedup (torch eager)", r, "≥ 3", r >= 3)
        add("  same, min-based (load-robust)", q["torch"]["speedup_b1_min"], "≥ 3", q["torch"]["speedup_b1_min"] >= 3)
        rb = q["bytes"]["torch.save"] / dense
        add("int8 bytes / fp32 dense", rb, "≤ 0.27", rb <= 0.27)
    return out


if __name__ == "__main__":
    sys.exit(main())

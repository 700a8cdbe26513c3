"""The ``efficiency`` evaluator: the measurement core's profile of a variant, as tagged measurements.

Every figure carries a tag. ``theoretical``: counted, not measured — FLOPs, MACs, effective FLOPs
(dense × per-layer density), int8 op counts, nonzero parameters; a sparse or fake-quantized model is
never faster or smaller because of these numbers alone. ``realised``: measured on this machine —
bytes of a file really written (and decodable), stored parameters, wall-clock latency/throughput,
peak resident memory. The protocol itself is in :mod:`compressbench.measure` (docs/efficiency.md).
"""

from __future__ import annotations

import json
from itertools import islice
from pathlib import Path
from typing import Any

from torch import nn

from ..catalog.evaluators import EfficiencyParams  # noqa: F401 (torch-free: compressbench.catalog)
from ..checkpoint import step_quantizes, worker_trust
from ..costs import CostContext, EvalCost
from ..interfaces import EvalContext, Measurement
from ..measure.precision import quantization_kind
from ..measure.profiling import profile, resolve
from ..measure.protocol import free_core_load
from ..measure.targets import float_source_from_checkpoint
from ..registry import evaluators
from ..specs import MetricSpec


def to_measurements(rep: dict[str, Any]) -> list[Measurement]:
    """Flatten a :func:`~compressbench.measure.profiling.profile` report into tagged measurements (the metric
    naming contract). ``params_nonzero`` is ``theoretical`` here and in the compress job's own rows: the count
    is exact, but the saving it implies needs a sparse format or sparse kernels."""
    hw, st = rep["hardware"], rep["settings"]
    dev = f"{st['device']}:{hw.get('gpu') or hw['cpu']}"
    ms: list[Measurement] = []
    p, b, f = rep["params"], rep["bytes"], rep["flops"]
    ms += [
        Measurement("params", p["params"], tag="realised"),
        Measurement("params_nonzero", p["params_nonzero"], tag="theoretical"),
    ]
    ms.append(Measurement("bytes_dense", b["torch.save"], {"encoding": "torch.save"}, "realised", "B"))
    best = min((k for k in b if k != "torch.save"), key=lambda k: b[k])
    ms.append(Measurement("bytes_compressed", b[best], {"encoding": best}, "realised", "B"))
    fc = {"counter": f["counter"]}
    ms += [
        Measurement("flops", f["flops"], fc, "theoretical", "FLOP"),
        Measurement("macs", f["macs"], fc, "theoretical", "MAC"),
        Measurement("flops_effective", f["flops_effective"], fc, "theoretical", "FLOP"),
    ]
    if f["int8_ops"]:
        ms.append(Measurement("int8_ops", f["int8_ops"], {"counter": "shape-hooks"}, "theoretical", "OP"))
    t = rep.get("torch")
    if t:
        rt = f"torch-{hw['torch']}" + ("-int8" if rep["quantized"] else "")
        base = {"threads": st["threads"], "runtime": rt, "device": dev, "process": t["process"]}
        ms += _timing_rows("", t, base, st)
        if t.get("peak_mem_mb") is not None:
            ms.append(
                Measurement(
                    "peak_mem_mb",
                    t["peak_mem_mb"],
                    {**base, "batch": st["throughput_batch"], "scope": t["peak_mem_scope"]},
                    "realised",
                    "MB",
                )
            )
    for dt, r in (rep.get("onnx") or {}).items():
        if not isinstance(r, dict):
            continue
        base = {
            "threads": st["threads"],
            "runtime": f"onnxruntime-{hw['onnxruntime']}",
            "dtype": dt,
            "device": f"cpu:{hw['cpu']}",
            "process": r.get("process", "fresh"),
            "source": r["source"],
        }
        ms += _timing_rows("onnx_", r, base, st)
        ms.append(Measurement("onnx_bytes", r["bytes"], {"dtype": dt}, "realised", "B"))
    for m in ms:
        m.value = float(m.value)
    return ms


def _timing_rows(prefix: str, r: dict[str, Any], base: dict[str, Any], st: dict[str, Any]) -> list[Measurement]:
    """``<prefix>latency_b1_ms``, ``<prefix>latency_b1_iqr_ms``, ``<prefix>latency_b1_load`` (when the timing
    recorded the machine's load) and ``<prefix>throughput_img_s`` of one runtime."""
    ms = [
        Measurement(f"{prefix}latency_b1_ms", r["latency"]["median_ms"], {**base, "batch": 1}, "realised", "ms"),
        Measurement(f"{prefix}latency_b1_iqr_ms", r["latency"]["iqr_ms"], {**base, "batch": 1}, "realised", "ms"),
    ]
    load = free_core_load(r["latency"].get("load"), int(st["threads"]))
    if load is not None:  # the machine's other work while the batch-1 samples were taken (noise flag)
        ms.append(Measurement(f"{prefix}latency_b1_load", load, {**base, "batch": 1}, "realised"))
    if "throughput" in r:
        ms.append(
            Measurement(
                f"{prefix}throughput_img_s",
                r["throughput"]["img_s"],
                {**base, "batch": st["throughput_batch"]},
                "realised",
                "img/s",
            )
        )
    return ms


LOAD_DESCRIPTION = (
    "other work on the cores the timing left free while the batch-1 samples were taken (/proc/stat "
    "busy time minus the timing process's own, over the free cores; 1 = as much other work as "
    "free cores): what flags a latency as noisy"
)


def _timing_links(name: str) -> dict[str, str]:
    """A latency's goal objective, and the rows of its spread and load (docs/efficiency.md, "Noisy timings")."""
    if name not in ("latency_b1_ms", "onnx_latency_b1_ms"):
        return {}
    prefix = name.removesuffix("latency_b1_ms")
    return {"objective": name, "spread": f"{prefix}latency_b1_iqr_ms", "load": f"{prefix}latency_b1_load"}


# fixed CPU seconds of the profile, measured on this project's 2-core machine with the quickstart's 140 k-parameter
# CNN (``compressbench plan``): counts and encodings (bytes, zstd) in this process; the timing process (in a run
# forked from a template that imported torch once per run — ``measure.fresh.forked_workers`` —: a fork and the
# model rebuilt; a fresh interpreter cost 2.3 s more); an ONNX export and ONNX Runtime session
STATIC_S, FRESH_PROCESS_S, ONNX_S = 0.3, 0.2, 0.6


def efficiency_cost(p: EfficiencyParams, ctx: CostContext) -> EvalCost:
    """``compressbench plan``: per runtime (torch; ONNX Runtime fp32 for a float variant, int8 as ``onnx_int8``
    says), warm-up and repeats at batch 1 and at the throughput batch; plus the fixed seconds above."""
    if not p.timing:
        return EvalCost(seconds=STATIC_S)
    _, _, tb = resolve(p)
    per_runtime = (p.warmup + p.repeats) + ((max(1, p.warmup // 5) + p.throughput_repeats) * tb if tb else 0)
    calls = (p.warmup + p.repeats) + ((max(1, p.warmup // 5) + p.throughput_repeats) if tb else 0)
    onnx = 0
    if p.onnx:
        onnx = (0 if ctx.quantizes else 1) + (p.onnx_int8 == "always" or (ctx.quantizes and p.onnx_int8 == "auto"))
    runtimes = 1 + onnx
    return EvalCost(
        forward=per_runtime * runtimes,
        calls=calls * runtimes,
        seconds=STATIC_S + (FRESH_PROCESS_S if p.fresh_process else 0) + ONNX_S * onnx,
    )


@evaluators.register(
    "efficiency",
    cost=efficiency_cost,
    measures_time=True,
    metrics=(
        MetricSpec("params", label="Params", unit="params", fmt="int", table=None),
        MetricSpec(
            "params_nonzero",
            label="Params (nonzero)",
            unit="params",
            fmt="int",
            higher_is_better=False,
            summary=True,
            order=60,
            table=None,
            objective="params",
        ),
        MetricSpec(
            "bytes_dense",
            label="Dense size",
            unit="B",
            fmt="bytes",
            higher_is_better=False,
            summary=True,
            order=61,
            table=None,
            description="file size of the dense model (torch.save, every weight stored)",
        ),
        MetricSpec(
            "bytes_compressed",
            label="Compressed size",
            unit="B",
            fmt="bytes",
            higher_is_better=False,
            summary=True,
            order=62,
            table=None,
            lead=True,
            objective="bytes",
            description="file size of the smallest encoding of the saved model (sparse "
            "and/or zstd): what you would ship",
        ),
        MetricSpec(
            "compression_pct",
            label="Saved vs base dense %",
            fmt="f1",
            higher_is_better=True,
            summary=True,
            order=63,
            table=None,
            derive="compressbench.evaluate.efficiency_report:compression_pct",
            description="1 − compressed size / the baseline's dense size of the same seed, "
            "in % (encoding included: not the dense size fraction)",
        ),
        MetricSpec("flops", label="FLOPs", unit="FLOP", fmt="g", table=None),
        MetricSpec("macs", label="MACs", unit="MAC", fmt="g", table=None),
        MetricSpec(
            "flops_effective",
            label="GFLOPs (eff.)",
            unit="FLOP",
            fmt="g",
            higher_is_better=False,
            summary=True,
            key="gflops",
            order=64,
            table=None,
            objective="flops",
            scale=((1e8, 1e6, "MFLOPs (eff.)"), (float("inf"), 1e9, "GFLOPs (eff.)")),
        ),
        MetricSpec("int8_ops", label="int8 ops", unit="OP", fmt="g", table=None),
        *(
            MetricSpec(
                name,
                label=label,
                unit=unit,
                fmt=fmt,
                higher_is_better=hib,
                summary=summary,
                order=order,
                tag=("realised", ""),
                protocol=("threads", "batch"),
                aggregate=agg,
                note=note,
                table=None,
                lead=name == "latency_b1_ms",
                description=desc,
                **_timing_links(name),
            )
            for name, label, unit, fmt, hib, summary, order, agg, note, desc in (
                (
                    "latency_b1_ms",
                    "Latency b1 ms",
                    "ms",
                    "ms",
                    False,
                    True,
                    70,
                    "mean",
                    "",
                    "median latency of one image (batch 1) in a fresh process, realised timings only",
                ),
                (
                    "throughput_img_s",
                    "Throughput img/s",
                    "img/s",
                    "int",
                    True,
                    True,
                    71,
                    "mean",
                    "",
                    "images per second at the throughput batch",
                ),
                (
                    "onnx_latency_b1_ms",
                    "ORT latency b1 ms",
                    "ms",
                    "ms",
                    False,
                    True,
                    72,
                    "min",
                    "{name}: {condition} (fastest ONNX dtype per variant).",
                    "ONNX Runtime latency at batch 1, the fastest exported dtype of the variant",
                ),
                ("latency_b1_iqr_ms", "Latency b1 IQR ms", "ms", "ms", None, False, 100, "mean", "", ""),
                (
                    "peak_mem_mb",
                    "Peak memory MiB",
                    "MiB",
                    "f1",
                    False,
                    False,
                    100,
                    "mean",
                    "",
                    "peak memory of the timing process, MiB (2^20 bytes) as the OS reports it",
                ),
                ("onnx_latency_b1_iqr_ms", "ORT latency b1 IQR ms", "ms", "ms", None, False, 100, "min", "", ""),
                ("onnx_throughput_img_s", "ORT throughput img/s", "img/s", "int", True, False, 100, "max", "", ""),
                (
                    "latency_b1_load",
                    "Load on free cores, latency b1",
                    "",
                    "f2",
                    None,
                    False,
                    100,
                    "mean",
                    "",
                    LOAD_DESCRIPTION,
                ),
                (
                    "onnx_latency_b1_load",
                    "Load on free cores, ORT latency b1",
                    "",
                    "f2",
                    None,
                    False,
                    100,
                    "max",
                    "",
                    LOAD_DESCRIPTION,
                ),
            )
        ),
        MetricSpec("onnx_bytes", label="ONNX size", unit="B", fmt="bytes", table=None),
    ),
    figures="compressbench.evaluate.efficiency_report:figures",
)
def efficiency(model: nn.Module, ctx: EvalContext, params: EfficiencyParams) -> list[Measurement]:
    input_shape = (1, ctx.meta.channels, *ctx.meta.size)
    ck = ctx.extra.get("checkpoint")
    target = {"kind": "checkpoint", "path": str(ck), **worker_trust(plugins=ctx.plugins)} if ck else None
    int8 = quantization_kind(model) == "int8"
    float_model = calib = None
    if params.onnx and ((int8 and params.onnx_int8 != "never") or params.onnx_int8 == "always"):
        if int8:
            # torch.ao int8 modules do not export to ONNX: ORT int8 is onnxruntime's own static
            # quantization of the float model. Pure quantization: the trained parent. After an
            # architecture-changing step (pipeline): that architecture, random weights (speed only).
            if target and not all(step_quantizes(s) for s in ctx.variant.steps):
                float_model = float_source_from_checkpoint(target)
            else:
                float_model = ctx.load_parent()
        calib = [x.numpy() for x, _, _ in islice(ctx.data.train.batches(32), params.calib_batches)]
    rep = profile(model, input_shape, params, target=target, float_model=float_model, calib=calib, workdir=ctx.workdir)
    Path(ctx.workdir).mkdir(parents=True, exist_ok=True)
    (Path(ctx.workdir) / "efficiency.json").write_text(json.dumps(rep, indent=1, default=str))
    return to_measurements(rep)

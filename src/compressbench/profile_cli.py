"""``compressbench profile TARGET``: the efficiency profile of one model, as tables and JSON.

TARGET is a saved checkpoint (``.pt``), a ``package.module:factory`` or a registered model name. The
measuring is :func:`compressbench.measure.profiling.profile`; this module parses flags, builds the
model and renders the result. Bad input (no ``--input-shape`` for a factory, a malformed shape, a
missing checkpoint, an out-of-range flag) is one line and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from torch import nn

from .errors import CheckpointError
from .measure.precision import quantization_kind
from .measure.profiling import ProfileSettings, profile
from .measure.targets import ProfileInputError, build_factory, float_source_from_checkpoint

if TYPE_CHECKING:
    from rich.console import Group

_FLAG = {"throughput_batch": "--batch"}  # settings field -> flag, where the names differ


def parse_shape(s: str) -> tuple[int, ...]:
    """``"1,3,32,32"`` (or ``1x3x32x32``) -> ``(1, 3, 32, 32)``: at least N,C, all positive."""
    try:
        shape = tuple(int(v) for v in s.replace("x", ",").split(",") if v.strip())
    except ValueError:
        shape = ()
    if len(shape) < 2 or any(v <= 0 for v in shape):
        raise ProfileInputError(f"--input-shape must be positive integers like 1,3,32,32, got '{s}'")
    return shape


def load_target(
    target: str,
    input_shape: tuple[int, ...] | None = None,
    num_classes: int = 10,
    kwargs: dict[str, Any] | None = None,
    *,
    trust: bool = False,
) -> tuple[nn.Module, dict[str, Any], tuple[int, ...]]:
    """A model from a checkpoint (.pt), a ``package.module:factory`` or a registered model name.
    Returns (model, worker target dict, input shape). ``trust``: see ``checkpoint.load_model``."""
    from .checkpoint import load_model, worker_trust

    p = Path(target)
    if p.suffix in (".pt", ".pth") or p.is_file():
        if not p.is_file():
            raise CheckpointError(f"checkpoint '{target}' does not exist")
        model, ck = load_model(p, trust=trust)
        if input_shape is None:
            meta = ck["spec"]["meta"]
            input_shape = (1, meta["channels"], *meta["size"])
        return model, {"kind": "checkpoint", "path": str(p.resolve()), **worker_trust(trust)}, input_shape
    if input_shape is None:
        raise ProfileInputError(f"'{target}' is not a checkpoint: give --input-shape N,C,H,W, e.g. 1,3,32,32")
    spec = {
        "kind": "factory",
        "target": target,
        "kwargs": dict(kwargs or {}),
        "input_shape": list(input_shape),
        "num_classes": num_classes,
        "sys_path": [os.getcwd()],
    }
    return build_factory(spec), spec, input_shape


def settings_from_args(args: argparse.Namespace) -> ProfileSettings:
    """The protocol settings the flags ask for; an out-of-range flag is one line naming it."""
    try:
        return ProfileSettings(
            throughput_batch=args.batch,
            threads=args.threads,
            repeats=args.repeats,
            throughput_repeats=args.throughput_repeats,
            warmup=args.warmup,
            onnx=False if args.no_onnx else None,
            onnx_int8=args.onnx_int8,
            fresh_process=not args.in_process,
            timing=not args.no_timing,
            device=args.device,
        )
    except ValidationError as e:
        err = e.errors()[0]
        field = str(err["loc"][0]) if err["loc"] else ""
        flag = _FLAG.get(field, "--" + field.replace("_", "-"))
        raise ProfileInputError(f"{flag}: {err['msg']} (got {err.get('input')!r})") from None


def add_profile_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``compressbench profile TARGET``."""
    parser.add_argument("target", help="saved checkpoint (.pt), package.module:factory, or a registered model name")
    parser.add_argument("--input-shape", help="N,C,H,W for factories / model names (e.g. 1,3,32,32)")
    parser.add_argument("--num-classes", type=int, default=10, help="classes for model names / meta factories")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads (0 = all cores; default 1)")
    parser.add_argument(
        "--batch", type=int, default=None, help="throughput batch (default 64 CPU / 256 GPU; 0 = no throughput run)"
    )
    parser.add_argument("--repeats", type=int, default=50, help="batch-1 timing samples")
    parser.add_argument("--throughput-repeats", type=int, default=10, help="throughput-batch timing samples")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--no-onnx", action="store_true", help="skip ONNX export / ONNX Runtime")
    parser.add_argument(
        "--onnx-int8",
        choices=["auto", "always", "never"],
        default="auto",
        help="ONNX Runtime static int8 (auto: quantized models only)",
    )
    parser.add_argument("--in-process", action="store_true", help="time in this process (default: fresh process)")
    parser.add_argument("--no-timing", action="store_true", help="params, bytes and FLOPs only")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--json", metavar="FILE", help="write the full profile as JSON")
    parser.add_argument(
        "--trust-code",
        action="store_true",
        help="let a checkpoint's 'pkg.mod:factory' model name be imported and run (trusted files only)",
    )


def profile_command(args: argparse.Namespace) -> int:
    """``compressbench profile``: print a table, optionally write JSON. Returns the exit code."""
    from rich.console import Console

    settings = settings_from_args(args)
    shape = parse_shape(args.input_shape) if args.input_shape else None
    model, target, shape = load_target(args.target, shape, args.num_classes, trust=args.trust_code)
    float_model = None
    if settings.onnx and quantization_kind(model) == "int8":
        float_model = float_source_from_checkpoint(target)
    rep = profile(model, shape, settings, target=target, float_model=float_model)
    rep["target"] = args.target
    Console(width=max(160, Console().width)).print(render_table({args.target: rep}))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(rep, indent=1, default=str))
    return 0


def _fmt_bytes(n: float) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"


def summary_rows(rep: dict[str, Any], ref: dict[str, Any] | None = None) -> tuple[dict[str, str], dict[str, str]]:
    """Readable cells of one profile — (size & compute, speed) — with ratios against ``ref``."""
    b, f, p = rep["bytes"], rep["flops"], rep["params"]
    best = min((k for k in b if k != "torch.save"), key=lambda k: b[k])
    size = {
        "params": f"{p['params'] / 1e6:.3f} M",
        "nonzero [T]": f"{p['params_nonzero'] / 1e6:.3f} M",
        "dense [R]": _fmt_bytes(b["torch.save"]),
        "compressed [R]": f"{_fmt_bytes(b[best])} {best}",
        "FLOPs [T]": f"{f['flops'] / 1e6:.1f} M",
        "eff. FLOPs [T]": f"{f['flops_effective'] / 1e6:.1f} M",
    }
    if f.get("int8_ops"):
        size["FLOPs [T]"] += " (int8)"
    if ref is not None:
        size["bytes ×"] = f"{b['torch.save'] / ref['bytes']['torch.save']:.3f}"
        size["compr. ×"] = f"{b[best] / ref['bytes']['torch.save']:.3f}"
    speed: dict[str, str] = {}
    t = rep.get("torch")
    if t:
        speed["b1 ms [R]"] = f"{t['latency']['median_ms']:.2f} ±{t['latency']['iqr_ms']:.2f}"
        if ref is not None and ref.get("torch"):
            r = t.get("speedup_b1") or ref["torch"]["latency"]["median_ms"] / t["latency"]["median_ms"]
            speed["b1 speedup"] = f"{r:.2f}×"
        if "throughput" in t:
            speed["img/s [R]"] = f"{t['throughput']['img_s']:.0f}"
        if t.get("peak_mem_mb") is not None:
            speed["peak MB [R]"] = f"{t['peak_mem_mb']:.0f}"
    for dt in ("fp32", "int8"):
        r = (rep.get("onnx") or {}).get(dt)
        if isinstance(r, dict) and "latency" in r:
            speed[f"ORT {dt} b1 ms [R]"] = f"{r['latency']['median_ms']:.2f}"
            if "throughput" in r:
                speed[f"ORT {dt} img/s [R]"] = f"{r['throughput']['img_s']:.0f}"
    return size, speed


def render_table(reps: dict[str, dict[str, Any]], ref: str | None = None) -> Group:
    """Rich tables (size & compute, then speed): one row per profiled model.
    [R] realised (measured / really encoded), [T] theoretical (counted)."""
    from rich.console import Group
    from rich.table import Table

    rows = {name: summary_rows(r, reps.get(ref) if ref else None) for name, r in reps.items()}
    any_rep = next(iter(reps.values()))
    hw, st = any_rep["hardware"], any_rep["settings"]
    titles = (
        "size and compute — [R] realised (bytes really written), [T] theoretical (counted)",
        f"speed — {hw['cpu']}, {st['threads']} thread(s), torch {hw['torch']}, onnxruntime "
        f"{hw['onnxruntime']}, throughput batch {st['throughput_batch']}; median ± IQR",
    )
    tables = []
    for i, title in enumerate(titles):
        cols: list[str] = []
        for r in rows.values():
            cols += [c for c in r[i] if c not in cols]
        if not cols:
            continue
        table = Table(title=title, title_justify="left")
        table.add_column("model", no_wrap=True)
        for c in cols:
            table.add_column(c, justify="right")
        for name, r in rows.items():
            table.add_row(name, *[r[i].get(c, "—") for c in cols])
        tables.append(table)
    return Group(*tables)

"""The prepared GPU check: what compressbench does on one CUDA GPU, in one table, in ≤ 10 minutes.

Run it through ``benchmarks/gpu_check.sh`` (each section in its own process, under its own timeout,
then one table); each section is also a subcommand of this script::

    python benchmarks/gpu_check.py tests   --out DIR  # (a) the CUDA-marked tests (pytest -m cuda)
    python benchmarks/gpu_check.py train   --out DIR  # (b) CIFAR ResNet-18 training: fp32, AMP bf16, channels_last
    python benchmarks/gpu_check.py latency --out DIR  # (c) b1 latency and b256 throughput per variant family
    python benchmarks/gpu_check.py corrupt --out DIR  # (d) the corruption evaluator's loop, GPU vs CPU
    python benchmarks/gpu_check.py ray     --out DIR  # (e) a Ray run with evaluate num_gpus 0.25 vs the CPU run
    python benchmarks/gpu_check.py table DIR          # the table of every section's rows

Every section writes ``DIR/<section>.json`` (its rows: item, value, note). Without a CUDA device a GPU
section writes one row "skipped: no CUDA device", and the parts that need no GPU still run (the CPU
side of (d), the CPU run of (e)). GPU timings use CUDA events after a warm-up (synchronised); CPU
timings ``time.perf_counter``. Nothing here is a target: the numbers are what this GPU does.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
sys.path.insert(0, str(SRC))

import torch  # noqa: E402
from torch import nn  # noqa: E402

SKIP = "skipped: no CUDA device"
CUDA = torch.cuda.is_available()


def rows_out(out: Path, section: str, rows: list[dict[str, Any]]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{section}.json").write_text(json.dumps(rows, indent=1))
    for r in rows:
        print(f"{section:8s} {r['item']:44s} {r['value']:>16s}  {r.get('note', '')}", flush=True)


def row(item: str, value: str, note: str = "") -> dict[str, Any]:
    return {"item": item, "value": value, "note": note}


def cuda_time(fn: Callable[[], Any], reps: int, warmup: int = 5) -> list[float]:
    """Seconds per call, each call between two CUDA events (synchronised), after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b) / 1e3)
    return times


def cifar_meta():
    from compressbench.data.base import DataMeta

    return DataMeta("cifar10-shape", 10, 3, (32, 32), (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))


# --------------------------------------------------------------------------- (a) CUDA-marked tests
def section_tests(out: Path) -> None:
    if not CUDA:
        return rows_out(out, "tests", [row("pytest -m cuda", SKIP)])
    t = time.perf_counter()
    p = subprocess.run(
        [sys.executable, "-m", "pytest", "-m", "cuda", "-q", "-p", "no:cacheprovider", str(HERE.parent / "tests")],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(SRC)},
    )
    last = [ln for ln in p.stdout.splitlines() if ln.strip()][-1:] or ["(no output)"]
    fails = [ln for ln in p.stdout.splitlines() if ln.startswith("FAILED")]
    rows = [
        row(
            "pytest -m cuda",
            "ok" if p.returncode == 0 else f"exit {p.returncode}",
            f"{last[0]} ({time.perf_counter() - t:.0f} s)",
        )
    ]
    rows += [row("  failed", "", f[7:][:100]) for f in fails[:8]]
    rows_out(out, "tests", rows)


# --------------------------------------------------------------------------- (b) training throughput
def _train_step(x: torch.Tensor, y: torch.Tensor, amp: bool, channels_last: bool) -> Callable[[], None]:
    """One SGD step of a fresh CIFAR ResNet-18 on (x, y), AMP (bf16 autocast) and/or channels_last."""
    from compressbench.models import create_model

    torch.manual_seed(0)
    model = create_model("cifar_resnet18", cifar_meta()).to(x.device).train()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
            loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()

    return step


def section_train(out: Path, steps: int = 30, batch: int = 256) -> None:
    if not CUDA:
        return rows_out(out, "train", [row("ResNet-18 training img/s", SKIP)])
    dev = torch.device("cuda")
    torch.backends.cudnn.benchmark = True
    g = torch.Generator(device=dev).manual_seed(0)
    x = torch.rand(batch, 3, 32, 32, device=dev, generator=g)
    y = torch.randint(0, 10, (batch,), device=dev, generator=g)
    rows = []
    for name, amp, cl in (
        ("fp32", False, False),
        ("AMP bf16", True, False),
        ("fp32 channels_last", False, True),
        ("AMP bf16 + channels_last", True, True),
    ):
        t = cuda_time(_train_step(x, y, amp, cl), steps, warmup=10)
        rows.append(
            row(
                f"ResNet-18 train, b{batch}, {name}",
                f"{batch / statistics.median(t):,.0f} img/s",
                f"median of {steps} steps, synthetic 3×32×32",
            )
        )
    base = float(rows[0]["value"].split()[0].replace(",", ""))
    for r in rows[1:]:
        r["note"] += f"; {float(r['value'].split()[0].replace(',', '')) / base:.2f}× fp32"
    rows_out(out, "train", rows)


# --------------------------------------------------------------------------- (c) latency per family
def _variants(workdir: Path) -> dict[str, nn.Module | str]:
    """One CIFAR ResNet-18 variant per family, random weights (speed does not depend on them), built on
    the CPU with the registered methods (no fine-tuning) — as benchmarks/efficiency.py builds them."""
    sys.path.insert(0, str(HERE))
    import efficiency as eff  # benchmarks/efficiency.py

    from compressbench.compress import compress
    from compressbench.interfaces import Budget
    from compressbench.models import create_model
    from compressbench.registry import methods

    parent = eff.baseline()
    out: dict[str, nn.Module | str] = {"baseline (fp32)": parent}
    for label, name in (("prune.unstructured 90 %", "unstructured90"), ("prune.structured 50 %", "structured50")):
        try:
            out[label] = eff.build_registered(name, parent, workdir)[0]
        except Exception as e:  # a family that cannot be built is a row, not a crash
            out[label] = f"error: {type(e).__name__}: {e}"
    try:
        p = methods.spec("lowrank").params.model_validate({"ratio": 0.5, "finetune": {"epochs": 0}})
        out["lowrank 0.5"] = compress("lowrank", parent, eff._ctx(workdir), Budget("knob", 0.5), p).model.eval()
    except Exception as e:
        out["lowrank 0.5"] = f"error: {type(e).__name__}: {e}"
    torch.manual_seed(0)
    out["distill student (width 0.5)"] = create_model("cifar_resnet18", cifar_meta(), width=0.5).eval()
    out["quantize.static int8"] = "n/a on CUDA: torch.ao int8 kernels run on the CPU (x86 / qnnpack) only"
    return out


def section_latency(out: Path) -> None:
    if not CUDA:
        return rows_out(out, "latency", [row("b1 latency / b256 throughput per family", SKIP)])
    dev = torch.device("cuda")
    torch.backends.cudnn.benchmark = True
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, m in _variants(Path(tmp)).items():
            if isinstance(m, str):
                rows.append(row(label, "—", m))
                continue
            m = m.to(dev).eval()
            with torch.inference_mode():
                b1 = cuda_time(partial(m, torch.rand(1, 3, 32, 32, device=dev)), 200, warmup=20)
                b256 = cuda_time(partial(m, torch.rand(256, 3, 32, 32, device=dev)), 50, warmup=10)
            q1, q3 = statistics.quantiles(b1, n=4)[0], statistics.quantiles(b1, n=4)[2]
            rows.append(
                row(
                    label,
                    f"{statistics.median(b1) * 1e3:.3f} ms",
                    f"b1 median (IQR {(q3 - q1) * 1e3:.3f} ms, 200 runs); b256 "
                    f"{256 / statistics.median(b256):,.0f} img/s",
                )
            )
    rows_out(out, "latency", rows)


# --------------------------------------------------------------------------- (d) corruptions GPU vs CPU
def _evaluator_loop(device: torch.device, size: int, n: int, batch: int, names: tuple[str, ...]) -> float:
    """img/s of the corruption evaluator's inner loop: uint8 batch on the device -> corrupt (uint8 path,
    as the evaluator with quantize: true) -> float -> model -> argmax, for every corruption at severity 3."""
    from compressbench.data.base import DataMeta
    from compressbench.evaluate.corruptions import corrupt
    from compressbench.models import create_model

    meta = DataMeta("bench", 10, 3, (size, size), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    torch.manual_seed(0)
    model = create_model("cifar_resnet18" if size <= 64 else "tv_resnet18", meta).to(device).eval()
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g).to(device)
    idx = torch.arange(n)

    def run() -> None:
        with torch.inference_mode():
            for name in names:
                for s in range(0, n, batch):
                    xc = corrupt(x[s : s + batch], idx[s : s + batch], name, 3)
                    model(xc.float().div_(255)).argmax(1)

    with torch.inference_mode():  # warm-up: kernels, tables, textures
        for name in names:
            model(corrupt(x[:1], idx[:1], name, 3).float().div_(255))
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    run()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return n * len(names) / (time.perf_counter() - t)


def section_corrupt(out: Path) -> None:
    from compressbench.evaluate.corruptions import SUITES

    names = SUITES["cifar10-c"]
    note = (
        f"15 CIFAR-10-C corruptions × severity 3: corrupt (uint8) + ResNet-18 forward; CPU "
        f"{torch.get_num_threads()} threads"
    )
    rows = []
    for size, n_gpu, n_cpu, batch in ((32, 2048, 32, 256), (224, 256, 1, 64)):
        cpu = _evaluator_loop(torch.device("cpu"), size, n_cpu, min(batch, n_cpu), names)
        if CUDA:
            gpu = _evaluator_loop(torch.device("cuda"), size, n_gpu, batch, names)
            rows.append(row(f"corruption evaluator {size} px, GPU", f"{gpu:,.0f} img/s", f"{gpu / cpu:.1f}× CPU"))
        else:
            rows.append(row(f"corruption evaluator {size} px, GPU", SKIP))
        rows.append(row(f"corruption evaluator {size} px, CPU", f"{cpu:,.0f} img/s", note))
        out.mkdir(parents=True, exist_ok=True)
        (out / "corrupt.json").write_text(json.dumps(rows, indent=1))  # what is done, should the next size time out
    rows_out(out, "corrupt", rows)


# --------------------------------------------------------------------------- (e) Ray with fractional GPUs
def _ray_config(tmp: Path, weights: Path, **over: Any) -> dict[str, Any]:
    return {
        "name": "gpucheck",
        "seeds": [0],
        "threads": 1,
        "dataset": {"name": "digits", "eval_subset": 1000},
        "model": {"name": "tinycnn", "weights": str(weights)},
        "train": None,
        "variants": [
            {"method": "prune.unstructured", "params": {"finetune": {"epochs": 0}}, "budget": {"params": 0.5}}
        ],
        "evaluations": [
            {"evaluator": "clean"},
            {"evaluator": "corruptions", "params": {"suites": ["cifar10-c"], "severities": [3], "subset": 1000}},
        ],
        "cache_dir": str(tmp / "cache"),
        **over,
    }


def _top1(store: Path) -> dict[tuple, float]:
    import sqlite3

    with sqlite3.connect(store) as c:
        rows = c.execute(
            "SELECT variant, evaluator, condition, value FROM results WHERE error IS NULL AND metric = 'top1'"
        ).fetchall()
    return {r[:3]: r[3] for r in rows}


def section_ray(out: Path) -> None:
    """A trained tinycnn (digits, 2 epochs, CPU) is the baseline of both runs (``model.weights``, nothing
    trained), so that the runs differ only where they evaluate: the local executor on the CPU, then Ray
    with ``evaluate: {num_gpus: 0.25}`` (four evaluation jobs share the GPU). Asserts every top-1 row
    equal within 0.5 pt."""
    from compressbench.data import load_dataset
    from compressbench.models import create_model
    from compressbench.runner import run
    from compressbench.train import TrainRecipe, train
    from compressbench.validate import validate

    rows = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        data = load_dataset("digits", cache_dir=tmp / "data")
        torch.manual_seed(0)
        model = create_model("tinycnn", data.meta)
        train(
            model, data.train, TrainRecipe(epochs=2, batch_size=64, lr=0.1, augment="none"), seed=0, show_progress=False
        )
        weights = tmp / "tinycnn_digits.pt"
        torch.save(model.state_dict(), weights)
        t = time.perf_counter()
        run(validate(_ray_config(tmp / "cpu", weights, device="cpu", store=str(tmp / "cpu.sqlite"))), progress=False)
        cpu = _top1(tmp / "cpu.sqlite")
        rows.append(row("CPU run (local executor)", f"{len(cpu)} top-1 rows", f"{time.perf_counter() - t:.0f} s"))
        gpu_cfg = _ray_config(
            tmp / "gpu",
            weights,
            device="cuda",
            store=str(tmp / "gpu.sqlite"),
            executor={
                "name": "ray",
                "resources": {"train": {"num_gpus": 1}, "compress": {"num_gpus": 1}, "evaluate": {"num_gpus": 0.25}},
            },
        )
        if not CUDA:
            validate(gpu_cfg)  # the GPU run's configuration is accepted here
            rows.append(row("Ray run, evaluate num_gpus 0.25", SKIP, "its configuration validates"))
            return rows_out(out, "ray", rows)
        t = time.perf_counter()
        run(validate(gpu_cfg), progress=False)
        gpu = _top1(tmp / "gpu.sqlite")
        diffs = {k: abs(gpu[k] - cpu[k]) * 100 for k in cpu if k in gpu}
        missing = sorted(set(cpu) ^ set(gpu))
        worst = max(diffs.values(), default=float("nan"))
        ok = not missing and worst <= 0.5
        rows.append(
            row("Ray run, evaluate num_gpus 0.25", f"{len(gpu)} top-1 rows", f"{time.perf_counter() - t:.0f} s")
        )
        rows.append(
            row(
                "top-1 Ray GPU vs CPU, max |Δ|",
                f"{worst:.2f} pt",
                ("OK (≤ 0.5 pt)" if ok else "FAILED (> 0.5 pt or rows differ)")
                + (f"; rows only in one run: {missing[:3]}" if missing else ""),
            )
        )
    rows_out(out, "ray", rows)
    if not ok:
        sys.exit(1)


# --------------------------------------------------------------------------- the table
def table(d: Path) -> None:
    order = ("tests", "train", "latency", "corrupt", "ray")
    print(f"\n{'section':8s} | {'item':44s} | {'value':>16s} | note")
    print(f"{'-' * 8}-+-{'-' * 44}-+-{'-' * 16}-+-{'-' * 40}")
    for s in order:
        f = d / f"{s}.json"
        status = d / f"{s}.status"
        rs = json.loads(f.read_text()) if f.is_file() else []
        if not rs:
            rs = [row("(section)", "no result", status.read_text().strip() if status.is_file() else "did not run")]
        elif status.is_file():
            rs.append(row("(section)", "incomplete", status.read_text().strip()))
        for r in rs:
            print(f"{s:8s} | {r['item']:44s} | {r['value']:>16s} | {r.get('note', '')}")
    dev = torch.cuda.get_device_name(0) if CUDA else "no CUDA device"
    print(f"\ndevice: {dev}; torch {torch.__version__}; CUDA {torch.version.cuda}")


SECTIONS = {
    "tests": section_tests,
    "train": section_train,
    "latency": section_latency,
    "corrupt": section_corrupt,
    "ray": section_ray,
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("section", choices=[*SECTIONS, "table"])
    ap.add_argument("dir", nargs="?", help="table: the folder of the sections' results")
    ap.add_argument("--out", default=str(HERE / "results" / "gpu_check"))
    a = ap.parse_args()
    if a.section == "table":
        return table(Path(a.dir or a.out))
    SECTIONS[a.section](Path(a.out))


if __name__ == "__main__":
    main()

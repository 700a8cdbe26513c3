"""What ``compressbench validate`` costs on a user's model with every method — CPU seconds, wall, peak memory.

Claim: validating an experiment that lists every registered compression method (shared budgets where a method
takes one) on a user's torchvision ResNet-18 or timm MobileNetV3 (random init) takes a few CPU seconds: the
parent is built once and each method answers a capability check, with at most one bounded dry run per method
and parameters (docs/architecture.md, ``validate``). efficientvit_m0 must answer within 30 s and 2 GB.

Conditions: each validate runs in a fresh ``compressbench validate`` process (imports included, as a user
runs it), the synthetic 4-class RGB dataset at 224×224 px (probe only: no image decoded), CPU. CPU seconds are
user + sys of the child; peak memory its maximum resident set (``ru_maxrss``).

    .venv/bin/python benchmarks/validate_cost.py [--models tv_resnet18,timm:mobilenetv3_large_100] [--out FILE]

Prints one line per model and writes ``benchmarks/results/validate_cost.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

OUT = Path(__file__).parent / "results" / "validate_cost.json"
MODELS = ["tv_resnet18", "timm:mobilenetv3_large_100", "timm:efficientvit_m0"]
FT = {"finetune": {"epochs": 0.1}}
VARIANTS = [
    {"method": "prune.unstructured", "params": FT, "budgets": {"params": [0.5, 0.25]}},
    {"method": "prune.structured", "params": FT, "budgets": {"params": [0.5, 0.25]}},
    {"method": "prune.structured", "name": "structured-flops", "params": FT, "budget": {"flops": 0.5}},
    {"method": "prune.soft_filter", "params": {"train": {"epochs": 0.1}}, "budget": {"params": 0.5}},
    {"method": "lowrank", "params": FT, "budget": {"params": 0.5}},
    {"method": "distill", "params": {"epochs": 0.1}, "budget": {"params": 0.25}},
    {"method": "quantize.static", "params": {"calibration_batches": 2}},
    {"method": "quantize.qat", "params": {"finetune": {"epochs": 0.1}}},
    {"method": "quantize.dynamic"},
    {"method": "quantize.fp16"},
    {"method": "quantize.bf16"},
    {
        "name": "structured+int8",
        "method": "pipeline",
        "budget": {"params": 0.25},
        "params": {"stages": [{"method": "prune.structured", "params": FT}, {"method": "quantize.static"}]},
    },
]


def config(model: str) -> dict:
    return {
        "name": "validate-cost",
        "seeds": [0],
        "dataset": {"name": "synthetic", "options": {"size": 224, "num_classes": 10}},
        "model": {"name": model},
        "train": {"epochs": 1},
        "variants": VARIANTS,
        "evaluations": [{"evaluator": "clean"}],
    }


def measure(model: str, timeout: float) -> dict:
    """One ``compressbench validate`` of the every-method config in a fresh process."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "exp.yaml"
        path.write_text(yaml.safe_dump(config(model), sort_keys=False))
        cmd = [sys.executable, "-m", "compressbench", "validate", str(path)]
        t0 = time.perf_counter()
        log = Path(d) / "out.txt"
        with log.open("w") as fh:
            p = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT)
            rc, ru = None, None
            while rc is None:
                pid, status, ru = os.wait4(p.pid, os.WNOHANG)
                if pid:
                    rc = os.waitstatus_to_exitcode(status)
                elif time.perf_counter() - t0 > timeout:
                    p.kill()
                    _, status, ru = os.wait4(p.pid, 0)
                    rc = "timeout"
                else:
                    time.sleep(0.05)
            p.returncode = -1  # reaped here
        wall = time.perf_counter() - t0
        out = log.read_text().strip().splitlines()
    cpu = ru.ru_utime + ru.ru_stime
    return {
        "model": model,
        "rc": rc,
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "peak_rss_mb": round(ru.ru_maxrss / 1024),
        "last_line": out[-1][:300] if out else "",
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--timeout", type=float, default=600.0)
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()
    rows = []
    for m in args.models.split(","):
        r = measure(m, args.timeout)
        rows.append(r)
        print(
            f"{m:<32} rc={r['rc']} cpu {r['cpu_s']:7.2f} s  wall {r['wall_s']:7.2f} s  peak {r['peak_rss_mb']:6d} MB"
            f"  | {r['last_line']}",
            flush=True,
        )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"cpu": os.uname().machine, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()

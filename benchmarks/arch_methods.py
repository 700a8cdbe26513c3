"""Which compression method works on which architecture family — measured, cell by cell.

Claim: every (method, architecture) cell either compresses, runs and reloads bit-identically, or is
refused at ``validate`` with one line (``MethodSpec.check_model``) — never a failure mid-run.

Conditions: timm 1.0.31 architectures (ResNet-18, MobileNetV3-small, EfficientNet-B0, ConvNeXt-atto,
ViT-tiny/16; random init, then 2 SGD steps so BatchNorm scales are not at their zero init) and the
model zoo's cnn5 for reference, on the synthetic 4-class RGB set at 32×32 px (ViT built for 32 px), 128
training images, CPU, 1 thread. Each cell: the validate-time check, then the method through
``compress.budget.compress`` at a params budget of 0.5 where it takes one (tiny fine-tunes: 0.25
epoch), a forward pass, ``save_model`` / ``load_model`` and a comparison of the reloaded model's
logits; for quantized variants the latency of a batch of 8 (median of 20, 1 thread) against the
float parent.

    .venv/bin/python benchmarks/arch_methods.py [--only timm:resnet18,cnn5] [--methods quantize.static]

Prints a Markdown table and writes ``benchmarks/results/arch_methods.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
import traceback
import warnings
from pathlib import Path

import torch

os.environ.setdefault("COMPRESSBENCH_PROGRESS", "0")

from compressbench.checkpoint import load_model, save_model  # noqa: E402
from compressbench.compress import compress  # noqa: E402
from compressbench.compress.budget import check_model  # noqa: E402
from compressbench.data import load_dataset  # noqa: E402
from compressbench.interfaces import Budget, CompressContext  # noqa: E402
from compressbench.models import create_model  # noqa: E402
from compressbench.registry import methods, models  # noqa: E402
from compressbench.train import TrainRecipe, train  # noqa: E402

OUT = Path(__file__).parent / "results" / "arch_methods.json"
ARCHS = [
    "cnn5",
    "timm:resnet18",
    "timm:mobilenetv3_small_100",
    "timm:efficientnet_b0",
    "timm:convnext_atto",
    "timm:vit_tiny_patch16_224",
]
FT = {"finetune": {"epochs": 0.25}}
CASES: dict[str, tuple[dict, Budget | None]] = {
    "prune.unstructured": (FT, Budget("params", 0.5)),
    "prune.structured": (FT, Budget("params", 0.5)),
    "prune.soft_filter": ({"train": {"epochs": 0.25}}, Budget("params", 0.5)),
    "lowrank": (FT, Budget("params", 0.5)),
    "distill": ({"epochs": 0.25}, Budget("params", 0.5)),
    "quantize.static": ({"calibration_batches": 2, "batch_size": 32}, None),
    "quantize.qat": ({"calibration_batches": 2, "batch_size": 32, "finetune": {"epochs": 0.25}}, None),
    "quantize.dynamic": ({}, None),
    "quantize.fp16": ({}, None),
    "quantize.bf16": ({}, None),
    "pipeline": (
        {
            "stages": [
                {"method": "prune.structured", "params": FT},
                {"method": "quantize.static", "params": {"calibration_batches": 2}},
            ]
        },
        Budget("params", 0.5),
    ),
}
RECIPE = TrainRecipe(epochs=1, batch_size=64, lr=0.01, augment="none")


def context(bundle, spec: dict, workdir: Path) -> CompressContext:
    def ctx_train(
        model,
        epochs,
        lr=None,
        optimizer=None,
        schedule=None,
        teacher=None,
        kd_alpha=0.9,
        kd_temperature=4.0,
        kd_kind="hinton",
        desc="finetune",
        epoch_end=None,
        images=None,
    ):
        r = TrainRecipe(
            **{
                **RECIPE.__dict__,
                "epochs": epochs,
                "lr": RECIPE.lr if lr is None else lr,
                "optimizer": optimizer or RECIPE.optimizer,
                "schedule": schedule or RECIPE.schedule,
            }
        )
        train(
            model,
            images or bundle.train,
            r,
            seed=0,
            teacher=teacher,
            kd_alpha=kd_alpha,
            kd_temperature=kd_temperature,
            kd_kind=kd_kind,
            desc=desc,
            show_progress=False,
            epoch_end=epoch_end,
        )
        return model

    return CompressContext(
        data=bundle,
        meta=bundle.meta,
        device=torch.device("cpu"),
        seed=0,
        workdir=workdir,
        train=ctx_train,
        accuracy=lambda m, images=None: 0.0,
        parent_spec=spec,
        progress=False,
    )


def latency_ms(model: torch.nn.Module, x: torch.Tensor, n: int = 20) -> float:
    ts = []
    with torch.inference_mode():
        model(x)
        for _ in range(n):
            t = time.perf_counter()
            model(x)
            ts.append(time.perf_counter() - t)
    return 1000 * sorted(ts)[len(ts) // 2]


def first_line(e: BaseException) -> str:
    lines = [ln for ln in str(e).splitlines() if ln.strip()]
    return f"{type(e).__name__}: {lines[0][:200] if lines else ''}"


def run_cell(arch: str, parent: torch.nn.Module, bundle, spec: dict, method: str, tmp: Path) -> dict:
    raw, budget = CASES[method]
    params = methods.spec(method).params.model_validate(raw)
    ctx = context(bundle, spec, tmp)
    cell: dict = {"arch": arch, "method": method, "budget": budget.label() if budget else None}
    t0 = time.perf_counter()
    with torch.random.fork_rng():
        refusal = check_model(method, parent, ctx, params)
    cell["check_s"] = time.perf_counter() - t0
    cell["refused"] = refusal
    t0 = time.perf_counter()
    try:
        res = compress(method, parent, ctx, budget, params)
        x = torch.rand(8, bundle.meta.channels, *bundle.meta.size)
        with torch.inference_mode():
            y = res.model(x).float()
        path = tmp / f"{arch.replace(':', '_')}-{method}.pt"
        save_model(res.model, path, spec, res.steps)
        re, _ = load_model(path)
        with torch.inference_mode():
            y2 = re(x).float()
        cell.update(
            outcome="ok",
            seconds=time.perf_counter() - t0,
            achieved=res.achieved,
            reload_identical=bool(torch.equal(y, y2)),
            path=res.record.get("path"),
        )
        if methods.spec(method).quantizes or method == "pipeline":
            cell["latency_ms"] = latency_ms(res.model, x)
            cell["parent_latency_ms"] = latency_ms(parent, x)
    except Exception as e:
        cell.update(outcome="failed", seconds=time.perf_counter() - t0, error=first_line(e))
        logging.debug("%s", traceback.format_exc())
    cell["consistent"] = (cell["outcome"] == "ok") == (refusal is None)
    return cell


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="", help="comma-separated architectures")
    ap.add_argument("--methods", default="", help="comma-separated methods")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    archs = args.only.split(",") if args.only else ARCHS
    meths = args.methods.split(",") if args.methods else list(CASES)
    bundle = load_dataset("synthetic", n_train=128, n_test=64, size=32)
    cells = json.loads(OUT.read_text())["cells"] if OUT.is_file() else []
    cells = [c for c in cells if not (c["arch"] in archs and c["method"] in meths)]
    with tempfile.TemporaryDirectory() as d:
        for arch in archs:
            torch.manual_seed(0)
            parent = create_model(arch, bundle.meta)
            train(
                parent,
                bundle.train,
                TrainRecipe(epochs=1, batch_size=64, lr=0.01, augment="none"),
                seed=0,
                show_progress=False,
            )
            parent.eval()
            spec = {"model": arch, "width": 1.0, "kwargs": {}, "meta": bundle.meta.to_dict()}
            for method in meths:
                cell = run_cell(arch, parent, bundle, spec, method, Path(d))
                cell["family"] = models.spec(arch).family
                cells.append(cell)
                print(json.dumps(cell, default=str), flush=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"torch": torch.__version__, "cells": cells}, indent=1, default=str))
    print(table(cells))


def table(cells: list[dict]) -> str:
    archs = list(dict.fromkeys(c["arch"] for c in cells))
    meths = list(dict.fromkeys(c["method"] for c in cells))
    by = {(c["arch"], c["method"]): c for c in cells}
    head = "| method | " + " | ".join(f"`{a}`" for a in archs) + " |"
    lines = [head, "|---" * (len(archs) + 1) + "|"]
    for m in meths:
        row = [f"`{m}`"]
        for a in archs:
            c = by.get((a, m))
            if c is None:
                row.append("")
            elif c["outcome"] == "ok":
                extra = f" ({c['path'].split()[1]})" if c.get("path") else ""
                ach = c["achieved"].get("params") if c.get("budget") else None
                row.append(
                    "✓"
                    + extra
                    + (f" p={ach:.3f}" if ach else "")
                    + f" {c['seconds']:.1f}s"
                    + ("" if c.get("reload_identical") else " reload≠")
                )
            elif c.get("refused"):
                row.append("✗ validate: " + c["refused"][:80])
            else:
                row.append("**FAILED mid-run**: " + c.get("error", "")[:80])
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()

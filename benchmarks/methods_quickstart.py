"""Every compression family on the quickstart model (cnn5 on Fashion-MNIST) at matched budgets.

Trains a baseline (``--epochs``, default 2), then runs each method, measures the achieved
params / bytes / FLOPs fractions, accuracy on a fixed 2000-image test subset, the wall time,
and checks that the saved checkpoint reloads with identical predictions.

    .venv/bin/python benchmarks/methods_quickstart.py [--epochs 2] [--ft 0.25]

Prints a table and writes ``benchmarks/results/methods_quickstart.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from pathlib import Path

import torch

os.environ.setdefault("COMPRESSBENCH_PROGRESS", "0")

from compressbench.checkpoint import load_model, save_model  # noqa: E402
from compressbench.compress import compress  # noqa: E402
from compressbench.data import load_dataset  # noqa: E402
from compressbench.interfaces import Budget, CompressContext  # noqa: E402
from compressbench.models import create_model  # noqa: E402
from compressbench.registry import methods  # noqa: E402
from compressbench.train import TrainRecipe, accuracy, train  # noqa: E402

OUT = Path(__file__).parent / "results" / "methods_quickstart.json"


def make_context(bundle, recipe: TrainRecipe, spec: dict, workdir: Path) -> CompressContext:
    def ctx_train(
        model,
        epochs,
        lr=None,
        optimizer=None,
        schedule=None,
        teacher=None,
        kd_alpha=0.9,
        kd_temperature=4.0,
        desc="finetune",
    ):
        r = TrainRecipe(
            **{
                **recipe.__dict__,
                "epochs": epochs,
                "lr": recipe.lr * 0.1 if lr is None else lr,
                "optimizer": optimizer or recipe.optimizer,
                "schedule": schedule or recipe.schedule,
            }
        )
        train(
            model,
            bundle.train,
            r,
            seed=0,
            teacher=teacher,
            kd_alpha=kd_alpha,
            kd_temperature=kd_temperature,
            desc=desc,
            show_progress=False,
        )
        return model

    ev = bundle.eval_subset(2000)
    return CompressContext(
        data=bundle,
        meta=bundle.meta,
        device=torch.device("cpu"),
        seed=0,
        workdir=workdir,
        train=ctx_train,
        accuracy=lambda m, images=None: accuracy(m, images or ev),
        parent_spec=spec,
        progress=False,
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=float, default=2.0)
    ap.add_argument("--ft", type=float, default=0.25, help="fine-tune epochs after pruning / factorisation")
    ap.add_argument("--distill-epochs", type=float, default=1.0)
    ap.add_argument("--only", default="", help="comma-separated case names")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(2)
    bundle = load_dataset("fashion-mnist")
    recipe = TrainRecipe(epochs=args.epochs, batch_size=128, lr=0.05, schedule="onecycle")
    spec = {"model": "cnn5", "width": 1.0, "kwargs": {}, "meta": bundle.meta.to_dict()}
    cache = Path(tempfile.gettempdir()) / f"cb_cnn5_fmnist_{args.epochs:g}ep.pt"
    if cache.exists():
        parent, _ = load_model(cache)
        t_base = 0.0
    else:
        parent = create_model("cnn5", bundle.meta)
        t0 = time.perf_counter()
        train(parent, bundle.train, recipe, seed=0, desc="baseline")
        t_base = time.perf_counter() - t0
        save_model(parent, cache, spec)
    parent.eval()
    work = Path(tempfile.mkdtemp())
    ctx = make_context(bundle, recipe, spec, work)
    ev = bundle.eval_subset(2000)
    base_acc = accuracy(parent, ev)
    ft = {"epochs": args.ft}
    de = args.distill_epochs
    cases = [
        ("unstructured p=0.25", "prune.unstructured", Budget("params", 0.25), {"finetune": ft}),
        ("structured p=0.25", "prune.structured", Budget("params", 0.25), {"finetune": ft}),
        ("structured flops=0.25", "prune.structured", Budget("flops", 0.25), {"finetune": ft}),
        ("distill p=0.25", "distill", Budget("params", 0.25), {"epochs": de}),
        ("static int8", "quantize.static", None, {}),
        ("dynamic int8", "quantize.dynamic", None, {}),
        ("qat int8", "quantize.qat", None, {"finetune": {"epochs": 0.1}}),
        ("fp16", "quantize.fp16", None, {}),
        ("bf16", "quantize.bf16", None, {}),
        ("lowrank svd p=0.5", "lowrank", Budget("params", 0.5), {"finetune": ft}),
        ("lowrank tucker2 p=0.5", "lowrank", Budget("params", 0.5), {"conv": "tucker2", "finetune": ft}),
        (
            "structured p=0.5 -> int8",
            "pipeline",
            Budget("params", 0.5),
            {"stages": [{"method": "prune.structured", "params": {"finetune": ft}}, {"method": "quantize.static"}]},
        ),
    ]
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    rows = []
    print(f"baseline cnn5: acc {base_acc:.4f} (trained {args.epochs:g} ep in {t_base:.0f} s)")
    for label, name, budget, p in cases:
        if only and label not in only:
            continue
        t0 = time.perf_counter()
        res = compress(name, parent, ctx, budget, methods.spec(name).params.model_validate(p))
        secs = time.perf_counter() - t0
        acc = accuracy(res.model, ev)
        path = save_model(res.model, work / "v.pt", spec, res.steps)
        reloaded, _ = load_model(path)
        x = ev.x[:64].float() / 255
        with torch.inference_mode():
            same = bool(torch.equal(reloaded(x), res.model(x)))
        row = {
            "case": label,
            "method": name,
            "budget": budget.label() if budget else "",
            "accuracy": acc,
            "drop_points": 100 * (base_acc - acc),
            "seconds": secs,
            "reload_identical": same,
            **{f"achieved_{k}": v for k, v in res.achieved.items()},
            "knob": res.record.get("knob"),
            "bytes_sparse_fraction": res.record.get("bytes_sparse_fraction"),
        }
        rows.append(row)
        print(
            f"{label:26s} acc {acc:.4f} (Δ {row['drop_points']:+.2f} pt)  params {res.achieved['params']:.4f}  "
            f"bytes {res.achieved['bytes']:.4f}  flops {res.achieved['flops']:.4f}  {secs:6.1f} s  "
            f"reload={'ok' if same else 'DIFF'}",
            flush=True,
        )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(
        json.dumps(
            {
                "baseline_accuracy": base_acc,
                "baseline_epochs": args.epochs,
                "finetune_epochs": args.ft,
                "distill_epochs": de,
                "eval_images": len(ev),
                "threads": torch.get_num_threads(),
                "rows": rows,
            },
            indent=2,
        )
    )
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()

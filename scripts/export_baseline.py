"""Export a trained baseline as the files a user brings to ``compressbench``: the bare network's
``state_dict()`` (what a training script saves with ``torch.save``) and the same tensors as safetensors.

By default the quickstart's baseline (``configs/quickstart.yaml``: cnn5 on Fashion-MNIST, 3 epochs) —
taken from the cache when ``make run`` trained it already, otherwise trained now through the same cache
(so a later ``make run`` reuses it; ≈ 3 min on 2 cores). ``--epochs`` trains a shorter baseline instead
(another cache entry). Nothing but the baseline job runs.

    .venv/bin/python scripts/export_baseline.py [--config configs/quickstart.yaml] [--out results/own_model]
                                                [--epochs N]

Writes ``<out>/<model>_<dataset>.pt`` and ``<out>/<model>_<dataset>.safetensors`` and prints the
``model:`` block that compresses them (``configs/examples/own_model.yaml`` uses the ``.pt``). The network
was trained on inputs normalised with the dataset's statistics, which is what compressbench assumes for
a file that does not carry its own normalisation.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

import torch

os.environ.setdefault("COMPRESSBENCH_PROGRESS", "0")

from safetensors.torch import save_file  # noqa: E402

import compressbench as cb  # noqa: E402
from compressbench.checkpoint import load_model  # noqa: E402
from compressbench.plan import plan  # noqa: E402
from compressbench.validate import load_config, validate  # noqa: E402


def main(argv: list[str] | None = None) -> Path:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="configs/quickstart.yaml")
    ap.add_argument("--out", default="results/own_model")
    ap.add_argument("--epochs", type=float, default=None, help="train a shorter baseline (default: the config's)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out = Path(args.out)
    overrides = {"train.epochs": args.epochs} if args.epochs else {}
    exp = load_config(args.config, overrides)
    if exp.train is None:
        raise SystemExit(f"{args.config} trains no baseline (train: null); give a config that trains one")
    exp = validate({**exp.config.model_dump(mode="json"), "variants": [], "evaluations": [],
                    "store": str(out / "export.sqlite"), "seeds": exp.seeds[:1]})
    summary = cb.run(exp, progress=False)
    if summary.failed:
        raise SystemExit(f"training the baseline failed: {summary.failures[0][1]}")
    job = next(j for j in plan(exp) if j.kind == "train")
    model, _ = load_model(Path(exp.cache_dir) / "jobs" / job.key / "model.pt")
    net = {k: v.contiguous() for k, v in model.net.state_dict().items()}
    stem = out / f"{exp.model.name}_{exp.dataset.name}"
    out.mkdir(parents=True, exist_ok=True)
    torch.save(net, stem.with_suffix(".pt"))
    save_file(net, str(stem.with_suffix(".safetensors")))
    print(f"wrote {stem.with_suffix('.pt')} and {stem.with_suffix('.safetensors')} "
          f"({'cached' if summary.cached else 'trained'} baseline, job {job.key})")
    print(f"model: {{name: {exp.model.name}, weights: {stem.with_suffix('.pt')}}}   # and train: null")
    return stem.with_suffix(".pt")


if __name__ == "__main__":
    main()

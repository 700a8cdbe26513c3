"""``compressbench corrupt``: write a corrupted copy of a dataset in the CIFAR-10-C layout.

``<out>/<corruption>.npy``: uint8 (len(severities)·N)×H×W×C, the N images at the first severity,
then the next, …; ``<out>/labels.npy``: the labels, tiled the same way; ``<out>/meta.json``: dataset,
severities, seed, parameter set, the images' dataset indices, package version.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

log = logging.getLogger(__name__)


def add_corrupt_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", required=True, help="registered dataset name (e.g. cifar10, fashion-mnist)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument(
        "--corruptions",
        nargs="+",
        default=["cifar10-c"],
        help="corruption or suite names (cifar10-c, extra, noise, all); default cifar10-c",
    )
    parser.add_argument("--severities", nargs="+", type=int, default=[1, 2, 3, 4, 5])
    parser.add_argument("--subset", type=int, default=None, help="fixed seeded subset of the test split")
    parser.add_argument("--seed", type=int, default=0, help="corruption seed")
    parser.add_argument("--params", default="auto", choices=["auto", "cifar", "imagenet"], help="constant set")
    parser.add_argument("--root", default=None, help="dataset root folder")
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--batch-size", type=int, default=500)


def write_corrupted(
    images: torch.Tensor,
    labels: torch.Tensor,
    index: torch.Tensor,
    out: Path,
    names: Sequence[str],
    severities: Sequence[int],
    seed: int = 0,
    params: str = "auto",
    batch_size: int = 500,
    dataset: str = "",
    progress: bool = True,
) -> list[Path]:
    """Corrupt uint8 N×C×H×W ``images`` and write the CIFAR-10-C layout into ``out``."""
    from ...progress import progress_bar
    from .core import corrupt
    from .params import resolve_set

    out.mkdir(parents=True, exist_ok=True)
    N = len(images)
    written = []
    with progress_bar(total=len(names) * len(severities) * N, desc="corrupt", unit="img", disable=not progress) as bar:
        for name in names:
            arr = np.empty((len(severities) * N, images.shape[2], images.shape[3], images.shape[1]), np.uint8)
            for k, sev in enumerate(severities):
                for s in range(0, N, batch_size):
                    u8 = corrupt(
                        images[s : s + batch_size], index[s : s + batch_size], name, sev, seed=seed, params=params
                    )  # uint8 in -> uint8 out (truncated as the published files)
                    arr[k * N + s : k * N + s + len(u8)] = u8.permute(0, 2, 3, 1).cpu().numpy()
                    bar.update(len(u8))
            p = out / f"{name}.npy"
            np.save(p, arr)
            written.append(p)
    lab = labels.numpy()
    lab = lab.astype(np.uint8) if lab.max(initial=0) < 256 else lab.astype(np.int64)
    np.save(out / "labels.npy", np.tile(lab, len(severities)))
    meta = {
        "dataset": dataset,
        "corruptions": list(names),
        "severities": list(severities),
        "seed": seed,
        "params": resolve_set(params, images.shape[2], images.shape[3]),
        "n_per_severity": N,
        "indices": [int(i) for i in index.tolist()],
        "layout": "severity-major, uint8 NHWC",
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=1))
    return written


def corrupt_command(args: argparse.Namespace) -> int:
    """Entry point of ``compressbench corrupt``; returns the exit code."""
    from ...data import load_dataset
    from ...data.base import DatasetError
    from .core import resolve_names

    try:
        bad = [s for s in args.severities if not 1 <= s <= 5]
        if bad:
            raise ValueError(f"--severities must be in 1..5, got {bad}")
        names = resolve_names(args.corruptions)
        bundle = load_dataset(args.dataset, root=args.root, cache_dir=args.cache_dir)
        test = bundle.eval_subset(args.subset, seed=0)
        paths = write_corrupted(
            test.x,
            test.y,
            test.index,
            Path(args.out),
            names,
            args.severities,
            seed=args.seed,
            params=args.params,
            batch_size=args.batch_size,
            dataset=args.dataset,
        )
    except (ValueError, KeyError, DatasetError) as e:
        sys.stderr.write(f"error: {e}\n")
        return 2
    sys.stderr.write(f"wrote {len(paths)} corruption files + labels.npy to {args.out}\n")
    return 0

"""Throughput of our batched corruptions vs the ``imagecorruptions`` package, per corruption.

Same 32×32 RGB images, same core: both run in this process with 1 thread (torch, OpenCV,
BLAS/OpenMP limited to 1). Both take uint8 images and return uint8 images: ours as batches
(``corrupt(u8_batch, indices, ...)`` -> uint8, truncated as the published files), timed with the
``imagenet`` constants (the ones ``imagecorruptions`` uses: like for like) and with the ``cifar``
constants (our default at 32 px); ``imagecorruptions`` image by image, as it must be (its float
output cast to uint8). A corruption that raises is reported as crashed. Each side is timed
``--repeat`` times, interleaved, and its best (fastest) time kept — the usual ``timeit`` practice,
which filters out the other tenants of a shared machine. Prints a table and writes
``benchmarks/results/corruptions.json``.

    .venv/bin/pip install imagecorruptions "setuptools<81"   # bench-only; pkg_resources is needed
    .venv/bin/python benchmarks/corruptions.py [--n-ours 512] [--n-ref 96] [--batch 128] [--repeat 3]
    .venv/bin/python benchmarks/corruptions.py --size 224 --n-ours 32 --n-ref 8 --batch 16 --repeat 2 \
        --out benchmarks/results/corruptions_224.json        # larger images (no target there)
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from compressbench.data import load_dataset  # noqa: E402
from compressbench.evaluate.corruptions import SUITES, corrupt  # noqa: E402


def ours_rate(u8: torch.Tensor, name: str, params: str, batch: int) -> float:
    n = len(u8)
    corrupt(u8[:8], torch.arange(8), name, 3, params=params)  # warm caches (kernels, textures, tables)
    t = time.perf_counter()
    for sev in range(1, 6):
        for s in range(0, n, batch):
            corrupt(u8[s:s + batch], torch.arange(s, min(s + batch, n)), name, sev, params=params)
    return 5 * n / (time.perf_counter() - t)


def ref_rate(imgs: np.ndarray, name: str) -> tuple[float | None, str]:
    from imagecorruptions import corrupt as ic_corrupt

    try:
        ic_corrupt(imgs[0], corruption_name=name, severity=3)
        t = time.perf_counter()
        for sev in range(1, 6):
            for im in imgs:
                np.asarray(ic_corrupt(im, corruption_name=name, severity=sev)).astype(np.uint8)
        return 5 * len(imgs) / (time.perf_counter() - t), "ok"
    except Exception as e:  # the package is unmaintained; report, do not stop
        return None, f"crashed: {type(e).__name__}: {str(e).splitlines()[0][:80] if str(e) else ''}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-ours", type=int, default=512)
    ap.add_argument("--n-ref", type=int, default=96)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--size", type=int, default=32, help="image side (the target is defined at 32)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "corruptions.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    try:
        import cv2

        cv2.setNumThreads(1)
        import imagecorruptions

        ic_version = getattr(imagecorruptions, "__version__", "1.1.2")
        have_ref = True
    except Exception as e:
        print(f"imagecorruptions not importable ({e}); reporting ours only")
        have_ref, ic_version = False, None

    data = load_dataset("synthetic", n_train=1, n_test=max(args.n_ours, args.n_ref), size=args.size)
    u8 = data.test.x[:args.n_ours].contiguous()
    ref_imgs = data.test.x[:args.n_ref].permute(0, 2, 3, 1).numpy()
    rows = []
    head = ("corruption", "ours(imagenet)", "ours(cifar)", "imagecorr.", "speedup")
    print(f"{head[0]:18s} {head[1]:>14s} {head[2]:>12s} {head[3]:>11s} {head[4]:>8s}  status")
    for name in SUITES["all"]:
        o_in = o_ci = 0.0
        r: float | None = None
        status = "not installed"
        for _ in range(args.repeat):  # interleaved; best of each
            o_in = max(o_in, ours_rate(u8, name, "imagenet", args.batch))
            if have_ref and status in ("ok", "not installed"):
                ri, status = ref_rate(ref_imgs, name)
                r = max(r or 0.0, ri) if ri else None
            if args.size <= 64:  # the CIFAR constants are for small images
                o_ci = max(o_ci, ours_rate(u8, name, "cifar", args.batch))
        sp = o_in / r if r else None
        rows.append({"corruption": name, "ours_imagenet_img_s": o_in, "ours_cifar_img_s": o_ci or None,
                     "imagecorruptions_img_s": r, "speedup": sp, "status": status})
        print(f"{name:18s} {o_in:14.0f} {o_ci or float('nan'):12.0f} {r if r else float('nan'):11.0f} "
              f"{sp if sp else float('nan'):7.1f}x  {status}", flush=True)
    sps = [r["speedup"] for r in rows if r["speedup"]]
    geo = math.exp(sum(math.log(s) for s in sps) / len(sps)) if sps else None
    load = os.getloadavg()
    print(f"geometric-mean speedup over {len(sps)} corruptions both implement: {geo:.1f}x" if geo else "no reference")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"load average during run: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {cores} usable cores")
    out = {"rows": rows, "geomean_speedup": geo, "n_both": len(sps), "threads": 1, "n_ours": args.n_ours,
           "n_ref": args.n_ref, "batch": args.batch, "repeat": args.repeat,
           "timing": "best of repeat, interleaved", "image_size": args.size, "severities": [1, 2, 3, 4, 5],
           "loadavg": load,
           "cpu": platform.processor() or platform.machine(), "cores": cores,
           "torch": torch.__version__, "imagecorruptions": ic_version,
           "all_ours_work": all(r["ours_imagenet_img_s"] > 0 for r in rows)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""Throughput of our batched corruptions vs the ``imagecorruptions`` package, per corruption.

Same RGB images (the seeded ``synthetic`` dataset, 32×32 by default, ``--size`` for larger ones),
same core: both run with 1 thread (torch, OpenCV, BLAS/OpenMP limited to 1). Both take uint8 images
and return uint8 images: ours as batches (``corrupt(u8_batch, indices, ...)`` -> uint8, truncated as
the published files), timed with the ``imagenet`` constants (the ones ``imagecorruptions`` uses:
like for like) and, at ≤ 64 px, with the ``cifar`` constants (our default there);
``imagecorruptions`` image by image, as it must be (its float output cast to uint8). A corruption
that raises is reported as crashed.

Timing: each side is timed ``--repeat`` times, interleaved, and its best (fastest) run kept — the
``timeit`` practice, which filters out the other tenants of a shared machine. Both clocks are
recorded: wall-clock time and the process's CPU time (user + system). The speed-up is computed from
CPU time by default (``--clock``): on a loaded 2-core machine a single-threaded run spends a varying
share of its wall-clock time waiting for a core, which moves wall-clock rates by 2–3× between runs.

Each side runs in a worker process of its own (1 thread, same images), the sides interleaved: a
process's heap history changes its page-fault costs (glibc moves its mmap threshold with the sizes
freed), so no side shares a process with another. ``--before-src DIR`` adds a "before" column: our
corruptions as another source tree (e.g. the main branch's ``src``) computes them — before and after
measured side by side, in one run.

Prints a table and writes ``benchmarks/results/corruptions.json`` (``--out``).

    .venv/bin/pip install imagecorruptions "setuptools<81"   # bench-only; pkg_resources is needed
    # or, leaving .venv as it is: .venv/bin/pip install --target /tmp/icpkgs --no-deps imagecorruptions \
    #     opencv-python-headless "setuptools<81", then run with PYTHONPATH=/tmp/icpkgs (kept for both sides)
    .venv/bin/python benchmarks/corruptions.py [--n-ours 512] [--n-ref 96] [--batch 128] [--repeat 3]
    .venv/bin/python benchmarks/corruptions.py --size 224 --n-ours 32 --n-ref 16 --batch 16 --repeat 5 \\
        --before-src /path/to/main/src --out benchmarks/results/corruptions_224.json
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Callable  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

import compressbench  # noqa: E402
from compressbench.data import load_dataset  # noqa: E402
from compressbench.evaluate.corruptions import SUITES, corrupt  # noqa: E402
from compressbench.measure.hardware import cpu_id, cpu_model  # noqa: E402


class Rate:
    """Images per second of one side, by wall-clock and by CPU time, the best run of each kept."""

    def __init__(self) -> None:
        self.wall = self.cpu = 0.0

    def add(self, n: int, wall_s: float, cpu_s: float) -> None:
        self.wall = max(self.wall, n / wall_s)
        self.cpu = max(self.cpu, n / max(cpu_s, 1e-9))

    def get(self, clock: str) -> float:
        return self.cpu if clock == "cpu" else self.wall


def timed(fn: Callable[[], None]) -> tuple[float, float]:
    t, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t, time.process_time() - c


def images(size: int, n: int) -> torch.Tensor:
    return load_dataset("synthetic", n_train=1, n_test=n, size=size).test.x[:n].contiguous()


def ours_run(u8: torch.Tensor, name: str, params: str, batch: int) -> tuple[int, float, float]:
    """One timed pass over the 5 severities (after a warm-up call): (images, wall s, CPU s)."""
    n = len(u8)
    corrupt(u8[:8], torch.arange(8), name, 3, params=params)  # warm caches (kernels, textures, tables)

    def run() -> None:
        for sev in range(1, 6):
            for s in range(0, n, batch):
                corrupt(u8[s : s + batch], torch.arange(s, min(s + batch, n)), name, sev, params=params)

    return (5 * n, *timed(run))


def ref_run(imgs: np.ndarray, name: str) -> tuple[int, float, float] | str:
    from imagecorruptions import corrupt as ic_corrupt

    def run() -> None:
        for sev in range(1, 6):
            for im in imgs:
                np.asarray(ic_corrupt(im, corruption_name=name, severity=sev)).astype(np.uint8)

    try:
        ic_corrupt(imgs[0], corruption_name=name, severity=3)
        return (5 * len(imgs), *timed(run))
    except Exception as e:  # the package is unmaintained; report, do not stop
        return f"crashed: {type(e).__name__}: {str(e).splitlines()[0][:80] if str(e) else ''}"


def _holds_compressbench(entry: str) -> bool:
    """Whether a PYTHONPATH entry is a source tree of this package (its own ``src``, not the side's)."""
    return (Path(entry) / "compressbench" / "__init__.py").exists()


class Worker:
    """One side of the comparison in a process of its own (``--worker KIND``), fed one line per timed run:
    our corruptions as the source tree ``src`` computes them (``ours``), or ``imagecorruptions`` (``ref``).
    Each side has its own process so that no side's heap or caches shape another's timings: glibc moves
    its mmap threshold with the sizes freed, and a process that also ran the reference's float64 images
    (as this script's own process once did for "ours") pays different page-fault costs than a fresh one."""

    def __init__(self, kind: str, src: str, size: int, n_ours: int, n_ref: int):
        # ``src`` first; other PYTHONPATH entries (e.g. a folder holding imagecorruptions) kept, other trees' not
        keep = [e for e in os.environ.get("PYTHONPATH", "").split(os.pathsep) if e and not _holds_compressbench(e)]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, *keep])}
        cmd = [
            sys.executable,
            __file__,
            "--worker",
            kind,
            "--size",
            str(size),
            "--n-ours",
            str(n_ours),
            "--n-ref",
            str(n_ref),
        ]
        self.p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)

    def run(self, name: str, params: str = "-", batch: int = 0) -> tuple[int, float, float] | str:
        assert self.p.stdin and self.p.stdout
        self.p.stdin.write(f"{name} {params} {batch}\n")
        self.p.stdin.flush()
        line = self.p.stdout.readline().strip()
        if not line or line.startswith("crashed") or line.startswith("not installed"):
            return line or "crashed: worker exited"
        n, wall, cpu = line.split()
        return int(n), float(wall), float(cpu)

    def close(self) -> None:
        if self.p.stdin:
            self.p.stdin.close()
        self.p.wait(timeout=60)


def worker(kind: str, size: int, n_ours: int, n_ref: int) -> None:
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    u8 = images(size, max(n_ours, n_ref))
    if kind == "ref":
        try:
            import cv2

            cv2.setNumThreads(1)
            import imagecorruptions  # noqa: F401
        except Exception as e:
            for _ in sys.stdin:
                print(f"not installed: {type(e).__name__}", flush=True)
            return
        ref_imgs = u8[:n_ref].permute(0, 2, 3, 1).numpy()
    u8 = u8[:n_ours].contiguous()
    for line in sys.stdin:
        name, params, batch = line.split()
        res = ref_run(ref_imgs, name) if kind == "ref" else ours_run(u8, name, params, int(batch))
        print(res if isinstance(res, str) else " ".join(str(v) for v in res), flush=True)


def geomean(xs: list[float]) -> float | None:
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else None


def _reference_libraries() -> dict[str, str] | None:
    """The versions of the C libraries behind the reference (another OpenCV build moves its rows), or None."""
    try:
        import cv2
        import PIL

        return {"opencv": cv2.__version__, "pillow": PIL.__version__}
    except Exception:
        return None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-ours", type=int, default=512)
    ap.add_argument("--n-ref", type=int, default=96)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--size", type=int, default=32, help="image side (the 15× target is defined at 32)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "corruptions.json"))
    ap.add_argument(
        "--clock",
        choices=["cpu", "wall"],
        default="cpu",
        help="the time the speed-up is computed from: the process's CPU time (default: robust on a "
        "shared, loaded machine) or wall-clock time (both are recorded)",
    )
    ap.add_argument(
        "--before-src",
        default=None,
        help="another source tree's src/ (e.g. main's): timed as a 'before' column, interleaved",
    )
    ap.add_argument("--only", default=None, help="comma-separated corruptions (default: all 19)")
    ap.add_argument("--worker", choices=["ours", "ref"], default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args.worker, args.size, args.n_ours, args.n_ref)
    clock = args.clock
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    try:
        import imagecorruptions

        ic_version = getattr(imagecorruptions, "__version__", "1.1.2")
        have_ref = True
    except Exception as e:
        print(f"imagecorruptions not importable ({e}); reporting ours only")
        have_ref, ic_version = False, None

    here = str(Path(compressbench.__file__).resolve().parents[1])  # this tree's src/
    sides = {"ours": Worker("ours", here, args.size, args.n_ours, args.n_ref)}
    if args.before_src:
        sides["before"] = Worker("ours", args.before_src, args.size, args.n_ours, args.n_ref)
    if have_ref:
        sides["ref"] = Worker("ref", here, args.size, args.n_ours, args.n_ref)
    names = args.only.split(",") if args.only else SUITES["all"]
    rows = []
    before = "before" in sides
    print(
        f"{'corruption':18s} {'ours(imagenet)':>14s} {'ours(cifar)':>12s} {'imagecorr.':>11s} {'speedup':>8s}"
        + (f" {'before':>8s} {'b.speedup':>9s} {'after/before':>12s}" if before else "")
        + "  status"
    )
    for name in names:
        o_in, o_ci, r, b = Rate(), Rate(), Rate(), Rate()
        status = "ok" if have_ref else "not installed"
        for _ in range(args.repeat):  # interleaved; best of each
            o_in.add(*sides["ours"].run(name, "imagenet", args.batch))
            if before:
                b.add(*sides["before"].run(name, "imagenet", args.batch))
            if have_ref and status == "ok":
                res = sides["ref"].run(name)
                status = res if isinstance(res, str) else "ok"
                if not isinstance(res, str):
                    r.add(*res)
            if args.size <= 64:  # the CIFAR constants are for small images
                o_ci.add(*sides["ours"].run(name, "cifar", args.batch))
        ok = status == "ok"
        row = {
            "corruption": name,
            "status": status,
            "ours_imagenet_img_s": o_in.get(clock),
            "ours_cifar_img_s": o_ci.get(clock) or None,
            "imagecorruptions_img_s": r.get(clock) if ok else None,
            "speedup": o_in.get(clock) / r.get(clock) if ok else None,
            "speedup_wall": o_in.wall / r.wall if ok else None,
            "wall_img_s": {
                "ours_imagenet": o_in.wall,
                "ours_cifar": o_ci.wall or None,
                "imagecorruptions": r.wall if ok else None,
            },
            "cpu_img_s": {
                "ours_imagenet": o_in.cpu,
                "ours_cifar": o_ci.cpu or None,
                "imagecorruptions": r.cpu if ok else None,
            },
        }
        if before:
            row.update(
                {
                    "before_img_s": b.get(clock),
                    "before_speedup": b.get(clock) / r.get(clock) if ok else None,
                    "after_over_before": o_in.get(clock) / b.get(clock),
                    "before_wall_img_s": b.wall,
                    "before_cpu_img_s": b.cpu,
                }
            )
        rows.append(row)
        nan = float("nan")
        line = (
            f"{name:18s} {o_in.get(clock):14.0f} {o_ci.get(clock) or nan:12.0f} "
            f"{r.get(clock) if ok else nan:11.0f} {row['speedup'] or nan:7.1f}x"
        )
        if before:
            line += f" {b.get(clock):8.0f} {row['before_speedup'] or nan:8.1f}x {row['after_over_before']:11.2f}x"
        print(f"{line}  (wall {row['speedup_wall'] or nan:.1f}x)  {status}", flush=True)
    for w in sides.values():
        w.close()
    geo = geomean([r["speedup"] for r in rows if r["speedup"]])
    geo_wall = geomean([r["speedup_wall"] for r in rows if r["speedup_wall"]])
    geo_before = geomean([r["before_speedup"] for r in rows if r.get("before_speedup")])
    n_both = sum(1 for r in rows if r["speedup"])
    load = os.getloadavg()
    if geo:
        print(
            f"geometric-mean speedup over {n_both} corruptions both implement: {geo:.1f}x ({clock} time; "
            f"wall-clock: {geo_wall:.1f}x)" + (f"; before: {geo_before:.1f}x" if geo_before else "")
        )
        print(f"slowest row: {min(r['speedup'] for r in rows if r['speedup']):.1f}x")
    else:
        print("no reference")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"load average during run: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {cores} usable cores")
    out = {
        "rows": rows,
        "geomean_speedup": geo,
        "geomean_speedup_wall": geo_wall,
        "geomean_speedup_before": geo_before,
        "before_src": args.before_src,
        "n_both": n_both,
        "threads": 1,
        "n_ours": args.n_ours,
        "n_ref": args.n_ref,
        "batch": args.batch,
        "repeat": args.repeat,
        "clock": clock,
        "timing": "best of repeat, interleaved",
        "image_size": args.size,
        "severities": [1, 2, 3, 4, 5],
        "processes": "one worker process per side (ours, before, imagecorruptions)",
        "loadavg": load,
        "cpu": cpu_model(),
        "cpu_id": cpu_id(),
        "cores": cores,
        "torch": torch.__version__,
        "imagecorruptions": ic_version,
        "reference_libraries": _reference_libraries(),
        "all_ours_work": all(r["ours_imagenet_img_s"] > 0 for r in rows),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""The timing protocol's torch-free half: sample summary and peak resident memory.

Imported by the fresh-process worker in every mode, so it must not import torch (an ONNX Runtime
worker loads only numpy and onnxruntime). The torch half is :mod:`.timing`.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np


def rss_kb(field: str = "VmRSS") -> int | None:
    """Resident set (or ``VmHWM``, its peak) of this process in kB, Linux only."""
    try:
        m = re.search(field + r":\s+(\d+)", Path("/proc/self/status").read_text())
        return int(m.group(1)) if m else None
    except OSError:
        return None


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (Linux ``/proc/self/clear_refs``)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_mem_mb(base_kb: int | None) -> float | None:
    """Peak resident set since the last :func:`reset_peak_rss`, minus ``base_kb``, in MB."""
    peak = rss_kb("VmHWM")
    return (peak - base_kb) / 1024 if peak is not None and base_kb is not None else None


def summarize(samples_s: list[float]) -> dict[str, Any]:
    """Median / IQR (ms) of per-call wall-clock samples given in seconds."""
    a = np.asarray(samples_s, dtype=float) * 1e3
    q1, med, q3 = np.percentile(a, [25, 50, 75])
    return {
        "median_ms": float(med),
        "iqr_ms": float(q3 - q1),
        "p25_ms": float(q1),
        "p75_ms": float(q3),
        "min_ms": float(a.min()),
        "n": int(len(a)),
    }


def _cpu_jiffies() -> tuple[float, float] | None:
    """(busy, total) CPU time of the whole machine since boot, in seconds (Linux ``/proc/stat``'s first line:
    busy = user + nice + system + irq + softirq + steal; total adds idle + iowait); None elsewhere."""
    try:
        f = [float(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError, IndexError):
        return None
    if len(f) < 8:
        return None
    hz = float(os.sysconf("SC_CLK_TCK")) if hasattr(os, "sysconf") else 100.0
    busy = f[0] + f[1] + f[2] + f[5] + f[6] + f[7]
    return busy / hz, (busy + f[3] + f[4]) / hz


class LoadProbe:
    """The machine's other work during a measurement: CPU seconds the whole machine was busy (``/proc/stat``,
    steal included) minus this process's own (``os.times``), per second of wall time — cores' worth of other
    work that competed with the timed calls — and the 1-minute load average. Linux; elsewhere only the load
    average (``others_busy`` None)."""

    def __enter__(self) -> LoadProbe:
        self.t0, self.m0, self.own0 = time.perf_counter(), _cpu_jiffies(), _own_cpu()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.t1, self.m1, self.own1 = time.perf_counter(), _cpu_jiffies(), _own_cpu()

    def result(self) -> dict[str, Any]:
        wall = self.t1 - self.t0
        out: dict[str, Any] = {"cores": os.cpu_count(), "others_busy": None, "wall_s": wall}
        try:
            out["loadavg_1m"] = os.getloadavg()[0]
        except (OSError, AttributeError):
            out["loadavg_1m"] = None
        # /proc/stat counts in clock ticks (10 ms): a window of a few ticks says nothing
        if self.m0 is not None and self.m1 is not None and wall >= 0.05:
            busy = (self.m1[0] - self.m0[0]) - (self.own1 - self.own0)
            out["others_busy"] = max(0.0, busy / wall)
        return out


def free_core_load(load: dict[str, Any] | None, threads: int) -> float | None:
    """The other work on the cores a timing left free: :class:`LoadProbe`'s ``others_busy`` over the cores not
    used by its ``threads`` (at least half a core: a timing on every core is disturbed by any other work).
    0 = the machine was otherwise idle; 1 = as much other work as free cores, so the timed thread was being
    time-sliced. None: not recorded (not Linux, or a record from before)."""
    busy = (load or {}).get("others_busy")
    cores = (load or {}).get("cores")
    if busy is None or not cores:
        return None
    return float(busy) / max(0.5, float(cores) - float(threads))


def _own_cpu() -> float:
    t = os.times()
    return t.user + t.system


def latency_and_throughput(
    time_batch: Callable[[int, int, int], dict[str, Any]],
    batch: int,
    throughput_batch: int,
    warmup: int,
    repeats: int,
    throughput_repeats: int,
) -> dict[str, Any]:
    """The protocol for any runtime. ``time_batch(batch, warmup, repeats)`` returns :func:`summarize` of
    ``repeats`` single calls after ``warmup`` calls. Latency: at ``batch`` (normally 1). Throughput
    (skipped when ``throughput_batch`` is 0): at ``throughput_batch`` after ``max(1, warmup // 5)``
    warm-up calls, as images / median seconds of one call (``img_s``). The latency's ``load``: the machine's
    other work while it was measured (:class:`LoadProbe`)."""
    with LoadProbe() as probe:
        res: dict[str, Any] = {"latency": time_batch(batch, warmup, repeats)}
    res["latency"]["load"] = probe.result()
    if throughput_batch:
        tp = time_batch(throughput_batch, max(1, warmup // 5), throughput_repeats)
        tp["img_s"] = throughput_batch / (tp["median_ms"] / 1e3)
        res["throughput"] = tp
    return res


def time_calls(
    run: Callable[[np.ndarray], Any],
    input_shape: tuple[int, ...],
    throughput_batch: int,
    warmup: int,
    repeats: int,
    throughput_repeats: int,
) -> dict[str, Any]:
    """:func:`latency_and_throughput` of a runtime that takes numpy batches (ONNX Runtime, OpenVINO,
    ExecuTorch ...): each call on the same uniform random float32 batch, timed with ``time.perf_counter``."""

    def time_batch(batch: int, w: int, r: int) -> dict[str, Any]:
        x = np.random.default_rng(0).random((batch, *input_shape[1:]), dtype=np.float32)
        for _ in range(w):
            run(x)
        samples = []
        for _ in range(r):
            t = time.perf_counter()
            run(x)
            samples.append(time.perf_counter() - t)
        return summarize(samples)

    return latency_and_throughput(time_batch, input_shape[0], throughput_batch, warmup, repeats, throughput_repeats)

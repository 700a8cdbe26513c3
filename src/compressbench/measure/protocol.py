"""The timing protocol's torch-free half: sample summary and peak resident memory.

Imported by the fresh-process worker in every mode, so it must not import torch (an ONNX Runtime
worker loads only numpy and onnxruntime). The torch half is :mod:`.timing`.
"""

from __future__ import annotations

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
    return {"median_ms": float(med), "iqr_ms": float(q3 - q1), "p25_ms": float(q1), "p75_ms": float(q3),
            "min_ms": float(a.min()), "n": int(len(a))}


def latency_and_throughput(time_batch: Callable[[int, int, int], dict[str, Any]], batch: int, throughput_batch: int,
                           warmup: int, repeats: int, throughput_repeats: int) -> dict[str, Any]:
    """The protocol for any runtime. ``time_batch(batch, warmup, repeats)`` returns :func:`summarize` of
    ``repeats`` single calls after ``warmup`` calls. Latency: at ``batch`` (normally 1). Throughput
    (skipped when ``throughput_batch`` is 0): at ``throughput_batch`` after ``max(1, warmup // 5)``
    warm-up calls, as images / median seconds of one call (``img_s``)."""
    res: dict[str, Any] = {"latency": time_batch(batch, warmup, repeats)}
    if throughput_batch:
        tp = time_batch(throughput_batch, max(1, warmup // 5), throughput_repeats)
        tp["img_s"] = throughput_batch / (tp["median_ms"] / 1e3)
        res["throughput"] = tp
    return res


def time_calls(run: Callable[[np.ndarray], Any], input_shape: tuple[int, ...], throughput_batch: int, warmup: int,
               repeats: int, throughput_repeats: int) -> dict[str, Any]:
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

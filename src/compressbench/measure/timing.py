"""The timing protocol in torch: ``torch.utils.benchmark.Timer`` samples, latency, throughput, peak memory.

Explicit thread count, CUDA synchronised by Timer on GPU, ``torch.inference_mode()``; ``warmup`` calls
then ``repeats`` single-call samples, reported as median and inter-quartile range (the sample summary
and the latency/throughput schedule are shared with ONNX Runtime in :mod:`.protocol`).
Peak memory: Linux ``VmHWM`` (reset through ``/proc/self/clear_refs``) minus a base resident set;
on CUDA ``torch.cuda.max_memory_allocated``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .protocol import latency_and_throughput, peak_mem_mb, reset_peak_rss, rss_kb, summarize


def time_torch(model: nn.Module, x: torch.Tensor, threads: int, warmup: int = 10, repeats: int = 50) -> dict[str, Any]:
    """Per-call latency of ``model(x)`` with ``torch.utils.benchmark.Timer`` under inference mode."""
    from torch.utils.benchmark import Timer

    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats must be ≥ 1 and warmup ≥ 0 (got {repeats}, {warmup})")
    timer = Timer("model(x)", globals={"model": model, "x": x}, num_threads=threads)
    with torch.inference_mode():
        if warmup:
            timer.timeit(warmup)
        samples = [timer.timeit(1).times[0] for _ in range(repeats)]
    return summarize(samples)


def measure_torch_model(
    model: nn.Module,
    input_shape: tuple[int, ...],
    threads: int,
    throughput_batch: int,
    warmup: int,
    repeats: int,
    throughput_repeats: int,
    device: str = "cpu",
    rss_base_kb: int | None = None,
) -> dict[str, Any]:
    """Latency at batch ``input_shape[0]`` (normally 1), throughput at ``throughput_batch`` and peak
    memory, in this process. ``rss_base_kb``: the resident set before the model was loaded (fresh
    process: peak = model + activations); without it the base is taken now (activations only)."""
    dev = torch.device(device)
    torch.set_num_threads(threads)
    model = model.eval().to(dev)
    scope = "model+activations" if rss_base_kb is not None else "activations"
    base = rss_base_kb if rss_base_kb is not None else rss_kb()
    reset_peak_rss()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)

    def time_batch(batch: int, w: int, r: int) -> dict[str, Any]:
        return time_torch(model, torch.rand(batch, *input_shape[1:], device=dev), threads, w, r)

    res = latency_and_throughput(time_batch, input_shape[0], throughput_batch, warmup, repeats, throughput_repeats)
    if dev.type == "cuda":
        res["peak_mem_mb"], scope = torch.cuda.max_memory_allocated(dev) / 2**20, "cuda-allocated"
    else:
        res["peak_mem_mb"] = peak_mem_mb(base)
    res["peak_mem_scope"] = scope
    return res

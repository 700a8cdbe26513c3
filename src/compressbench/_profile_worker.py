"""Fresh-process measurement worker: ``python _profile_worker.py job.json out.json``.

Run by :func:`compressbench.efficiency.run_worker` as a *file* (not ``-m``) so that a fresh
interpreter starts with nothing but what the job needs: mode ``torch`` loads the model (a
checkpoint through ``compressbench.checkpoint.load_model`` or a ``package.module:factory``) and
times it; mode ``onnx`` imports only numpy + onnxruntime (this module does not import torch) and
times an ``.onnx`` file. The resident set is read before the model is loaded, so peak memory
counts model + activations + workspace.
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np


def _rss_kb(field: str = "VmRSS") -> int | None:
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


def summarize(samples_s: list[float]) -> dict[str, Any]:
    """Median / IQR (ms) of per-call wall-clock samples given in seconds."""
    a = np.asarray(samples_s, dtype=float) * 1e3
    q1, med, q3 = np.percentile(a, [25, 50, 75])
    return {"median_ms": float(med), "iqr_ms": float(q3 - q1), "p25_ms": float(q1), "p75_ms": float(q3),
            "min_ms": float(a.min()), "n": int(len(a))}


def time_onnx(path: str | Path, input_shape: tuple[int, ...], threads: int, throughput_batch: int, warmup: int,
              repeats: int, throughput_repeats: int) -> dict[str, Any]:
    """ONNX Runtime (CPU EP, ``intra_op_num_threads=threads``, sequential, all graph
    optimisations) latency and throughput, timed per call with ``time.perf_counter``."""
    import onnxruntime as ort

    base = _rss_kb()
    reset_peak_rss()
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name

    def run(batch: int, w: int, r: int) -> dict[str, Any]:
        x = np.random.default_rng(0).random((batch, *input_shape[1:]), dtype=np.float32)
        for _ in range(w):
            sess.run(None, {name: x})
        samples = []
        for _ in range(r):
            t = time.perf_counter()
            sess.run(None, {name: x})
            samples.append(time.perf_counter() - t)
        return summarize(samples)

    res: dict[str, Any] = {"latency": run(input_shape[0], warmup, repeats)}
    if throughput_batch:
        tp = run(throughput_batch, max(1, warmup // 5), throughput_repeats)
        tp["img_s"] = throughput_batch / (tp["median_ms"] / 1e3)
        res["throughput"] = tp
    peak = _rss_kb("VmHWM")
    res["peak_mem_mb"] = (peak - base) / 1024 if peak is not None and base is not None else None
    res["peak_mem_scope"] = "session+activations"
    res["ort_version"] = ort.__version__
    return res


def main(job_path: str, out_path: str) -> int:
    job = json.loads(Path(job_path).read_text())
    shape = tuple(job["input_shape"])
    if job["mode"] == "onnx":
        res = time_onnx(job["path"], shape, int(job["threads"]), int(job["throughput_batch"]), int(job["warmup"]),
                        int(job["repeats"]), int(job["throughput_repeats"]))
        res["torch_imported"] = "torch" in sys.modules
    elif job["mode"] == "torch":
        import torch

        torch.set_num_threads(int(job["threads"]))
        torch.set_num_interop_threads(1)
        if job.get("quantized_engine") in torch.backends.quantized.supported_engines:
            torch.backends.quantized.engine = job["quantized_engine"]
        # import what building / loading needs (model zoo, torchvision, rebuilders, Timer) and initialise
        # the kernel libraries on a throw-away op first, so that peak - base = model + activations
        # (+ workspace), not library start-up
        import importlib

        import torch.utils.benchmark  # noqa: F401

        from compressbench.checkpoint import load_model_in_worker
        from compressbench.efficiency import build_factory, measure_torch_model

        for mod in ("compressbench.models", "compressbench.compress"):
            try:
                importlib.import_module(mod)
            except Exception:  # noqa: BLE001 — only a warm-up; load_model reports real errors
                pass
        with torch.inference_mode():
            torch.nn.functional.conv2d(torch.rand(1, 3, 8, 8), torch.rand(4, 3, 3, 3)).sum()
            (torch.rand(4, 8) @ torch.rand(8, 4)).sum()
        base = _rss_kb()
        t = job["target"]
        if t["kind"] == "checkpoint":
            model, _ = load_model_in_worker(t)  # the driver's trust decisions, never the file's
        elif t["kind"] == "factory":
            model = build_factory(t)
        else:
            raise ValueError(f"unknown target kind '{t['kind']}'")
        res = measure_torch_model(model, shape, int(job["threads"]), int(job["throughput_batch"]), int(job["warmup"]),
                                  int(job["repeats"]), int(job["throughput_repeats"]), job.get("device", "cpu"),
                                  rss_base_kb=base)
        res["torch_threads"] = torch.get_num_threads()
    else:
        raise ValueError(f"unknown worker mode '{job['mode']}'")
    Path(out_path).write_text(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))

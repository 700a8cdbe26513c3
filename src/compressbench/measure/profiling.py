"""The efficiency profile of one model: counts, bytes, FLOPs, then timings in fresh processes.

:func:`profile` returns one JSON-able dict (written as ``efficiency.json`` by the evaluator, printed by
``compressbench profile``): ``params``, ``layers``, ``bytes``, ``flops`` (theoretical or really
encoded, this process), ``hardware`` and ``settings``, then ``torch`` (latency, throughput, peak
memory; a fresh process per measurement when the model can be rebuilt there) and ``onnx`` (ONNX
Runtime fp32 and/or int8, each in a fresh process that never imports torch).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from ..catalog.evaluators import ProfileSettings  # noqa: F401 (torch-free: compressbench.catalog)
from .counting import is_masked_model, layer_density, param_counts
from .flops import flop_profile
from .fresh import ScratchDir, run_worker
from .hardware import hardware_info
from .onnxrt import export_onnx, quantize_onnx_static, time_onnx
from .precision import quantization_kind
from .sizes import compressed_sizes
from .timing import measure_torch_model

log = logging.getLogger(__name__)


def resolve(settings: ProfileSettings) -> tuple[str, int, int]:
    """(device, threads, throughput batch) with the defaults filled in."""
    device = settings.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    threads = settings.threads if settings.threads > 0 else (os.cpu_count() or 1)
    tb = settings.throughput_batch if settings.throughput_batch is not None else (256 if device == "cuda" else 64)
    return device, threads, tb


def timing_job(
    mode: Literal["torch", "onnx"],
    input_shape: tuple[int, ...],
    settings: ProfileSettings,
    *,
    target: dict[str, Any] | None = None,
    path: str | Path | None = None,
    device: str | None = None,
) -> dict[str, Any]:
    """The JSON job :func:`~.fresh.run_worker` hands to a fresh process (torch: ``target``; onnx: ``path``)."""
    dev, threads, tb = resolve(settings)
    job: dict[str, Any] = {
        "mode": mode,
        "input_shape": list(input_shape),
        "threads": threads,
        "throughput_batch": tb,
        "warmup": settings.warmup,
        "repeats": settings.repeats,
        "throughput_repeats": settings.throughput_repeats,
    }
    if mode == "torch":
        job.update(target=target, device=device or dev, quantized_engine=torch.backends.quantized.engine)
    else:
        job["path"] = str(path)
    return job


def static_profile(model: nn.Module, input_shape: tuple[int, ...], zstd_level: int = 10) -> dict[str, Any]:
    """Parameters, per-layer density, bytes under every encoding, FLOPs — no timing."""
    model = model.eval()
    return {
        "params": param_counts(model),
        "layers": layer_density(model),
        "bytes": compressed_sizes(model, zstd_level),
        "flops": flop_profile(model, input_shape),
        "quantized": quantization_kind(model) == "int8",
        "masked": is_masked_model(model),
    }


def profile(
    model: nn.Module,
    input_shape: tuple[int, ...],
    settings: ProfileSettings | None = None,
    *,
    target: dict[str, Any] | None = None,
    float_model: nn.Module | None = None,
    calib: list[np.ndarray] | None = None,
    workdir: str | Path | None = None,
) -> dict[str, Any]:
    """The whole efficiency profile of one model as a JSON-able dict.

    ``target``: how a fresh process rebuilds the model (see :mod:`.targets`); without it (or with
    ``fresh_process=False``) timing is in-process and says so. ``float_model``: the float model ONNX
    Runtime int8 is built from for an int8 variant (torch.ao int8 modules do not export); ``calib``:
    calibration batches for it (random uniform images if absent). ``workdir``: where the ONNX files are
    kept and the scratch folder goes (the evaluation job's folder; default: the system temp dir, and
    the ONNX files are not kept)."""
    settings = settings or ProfileSettings()
    device, threads, tb = resolve(settings)
    input_shape = tuple(int(s) for s in input_shape)
    rep: dict[str, Any] = static_profile(model, input_shape, settings.zstd_level)
    if rep["quantized"] and device == "cuda":
        device = "cpu"  # torch.ao int8 kernels are CPU-only
    rep["hardware"] = hardware_info(device, threads)
    rep["settings"] = {
        "threads": threads,
        "throughput_batch": tb,
        "warmup": settings.warmup,
        "repeats": settings.repeats,
        "throughput_repeats": settings.throughput_repeats,
        "device": device,
    }
    if not settings.timing:
        return rep
    fresh = settings.fresh_process and target is not None
    with ScratchDir(workdir) as scratch:
        if fresh:
            job = timing_job("torch", input_shape, settings, target=target, device=device)
            rep["torch"] = run_worker(job, settings.timeout_s, scratch)
        else:
            if settings.fresh_process:
                log.info("efficiency: no checkpoint/factory for a fresh process — timing in-process")
            prev = torch.get_num_threads()
            try:
                rep["torch"] = measure_torch_model(
                    model,
                    input_shape,
                    threads,
                    tb,
                    settings.warmup,
                    settings.repeats,
                    settings.throughput_repeats,
                    device,
                )
            finally:
                torch.set_num_threads(prev)
        rep["torch"]["process"] = "fresh" if fresh else "in-process"
        if settings.onnx:
            src = float_model if rep["quantized"] else model
            out_dir = Path(workdir) if workdir is not None else None
            rep["onnx"] = _onnx_profiles(src, rep["quantized"], input_shape, settings, calib, out_dir, scratch)
    return rep


def _onnx_profiles(
    src: nn.Module | None,
    quant: bool,
    input_shape: tuple[int, ...],
    settings: ProfileSettings,
    calib: list[np.ndarray] | None,
    out_dir: Path | None,
    scratch: ScratchDir,
) -> dict[str, Any]:
    """ONNX Runtime fp32 (float models) and/or int8 (``onnx_int8``) of ``src``; best-effort: an error is
    recorded, the torch figures still stand."""
    out: dict[str, Any] = {}
    if src is None:
        out["error"] = "quantized model without its float source: ONNX Runtime int8 skipped"
        log.warning("efficiency: %s", out["error"])
        return out
    dtypes = [] if quant else ["fp32"]
    if settings.onnx_int8 == "always" or (quant and settings.onnx_int8 == "auto"):
        dtypes.append("int8")
    if not dtypes:
        return out
    _, threads, tb = resolve(settings)
    wd = out_dir if out_dir is not None else scratch.path
    try:
        fp32 = export_onnx(src, wd / "model_fp32.onnx", (1, *input_shape[1:]))
        for dt in dtypes:
            path = fp32
            if dt == "int8":
                if calib is None:
                    rng = np.random.default_rng(0)
                    calib = [rng.random((8, *input_shape[1:]), dtype=np.float32) for _ in range(settings.calib_batches)]
                    out["calibration"] = "random-uniform"
                else:
                    out.setdefault("calibration", "data")
                path = quantize_onnx_static(fp32, wd / "model_int8.onnx", calib[: settings.calib_batches])
            if settings.fresh_process:
                r = run_worker(timing_job("onnx", input_shape, settings, path=path), settings.timeout_s, scratch)
            else:
                r = time_onnx(
                    path, input_shape, threads, tb, settings.warmup, settings.repeats, settings.throughput_repeats
                )
            r["bytes"] = Path(path).stat().st_size
            r["source"] = "float-source" if quant else "variant"
            r["process"] = "fresh" if settings.fresh_process else "in-process"
            out[dt] = r
    except Exception as e:  # noqa: BLE001 — ONNX is best-effort; the torch figures still stand
        out["error"] = f"{type(e).__name__}: {e}"
        log.warning("efficiency: ONNX profile failed: %s", out["error"])
    return out

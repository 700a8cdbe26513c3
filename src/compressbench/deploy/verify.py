"""Verify an exported artifact in its runtime and time it there, as tagged measurements.

Every export is run by its runtime on the evaluation subset and compared with the in-framework variant
(the model ``checkpoint.load_model`` rebuilds): ``top1`` (against the labels), ``agreement`` (share of
images whose top-1 label is the variant's), ``max_abs_dlogit`` (largest |logit difference|),
``file_bytes`` (every file of the artifact), then ``latency_b1_ms`` / ``latency_b1_iqr_ms`` /
``throughput_img_s`` with the efficiency protocol (:mod:`compressbench.measure`: a fresh process per
measurement, fixed threads, warm-up, median and IQR). ``verified`` is the check (1 = equivalent):
agreement ≥ ``min_agreement`` and, for an fp32 artifact, logits within ``fp32_atol`` × max(1, max |logit|).
A failure is a ``verified = 0`` row whose condition carries the reason — never a silent file.

Conditions: ``format``, ``runtime`` (``onnxruntime-1.32.0``, ``executorch-1.5.1-xnnpack`` ...) and
``dtype`` on every row; timings add ``threads``, ``batch``, ``device`` and ``process``. Metric
``<name>`` of format ``<format>`` is the report column ``<name>@<format>`` (:mod:`.metrics`).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

from ..catalog.evaluators import VerifySettings  # noqa: F401 (torch-free: compressbench.catalog)
from ..interfaces import Measurement
from ..measure.fresh import ScratchDir, run_worker
from ..measure.hardware import cpu_model
from ..measure.profiling import resolve, timing_job
from ..measure.protocol import free_core_load, time_calls
from .formats import Written, formats, runtime_name

log = logging.getLogger(__name__)


def condition(name: str, written: Written | None = None) -> dict[str, Any]:
    cond: dict[str, Any] = {"format": name, "runtime": runtime_name(name)}
    if written is not None:
        cond["dtype"] = written.dtype
    return cond


def run_artifact(name: str, written: Written, images: list[torch.Tensor], threads: int) -> np.ndarray:
    """Logits of the artifact in its runtime, batch by batch (batches split to what it takes). A runtime
    that is PyTorch sets this process's thread count: it is restored afterwards."""
    before = torch.get_num_threads()
    try:
        predict = formats.spec(name).open(written.path, threads)
        out = [
            predict(np.ascontiguousarray(x.numpy(), dtype=np.float32))
            for batch in images
            for x in batch.split(max(1, written.max_batch))
        ]
    finally:
        torch.set_num_threads(before)
    return np.concatenate(out).astype(np.float32)


def verify(
    name: str,
    written: Written,
    input_shape: tuple[int, ...],
    images: list[torch.Tensor],
    labels: torch.Tensor,
    reference: torch.Tensor,
    settings: VerifySettings,
    *,
    target: dict[str, Any] | None = None,
    scratch: ScratchDir | None = None,
) -> list[Measurement]:
    """The rows of one export (see the module docstring). ``input_shape``: one image with its batch axis
    (1, C, H, W); ``reference``: the variant's logits on ``images``; ``target``: the trust decisions a fresh
    PyTorch worker needs (``checkpoint.worker_trust``)."""
    _, threads, _ = resolve(settings.profile())
    cond = condition(name, written)
    logits = run_artifact(name, written, images, threads)
    ref = reference.float().numpy()
    y = labels.numpy()
    agree = float((logits.argmax(1) == ref.argmax(1)).mean())
    maxd = float(np.abs(logits - ref).max())
    ms = [
        Measurement("top1", float((logits.argmax(1) == y).mean()), dict(cond), "realised"),
        Measurement("agreement", agree, dict(cond), "realised"),
        Measurement("max_abs_dlogit", maxd, dict(cond), "realised", "logit"),
        Measurement("file_bytes", float(written.bytes), dict(cond), "realised", "B"),
    ]
    problems = []
    if agree < settings.min_agreement:
        problems.append(f"top-1 agreement {agree:.2%} < {settings.min_agreement:.0%} on {len(y)} images")
    tol = settings.fp32_atol * max(1.0, float(np.abs(ref).max()))
    if written.dtype == "fp32" and not maxd <= tol:
        problems.append(f"fp32 logits differ by {maxd:.3g} > {tol:.3g}")
    if settings.timing:
        ms += timings(name, written, input_shape, settings, target=target, scratch=scratch)
    ms.append(
        Measurement(
            "verified", 0.0 if problems else 1.0, {**cond, **({"reason": "; ".join(problems)} if problems else {})}
        )
    )
    return ms


def timings(
    name: str,
    written: Written,
    input_shape: tuple[int, ...],
    settings: VerifySettings,
    *,
    target: dict[str, Any] | None = None,
    scratch: ScratchDir | None = None,
) -> list[Measurement]:
    """Latency at batch 1 and throughput at the throughput batch, in the artifact's runtime, by the efficiency
    protocol; a fresh process per artifact unless ``fresh_process`` is off."""
    spec = formats.spec(name)
    ps = settings.profile()
    _, threads, tb = resolve(ps)
    tb = min(tb, written.max_batch) if tb else 0
    shape = (1, *input_shape[1:])
    if settings.fresh_process:
        if spec.worker == "torch":
            job = timing_job(
                "torch",
                shape,
                ps,
                target={"kind": "checkpoint", "path": str(written.path), **(target or {})},
                device="cpu",
            )
        else:
            job = timing_job("onnx", shape, ps, path=written.path)
            if spec.worker != "onnx":
                job.update(mode="artifact", format=name)
        job["throughput_batch"] = tb
        res = run_worker(job, settings.timeout_s, scratch)
    else:
        before = torch.get_num_threads()
        try:
            predict = spec.open(written.path, threads)
            res = time_calls(predict, shape, tb, settings.warmup, settings.repeats, settings.throughput_repeats)
        finally:
            torch.set_num_threads(before)
    base = {
        **condition(name, written),
        "threads": threads,
        "device": f"cpu:{cpu_model()}",
        "process": "fresh" if settings.fresh_process else "in-process",
    }
    lat = res["latency"]
    ms = [
        Measurement("latency_b1_ms", lat["median_ms"], {**base, "batch": 1}, written.tag, "ms"),
        Measurement("latency_b1_iqr_ms", lat["iqr_ms"], {**base, "batch": 1}, written.tag, "ms"),
    ]
    load = free_core_load(lat.get("load"), threads)
    if load is not None:  # the machine's other work during the batch-1 samples (what flags a noisy timing)
        ms.append(Measurement("latency_b1_load", load, {**base, "batch": 1}, written.tag))
    if "throughput" in res:
        ms.append(
            Measurement("throughput_img_s", res["throughput"]["img_s"], {**base, "batch": tb}, written.tag, "img/s")
        )
    return ms


def failure(name: str, error: BaseException | str) -> Measurement:
    """The ``verified = 0`` row of an export that could not be written or run."""
    first = str(error).splitlines()[0] if str(error) else ""
    msg = error if isinstance(error, str) else f"{type(error).__name__}: {first}"
    return Measurement("verified", 0.0, {**condition(name), "reason": msg[:300]})

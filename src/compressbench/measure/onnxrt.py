"""ONNX: export (``torch.onnx``), onnxruntime's own static int8 quantization, and ONNX Runtime timing.

Module-level imports are numpy and the standard library only: the fresh-process worker times an
``.onnx`` file with :func:`time_onnx` in an interpreter that never imports torch (only
:func:`export_onnx` does, when called).
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np

from .protocol import peak_mem_mb, reset_peak_rss, rss_kb, time_calls

if TYPE_CHECKING:
    from torch import nn


def export_onnx(model: nn.Module, path: str | Path, input_shape: tuple[int, ...], opset: int = 17) -> Path:
    """Export with a dynamic batch axis (TorchScript-based exporter: it handles every model of the
    zoo, masked pruning included, and needs no onnxscript rewrite). Never moves the caller's model."""
    import copy
    import warnings

    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if any(t.device.type != "cpu" for t in list(model.parameters()) + list(model.buffers())):
        model = copy.deepcopy(model).cpu()
    model = model.eval()
    x = torch.rand(*input_shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (x,),
            str(path),
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=opset,
            dynamo=False,
        )
    return path


def quantize_onnx_static(
    fp32_path: str | Path, out_path: str | Path, calib: list[np.ndarray], per_channel: bool = True
) -> Path:
    """onnxruntime's own static int8 quantization (QDQ format, int8 weights per channel, uint8
    activations), calibrated (MinMax) on ``calib`` batches."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter([{"input": b.astype(np.float32)} for b in calib])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.it, None)

    pre = Path(out_path).with_suffix(".pre.onnx")
    try:
        with _quiet_root(logging.WARNING):
            quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
            quantize_static(
                str(pre),
                str(out_path),
                _Reader(),
                quant_format=QuantFormat.QDQ,
                per_channel=per_channel,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
            )
    finally:
        pre.unlink(missing_ok=True)
    return Path(out_path)


def quantize_onnx_dynamic(fp32_path: str | Path, out_path: str | Path) -> Path:
    """onnxruntime's own dynamic int8 quantization of the MatMul / Gemm layers (int8 weights per channel,
    activations quantized on the fly)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _quiet_root(logging.ERROR):  # it also advises pre-processing on root at WARNING, every call
        quantize_dynamic(
            str(fp32_path),
            str(out_path),
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=["MatMul", "Gemm"],
        )
    return Path(out_path)


@contextlib.contextmanager
def _quiet_root(level: int) -> Iterator[None]:
    """onnxruntime.quantization logs on the root logger (every bias copy at INFO): at most ``level`` meanwhile."""
    root = logging.getLogger()
    before = root.level
    root.setLevel(max(before, level))
    try:
        yield
    finally:
        root.setLevel(before)


def time_onnx(
    path: str | Path,
    input_shape: tuple[int, ...],
    threads: int,
    throughput_batch: int,
    warmup: int,
    repeats: int,
    throughput_repeats: int,
) -> dict[str, Any]:
    """ONNX Runtime (CPU EP, ``intra_op_num_threads=threads``, sequential, all graph optimisations)
    latency and throughput, timed per call with ``time.perf_counter``; peak memory of the session."""
    import onnxruntime as ort

    base = rss_kb()
    reset_peak_rss()
    sess = ort_session(path, threads)
    name = sess.get_inputs()[0].name
    res = time_calls(
        lambda x: sess.run(None, {name: x}), input_shape, throughput_batch, warmup, repeats, throughput_repeats
    )
    res.update(peak_mem_mb=peak_mem_mb(base), peak_mem_scope="session+activations", ort_version=ort.__version__)
    return res


def ort_session(path: str | Path, threads: int) -> Any:
    """An ONNX Runtime CPU session as the protocol runs it: ``intra_op_num_threads=threads``, one inter-op
    thread, sequential execution, all graph optimisations."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])

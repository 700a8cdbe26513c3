"""What numeric precision a model runs in: the one answer to "is this model quantized?".

:func:`quantization_kind` inspects the modules and tensors (never a method's name):

* ``"int8"`` — real integer kernels: ``torch.ao`` int8 modules (eager / FX converted, dynamic int8
  ``Linear``, sparse int8) or quantized tensors among the parameters and buffers;
* ``"int8-qdq"`` — a graph (PT2E / FX reference) of quantize/dequantize ops around float kernels: int8
  numerics, but eager PyTorch still runs float convolutions (int8 only under ``torch.compile``);
* ``"float16"`` / ``"bfloat16"`` — a cast: some floating parameter or buffer is stored in it;
* ``None`` — a float32 model.

Call sites keep their own question as a one-line check: the efficiency profile wants *int8 kernels*
(``quantization_kind(m) == "int8"``: CPU-only timing, ONNX int8 through a float source); the attacks
want *anything a float gradient cannot pass through unchanged* (``quantization_kind(m) is not None``).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

QuantKind = Literal["int8", "int8-qdq", "float16", "bfloat16"]

# where torch keeps its integer-kernel modules (``torch.nn.quantized`` is the legacy alias)
INT8_NAMESPACES = (
    "torch.ao.nn.quantized",
    "torch.ao.nn.intrinsic.quantized",
    "torch.ao.nn.sparse.quantized",
    "torch.nn.quantized",
    "torch.nn.intrinsic.quantized",
)
LOW_PRECISION = (torch.float16, torch.bfloat16)


def is_int8_module(m: nn.Module) -> bool:
    """A ``torch.ao`` integer-kernel module (its weights are packed int8, not ``nn.Parameter``)."""
    return type(m).__module__.startswith(INT8_NAMESPACES)


def has_qdq_graph(model: nn.Module) -> bool:
    """A ``torch.fx.GraphModule`` (anywhere in the tree) that calls quantize / dequantize functions."""
    if isinstance(model, torch.fx.GraphModule):
        return any("quantize" in str(n.target) for n in model.graph.nodes if n.op == "call_function")
    return any(has_qdq_graph(c) for c in model.children())


def low_precision_dtype(model: nn.Module) -> torch.dtype | None:
    """fp16 / bf16 if any floating parameter or buffer of the model is stored in it."""
    for t in list(model.parameters()) + list(model.buffers()):
        if t.is_floating_point() and t.dtype in LOW_PRECISION:
            return t.dtype
    return None


def quantization_kind(model: nn.Module) -> QuantKind | None:
    """``"int8"``, ``"int8-qdq"``, ``"float16"``, ``"bfloat16"`` or ``None`` (see the module docstring);
    int8 wins over a cast when a model has both."""
    if any(is_int8_module(m) for m in model.modules()):
        return "int8"
    if any(t.is_quantized for t in list(model.parameters()) + list(model.buffers())):
        return "int8"
    if has_qdq_graph(model):
        return "int8-qdq"
    dt = low_precision_dtype(model)
    return None if dt is None else "float16" if dt == torch.float16 else "bfloat16"

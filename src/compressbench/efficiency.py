"""Efficiency measurements: parameters, bytes, FLOPs (the core functions; the full profile —
latency, throughput, ONNX Runtime, the ``efficiency`` evaluator and ``compressbench profile`` —
builds on these).

Conventions: FLOPs = 2 × MACs (``torch.utils.flop_counter.FlopCounterMode`` counts FLOPs).
"""

from __future__ import annotations

import io

import torch
from torch import nn


def param_counts(model: nn.Module) -> dict[str, int]:
    """Total and nonzero parameters (counted on the tensors that are really stored).

    Quantized modules keep their weights as packed params, not ``nn.Parameter``: they are
    counted from the state dict's int8 tensors."""
    total = nonzero = 0
    seen: set[int] = set()
    for t in _weight_tensors(model):
        if id(t) in seen:
            continue
        seen.add(id(t))
        total += t.numel()
        tt = t.int_repr() if t.is_quantized else t
        nonzero += int((tt != 0).sum())
    return {"params": total, "params_nonzero": nonzero}


def _weight_tensors(model: nn.Module) -> list[torch.Tensor]:
    out = [p.detach() for p in model.parameters()]
    # quantized weights (packed) are not parameters
    for m in model.modules():
        if hasattr(m, "weight") and callable(getattr(m, "weight")) and "quantized" in type(m).__module__:
            try:
                w = m.weight()
                out.append(w)
                b = m.bias() if callable(getattr(m, "bias", None)) else None
                if b is not None:
                    out.append(b)
            except Exception:
                pass
    return out


def serialized_bytes(model: nn.Module) -> int:
    """Size of ``torch.save(model.state_dict())``: the dense bytes on disk."""
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.tell()


def count_flops(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Dense FLOPs (2 × MACs) of one forward pass at ``input_shape`` (batch included)."""
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    x = torch.rand(*input_shape, device=next((p.device for p in model.parameters()), torch.device("cpu")))
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        model(x)
    model.train(was_training)
    return int(fc.get_total_flops())

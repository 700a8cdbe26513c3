"""FLOPs and MACs of one forward pass (theoretical: counted, not measured). FLOPs = 2 × MACs.

Float FLOPs come from ``torch.utils.flop_counter.FlopCounterMode`` (convolutions and matmuls; BN,
ReLU, pooling and additions are not counted, like fvcore, thop and ptflops, which report MACs).
``FlopCounterMode`` does not see quantized kernels (``quantized::conv2d`` ...), so int8 MACs are
counted from module shapes by forward hooks (:func:`shape_macs`, ours: fvcore/thop/ptflops do not
handle ``torch.ao`` quantized modules) and reported as ``int8_ops`` = 2 × int8 MACs.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from .counting import layer_density
from .precision import is_int8_module


def example_input(model: nn.Module, input_shape: tuple[int, ...]) -> torch.Tensor:
    """Uniform random input of ``input_shape`` on the model's device."""
    dev = next((p.device for p in model.parameters()), torch.device("cpu"))
    return torch.rand(*input_shape, device=dev)


def flops_by_module(model: nn.Module, input_shape: tuple[int, ...]) -> tuple[int, dict[str, int]]:
    """FlopCounterMode total FLOPs and per-module FLOPs keyed by the module's qualified name
    (``""`` is the whole model; a module's figure includes its children)."""
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    x = example_input(model, input_shape)
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        model(x)
    model.train(was_training)
    per: dict[str, int] = {}
    for name, ops in fc.get_flop_counts().items():
        if name == "Global":
            continue
        fqn = name.split(".", 1)[1] if "." in name else ""
        per[fqn] = int(sum(ops.values()))
    return int(fc.get_total_flops()), per


def count_flops(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Dense FLOPs (2 × MACs) of one forward pass at ``input_shape`` (batch included)."""
    return flops_by_module(model, input_shape)[0]


def _is_layer(m: nn.Module) -> bool:
    conv = hasattr(m, "kernel_size") and hasattr(m, "in_channels") and hasattr(m, "groups")
    return conv or (hasattr(m, "in_features") and hasattr(m, "out_features"))


def shape_macs(model: nn.Module, input_shape: tuple[int, ...]) -> dict[str, dict[str, Any]]:
    """MACs of every conv / linear layer (float or ``torch.ao`` int8) from its shapes, by forward hooks:
    conv = out.numel() × in_channels/groups × kh × kw; linear = out.numel() × in_features.
    Returns ``{layer: {"macs", "quantized"}}``."""
    out: dict[str, dict[str, Any]] = {}

    def hook(name: str, m: nn.Module) -> Callable[..., None]:
        def fn(_m: nn.Module, _inp: Any, o: Any) -> None:
            o = o[0] if isinstance(o, (tuple, list)) else o
            if hasattr(m, "kernel_size") and hasattr(m, "in_channels"):
                ks = m.kernel_size if isinstance(m.kernel_size, (tuple, list)) else (m.kernel_size,)
                per = m.in_channels // m.groups * int(np.prod(ks))
            else:
                per = m.in_features
            rec = out.setdefault(name, {"macs": 0, "quantized": is_int8_module(m)})
            rec["macs"] += int(o.numel()) * int(per)

        return fn

    # innermost layers only (an int8 Linear owns a packed-params child, so "leaf" is too strict)
    hooks = [
        m.register_forward_hook(hook(name, m))
        for name, m in model.named_modules()
        if _is_layer(m) and not any(_is_layer(c) for c in m.modules() if c is not m)
    ]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(example_input(model, input_shape))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return out


def flop_profile(model: nn.Module, input_shape: tuple[int, ...]) -> dict[str, Any]:
    """Dense FLOPs, MACs, effective FLOPs (each conv/linear's FLOPs × its weight density) and int8 ops.

    Float model: ``flops`` from FlopCounterMode, ``macs = flops / 2``. Quantized model:
    ``int8_ops = 2 × Σ int8 MACs`` (shape counter); ``flops`` = int8 ops + the float FLOPs that
    FlopCounterMode still sees (layers left in float); ``macs`` likewise."""
    total, per = flops_by_module(model, input_shape)
    layers = shape_macs(model, input_shape)
    dens = {r["layer"]: r["density"] for r in layer_density(model)}
    int8_macs = sum(r["macs"] for r in layers.values() if r["quantized"])
    flops = total + 2 * int8_macs
    eff = float(flops)
    for name, r in layers.items():
        f = 2 * r["macs"] if r["quantized"] else per.get(name, 0)
        eff -= f * (1.0 - dens.get(name, 1.0))
    return {
        "flops": flops,
        "macs": flops // 2,
        "flops_effective": eff,
        "int8_ops": 2 * int8_macs,
        "float_flops": total,
        "counter": "FlopCounterMode" + ("+shape-hooks(int8)" if int8_macs else ""),
        "input_shape": list(input_shape),
    }

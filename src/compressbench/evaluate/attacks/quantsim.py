"""Quantized variants: detection, and a differentiable float *simulation* for white-box attacks.

Integer kernels (``torch.ao`` eager int8 modules, dynamic int8 ``Linear``) have no autograd, so a
white-box attack cannot run on them. :func:`ste_simulation` builds a float copy that computes the
same function as closely as float arithmetic allows:

* weights are the variant's *dequantized* int8 weights (exact);
* activations are fake-quantized with the variant's own scale / zero-point through
  ``torch.fake_quantize_per_tensor_affine``, whose gradient is the straight-through estimator
  (identity inside the quantization range, zero outside);
* dynamic int8 ``Linear``: the input is fake-quantized with a per-batch scale (as the kernel does);
* fp16 / bf16 casts (``compress.quantize.CastNet`` or a bare ``.half()``): the float32 copy of the
  (exactly representable) low-precision weights; activation rounding is not simulated.

The attack is crafted on the simulation and **evaluated on the real variant**; the
``check_ste_fidelity`` row (prediction agreement of simulation and variant) says how faithful it was.
Written here because no attack library knows about ``torch.ao`` modules; the rewrite is a module
swap, the same one torch.ao does in the other direction.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ...measure.precision import LOW_PRECISION, has_qdq_graph, is_int8_module, low_precision_dtype, quantization_kind

log = logging.getLogger(__name__)


class NotSimulatable(RuntimeError):
    """The variant contains a quantized op we cannot simulate in float (message names it)."""


def _input_dtype(model: nn.Module) -> torch.dtype | None:
    """fp16 / bf16 if the model's *first* floating tensor is (a bare ``model.half()``: cast the input)."""
    for p in list(model.parameters()) + list(model.buffers()):
        if p.is_floating_point():
            return p.dtype if p.dtype in LOW_PRECISION else None
    return None


def is_quantized_model(model: nn.Module) -> bool:
    """True for int8 eager / dynamic / PT2E models and fp16/bf16 casts: a float gradient does not pass
    through them unchanged."""
    return quantization_kind(model) is not None


def model_device(model: nn.Module, default: torch.device | str = "cpu") -> torch.device:
    for t in list(model.parameters()) + list(model.buffers()):
        if not t.is_quantized:
            return t.device
    return torch.device(default)


def forward_float(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Run ``model`` on float32 [0,1] images whatever its precision; float32 logits."""
    dt = _input_dtype(model)
    if dt is not None:
        x = x.to(dt)
    return model(x).float()


def gradient_works(model: nn.Module, x: torch.Tensor) -> bool:
    """Can the loss be differentiated w.r.t. the input (and is the gradient not all zero)?"""
    try:
        xi = x[:2].clone().requires_grad_(True)
        with torch.enable_grad():
            out = forward_float(model, xi)
            (g,) = torch.autograd.grad(out.logsumexp(1).sum() - out.max(1).values.sum() + out.sum(), xi)
        return bool(torch.isfinite(g).all()) and bool(g.abs().sum() > 0)
    except (RuntimeError, NotImplementedError) as e:
        log.debug("backward through model failed: %s", e)
        return False


# --------------------------------------------------------------------------- fake-quant modules
class FakeQuant(nn.Module):
    """Per-tensor affine fake quantization with a straight-through gradient."""

    def __init__(self, scale: float, zero_point: int, qmin: int = 0, qmax: int = 255):
        super().__init__()
        self.scale, self.zero_point, self.qmin, self.qmax = float(scale), int(zero_point), int(qmin), int(qmax)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.fake_quantize_per_tensor_affine(x, self.scale, self.zero_point, self.qmin, self.qmax)


class DynamicFakeQuant(nn.Module):
    """Fake quantization with a per-batch min/max scale (dynamic int8 input quantization)."""

    def __init__(self, qmin: int = 0, qmax: int = 255):
        super().__init__()
        self.qmin, self.qmax = qmin, qmax

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xd = x.detach()
        lo, hi = min(float(xd.min()), 0.0), max(float(xd.max()), 0.0)
        scale = max((hi - lo) / (self.qmax - self.qmin), 1e-8)
        zp = int(min(max(self.qmin - round(lo / scale), self.qmin), self.qmax))
        return torch.fake_quantize_per_tensor_affine(x, scale, zp, self.qmin, self.qmax)


class FakeQFunctional(nn.Module):
    """Float stand-in for ``torch.ao.nn.quantized.QFunctional`` (add/mul/cat + requantize)."""

    def __init__(self, scale: float, zero_point: int):
        super().__init__()
        self.fq = FakeQuant(scale, zero_point)

    def add(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.fq(x + y)

    def add_relu(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.fq(F.relu(x + y))

    def mul(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.fq(x * y)

    def mul_relu(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.fq(F.relu(x * y))

    def add_scalar(self, x: torch.Tensor, y: float) -> torch.Tensor:
        return self.fq(x + y)

    def mul_scalar(self, x: torch.Tensor, y: float) -> torch.Tensor:
        return self.fq(x * y)

    def cat(self, xs: list[torch.Tensor], dim: int = 0) -> torch.Tensor:
        return self.fq(torch.cat(xs, dim=dim))


def _qrange(dtype: torch.dtype) -> tuple[int, int]:
    return (0, 255) if dtype == torch.quint8 else (-128, 127)


def float_conv(m: Any) -> nn.Module:
    """The float conv holding an int8 conv's dequantized weights (also the export's float twin, ``deploy.prepare``)."""
    w = m.weight().dequantize()
    b = m.bias()
    dims = w.dim() - 2
    cls = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[dims]
    conv = cls(
        m.in_channels,
        m.out_channels,
        m.kernel_size,
        stride=m.stride,
        padding=m.padding,
        dilation=m.dilation,
        groups=m.groups,
        bias=b is not None,
        padding_mode=m.padding_mode,
    )
    conv.weight.data.copy_(w)
    if b is not None:
        conv.bias.data.copy_(b.detach().float())
    return conv


def float_linear(m: Any) -> nn.Linear:
    """The float linear holding an int8 (static or dynamic) linear's dequantized weights."""
    w = m.weight().dequantize()
    b = m.bias()
    lin = nn.Linear(w.shape[1], w.shape[0], bias=b is not None)
    lin.weight.data.copy_(w)
    if b is not None:
        lin.bias.data.copy_(b.detach().float())
    return lin


def _convert(m: nn.Module) -> nn.Module | None:
    """Float replacement for one quantized module, or None if ``m`` is not quantized."""
    import torch.ao.nn.intrinsic.quantized as nniq
    import torch.ao.nn.quantized as nnq
    import torch.ao.nn.quantized.dynamic as nnqd

    if isinstance(m, nnq.Quantize):
        return FakeQuant(float(m.scale), int(m.zero_point), *_qrange(m.dtype))
    if isinstance(m, nnq.DeQuantize):
        return nn.Identity()
    if isinstance(m, nnqd.Linear):
        return nn.Sequential(DynamicFakeQuant(0, 127 if getattr(m, "_reduce_range", True) else 255), float_linear(m))
    relu = isinstance(m, (nniq.ConvReLU1d, nniq.ConvReLU2d, nniq.ConvReLU3d, nniq.LinearReLU))
    if isinstance(m, (nnq.Conv1d, nnq.Conv2d, nnq.Conv3d)):
        core: nn.Module = float_conv(m)
    elif isinstance(m, nnq.Linear):
        core = float_linear(m)
    elif isinstance(m, nnq.QFunctional):
        return FakeQFunctional(float(m.scale), int(m.zero_point))
    elif isinstance(m, (nnq.ReLU6,)):
        return nn.ReLU6()
    elif is_int8_module(m):
        raise NotSimulatable(f"no float simulation for quantized module {type(m).__module__}.{type(m).__name__}")
    else:
        return None
    layers = [core] + ([nn.ReLU()] if relu else []) + [FakeQuant(float(m.scale), int(m.zero_point))]
    return nn.Sequential(*layers)


def _swap(module: nn.Module) -> None:
    for name, child in list(module.named_children()):
        new = _convert(child)
        if new is not None:
            setattr(module, name, new)
        else:
            _swap(child)


def ste_simulation(model: nn.Module) -> nn.Module:
    """A differentiable float32 model that simulates a quantized / low-precision ``model``.

    Raises :class:`NotSimulatable` when the model holds ops we do not know how to simulate.
    """
    model = model.eval()
    if has_qdq_graph(model):
        raise NotSimulatable("PT2E / FX graph quantization is not simulated (use transfer mode)")
    sim = copy.deepcopy(model)
    if low_precision_dtype(sim) is not None:
        sim = sim.float()
        for m in sim.modules():  # cast wrappers (compress.quantize.CastNet) keep their target dtype
            if getattr(m, "dtype", None) in LOW_PRECISION:
                m.dtype = torch.float32
    if isinstance(sim, nn.Module) and _convert(sim) is not None:
        raise NotSimulatable(f"top-level quantized module {type(sim).__name__}")
    _swap(sim)
    if any(is_int8_module(m) for m in sim.modules()):
        raise NotSimulatable("quantized modules remain after simulation")
    if any(t.is_quantized for t in list(sim.parameters()) + list(sim.buffers())):
        raise NotSimulatable("quantized tensors remain after simulation")
    return sim.eval()

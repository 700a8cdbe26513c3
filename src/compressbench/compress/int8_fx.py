"""int8 for architectures eager ``torch.ao`` cannot handle: FX graph mode (``torch.ao.quantization.quantize_fx``).

Eager quantization (``compress.quantize``) needs every tensor operation to be a module it knows:
torchvision's ResNet blocks are swapped for their quantizable twins, plain conv-bn-relu stacks fuse.
Modern architectures compute in their ``forward`` — timm's residual ``x + shortcut``, squeeze-excite
``x * gate``, hard-swish, layer norms, attention — and eager int8 fails on them at the first
``QuantizedCPU`` op (measured: timm ResNet, MobileNetV3, EfficientNet, ConvNeXt, ViT all fail;
docs/methods.md, "Architectures"). FX graph mode traces the network (``torch.fx``), inserts observers
on the graph, and converts it to a ``GraphModule`` that runs the same int8 fbgemm / x86 kernels
(quantized conv / linear modules and quantized add / mul / hardswish ops), leaving float only what
has no int8 kernel (with quantize / dequantize around it). Still ``torch.ao``, no compiler.

The path is chosen per model (``quantize.choose_path``): eager when the network is built only from
modules eager handles (the model zoo: plain CNNs, torchvision-block ResNets — numbers unchanged), or
when an eager dry run on a copy succeeds; FX otherwise. The step records the path and the example
input shape, so a checkpoint rebuilds by tracing a fresh model the same way (shapes only; scales and
zero points come from the state dict, as for eager).
"""

from __future__ import annotations

import copy
import warnings
from typing import Any

import torch
from torch import nn


def _mapping(backend: str, qat: bool, cheap: bool = False) -> Any:
    """torch.ao's default mapping for ``backend``; ``cheap``: activation histogram observers replaced by
    min / max observers of the same dtype and range (the same converted graph, without the histogram
    search that costs ~0.5 s per observer when nothing was observed — for rebuilding a checkpoint)."""
    from torch.ao.quantization import (
        HistogramObserver,
        MinMaxObserver,
        QConfig,
        get_default_qat_qconfig_mapping,
        get_default_qconfig_mapping,
    )

    mapping = (get_default_qat_qconfig_mapping if qat else get_default_qconfig_mapping)(backend)
    if not cheap or qat:
        return mapping

    def swap(qc: Any) -> Any:
        p = getattr(getattr(qc, "activation", None), "p", None)
        if p is None or p.func is not HistogramObserver:
            return qc
        return QConfig(activation=MinMaxObserver.with_args(**p.keywords), weight=qc.weight)

    mapping.global_qconfig = swap(mapping.global_qconfig)
    for k in list(mapping.object_type_qconfigs):
        mapping.object_type_qconfigs[k] = swap(mapping.object_type_qconfigs[k])
    return mapping


def prepare_fx(
    model: nn.Module,
    backend: str,
    qat: bool,
    input_shape: tuple[int, ...],
    cheap: bool = False,
    float_layers: list[str] | tuple[str, ...] = (),
) -> nn.Module:
    """Classifier -> observed (or fake-quant, ``qat``) model: ``model.net`` traced and observed; the
    float normalisation stays outside the quantized graph. ``cheap``: min / max activation observers
    (for a rebuild, whose scales come from the state dict). ``float_layers``: module paths inside
    ``model.net`` kept in float (mixed precision: FX puts dequantize / quantize around them)."""
    from torch.ao.quantization import quantize_fx

    torch.backends.quantized.engine = backend
    model.train(qat)
    example = (torch.randn(*input_shape),)
    mapping = _mapping(backend, qat, cheap)
    for name in float_layers:
        mapping.set_module_name(name, None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fn = quantize_fx.prepare_qat_fx if qat else quantize_fx.prepare_fx
        model.net = fn(model.net, mapping, example)
    return model


def convert_fx(model: nn.Module) -> nn.Module:
    from torch.ao.quantization import quantize_fx

    model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.net = quantize_fx.convert_fx(model.net)
    return model


def mark_observed(model: nn.Module) -> None:
    """Give every activation observer that saw no data a placeholder range, so that ``convert_fx``
    quantizes every node as it did for the calibrated variant (it leaves unobserved nodes in float).
    For rebuilding a checkpoint: the real scales and zero points come from its state dict."""
    for m in model.modules():
        lo, hi = getattr(m, "min_val", None), getattr(m, "max_val", None)
        if (
            isinstance(lo, torch.Tensor)
            and isinstance(hi, torch.Tensor)
            and lo.numel() == 1
            and not torch.isfinite(lo).all()
        ):
            lo.fill_(-1.0)
            hi.fill_(1.0)


def is_fx(model: nn.Module) -> bool:
    return isinstance(getattr(model, "net", None), torch.fx.GraphModule)


def fx_blocker(model: nn.Module, backend: str, input_shape: tuple[int, ...], qat: bool) -> str | None:
    """Why FX graph mode cannot prepare a copy of ``model`` (symbolic tracing fails on data-dependent
    Python control flow), or None."""
    try:
        prepare_fx(copy.deepcopy(model).cpu(), backend, qat, input_shape)
        return None
    except Exception as e:
        lines = [ln for ln in str(e).splitlines() if ln.strip()]
        return (
            f"neither eager nor FX graph-mode int8 can prepare it (torch.fx tracing: {type(e).__name__}: "
            f"{lines[0][:160] if lines else ''})"
        )

"""Getting a variant ready for a deployment runtime: masks folded, int8 kind, the float twin, PT2E programs.

* :func:`deployable` — a copy with ``torch.nn.utils.prune`` masks folded into the weights (what ships).
* :func:`int8_kind` — ``"static"`` / ``"dynamic"`` / ``"fx"`` / None, from the ``torch.ao`` module types.
* :func:`float_twin` — the inverse of ``torch.ao``'s eager ``convert``, which torch does not provide: every
  int8 module replaced by its float module holding the *dequantized* int8 weights (so the twin computes
  with exactly the variant's weights, in float). Runtimes with their own int8 quantizer (ExecuTorch's
  XNNPACK, ONNX Runtime's dynamic quantization) start from it: no float parent is needed, and a
  pipeline's pruned architecture is kept.
* :func:`pt2e_program` — ``torch.export`` with a dynamic batch axis, through the XNNPACK quantizer
  (PT2E, torchao) when the variant is int8: the program that ``pt2`` saves and ``executorch`` lowers.
"""

from __future__ import annotations

import copy
import importlib.util
import logging
import warnings
from typing import Literal

import torch
from torch import nn

from ..measure.precision import is_int8_module, low_precision_dtype

INT8_EXTRA = "compressbench[executorch]"  # the int8 pt2 / executorch path: its XNNPACK quantizer and torchao

log = logging.getLogger(__name__)

Int8Kind = Literal["static", "dynamic", "fx"]


def deployable(model: nn.Module) -> nn.Module:
    """A CPU copy in eval mode with pruning re-parametrisations removed (``prune.remove``: the zeros stay,
    the mask multiply on every call goes)."""
    from torch.nn.utils import prune

    model = copy.deepcopy(model).cpu().eval()
    for m in model.modules():
        for hook in list(m._forward_pre_hooks.values()):
            if isinstance(hook, prune.BasePruningMethod):
                prune.remove(m, hook._tensor_name)
    return model


def int8_kind(model: nn.Module) -> Int8Kind | None:
    """How a model runs int8: ``static`` (eager ``torch.ao`` int8 modules, quantized activations),
    ``dynamic`` (dynamic int8 ``Linear``: activations quantized on the fly), ``fx`` (an FX graph module
    calling quantized ops), None (no int8)."""
    kinds = {type(m).__module__ for m in model.modules() if is_int8_module(m)}
    if any(".dynamic" in k for k in kinds):
        return "dynamic"
    if kinds:
        return "static"
    if isinstance(model, torch.fx.GraphModule) or any(isinstance(m, torch.fx.GraphModule) for m in model.modules()):
        gms = [m for m in model.modules() if isinstance(m, torch.fx.GraphModule)]
        if any("quantized" in str(n.target) for g in gms for n in g.graph.nodes if n.op == "call_function"):
            return "fx"
    return None


def _float_module(m: nn.Module) -> nn.Module | None:
    """The float module computing what int8 module ``m`` computes, with its dequantized weights, and no
    activation rounding (None: ``m`` is not an int8 module this knows). The attacks' straight-through
    simulation (``evaluate.attacks.quantsim``) does the same swap but keeps the variant's activation
    scales as fake-quant ops, which a runtime's quantizer must not see."""
    import torch.ao.nn.intrinsic.quantized as nniq
    import torch.ao.nn.quantized as nnq
    import torch.ao.nn.quantized.dynamic as nnqd

    from ..evaluate.attacks.quantsim import float_conv, float_linear

    if isinstance(m, (nnq.Conv1d, nnq.Conv2d, nnq.Conv3d)):
        f: nn.Module = float_conv(m)
    elif isinstance(m, (nnq.Linear, nnqd.Linear)):
        f = float_linear(m)
    elif isinstance(m, (nnq.Quantize, nnq.DeQuantize)):
        return nn.Identity()
    elif isinstance(m, nnq.QFunctional):
        return nn.quantized.FloatFunctional()
    elif isinstance(m, nnq.ReLU6):
        return nn.ReLU6()
    elif isinstance(m, nnq.Hardswish):
        return nn.Hardswish()
    else:
        return None
    relu = isinstance(m, (nniq.ConvReLU1d, nniq.ConvReLU2d, nniq.ConvReLU3d, nniq.LinearReLU))
    return nn.Sequential(f, nn.ReLU()) if relu else f


def float_twin(model: nn.Module) -> nn.Module:
    """A float copy of an eager int8 model (see the module docstring). Raises ``ValueError`` naming an int8
    module it cannot convert (an FX int8 graph, a module type torch added since)."""
    if int8_kind(model) == "fx":
        raise ValueError("an FX-graph int8 model has no float twin (its quantized ops are functions, not modules)")
    twin = copy.deepcopy(model).cpu()

    def swap(parent: nn.Module) -> None:
        for name, child in list(parent.named_children()):
            if not is_int8_module(child):
                swap(child)
                continue
            f = _float_module(child)
            if f is None:
                raise ValueError(
                    f"no float equivalent of int8 module {type(child).__module__}.{type(child).__name__} ({name})"
                )
            setattr(parent, name, f)

    swap(twin)
    return twin.eval()


def _xnnpack_quantizer(kind: Int8Kind):
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )

    q = XNNPACKQuantizer()
    if kind == "dynamic":  # the variant quantizes its linear layers only, activations on the fly
        return q.set_module_type(nn.Linear, get_symmetric_quantization_config(is_per_channel=True, is_dynamic=True))
    return q.set_global(get_symmetric_quantization_config(is_per_channel=True))


def pt2e_program(
    model: nn.Module, input_shape: tuple[int, ...], max_batch: int, calib: list[torch.Tensor]
) -> tuple[torch.export.ExportedProgram, str, list[str]]:
    """``(ExportedProgram, dtype, notes)``: ``torch.export`` of the variant with the batch axis dynamic up
    to ``max_batch``. An int8 variant goes through its :func:`float_twin` and the XNNPACK quantizer
    (per-channel symmetric int8 weights; static: int8 activations calibrated on ``calib``; dynamic: linear
    layers with activations quantized on the fly) — the runtime's own int8, not the variant's scales."""
    kind = int8_kind(model)
    example = (torch.rand(max_batch, *input_shape[1:]),)
    dyn = ({0: torch.export.Dim("batch", min=1, max=max_batch)},) if max_batch > 1 else None
    notes: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if kind is None:
            low = low_precision_dtype(model)
            dtype = "fp32" if low is None else str(low).replace("torch.", "")
            return torch.export.export(model, example, dynamic_shapes=dyn), dtype, notes
        if importlib.util.find_spec("executorch") is None or importlib.util.find_spec("torchao") is None:
            raise ModuleNotFoundError(
                f"an int8 ({kind}) variant is re-quantized by ExecuTorch's XNNPACK quantizer "
                f"(PT2E): pip install '{INT8_EXTRA}'"
            )
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

        twin = float_twin(model)
        gm = torch.export.export(twin, example, dynamic_shapes=dyn).module()
        prepared = prepare_pt2e(gm, _xnnpack_quantizer(kind))
        n = 0
        with torch.no_grad():
            for batch in calib:
                for x in batch.split(max_batch):
                    prepared(x)
                    n += len(x)
        converted = convert_pt2e(prepared)
        notes.append(
            "int8 re-quantized by the XNNPACK quantizer (PT2E) from the variant's dequantized weights"
            + (
                f", activations calibrated on {n} images"
                if kind == "static"
                else ", linear layers with dynamic activation quantization"
            )
            + ": the runtime's own int8 scales, not the variant's"
        )
        return (
            torch.export.export(converted, example, dynamic_shapes=dyn),
            "int8" if kind == "static" else "int8-dynamic",
            notes,
        )

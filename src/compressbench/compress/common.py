"""Helpers shared by every compressor: measuring a model against its parent (params, bytes, FLOPs),
fine-tuning, cloning and layer lookup. Budgets (checks, the knob solver, the entry point that runs a
method) are in :mod:`.budget`.
"""

from __future__ import annotations

import copy
import logging
import sys
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..interfaces import CompressContext, FinetuneParams
from ..measure.counting import param_counts
from ..measure.flops import count_flops
from ..measure.sizes import dense_bytes

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelStats:
    params: int
    params_nonzero: int
    bytes: int
    flops: int
    flops_counted: bool = True  # False: ``flops`` was given (e.g. the float graph's, for a quantized model)

    def to_dict(self) -> dict[str, int]:
        return {"params": self.params, "params_nonzero": self.params_nonzero, "bytes": self.bytes, "flops": self.flops}


def input_shape(meta: Any) -> tuple[int, int, int, int]:
    return (1, meta.channels, *meta.size)


def model_stats(model: nn.Module, meta: Any, flops: int | None = None) -> ModelStats:
    """Params (total, nonzero), dense bytes (:func:`~compressbench.measure.sizes.dense_bytes`) and FLOPs.

    ``flops`` overrides the count (quantized kernels are invisible to ``FlopCounterMode``)."""
    pc = param_counts(model)
    counted = flops is None
    if flops is None:
        flops = count_flops(model, input_shape(meta))
    return ModelStats(pc["params"], pc["params_nonzero"], dense_bytes(model), int(flops), counted)


def fractions(parent: ModelStats, child: ModelStats, nonzero: bool = False) -> dict[str, float]:
    """Achieved fractions of the parent for params / bytes / flops."""
    num = child.params_nonzero if nonzero else child.params
    return {
        "params": num / parent.params,
        "bytes": child.bytes / parent.bytes,
        "flops": child.flops / max(parent.flops, 1),
    }


def fraction_of(model: nn.Module, meta: Any, parent: ModelStats, kind: str, nonzero: bool = False) -> float:
    """One achieved fraction (params / bytes / flops), computing only what is needed (for searches).
    ``nonzero``: count nonzero parameters (methods that leave zeros in dense tensors)."""
    if kind == "params":
        return param_counts(model)["params_nonzero" if nonzero else "params"] / parent.params
    if kind == "bytes":
        return dense_bytes(model) / parent.bytes
    return count_flops(model, input_shape(meta)) / max(parent.flops, 1)


def finetune(
    model: nn.Module, ctx: CompressContext, ft: FinetuneParams | None, desc: str = "finetune", **kw: Any
) -> nn.Module:
    """Fine-tune in place with the experiment's recipe plus ``ft``'s overrides (no-op at 0 epochs)."""
    if ft is None or ft.epochs <= 0:
        return model
    out = ctx.train(model, epochs=ft.epochs, lr=ft.lr, optimizer=ft.optimizer, schedule=ft.schedule, desc=desc, **kw)
    return out if out is not None else model


SAME_FUNCTION_TOL = 1e-4  # max |Δlogit| between a trained model and its restructured (saved) form


def logit_gap(a: nn.Module, b: nn.Module, x: torch.Tensor) -> float:
    """Max |a(x) − b(x)| over a batch (both in eval mode, on ``b``'s device)."""
    dev = next((p.device for p in b.parameters()), torch.device("cpu"))
    a.eval()
    b.eval()
    with torch.inference_mode():
        return float((a.to(dev)(x.to(dev)).float() - b(x.to(dev)).float()).abs().max())


def check_same_function(
    trained: nn.Module, model: nn.Module, ctx: CompressContext, what: str, n_images: int = 64
) -> dict[str, float]:
    """``model`` (restructured: channels removed) must compute what ``trained`` computed — logits within
    :data:`SAME_FUNCTION_TOL` on the first ``n_images`` training images; raises otherwise (the job fails
    with the gap rather than storing a model that is not the one trained). Returns the record."""
    x, _, _ = next(ctx.data.train.batches(n_images))
    gap = logit_gap(trained, model, x)
    if not gap <= SAME_FUNCTION_TOL:
        raise RuntimeError(
            f"{what} changed the model's function: max |Δlogit| {gap:.3g} > {SAME_FUNCTION_TOL:g} on "
            f"{len(x)} training images"
        )
    return {"max_abs_logit_diff": gap, "images": len(x), "tolerance": SAME_FUNCTION_TOL}


def head_name(model: nn.Module) -> str | None:
    """Name of the classifier head: the last Linear (or conv) module in definition order."""
    name = None
    for n, m in model.named_modules():
        if isinstance(m, (nn.Linear, nn.modules.conv._ConvNd)):
            name = n
    return name


def get_module(model: nn.Module, name: str) -> nn.Module:
    return model.get_submodule(name)


def set_module(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def clone(model: nn.Module) -> nn.Module:
    """A deep copy on CPU in eval mode (never modify the parent in place)."""
    m = copy.deepcopy(model)
    m.eval()
    return m


# building blocks every method is known to handle (tested on the model zoo): modules whose forward is
# one standard op, sequential containers, and torchvision's ResNet classes
_PLAIN = (
    nn.Conv1d,
    nn.Conv2d,
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.ReLU,
    nn.Linear,
    nn.MaxPool2d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool2d,
    nn.Flatten,
    nn.Dropout,
    nn.Identity,
)


def first_unplain_module(net: nn.Module) -> str | None:
    """The first module of ``net`` that is not a plain building block (see ``_PLAIN``), or None. A
    method's ``check_model`` skips its dry run for plain networks. Only types are inspected; torchvision's
    ResNet classes are recognised only when ``torchvision.models.resnet`` is loaded (a network that has
    them loaded it), so this never imports anything."""
    tvr = sys.modules.get("torchvision.models.resnet")
    for name, m in net.named_modules():
        if isinstance(m, _PLAIN) or type(m) is nn.Sequential:
            continue
        if tvr is not None and (type(m) in (tvr.BasicBlock, tvr.Bottleneck) or isinstance(m, tvr.ResNet)):
            continue
        return f"{name or 'the network'} ({type(m).__module__}.{type(m).__name__})"
    return None


def layer_table(model: nn.Module) -> dict[str, dict[str, Any]]:
    """Per-layer weight shape and sparsity of conv / linear layers (for records)."""
    out: dict[str, dict[str, Any]] = {}
    for n, m in model.named_modules():
        if isinstance(m, (nn.Linear, nn.modules.conv._ConvNd)):
            w = m.weight.detach()
            out[n] = {"shape": list(w.shape), "sparsity": float((w == 0).float().mean())}
    return out

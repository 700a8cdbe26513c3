"""Helpers shared by every compressor: measuring a model against its parent (params, bytes,
FLOPs), searching a method's knob for a shared budget, fine-tuning, and layer lookup.

Budget semantics (fractions of the parent):

* ``params`` — stored parameters of the compressed model / parent parameters. For methods that
  leave zeros in dense tensors (unstructured pruning) the numerator counts **nonzero** values.
* ``bytes`` — dense bytes of the weights (``measure.sizes.dense_bytes``: ``torch.save`` of the
  deployable state dict), i.e. what shipping them costs.
* ``flops`` — dense FLOPs of one forward pass at batch 1 (2 × MACs). For int8 / fp16 models the
  FLOPs are those of the float graph they were converted from (same operations, narrower types).

A shared target is met when the achieved value is within ``TOLERANCE`` (relative, ±2 %) of it.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from typing import Any, Callable

from torch import nn

from ..interfaces import Budget, CompressContext, FinetuneParams
from ..measure.counting import param_counts
from ..measure.flops import count_flops
from ..measure.sizes import dense_bytes

log = logging.getLogger(__name__)

TOLERANCE = 0.02  # relative tolerance on shared budgets
SHARED_KINDS = ("params", "bytes", "flops")


class BudgetError(ValueError):
    """A budget cannot be met by a method (one readable line)."""


@dataclass(frozen=True)
class ModelStats:
    params: int
    params_nonzero: int
    bytes: int
    flops: int

    def to_dict(self) -> dict[str, int]:
        return {"params": self.params, "params_nonzero": self.params_nonzero, "bytes": self.bytes,
                "flops": self.flops}


def input_shape(meta: Any) -> tuple[int, int, int, int]:
    return (1, meta.channels, *meta.size)


def model_stats(model: nn.Module, meta: Any, flops: int | None = None) -> ModelStats:
    """Params (total, nonzero), dense bytes (:func:`~compressbench.measure.sizes.dense_bytes`) and FLOPs.

    ``flops`` overrides the count (quantized kernels are invisible to ``FlopCounterMode``)."""
    pc = param_counts(model)
    if flops is None:
        flops = count_flops(model, input_shape(meta))
    return ModelStats(pc["params"], pc["params_nonzero"], dense_bytes(model), int(flops))


def fractions(parent: ModelStats, child: ModelStats, nonzero: bool = False) -> dict[str, float]:
    """Achieved fractions of the parent for params / bytes / flops."""
    num = child.params_nonzero if nonzero else child.params
    return {"params": num / parent.params, "bytes": child.bytes / parent.bytes,
            "flops": child.flops / max(parent.flops, 1)}


def within(achieved: float, target: float, tol: float = TOLERANCE) -> bool:
    return abs(achieved - target) <= tol * target + 1e-12


def search_knob(evaluate: Callable[[float], float], target: float, lo: float, hi: float, *,
                decreasing: bool = True, tol: float = TOLERANCE, max_iter: int = 20,
                what: str = "knob", seen: list[tuple[float, float]] = ()
                ) -> tuple[float, float, list[tuple[float, float]]]:
    """Find a knob in ``[lo, hi]`` with ``evaluate(knob)`` ≈ ``target`` (monotone ``evaluate``).

    Safeguarded regula falsi: interpolate inside the bracket, but never closer than 10 % of the
    bracket to its ends, so that step-shaped functions (whole channels) still converge like
    bisection; smooth ones converge in a few evaluations (each evaluation compresses a copy).
    ``decreasing``: the fraction falls as the knob grows (pruning ratio); otherwise it rises
    (student width, rank ratio). ``seen``: (knob, value) pairs already measured. Stops once within
    ``tol / 3`` (a margin) and returns the best ``(knob, achieved, history)`` seen."""
    history: list[tuple[float, float]] = list(seen)
    known = dict(history)

    def ev(k: float) -> float:
        if k not in known:
            known[k] = evaluate(k)
            history.append((k, known[k]))
        return known[k]

    a, b = lo, hi
    fa, fb = ev(a), ev(b)
    sign = -1.0 if decreasing else 1.0
    for _ in range(max_iter):
        best = min(history, key=lambda kv: abs(kv[1] - target))
        if within(best[1], target, tol / 3) or b - a < 1e-6:
            break
        x = a + (target - fa) * (b - a) / (fb - fa) if fb != fa else 0.5 * (a + b)
        margin = 0.1 * (b - a)
        x = min(max(x, a + margin), b - margin)
        fx = ev(x)
        if sign * (fx - target) < 0:  # knob too small
            a, fa = x, fx
        else:
            b, fb = x, fx
    best = min(history, key=lambda kv: abs(kv[1] - target))
    if not within(best[1], target, tol):
        log.warning("%s search: best achieved %.4f for target %.4f (outside ±%.0f %%)", what, best[1], target,
                    tol * 100)
    return best[0], best[1], history


def fraction_of(model: nn.Module, meta: Any, parent: ModelStats, kind: str) -> float:
    """One achieved fraction (params / bytes / flops), computing only what is needed (for searches)."""
    if kind == "params":
        return param_counts(model)["params"] / parent.params
    if kind == "bytes":
        return dense_bytes(model) / parent.bytes
    return count_flops(model, input_shape(meta)) / max(parent.flops, 1)


def finetune(model: nn.Module, ctx: CompressContext, ft: FinetuneParams | None, desc: str = "finetune",
             **kw: Any) -> nn.Module:
    """Fine-tune in place with the experiment's recipe plus ``ft``'s overrides (no-op at 0 epochs)."""
    if ft is None or ft.epochs <= 0:
        return model
    out = ctx.train(model, epochs=ft.epochs, lr=ft.lr, optimizer=ft.optimizer, schedule=ft.schedule, desc=desc,
                    **kw)
    return out if out is not None else model


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


def check_fraction(budget: Budget | None, allowed: tuple[str, ...], method: str) -> str | None:
    """Common budget checks: known kind, shared fractions in (0, 1]."""
    if budget is None:
        return None
    if budget.kind not in allowed:
        return (f"{method} does not support '{budget.kind}' budgets (supported: "
                f"{', '.join(allowed) or 'none — give no budget'})")
    if budget.kind in SHARED_KINDS and not 0 < budget.value <= 1:
        return f"{method}: a {budget.kind} budget is a fraction of the parent in (0, 1], got {budget.value:g}"
    return None


def layer_table(model: nn.Module) -> dict[str, dict[str, Any]]:
    """Per-layer weight shape and sparsity of conv / linear layers (for records)."""
    out: dict[str, dict[str, Any]] = {}
    for n, m in model.named_modules():
        if isinstance(m, (nn.Linear, nn.modules.conv._ConvNd)):
            w = m.weight.detach()
            out[n] = {"shape": list(w.shape), "sparsity": float((w == 0).float().mean())}
    return out

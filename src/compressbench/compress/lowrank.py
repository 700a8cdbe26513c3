"""Low-rank factorisation of conv and linear layers to a rank ratio, then fine-tuning.

* ``channel_svd`` (conv; Zhang et al. 2015-style channel decomposition, data-free): the weight
  reshaped to ``O × (I·k·k)`` is truncated by SVD into a k×k conv with ``r`` output channels and
  a 1×1 conv back to ``O`` (``r = ratio · min(O, I·k·k)``).
* ``tucker2`` (conv; Kim et al. 2016): HOSVD on the output and input channel modes gives
  1×1 (I→r_in) → k×k core (r_in→r_out) → 1×1 (r_out→O), ``r_* = ratio · channels``.
* linear layers: truncated SVD into two linears (``r = ratio · min(in, out)``).

A layer is factorised only where it saves parameters. A shared budget is met by the shared solver
(``compress.budget``) searching the rank ratio (the knob).

Why our own code: the decompositions are a few lines of ``torch.linalg.svd``; the libraries that
package them for ``nn.Module`` surgery (e.g. tensorly-torch) are not dependencies here, and a
rebuilder must re-create the exact module layout anyway.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from ..catalog.methods import LowRankParams  # noqa: F401 (torch-free: compressbench.catalog)
from ..checkpoint import register_rebuilder
from ..interfaces import CompressContext, CompressResult
from ..registry import methods
from ..specs import Knob
from .budget import Solution
from .common import finetune, get_module, head_name, set_module

log = logging.getLogger(__name__)


def _r(ratio: float, full: int) -> int:
    return max(1, min(full, int(round(ratio * full))))


def plan_layer(m: nn.Module, ratio: float, params: LowRankParams) -> dict[str, Any] | None:
    """The factorisation of one layer at ``ratio`` (None = keep it: not factorisable or no saving)."""
    if isinstance(m, nn.Conv2d) and params.conv != "none" and m.groups == 1:
        o, i, kh, kw = m.weight.shape
        if params.conv == "channel_svd":
            r = _r(ratio, min(o, i * kh * kw))
            new, plan = r * (i * kh * kw + o), {"method": "channel_svd", "rank": r}
        else:
            r_in, r_out = _r(ratio, i), _r(ratio, o)
            new, plan = i * r_in + r_in * r_out * kh * kw + r_out * o, {"method": "tucker2", "ranks": [r_in, r_out]}
        return plan if new < o * i * kh * kw else None
    if isinstance(m, nn.Linear) and params.linear:
        o, i = m.weight.shape
        r = _r(ratio, min(o, i))
        return {"method": "svd", "rank": r} if r * (i + o) < o * i else None
    return None


def _conv(src: nn.Conv2d, cin: int, cout: int, k: tuple[int, int] | int, spatial: bool, bias: bool) -> nn.Conv2d:
    if spatial:
        return nn.Conv2d(
            cin,
            cout,
            k,
            stride=src.stride,
            padding=src.padding,
            dilation=src.dilation,
            bias=bias,
            padding_mode=src.padding_mode,
        )
    return nn.Conv2d(cin, cout, 1, bias=bias)


def build_factorised(m: nn.Module, plan: dict[str, Any]) -> nn.Sequential:
    """The empty (shape-only) replacement module for ``m`` under ``plan``."""
    has_bias = getattr(m, "bias", None) is not None
    if plan["method"] == "svd":
        r = plan["rank"]
        return nn.Sequential(nn.Linear(m.in_features, r, bias=False), nn.Linear(r, m.out_features, bias=has_bias))
    o, i = m.out_channels, m.in_channels
    if plan["method"] == "channel_svd":
        r = plan["rank"]
        return nn.Sequential(_conv(m, i, r, m.kernel_size, True, False), _conv(m, r, o, 1, False, has_bias))
    r_in, r_out = plan["ranks"]
    return nn.Sequential(
        _conv(m, i, r_in, 1, False, False),
        _conv(m, r_in, r_out, m.kernel_size, True, False),
        _conv(m, r_out, o, 1, False, has_bias),
    )


@torch.no_grad()
def factorise(m: nn.Module, plan: dict[str, Any]) -> nn.Sequential:
    """Replacement for ``m`` with weights from the truncated decomposition."""
    new = build_factorised(m, plan)
    w = m.weight.detach().float()
    if plan["method"] in ("svd", "channel_svd"):
        r = plan["rank"]
        u, s, vh = torch.linalg.svd(w.reshape(w.shape[0], -1), full_matrices=False)
        sq = s[:r].sqrt()
        a = sq[:, None] * vh[:r]  # r × (I·k·k) or r × in
        b = u[:, :r] * sq[None]  # O × r
        new[0].weight.copy_(a.reshape(new[0].weight.shape))
        new[1].weight.copy_(b.reshape(new[1].weight.shape))
        last = new[1]
    else:  # Tucker-2 by HOSVD on the channel modes
        r_in, r_out = plan["ranks"]
        o, i, kh, kw = w.shape
        u_out = torch.linalg.svd(w.reshape(o, -1), full_matrices=False)[0][:, :r_out]  # O × r_out
        u_in = torch.linalg.svd(w.transpose(0, 1).reshape(i, -1), full_matrices=False)[0][:, :r_in]  # I × r_in
        core = torch.einsum("oikl,or,is->rskl", w, u_out, u_in)  # r_out × r_in × k × k
        new[0].weight.copy_(u_in.t().reshape(r_in, i, 1, 1))
        new[1].weight.copy_(core)
        new[2].weight.copy_(u_out.reshape(o, r_out, 1, 1))
        last = new[2]
    if getattr(m, "bias", None) is not None:
        last.bias.copy_(m.bias.detach())
    return new


def _targets(model: nn.Module, params: LowRankParams) -> list[tuple[str, nn.Module]]:
    head = head_name(model)
    return [
        (n, m)
        for n, m in model.named_modules()
        if isinstance(m, (nn.Conv2d, nn.Linear)) and (params.include_head or n != head)
    ]


def lowrank_plan(model: nn.Module, ratio: float, params: LowRankParams) -> dict[str, dict[str, Any]]:
    """The factorisation of every layer that saves parameters at ``ratio``: {layer: plan}."""
    plans = {n: plan_layer(m, ratio, params) for n, m in _targets(model, params)}
    return {n: p for n, p in plans.items() if p is not None}


def apply_lowrank(model: nn.Module, ratio: float, ctx: CompressContext | None, params: LowRankParams) -> nn.Module:
    """The transform: factorise ``model``'s layers in place at ``ratio``."""
    for n, plan in lowrank_plan(model, ratio, params).items():
        set_module(model, n, factorise(get_module(model, n), plan))
    return model


def _knob_range(v: float) -> str | None:
    return None if 0 < v <= 1 else "must be in (0, 1]"


def check_lowrank(model: nn.Module, ctx: CompressContext, params: LowRankParams) -> str | None:
    if not lowrank_plan(model, 0.5, params):
        return (
            "no conv / linear layer whose factorisation saves parameters (grouped and depthwise convs are "
            "skipped; try linear: true or include_head: true)"
        )
    return None


@methods.register(
    "lowrank",
    check_model=check_lowrank,
    family="factorization",
    knob=Knob(
        "ratio",
        lo=1e-3,
        hi=1.0,
        shrinks=False,
        default=lambda p: p.ratio,
        hint="factorise the head / linear layers, or prune instead",
        valid=_knob_range,
    ),
    apply=apply_lowrank,
    changes_architecture=True,
    needs_training_data=True,
)
def lowrank(parent: nn.Module, ctx: CompressContext, sol: Solution, params: LowRankParams) -> CompressResult:
    layers = lowrank_plan(parent, sol.knob, params)
    model = finetune(sol.model, ctx, params.finetune, desc="finetune(lowrank)")
    model.eval()
    return CompressResult(
        model=model,
        record={"conv": params.conv, "linear": params.linear, "layers": layers},
        steps=[{"kind": "lowrank", "layers": layers}],
    )


@register_rebuilder("lowrank")
def _rebuild(model: nn.Module, step: dict, state_dict: dict) -> nn.Module:
    for name, plan in step["layers"].items():
        set_module(model, name, build_factorised(get_module(model, name), plan))
    return model

"""A plug-in written outside the package, as a user would: one method, one evaluator with a new
metric, one corruption and one attack — each one registration, nothing in ``src/`` edited — and a
method that changes the architecture, with the rebuilder that replays it when a checkpoint is loaded
(in any process: the efficiency evaluator's fresh timing process loads this module first).

Used by ``tests/test_plugins.py`` (as ``"cb_demo_plugin:<obj>"`` names in an experiment's YAML, and
through the ``compressbench.plugins`` entry-point group)."""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from compressbench.checkpoint import register_rebuilder
from compressbench.evaluate.attacks.library import Attack
from compressbench.interfaces import CompressResult, Measurement, Params
from compressbench.registry import attacks, corruptions, evaluators, methods
from compressbench.specs import Knob, MetricSpec


# --------------------------------------------------------------------------- a sparsifying method
class MagnitudeParams(Params):
    fraction: float = Field(0.5, ge=0, lt=1)  # the knob: share of conv/linear weights zeroed


def zero_smallest(model: nn.Module, fraction: float, ctx, params: MagnitudeParams) -> nn.Module:
    """Zero the globally smallest-magnitude ``fraction`` of conv / linear weights (in place)."""
    ws = [m.weight for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    flat = torch.cat([w.detach().abs().flatten() for w in ws])
    k = int(round(fraction * flat.numel()))
    if k:
        cut = flat.kthvalue(k).values
        with torch.no_grad():
            for w in ws:
                w[w.abs() <= cut] = 0
    return model


@methods.register(
    "demo.magnitude",
    params=MagnitudeParams,
    budgets=("knob", "params"),
    family="pruning",
    knob=Knob("fraction", lo=0.0, hi=0.99, shrinks=True, default=lambda p: p.fraction),
    apply=zero_smallest,
    sparsifies=True,
    description="demo: global magnitude zeroing, no fine-tune",
)
def magnitude(parent: nn.Module, ctx, sol, params: MagnitudeParams) -> CompressResult:
    return CompressResult(sol.model, record={"zeroed_fraction_of_weights": sol.knob})


# --------------------------------------------------------------------------- an architecture-changing method
class FactorParams(Params):
    rank: int = Field(4, ge=1)  # the rank of the factored classifier head


def _head(model: nn.Module) -> str:
    """The name of the last ``nn.Linear`` (the classifier head)."""
    return [n for n, m in model.named_modules() if isinstance(m, nn.Linear)][-1]


def _factored(in_f: int, out_f: int, rank: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_f, rank, bias=False), nn.Linear(rank, out_f))


@methods.register(
    "demo.factor_head",
    params=FactorParams,
    family="lowrank",
    changes_architecture=True,
    description="demo: the classifier head as two linear layers of a truncated SVD (rank r)",
)
def factor_head(parent: nn.Module, ctx, sol, params: FactorParams) -> CompressResult:
    import copy

    model = copy.deepcopy(parent).cpu().eval()
    name = _head(model)
    lin = model.get_submodule(name)
    u, s, vh = torch.linalg.svd(lin.weight.detach(), full_matrices=False)
    r = min(params.rank, s.numel())
    new = _factored(lin.in_features, lin.out_features, r)
    with torch.no_grad():
        new[0].weight.copy_(vh[:r] * s[:r, None])
        new[1].weight.copy_(u[:, :r])
        new[1].bias.copy_(lin.bias.detach())
    model.set_submodule(name, new)
    return CompressResult(model, record={"rank": r}, steps=[{"kind": "demo.factor_head", "module": name, "rank": r}])


@register_rebuilder("demo.factor_head")
def _rebuild_factor_head(model: nn.Module, step: dict, state_dict: dict) -> nn.Module:
    lin = model.get_submodule(step["module"])
    model.set_submodule(step["module"], _factored(lin.in_features, lin.out_features, int(step["rank"])))
    return model


# --------------------------------------------------------------------------- an evaluator with a new metric
@evaluators.register(
    "demo.margin",
    version=1,
    description="demo: mean logit margin (top-1 minus top-2)",
    metrics=(MetricSpec("mean_margin", label="logit margin", higher_is_better=True, fmt="f3", summary=True),),
)
def margin(model: nn.Module, ctx, params) -> list[Measurement]:
    images = ctx.eval_set()
    with torch.inference_mode():
        logits = torch.cat([model(x.to(ctx.device)).float().cpu() for x, _, _ in images.batches(256)])
    top2 = logits.topk(2, dim=1).values
    return [Measurement("mean_margin", float((top2[:, 0] - top2[:, 1]).mean()))]


# --------------------------------------------------------------------------- a corruption
@corruptions.register(
    "demo.invert",
    constants={"any": [0.02, 0.05, 0.1, 0.2, 0.4]},
    suites=("demo",),
    deterministic=True,
    description="demo: blend towards the inverted image",
)
def invert(x: torch.Tensor, rng, c: float, pset: str) -> torch.Tensor:
    return x * (1 - c) + (1 - x) * c


# --------------------------------------------------------------------------- an attack
@attacks.register("demo.sign_noise", norms=("linf",), description="demo: random ±ε sign noise (no gradients)")
class SignNoise(Attack):
    def _run(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float | None) -> torch.Tensor:
        sign = torch.randint(0, 2, x.shape, device=x.device).to(x.dtype) * 2 - 1
        return x + eps * sign


def register() -> None:
    """Entry point of the ``compressbench.plugins`` group: importing this module registered everything."""

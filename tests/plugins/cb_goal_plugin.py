"""A plug-in for the goal search's tests: a method whose effect is a KNOWN function of its knob, and an evaluator
that measures that effect on the saved model — real compress and evaluate jobs through the DAG and cache, so the
search is tested end to end with a threshold known in advance.

``goalt.dial`` (knob ``level`` in [0, 1], growing = more compressed) multiplies the classifier head's weights by
``1 − level`` — or by ``1 − bump_drop`` when ``level`` falls in ``[bump_lo, bump_hi]`` (a non-monotone family).
``goalt.score`` measures the head's weight norm relative to the parent's: exactly that factor. So with a
constraint ``goal_score: 30`` (points) the budgets meeting the goal are exactly the levels ≤ 0.3.
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from compressbench.interfaces import CompressResult, Measurement, Params
from compressbench.registry import evaluators, methods
from compressbench.specs import Knob, MetricSpec


class DialParams(Params):
    level: float = Field(0.0, ge=0, le=1)
    bump_lo: float = 2.0  # no bump by default
    bump_hi: float = 2.0
    bump_drop: float = 0.9


def factor(level: float, p: DialParams) -> float:
    return 1 - (p.bump_drop if p.bump_lo <= level <= p.bump_hi else level)


def _head(model: nn.Module) -> nn.Linear:
    return [m for m in model.modules() if isinstance(m, nn.Linear)][-1]


def dial(model: nn.Module, level: float, ctx, params: DialParams) -> nn.Module:
    with torch.no_grad():
        _head(model).weight.mul_(factor(level, params))
    return model


@methods.register(
    "goalt.dial",
    params=DialParams,
    budgets=("knob",),
    family="other",
    knob=Knob("level", lo=0.0, hi=1.0, shrinks=True, default=lambda p: p.level),
    apply=dial,
    description="goal test: the head's weights times a known function of the knob",
)
def dial_method(parent: nn.Module, ctx, sol, params: DialParams) -> CompressResult:
    return CompressResult(sol.model, record={"factor": factor(sol.knob, params)})


@evaluators.register(
    "goalt.score",
    version=1,
    description="goal test: head weight norm / the parent's",
    metrics=(
        MetricSpec("score", label="head norm ratio", fmt="pct", higher_is_better=True, summary=True, key="goal_score"),
    ),
)
def score(model: nn.Module, ctx, params) -> list[Measurement]:
    parent = ctx.load_parent()
    mine, theirs = _head(model).weight.detach().cpu(), _head(parent).weight.detach().cpu()
    return [Measurement("score", float(mine.norm() / theirs.norm()))]

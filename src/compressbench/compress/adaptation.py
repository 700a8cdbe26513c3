"""``adapt.coral``: fine-tune a model with the Deep CORAL loss (Sun & Saenko 2016) — a pipeline stage
after pruning or distillation and before int8, or a variant of its own on the baseline — so that the
report can put every variant's target-domain accuracy without and with adaptation side by side.

The stage trains with the experiment's recipe (``epochs``, ``lr`` = 0.1 × the baseline's unless given,
cosine schedule): cross-entropy on the labelled source images plus ``weight`` × the CORAL loss between
the penultimate features of each source batch and an unlabeled target batch (:mod:`compressbench.adapt`).
It changes no architecture and takes no budget: in a pipeline the budget goes to the compressing stage.
"""

from __future__ import annotations

import logging
from typing import Literal

from pydantic import Field
from torch import nn

from ..adapt import AdaptParams
from ..interfaces import CompressContext, CompressResult, Params
from ..registry import methods
from .budget import Solution
from .common import clone

log = logging.getLogger(__name__)


class CoralParams(Params):
    weight: float = Field(1.0, ge=0, le=1e6)  # λ
    targets: list[str] | None = None  # target domains to align with (None: every target, pooled)
    features: Literal["penultimate", "logits"] = "penultimate"  # where the CORAL loss is taken
    epochs: float = Field(1.0, gt=0, le=10_000)
    lr: float | None = Field(None, gt=0)  # None: 0.1 × the baseline recipe's lr
    optimizer: Literal["sgd", "adam", "adamw"] | None = None
    schedule: Literal["cosine", "onecycle", "step", "constant"] = "cosine"

    def adaptation(self) -> AdaptParams:
        return AdaptParams(method="coral", weight=self.weight, targets=self.targets, features=self.features)


def _is_float(model: nn.Module) -> bool:
    return not any("quantized" in type(m).__module__ for m in model.modules())


@methods.register("adapt.coral", params=CoralParams, family="adaptation", needs_training_data=True,
                  adapts=lambda p: p.adaptation(), version=1,
                  description="Deep CORAL fine-tuning (Sun & Saenko 2016): source cross-entropy + λ·CORAL on the "
                              "penultimate features of unlabeled target batches; a stage before int8")
def coral(parent: nn.Module, ctx: CompressContext, sol: Solution, params: CoralParams) -> CompressResult:
    if not _is_float(parent):
        raise ValueError("adapt.coral: cannot train an int8-converted model; put adapt.coral before quantization")
    model = clone(parent).cpu()
    ad = params.adaptation()
    out = ctx.train(model, epochs=params.epochs, lr=params.lr, optimizer=params.optimizer, schedule=params.schedule,
                    desc="coral", adapt=ad)
    model = (out if out is not None else model).eval()
    return CompressResult(model=model, record={"adapt": {**ad.model_dump(), "label": ad.label()},
                                               "epochs": params.epochs})

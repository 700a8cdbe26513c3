"""``adapt.coral``: fine-tune a model with the Deep CORAL loss (Sun & Saenko 2016) — a pipeline stage
after pruning or distillation and before int8, or a variant of its own on the baseline — so that the
report can put every variant's target-domain accuracy without and with adaptation side by side.

The stage trains with the experiment's recipe (``epochs``, ``lr`` = 0.1 × the baseline's unless given,
cosine schedule): cross-entropy on the labelled source images plus ``weight`` × the CORAL loss between
the penultimate features of each source batch and an unlabeled target batch (:mod:`compressbench.adapt`).
It changes no architecture and takes no budget: in a pipeline the budget goes to the compressing stage.

``init: scratch`` instead trains the baseline's architecture from the very initial weights the baseline
started from (rebuilt from the checkpoint spec after seeding with the job's seed, as the train job does):
with the baseline's ``epochs``, ``lr`` and ``schedule`` it is exactly ``train.adapt`` — Deep CORAL's own
setting — as a variant next to the source-only baseline, so one experiment holds both.
"""

from __future__ import annotations

import logging

from torch import nn

from ..catalog.methods import CoralParams, CoralStage  # noqa: F401 (torch-free: compressbench.catalog)
from ..costs import TrainingCost
from ..interfaces import CompressContext, CompressResult
from ..registry import methods
from ..train import seed_everything
from .budget import Solution
from .common import clone

log = logging.getLogger(__name__)


def _is_float(model: nn.Module) -> bool:
    return not any("quantized" in type(m).__module__ for m in model.modules())


def _fresh(parent: nn.Module, ctx: CompressContext) -> nn.Module:
    """The baseline's architecture with the baseline's initial weights: seeded like the train job."""
    from ..checkpoint import build_from_spec

    seed_everything(ctx.seed)
    model = build_from_spec(ctx.parent_spec)
    shapes = [tuple(p.shape) for p in model.parameters()]
    if shapes != [tuple(p.shape) for p in parent.parameters()]:
        raise ValueError(
            "adapt.coral init: scratch rebuilds the baseline's architecture; use it on the baseline, "
            "not after a stage that changes the architecture"
        )
    return model


@methods.register(
    "adapt.coral",
    family="adaptation",
    compresses=False,
    needs_training_data=True,
    adapts=lambda p: p.adaptation(),
    cost=lambda p: TrainingCost(epochs=p.epochs, adapt=True),
)
def coral(parent: nn.Module, ctx: CompressContext, sol: Solution, params: CoralParams) -> CompressResult:
    if not _is_float(parent):
        raise ValueError("adapt.coral: cannot train an int8-converted model; put adapt.coral before quantization")
    model = _fresh(parent, ctx) if params.init == "scratch" else clone(parent).cpu()
    ad = params.adaptation()
    out = ctx.train(
        model,
        epochs=params.epochs,
        lr=params.lr,
        optimizer=params.optimizer,
        schedule=params.schedule,
        desc="coral",
        adapt=ad,
    )
    model = (out if out is not None else model).eval()
    return CompressResult(
        model=model, record={"adapt": {**ad.model_dump(), "label": ad.label()}, "epochs": params.epochs}
    )

"""Clean accuracy: top-1, top-5 (when there are more than 5 classes), per-class accuracy, NLL."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..catalog.evaluators import CleanParams  # noqa: F401 (torch-free: compressbench.catalog)
from ..interfaces import EvalContext, Measurement
from ..outcomes import OutcomeRecorder, eval_set_name
from ..registry import evaluators
from ..specs import ANY, CLEAN_ACCURACY, Console, MetricSpec
from ..train import predict


def top1(logits: torch.Tensor, targets: torch.Tensor) -> float:
    return float((logits.argmax(1) == targets).float().mean())


def topk(logits: torch.Tensor, targets: torch.Tensor, k: int) -> float:
    k = min(k, logits.shape[1])
    return float((logits.topk(k, 1).indices == targets[:, None]).any(1).float().mean())


def nll(logits: torch.Tensor, targets: torch.Tensor) -> float:
    return float(F.cross_entropy(logits.float(), targets))


@evaluators.register(
    "clean",
    metrics=(
        MetricSpec(
            "top1",
            label="Clean acc. %",
            fmt="pct",
            higher_is_better=True,
            where={},
            exact=True,
            summary=True,
            key="clean_top1",
            order=10,
            table=None,
            figure="acc_vs_budget_{kind}",
            console=Console("clean top-1"),
            role=CLEAN_ACCURACY,
            lead=True,
            description="top-1 accuracy on the clean evaluation subset",
        ),
        MetricSpec("top5", label="Top-5 %", fmt="pct", higher_is_better=True, table=None),
        MetricSpec("nll", label="NLL", fmt="f3", higher_is_better=False, table=None),
        MetricSpec("n_images", label="Images", fmt="int", table=None),
        MetricSpec(
            "class_top1",
            label="Class acc. %",
            fmt="pct",
            higher_is_better=True,
            where={"class": ANY},
            table=None,
            description="top-1 per true class",
        ),
    ),
)
def clean(model: nn.Module, ctx: EvalContext, params: CleanParams) -> list[Measurement]:
    images = ctx.eval_set(params.subset if params.subset is not None else -1)
    logits = predict(model, images, params.batch_size, ctx.device, desc="clean" if ctx.progress else None)
    y = images.y
    out = [
        Measurement("top1", top1(logits, y)),
        Measurement("nll", nll(logits, y)),
        Measurement("n_images", float(len(y))),
    ]
    rec = OutcomeRecorder()  # per-image correctness: the image-level test of findings on one seed
    rec.mean("top1", out[0].value, {}, rec.image_set(eval_set_name(), images.index), logits.argmax(1) == y)
    rec.save(ctx.workdir)
    if logits.shape[1] > 5:
        out.append(Measurement("top5", topk(logits, y, 5)))
    if params.per_class:
        pred = logits.argmax(1)
        names = ctx.meta.class_names or tuple(str(i) for i in range(ctx.meta.num_classes))
        for c in range(ctx.meta.num_classes):
            m = y == c
            if m.any():
                out.append(
                    Measurement(
                        "class_top1",
                        float((pred[m] == c).float().mean()),
                        condition={"class": names[c] if c < len(names) else str(c)},
                    )
                )
    return out

"""The ``domain_shift`` evaluator: how a variant holds up on another domain.

For a dataset with named domains (``data.domains``; ``dataset.source`` / ``dataset.targets``) it
measures, for every variant, top-1 on the source's held-out test split (in-domain) and on every target
domain's evaluation images, and the gap between them. Optionally it also measures top-1 on *corrupted*
target images (the deterministic CIFAR-10-C style corruptions of ``evaluate.corruptions``): robustness
and domain shift together.

Measurements (naming contract; conditions in braces):

* ``source_top1`` {source}: in-domain top-1;
* ``target_top1`` {source, target}: top-1 on the target domain;
* ``gap`` {source, target}: ``source_top1 − target_top1`` (a fraction; the report shows points);
* ``target_corruption_top1`` {source, target, corruption, severity} and its mean over corruptions and
  severities ``target_corruption_mean`` {source, target}, with ``corruptions``;
* ``composition`` = 1 {compression, adapt}: what the variant is made of (``compress.budget.composition``:
  its compressing stages, and the adaptation it — or its parent baseline — applied), so the report can
  put each variant's source-only and adapted numbers side by side.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from ..catalog.evaluators import DomainShiftParams  # noqa: F401 (torch-free: compressbench.catalog)
from ..costs import CostContext, EvalCost, batches
from ..interfaces import EvalContext, Measurement
from ..outcomes import OutcomeRecorder, eval_set_name
from ..registry import evaluators
from ..specs import ANY, MetricSpec

log = logging.getLogger(__name__)


def variant_composition(ctx: EvalContext) -> dict[str, str]:
    """{compression, adapt} of the evaluated variant; a variant that does not adapt itself but whose
    baseline was trained with adaptation is labelled ``<label> (parent)``."""
    comp = dict(ctx.variant.record.get("composition") or {"compression": "", "adapt": ""})
    parent = (ctx.extra.get("parent_record") or {}).get("composition") or {}
    if not comp.get("adapt") and parent.get("adapt") and not ctx.variant.is_parent:
        comp["adapt"] = f"{parent['adapt']} (parent)"
    return {"compression": comp.get("compression", ""), "adapt": comp.get("adapt", "")}


@torch.inference_mode()
def _correct(model: nn.Module, batches, device: torch.device, fn=None) -> torch.Tensor:
    """Per image: is the prediction right (in the images' order)."""
    oks = []
    for x, y, idx in batches:
        x = fn(x, idx) if fn is not None else x
        oks.append((model(x.to(device)).argmax(1) == y.to(device)).cpu())
    return torch.cat(oks)


def _domain_shift_cost(p: DomainShiftParams, ctx: CostContext) -> EvalCost:
    """The source's test subset, and per target its images once plus once per corruption × severity."""
    from .corruptions import resolve_names

    size = p.subset if p.subset is not None else -1
    per_target = 1 + (len(resolve_names(p.corruptions)) * len(p.severities) if p.corruptions else 0)
    targets = p.targets or list(ctx.targets)
    return EvalCost(
        forward=ctx.images(size) + sum(per_target * ctx.images(size, domain=t) for t in targets),
        calls=batches(ctx.images(size), p.batch_size)
        + sum(per_target * batches(ctx.images(size, domain=t), p.batch_size) for t in targets),
    )


@evaluators.register(
    "domain_shift",
    target_domains=lambda p: p.targets,
    gathers=True,
    cost=_domain_shift_cost,
    metrics=(
        MetricSpec(
            "source_top1",
            label="Source acc. %",
            fmt="pct",
            higher_is_better=True,
            where={"source": ANY},
            summary=True,
            order=11,
            table=None,
            description="top-1 on the source domain's test split",
        ),
        MetricSpec(
            "target_top1",
            label="Target acc. %",
            fmt="pct",
            higher_is_better=True,
            where={"target": ANY},
            summary=True,
            order=12,
            table=None,
            description="top-1 on the target domain(s) (several: their mean)",
        ),
        MetricSpec(
            "gap",
            label="Domain gap (pts)",
            fmt="pct",
            higher_is_better=False,
            where={"target": ANY},
            summary=True,
            order=13,
            table=None,
            description="source top-1 − target top-1",
        ),
        MetricSpec(
            "target_corruption_mean",
            label="Target corr. acc. %",
            fmt="pct",
            higher_is_better=True,
            where={"target": ANY},
            summary=True,
            order=14,
            table=None,
            description="top-1 on corrupted target images, mean over corruptions × severities",
        ),
        MetricSpec(
            "target_corruption_top1", label="Target acc. % (corrupted)", fmt="pct", higher_is_better=True, table=None
        ),
        MetricSpec(
            "composition",
            label="Composition",
            table=None,
            description="1 per variant; its condition names the compression and the adaptation",
        ),
    ),
    report="compressbench.evaluate.domain_report:tables",
    figures="compressbench.evaluate.domain_report:figures",
)
def domain_shift(model: nn.Module, ctx: EvalContext, params: DomainShiftParams) -> list[Measurement]:
    data = ctx.data
    if data.source is None or not data.targets:
        raise ValueError(
            "domain_shift needs a dataset with named domains and target domains (dataset.source / dataset.targets)"
        )
    targets = params.targets or list(data.targets)
    model = model.eval()
    dev, bs, src = ctx.device, params.batch_size, data.source
    size = params.subset if params.subset is not None else -1  # -1: the experiment's eval_subset
    source = ctx.eval_set(size)
    rec = OutcomeRecorder()  # per-image outcomes: the image-level test of findings on one seed
    s_ok = _correct(model, source.batches(bs), dev)
    s_acc = int(s_ok.sum()) / len(source)
    s_term = rec.mean("source_top1", s_acc, {"source": src}, rec.image_set(eval_set_name(), source.index), s_ok)
    out = [
        Measurement("source_top1", s_acc, {"source": src}),
        Measurement("composition", 1.0, variant_composition(ctx)),
    ]
    for t in targets:
        images = ctx.eval_set(size, domain=t)
        t_ok = _correct(model, images.batches(bs), dev)
        t_acc = int(t_ok.sum()) / len(images)
        cond = {"source": src, "target": t}
        t_set = rec.image_set(eval_set_name(t, src), images.index)
        t_term = rec.mean("target_top1", t_acc, cond, t_set, t_ok)
        rec.row("gap", s_acc - t_acc, cond, [(s_term, 1.0), (t_term, -1.0)])
        out += [Measurement("target_top1", t_acc, cond), Measurement("gap", s_acc - t_acc, cond)]
        if params.corruptions:
            out += _corrupted(model, images, params, cond, dev, rec, t_set)
    rec.save(ctx.workdir)
    return out


def _corrupted(
    model: nn.Module, images, params: DomainShiftParams, cond: dict, dev: torch.device, rec: OutcomeRecorder, iset: int
) -> list[Measurement]:
    """Top-1 on the target images under each corruption × severity (uint8 in, uint8 out, as the
    corruptions evaluator does), and their mean; their per-image outcomes go to ``rec`` (set ``iset``)."""
    from .corruptions import corrupt, resolve_names

    out, accs, terms = [], [], []
    for name in resolve_names(params.corruptions):
        for sev in params.severities:

            def fn(x: torch.Tensor, idx: torch.Tensor, name: str = name, sev: int = sev) -> torch.Tensor:
                return corrupt(x, idx, name, sev, seed=params.corruption_seed).float().div_(255)

            ok = _correct(model, images.batches(params.batch_size, uint8=True), dev, fn)
            acc = int(ok.sum()) / len(images)
            accs.append(acc)
            c = {**cond, "corruption": name, "severity": sev}
            terms.append(rec.mean("target_corruption_top1", acc, c, iset, ok))
            out.append(Measurement("target_corruption_top1", acc, c))
    mean = sum(accs) / len(accs)
    rec.row("target_corruption_mean", mean, cond, [(t, 1 / len(terms)) for t in terms])
    out.append(Measurement("target_corruption_mean", mean, cond))
    return out

"""The ``corruptions`` evaluator: top-1 under every corruption × severity, corrupted on the fly — once per
study: the evaluations of one seed run together (:func:`corruptions_group`, ``execute.group``), each
corrupted batch scored by every variant.

Measurements (naming contract): ``top1`` {corruption, severity, suite}; ``mean_top1`` {suite}
(over all its corruptions × severities), {suite, severity} and {suite, corruption};
``mce_unnormalised`` {suite} = 1 − mean_top1; ``clean_top1`` {suite} on the same subset (for
retention and relative CE). CE / relative CE against the parent are computed by the report with
:mod:`.metrics`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ...catalog.evaluators import Cell, CorruptionSetting, CorruptionsParams  # noqa: F401 (torch-free: compressbench.catalog)
from ...costs import CostContext, EvalCost, batches
from ...data.transforms import fit_size
from ...interfaces import EvalContext, Measurement
from ...outcomes import OutcomeRecorder, Term, eval_set_name
from ...progress import progress_bar
from ...registry import corruptions as corruption_registry
from ...registry import evaluators
from ...specs import ANY, CORRUPTION_ACCURACY, Console, MetricSpec

log = logging.getLogger(__name__)


def _file_batches(files: str, name: str, severity: int, index: torch.Tensor, batch_size: int, test_index: torch.Tensor):
    from ...data.cifar_c import load_cifar_c_rows

    for s in range(0, len(index), batch_size):
        b = index[s : s + batch_size]
        yield load_cifar_c_rows(Path(files), name, severity, b, test_index)


def corruption_versions(names) -> dict[str, int]:
    """{name: version} of the given corruptions (part of the evaluation job keys)."""
    return {n: corruption_registry.spec(n).version for n in names}


def corruptions_cost(p: CorruptionsParams, ctx: CostContext) -> EvalCost:
    """``compressbench plan``: a clean pass and one per cell over the subset (the corruptions' own pixel work
    is not counted)."""
    cells = sum(len(c) for _, c in p.cells())
    n = ctx.images(-1 if p.subset is None else p.subset)
    return EvalCost(forward=(1 + cells) * n, calls=(1 + cells) * batches(n, p.batch_size))


@evaluators.register(
    "corruptions",
    cost=corruptions_cost,
    group="compressbench.evaluate.corruptions.evaluator:corruptions_group",
    key_versions=lambda p: corruption_versions(c.name for _, cs in p.cells() for c in cs),
    metrics=(
        MetricSpec(
            "mean_top1",
            label="Corruption acc. %",
            fmt="pct",
            higher_is_better=True,
            where={"suite": ANY},
            exact=True,
            summary=True,
            key="corr_top1",
            order=20,
            table=None,
            console=Console("corruption top-1"),
            lead=True,
            role=CORRUPTION_ACCURACY,
            description="mean top-1 over the suite's corruptions × severities (several suites: their mean)",
        ),
        MetricSpec(
            "top1",
            label="Corruption acc. %",
            fmt="pct",
            higher_is_better=True,
            summary=True,
            key="corr_top1",
            fallback=True,
            order=20,
            table=None,
            note="Corruption acc. %: mean over the stored cells (no mean_top1 rows).",
            description="top-1 per corruption × severity (without mean_top1 rows: their mean)",
        ),
        MetricSpec(
            "top1",
            label="top-1 accuracy %",
            fmt="pct",
            higher_is_better=True,
            where={"corruption": ANY},
            order=20,
            table=None,
            panels="corruption",
            figure="acc_vs_budget_{kind}_corruptions",
        ),
        MetricSpec(
            "retention",
            label="Retention",
            fmt="f3",
            higher_is_better=True,
            summary=True,
            order=21,
            derive="compressbench.evaluate.corruptions.report:retention",
            description="corrupted accuracy / clean accuracy of the same variant and "
            "seed; 1 = nothing lost under corruption",
        ),
        MetricSpec(
            "mce",
            label="CE vs base",
            fmt="f3",
            higher_is_better=False,
            summary=True,
            order=22,
            derive="compressbench.evaluate.corruptions.report:mce",
            description="corruption error vs the baseline (ImageNet-C's CE with the "
            "baseline of the same seed in place of AlexNet): Σ_s E_s,c / "
            "Σ_s E^base_s,c, mean over corruptions; 1 = as many errors as "
            "the baseline, < 1 fewer",
        ),
        MetricSpec(
            "rel_mce",
            label="Rel. CE vs base",
            fmt="f3",
            higher_is_better=False,
            summary=True,
            order=23,
            derive="compressbench.evaluate.corruptions.report:relative_mce",
            description="relative corruption error vs the baseline: the variant's "
            "loss from clean to corrupted over the baseline's, Σ_s (E_s,c − "
            "E_clean) / Σ_s (E^base_s,c − E^base_clean), mean over "
            "corruptions; 1 = degrades like the baseline, < 1 less, < 0: "
            "more accurate corrupted than clean; large when the baseline "
            "barely degrades (a ratio over a small number)",
        ),
        MetricSpec("mce_unnormalised", label="1 − corruption acc.", fmt="f3", higher_is_better=False, table=None),
        MetricSpec("clean_top1", label="Clean acc. % (same subset)", fmt="pct", higher_is_better=True, table=None),
    ),
    report="compressbench.evaluate.corruptions.report:tables",
    figures="compressbench.evaluate.corruptions.report:figures",
)
def corruptions_evaluator(model: nn.Module, ctx: EvalContext, params: CorruptionsParams) -> list[Measurement]:
    """One model: :func:`corruptions_group` with one member."""
    out = corruptions_group([(model, ctx)], params)[0]
    if isinstance(out, BaseException):
        raise out
    return out


class _Member:
    """One model of a group evaluation: its correct/incorrect vectors, per-image outcomes and rows."""

    def __init__(self, model: nn.Module, ctx: EvalContext, images: Any):
        self.model, self.ctx = model.eval(), ctx
        self.rec = OutcomeRecorder()  # per-image outcomes of every row (compressbench.outcomes)
        self.iset = self.rec.image_set(eval_set_name(), images.index)
        self.n = len(images)
        self.vals: dict[Term, float] = {}
        self.out: list[Measurement] = []
        self.oks: list[torch.Tensor] = []
        self.error: BaseException | None = None

    @torch.inference_mode()
    def add(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Score one batch (on this model's device); a failure stops this member alone."""
        if self.error is None:
            try:
                self.oks.append((self.model(x).argmax(1) == y).cpu())
            except Exception as e:  # noqa: BLE001 — reported as this job's error
                self.error = e

    def term(self) -> Term | None:
        """The vector of the batches added since the last call."""
        if self.error is not None:
            return None
        ok, self.oks = torch.cat(self.oks), []
        t = self.rec.vector(self.iset, ok)
        self.vals[t] = int(ok.sum()) / self.n
        return t

    def mean_row(self, metric: str, cond: dict, terms: list[Term], const: float = 0.0, sign: float = 1.0) -> None:
        if self.error is None:
            value = const + sign * sum(float(self.vals[t]) for t in terms) / len(terms)
            self.rec.row(metric, value, cond, [(t, sign / len(terms)) for t in terms], const)
            self.out.append(Measurement(metric, value, cond))


def _by_device(members: list[_Member]) -> dict[torch.device, list[_Member]]:
    out: dict[torch.device, list[_Member]] = {}
    for m in members:
        out.setdefault(torch.device(m.ctx.device), []).append(m)
    return out


def _score(ms: list[_Member], x: torch.Tensor, y: torch.Tensor) -> None:
    """Every member scores the same batch (a copy each but the last: a model must not see another's edits)."""
    for i, m in enumerate(ms):
        m.add(x if i == len(ms) - 1 else x.clone(), y)


def _cell_batches(cell: Cell, images: Any, params: CorruptionsParams, ctx: EvalContext, device: torch.device):
    """(corrupted float batch, labels) of one cell on ``device``: from the official files, or corrupted here
    (``quantize``: uint8 in -> uint8 out, the cheapest path, the same images)."""
    from .core import corrupt

    if params.files and cell.constant is None:
        for x, y in _file_batches(
            params.files, cell.name, cell.severity, images.index, params.batch_size, ctx.data.test.index
        ):
            yield fit_size(x, ctx.meta.size).to(device), y.to(device)  # dataset.resize: the files are 32 px
        return
    for x, y, idx in images.batches(params.batch_size, device=device, uint8=params.quantize):
        xc = corrupt(
            x, idx, cell.name, cell.severity, seed=params.seed, params=params.param_set, constant=cell.constant
        )
        yield (xc.float().div_(255) if params.quantize else xc), y


def corruptions_group(
    members: list[tuple[nn.Module, EvalContext]], params: CorruptionsParams
) -> list[list[Measurement] | BaseException]:
    """The evaluator on several models of one seed at once (``EvaluatorSpec.group``): each corrupted batch is
    made once per device and scored by every model on that device, so a study corrupts its evaluation images
    once instead of once per variant. A model's rows are exactly those it gets alone (same images, batches and
    seeds)."""
    ctx0 = members[0][1]
    images = ctx0.eval_set(params.subset if params.subset is not None else -1)
    ms = [_Member(model, ctx, images) for model, ctx in members]
    devices = _by_device(ms)
    cells = params.cells()
    total = sum(len(c) for _, c in cells) * len(images) * len(devices)
    for dev, group in devices.items():
        for x, y, _ in images.batches(params.batch_size, device=dev):
            _score(group, x, y)
    clean = [m.term() for m in ms]
    with progress_bar(
        total=total,
        desc="corruptions" + (f" ×{len(ms)} models" if len(ms) > 1 else ""),
        unit="img",
        disable=not ctx0.progress,
    ) as bar:
        for suite, suite_cells in cells:
            acc: list[tuple[Cell, list[Term | None]]] = []
            for cell in suite_cells:
                for dev, group in devices.items():
                    for x, y in _cell_batches(cell, images, params, ctx0, dev):
                        _score(group, x, y)
                        bar.update(len(y))
                terms = [m.term() for m in ms]
                acc.append((cell, terms))
                for m, t in zip(ms, terms, strict=True):
                    m.mean_row("top1", {**cell.condition, "suite": suite}, [t])
            for k, m in enumerate(ms):
                ts = [t[k] for _, t in acc]
                m.mean_row("mean_top1", {"suite": suite}, ts)
                m.mean_row("mce_unnormalised", {"suite": suite}, ts, const=1.0, sign=-1.0)
                m.mean_row("clean_top1", {"suite": suite}, [clean[k]])
                for sev in params.severities:  # the means over severities, of the corruptions listed by name
                    sev_ts = [t[k] for c, t in acc if c.constant is None and c.severity == sev]
                    if sev_ts:
                        m.mean_row("mean_top1", {"suite": suite, "severity": sev}, sev_ts)
                for n in dict.fromkeys(c.name for c, _ in acc if c.constant is None):
                    m.mean_row(
                        "mean_top1",
                        {"suite": suite, "corruption": n},
                        [t[k] for c, t in acc if c.constant is None and c.name == n],
                    )
    for m in ms:
        if m.error is None:
            m.rec.save(m.ctx.workdir)
            _gallery(m.ctx, params, images)
    return [m.error if m.error is not None else m.out for m in ms]


def _gallery(ctx: EvalContext, params: CorruptionsParams, images: Any) -> None:
    """``gallery.png``: the first image under every corruption × severity (by default for the parent only)."""
    from .gallery import make_gallery

    plan = params.plan()
    want_gallery = params.gallery if params.gallery is not None else ctx.variant.is_parent
    if want_gallery and not params.files and plan:
        try:
            ctx.workdir.mkdir(parents=True, exist_ok=True)
            names = [n for _, ns in plan for n in ns]
            x0 = images.x[:1].float() / 255
            make_gallery(
                x0,
                list(dict.fromkeys(names)),
                params.severities,
                ctx.workdir / "gallery.png",
                indices=images.index[:1],
                seed=params.seed,
                params=params.param_set,
            )
        except Exception as e:  # a gallery must never fail the evaluation
            log.warning("corruption gallery not written: %s", e)

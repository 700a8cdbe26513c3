"""The ``corruptions`` evaluator: top-1 under every corruption × severity, corrupted on the fly.

Measurements (naming contract): ``top1`` {corruption, severity, suite}; ``mean_top1`` {suite}
(over all its corruptions × severities), {suite, severity} and {suite, corruption};
``mce_unnormalised`` {suite} = 1 − mean_top1; ``clean_top1`` {suite} on the same subset (for
retention and relative CE). CE / relative CE against the parent are computed by the report with
:mod:`.metrics`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

import torch
from pydantic import field_validator
from torch import nn

from ...data.transforms import fit_size
from ...fields import BatchSize, Seed, Subset
from ...interfaces import EvalContext, Measurement, Params
from ...progress import progress_bar
from ...registry import corruptions as corruption_registry
from ...registry import evaluators
from ...specs import ANY, Console, MetricSpec

log = logging.getLogger(__name__)


class CorruptionsParams(Params):
    suites: list[str] = ["cifar10-c"]  # cifar10-c | extra | noise | all
    corruptions: list[str] | None = None  # explicit names: replaces `suites` (suite label = "custom")
    severities: list[int] = [1, 2, 3, 4, 5]
    subset: Subset = None  # None: the experiment's evaluation subset
    batch_size: BatchSize = 256
    seed: Seed = 0  # corruption seed (NOT the training seed): same inputs for every model
    param_set: Literal["auto", "cifar", "imagenet"] = "auto"
    quantize: bool = True  # truncate to uint8 steps, as the published CIFAR-10-C files
    gallery: bool | None = None  # write gallery.png; None = only for the baseline variant
    files: str | None = None  # folder of official CIFAR-10-C/100-C .npy files: use them instead

    @field_validator("severities")
    @classmethod
    def _sev(cls, v: list[int]) -> list[int]:
        bad = [s for s in v if not 1 <= s <= 5]
        if bad or not v:
            raise ValueError(f"severities must be a non-empty list of integers in 1..5, got {v}")
        return v

    @field_validator("suites")
    @classmethod
    def _suites(cls, v: list[str]) -> list[str]:
        from . import suites

        known = suites()
        bad = [s for s in v if s not in known]
        if not v:
            raise ValueError(f"give at least one suite (known: {', '.join(known)})")
        if bad:
            raise ValueError(f"unknown corruption suite(s) {bad} (known: {', '.join(known)})")
        return v

    @field_validator("corruptions")
    @classmethod
    def _names(cls, v: list[str] | None) -> list[str] | None:
        if v is not None:
            for n in v:
                corruption_registry.resolve(n)  # raises with the known names and a "did you mean"
        return v

    def plan(self) -> list[tuple[str, list[str]]]:
        """(suite label, corruption names) pairs to evaluate."""
        from . import resolve_names, suite_names

        if self.corruptions:
            return [("custom", resolve_names(self.corruptions))]
        return [(s, list(suite_names(s))) for s in self.suites]


def _file_batches(files: str, name: str, severity: int, index: torch.Tensor, batch_size: int,
                  test_index: torch.Tensor):
    from ...data.cifar_c import load_cifar_c_rows

    for s in range(0, len(index), batch_size):
        b = index[s:s + batch_size]
        yield load_cifar_c_rows(Path(files), name, severity, b, test_index)


def corruption_versions(names) -> dict[str, int]:
    """{name: version} of the given corruptions (part of the evaluation job keys)."""
    return {n: corruption_registry.spec(n).version for n in names}


@evaluators.register("corruptions", params=CorruptionsParams, version=1,
                     key_versions=lambda p: corruption_versions(n for _, ns in p.plan() for n in ns),
                     description="top-1 under CIFAR-10-C / extra / noise-study corruptions × severities "
                                 "(deterministic, corrupted on the fly); mean_top1, mce_unnormalised",
                     metrics=(
                         MetricSpec("mean_top1", label="Corruption acc. %", fmt="pct", higher_is_better=True,
                                    where={"suite": ANY}, exact=True, summary=True, key="corr_top1", order=20,
                                    table=None, console=Console("corruption top-1"),
                                    description="mean top-1 over the suite's corruptions × severities (several "
                                                "suites: their mean)"),
                         MetricSpec("top1", label="Corruption acc. %", fmt="pct", higher_is_better=True,
                                    summary=True, key="corr_top1", fallback=True, order=20, table=None,
                                    note="Corruption acc. %: mean over the stored cells (no mean_top1 rows).",
                                    description="top-1 per corruption × severity (without mean_top1 rows: their "
                                                "mean)"),
                         MetricSpec("top1", label="top-1 accuracy %", fmt="pct", higher_is_better=True,
                                    where={"corruption": ANY}, order=20, table=None, panels="corruption",
                                    figure="acc_vs_budget_{kind}_corruptions"),
                         MetricSpec("retention", label="Retention", fmt="f3", higher_is_better=True, summary=True,
                                    order=21, derive="compressbench.evaluate.corruptions.report:retention",
                                    description="mean corruption accuracy / clean accuracy"),
                         MetricSpec("mce", label="CE vs base", fmt="f3", higher_is_better=False, summary=True,
                                    order=22, derive="compressbench.evaluate.corruptions.report:mce",
                                    description="mean corruption error relative to the baseline (ImageNet-C)"),
                         MetricSpec("rel_mce", label="Rel. CE vs base", fmt="f3", higher_is_better=False,
                                    summary=True, order=23, derive="compressbench.evaluate.corruptions.report:"
                                                                   "relative_mce",
                                    description="relative mCE vs the baseline (degradation from clean)"),
                         MetricSpec("mce_unnormalised", label="1 − corruption acc.", fmt="f3",
                                    higher_is_better=False, table=None),
                         MetricSpec("clean_top1", label="Clean acc. % (same subset)", fmt="pct",
                                    higher_is_better=True, table=None),
                     ),
                     report="compressbench.evaluate.corruptions.report:tables",
                     figures="compressbench.evaluate.corruptions.report:figures")
def corruptions_evaluator(model: nn.Module, ctx: EvalContext, params: CorruptionsParams) -> list[Measurement]:
    from . import corrupt, make_gallery

    images = ctx.eval_set(params.subset if params.subset is not None else -1)
    device = ctx.device
    model = model.eval()
    plan = params.plan()
    total = sum(len(n) for _, n in plan) * len(params.severities) * len(images)
    out: list[Measurement] = []

    @torch.inference_mode()
    def correct(x: torch.Tensor, y: torch.Tensor) -> int:
        return int((model(x).argmax(1) == y).sum())

    clean = sum(correct(x, y) for x, y, _ in images.batches(params.batch_size, device=device)) / len(images)
    with progress_bar(total=total, desc="corruptions", unit="img", disable=not ctx.progress) as bar:
        for suite, names in plan:
            acc: dict[tuple[str, int], float] = {}
            for name in names:
                for sev in params.severities:
                    hits = 0
                    if params.files:
                        for x, y in _file_batches(params.files, name, sev, images.index, params.batch_size,
                                                      ctx.data.test.index):
                            x = fit_size(x, ctx.meta.size)  # dataset.resize: the files hold 32-px images
                            hits += correct(x.to(device), y.to(device))
                            bar.update(len(y))
                    else:  # quantize: uint8 in -> uint8 out, the cheapest path (same images)
                        for x, y, idx in images.batches(params.batch_size, device=device, uint8=params.quantize):
                            xc = corrupt(x, idx, name, sev, seed=params.seed, params=params.param_set)
                            hits += correct(xc.float().div_(255) if params.quantize else xc, y)
                            bar.update(len(y))
                    acc[name, sev] = hits / len(images)
                    out.append(Measurement("top1", acc[name, sev], {"corruption": name, "severity": sev,
                                                                     "suite": suite}))
            mean = sum(acc.values()) / len(acc)
            out.append(Measurement("mean_top1", mean, {"suite": suite}))
            out.append(Measurement("mce_unnormalised", 1.0 - mean, {"suite": suite}))
            out.append(Measurement("clean_top1", clean, {"suite": suite}))
            for sev in params.severities:
                vals = [acc[n, sev] for n in names]
                out.append(Measurement("mean_top1", sum(vals) / len(vals), {"suite": suite, "severity": sev}))
            for n in names:
                vals = [acc[n, s] for s in params.severities]
                out.append(Measurement("mean_top1", sum(vals) / len(vals), {"suite": suite, "corruption": n}))
    want_gallery = params.gallery if params.gallery is not None else ctx.variant.method == "baseline"
    if want_gallery and not params.files:
        try:
            ctx.workdir.mkdir(parents=True, exist_ok=True)
            names = [n for _, ns in plan for n in ns]
            x0 = images.x[:1].float() / 255
            make_gallery(x0, list(dict.fromkeys(names)), params.severities, ctx.workdir / "gallery.png",
                         indices=images.index[:1], seed=params.seed, params=params.param_set)
        except Exception as e:  # a gallery must never fail the evaluation
            log.warning("corruption gallery not written: %s", e)
    return out

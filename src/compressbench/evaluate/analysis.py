"""Analysis evaluators: ``calibration`` (ECE, NLL, Brier; clean and under corruption) and
``agreement`` (how often a compressed variant's prediction differs from its parent's, and which
images it disagrees on most — the "compression-identified exemplars" of Hooker et al. 2019).

The metrics are a few lines each, written here as pure functions ``(logits, targets) -> float``:
torchmetrics is not a dependency, and its ECE matches this definition (equal-width bins on the top-1
confidence, ``|acc − conf|`` weighted by the bin's share; Guo et al. 2017 with 15 bins).
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..catalog.evaluators import (  # noqa: F401 (torch-free: compressbench.catalog)
    DEFAULT_CORRUPTIONS,
    AgreementParams,
    CalibrationParams,
)
from ..costs import CostContext, EvalCost, batches
from ..data.base import ImageSet
from ..interfaces import EvalContext, Measurement
from ..registry import evaluators
from ..specs import MetricSpec
from ..train import predict

log = logging.getLogger(__name__)


# ------------------------------------------------------------------ pure metric functions
def expected_calibration_error(logits: torch.Tensor, targets: torch.Tensor, n_bins: int = 15) -> float:
    """ECE: Σ_b |B_b|/n · |accuracy(B_b) − mean confidence(B_b)|, bins (k/n_bins, (k+1)/n_bins] on the
    top-1 softmax probability."""
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    if len(targets) == 0:
        return math.nan
    probs = logits.float().softmax(1)
    conf, pred = probs.max(1)
    correct = (pred == targets).float()
    edges = torch.linspace(0, 1, n_bins + 1)
    ece = torch.zeros(())
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        m = (conf > lo) & (conf <= hi)
        if m.any():
            ece += m.float().mean() * (correct[m].mean() - conf[m].mean()).abs()
    return float(ece)


def negative_log_likelihood(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """Mean cross-entropy (natural log)."""
    return float(F.cross_entropy(logits.float(), targets))


def brier_score(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """Multi-class Brier score: mean over images of Σ_k (p_k − 1[k = y])² (range [0, 2])."""
    probs = logits.float().softmax(1)
    onehot = F.one_hot(targets, probs.shape[1]).float()
    return float(((probs - onehot) ** 2).sum(1).mean())


def disagreement(logits_a: torch.Tensor, logits_b: torch.Tensor) -> float:
    """Share of images whose top-1 predictions differ."""
    return float((logits_a.argmax(1) != logits_b.argmax(1)).float().mean())


def probability_shift(logits_a: torch.Tensor, logits_b: torch.Tensor) -> torch.Tensor:
    """Per image: total-variation distance ½ Σ_k |p_k − q_k| between the two softmax outputs, in [0, 1]."""
    return 0.5 * (logits_a.float().softmax(1) - logits_b.float().softmax(1)).abs().sum(1)


def _calib(logits: torch.Tensor, y: torch.Tensor, n_bins: int, cond: dict[str, Any]) -> list[Measurement]:
    return [
        Measurement("ece", expected_calibration_error(logits, y, n_bins), dict(cond)),
        Measurement("nll", negative_log_likelihood(logits, y), dict(cond)),
        Measurement("brier", brier_score(logits, y), dict(cond)),
    ]


def _corruption_fn():
    """The corruptions module's ``corrupt`` function, or None (with a warning) when unavailable."""
    try:
        from . import corruptions as mod
    except Exception as e:  # pragma: no cover - depends on another module's state
        log.warning("calibration: corruptions module not importable (%s); corrupted conditions skipped", e)
        return None
    fn = getattr(mod, "corrupt", None)
    if fn is None:
        log.warning("calibration: compressbench.evaluate.corruptions has no corrupt(); corrupted conditions skipped")
    return fn


def corrupted_logits(
    model: nn.Module, images: ImageSet, fn, name: str, severity: int, seed: int, batch_size: int, device: torch.device
) -> torch.Tensor:
    model.eval()
    out = []
    with torch.inference_mode():
        for x, _, idx in images.batches(batch_size, device=device):
            xc = fn(x, idx, name, severity, seed=seed)
            out.append(model(xc.to(device)).float().cpu())
    return torch.cat(out)


def _corruption_names(spec: list[str] | str) -> list[str]:
    """Names (or suite names, e.g. ``cifar10-c``) -> corruption names; unknown ones are skipped with a warning."""
    items = [spec] if isinstance(spec, str) else list(spec)
    try:
        from .corruptions import resolve_names
    except Exception as e:
        log.warning("calibration: corruptions unavailable (%s); corrupted conditions skipped", e)
        return []
    out: list[str] = []
    for it in items:
        try:
            out += [n for n in resolve_names([it]) if n not in out]
        except (KeyError, ValueError) as e:
            log.warning("calibration: %s; skipped", e)
    return out


def _key_versions(p: CalibrationParams) -> dict[str, int]:
    """Versions of the corruptions used (part of the job key), {} when none or unavailable."""
    names = _corruption_names(p.corruptions) if p.corruptions else []
    if not names:
        return {}
    from .corruptions.evaluator import corruption_versions

    return corruption_versions(names)


def _calibration_cost(p: CalibrationParams, ctx: CostContext) -> EvalCost:
    """A clean pass, and one per corruption × severity."""
    cells = len(_corruption_names(p.corruptions)) * len(p.severities) if p.corruptions else 0
    n = ctx.images(-1 if p.subset is None else p.subset)
    return EvalCost(forward=(1 + cells) * n, calls=(1 + cells) * batches(n, p.batch_size))


@evaluators.register(
    "calibration",
    key_versions=_key_versions,
    cost=_calibration_cost,
    metrics=(
        MetricSpec(
            "ece",
            label="ECE",
            fmt="f3",
            higher_is_better=False,
            where={},
            exact=True,
            summary=True,
            order=40,
            table=None,
            description="15-bin expected calibration error, clean",
        ),
        MetricSpec("nll", label="NLL", fmt="f3", higher_is_better=False, table=None),
        MetricSpec("brier", label="Brier", fmt="f3", higher_is_better=False, table=None),
    ),
    report="compressbench.evaluate.analysis_report:tables",
    figures="compressbench.evaluate.analysis_report:figures",
)
def calibration(model: nn.Module, ctx: EvalContext, params: CalibrationParams) -> list[Measurement]:
    images = ctx.eval_set(params.subset if params.subset is not None else -1)
    logits = predict(model, images, params.batch_size, ctx.device, desc="calibration" if ctx.progress else None)
    out = _calib(logits, images.y, params.n_bins, {})
    names = _corruption_names(params.corruptions) if params.corruptions else []
    fn = _corruption_fn() if names else None
    if fn is None:
        return out
    for name in names:
        for s in params.severities:
            try:
                lg = corrupted_logits(model, images, fn, name, s, params.corruption_seed, params.batch_size, ctx.device)
            except Exception as e:
                log.warning("calibration: corruption %s severity %s failed (%s); skipped", name, s, e)
                continue
            out += _calib(lg, images.y, params.n_bins, {"corruption": name, "severity": s})
    return out


def save_thumbnail_grid(path: Path, images: torch.Tensor, titles: list[str], ncols: int = 8) -> Path:
    """uint8 N×C×H×W images with a title each -> one PNG grid."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(images)
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.5 * ncols, 2.0 * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, img, t in zip(axes.flat, images, titles, strict=False):
        arr = img.permute(1, 2, 0).numpy()
        if arr.shape[2] == 1:
            ax.imshow(arr[:, :, 0], cmap="gray", vmin=0, vmax=255)
        else:
            ax.imshow(arr[:, :, :3])
        ax.set_title(t, fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def _agreement_cost(p: AgreementParams, ctx: CostContext) -> EvalCost:
    """A pass of the variant and one of its parent (the baseline is its own parent: one pass)."""
    n = ctx.images(-1 if p.subset is None else p.subset)
    return EvalCost(
        forward=n, parent_forward=0 if ctx.baseline else n, calls=(1 if ctx.baseline else 2) * batches(n, p.batch_size)
    )


@evaluators.register(
    "agreement",
    cost=_agreement_cost,
    metrics=(
        MetricSpec(
            "disagreement",
            label="Disagree %",
            fmt="pct",
            higher_is_better=False,
            summary=True,
            order=50,
            table=None,
            description="share of images whose top-1 differs from the parent's",
        ),
        MetricSpec("agreement_top1", label="Agree %", fmt="pct", higher_is_better=True, table=None),
        MetricSpec("churn_correct_to_wrong", label="Correct → wrong %", fmt="pct", higher_is_better=False, table=None),
        MetricSpec("churn_wrong_to_correct", label="Wrong → correct %", fmt="pct", table=None),
        MetricSpec(
            "prob_shift_mean",
            label="Prob. shift",
            fmt="f3",
            higher_is_better=False,
            table=None,
            description="mean total-variation distance of the softmax outputs",
        ),
    ),
    captions={"disagreed.png": "images the variant disagrees on most with its parent (P: parent, V: variant)"},
)
def agreement(model: nn.Module, ctx: EvalContext, params: AgreementParams) -> list[Measurement]:
    images = ctx.eval_set(params.subset if params.subset is not None else -1)
    desc = "agreement" if ctx.progress else None
    lv = predict(model, images, params.batch_size, ctx.device, desc=desc)
    if ctx.variant.is_parent:
        lp = lv
    else:
        lp = predict(ctx.load_parent(), images, params.batch_size, ctx.device, desc=desc)
    y = images.y
    pp, pv = lp.argmax(1), lv.argmax(1)
    shift = probability_shift(lp, lv)
    d = disagreement(lp, lv)
    out = [
        Measurement("disagreement", d),
        Measurement("agreement_top1", 1.0 - d),
        Measurement("churn_correct_to_wrong", float(((pp == y) & (pv != y)).float().mean())),
        Measurement("churn_wrong_to_correct", float(((pp != y) & (pv == y)).float().mean())),
        Measurement("prob_shift_mean", float(shift.mean())),
    ]
    differ = pp != pv
    k = min(params.thumbnails, int(differ.sum()))
    if k == 0:
        return out
    # rank disagreeing images by how far the probabilities moved
    score = torch.where(differ, shift, torch.full_like(shift, -1.0))
    top = score.topk(k).indices
    names = ctx.meta.class_names or tuple(str(i) for i in range(ctx.meta.num_classes))

    def cname(i: int) -> str:
        return names[i] if i < len(names) else str(i)

    titles = [f"P: {cname(int(pp[i]))}\nV: {cname(int(pv[i]))}\n(true {cname(int(y[i]))})" for i in top]
    ctx.workdir.mkdir(parents=True, exist_ok=True)
    save_thumbnail_grid(ctx.workdir / "disagreed.png", images.x[top], titles)
    info = [
        {
            "index": int(images.index[i]),
            "true": cname(int(y[i])),
            "parent": cname(int(pp[i])),
            "variant": cname(int(pv[i])),
            "prob_shift": float(shift[i]),
        }
        for i in top
    ]
    (ctx.workdir / "disagreed.json").write_text(json.dumps(info, indent=1))
    return out

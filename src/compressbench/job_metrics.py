"""Declared metrics of the rows the runner's own jobs write (evaluators ``train`` and ``compress``), so
the report and the printed run summary read them like any evaluator's (``specs.MetricSpec``).

``compress`` rows: the size of every model the runner saves (the baseline's included) and, for a
variant, the achieved fraction of the parent per budget kind and the method's knob. ``train`` rows:
the baseline's training statistics. ``export`` rows: ``compressbench export``'s (declared in
``deploy.metrics``).
"""

from __future__ import annotations

import math
from typing import Any

from .deploy.metrics import EXPORT_SPEC
from .specs import Console, EvaluatorSpec, MetricSpec

_NO_TABLE: dict[str, Any] = {"table": None}


def compression_from_achieved(ctx: Any) -> Any:
    """Compression % from the compressor's achieved byte fraction (when no efficiency rows exist)."""
    return 100 * (1 - ctx.values("achieved_bytes"))


COMPRESS_METRICS = (
    MetricSpec(
        "params",
        label="Params",
        unit="params",
        fmt="int",
        higher_is_better=False,
        **_NO_TABLE,
        description="parameters of the saved model",
    ),
    MetricSpec(
        "params_nonzero",
        label="Params (nonzero)",
        unit="params",
        fmt="int",
        higher_is_better=False,
        summary=True,
        fallback=True,
        order=60,
        console=Console("params (nonzero)"),
        objective="params",
        **_NO_TABLE,
        description="nonzero parameters of the saved model",
    ),
    MetricSpec(
        "checkpoint_bytes",
        label="Checkpoint size",
        unit="B",
        fmt="bytes",
        higher_is_better=False,
        order=61,
        console=Console("checkpoint bytes"),
        objective="bytes",
        **_NO_TABLE,
        description="size of the saved checkpoint file",
    ),
    MetricSpec(
        "flops",
        label="MFLOPs",
        unit="FLOP",
        fmt="f2",
        higher_is_better=False,
        positive=True,
        summary=True,
        key="gflops",
        fallback=True,
        order=64,
        scale=((math.inf, 1e6, "MFLOPs"),),
        objective="flops",
        console=Console(
            "MFLOPs",
            missing="– (int8)",
            note="MFLOPs: dense FLOPs (2×MAC) of one image; the efficiency evaluator and "
            "`compressbench report` give realised latency/throughput and effective FLOPs.",
        ),
        **_NO_TABLE,
        description="dense FLOPs (2×MAC) of one image; 0 for int8 kernels the counter cannot see (not a measurement)",
    ),
    *(
        MetricSpec(
            f"achieved_{k}",
            label=f"Achieved {k}",
            fmt="f3",
            **_NO_TABLE,
            description=f"{k} of the variant as a fraction of its parent's",
        )
        for k in ("params", "bytes", "flops")
    ),
    MetricSpec(
        "compression_pct",
        label="Saved vs base dense %",
        fmt="f1",
        higher_is_better=True,
        summary=True,
        fallback=True,
        order=63,
        derive=compression_from_achieved,
        note="{label}: 1 − the compressor's achieved_bytes (dense bytes vs the parent's; no efficiency rows).",
        **_NO_TABLE,
        description="1 − the variant's dense bytes / its parent's, in % (no encoding)",
    ),
    MetricSpec("knob", label="Knob", **_NO_TABLE, description="the method's knob that met the budget"),
    MetricSpec(
        "budget_matched",
        label="Budget matched (±2 %)",
        fmt="int",
        check=True,
        **_NO_TABLE,
        description="1: the achieved fraction of a params / bytes / FLOPs budget is within ±2 % of it; 0: "
        "it is not, and the variant is labelled 'budget not matched' (budget_not_matched)",
    ),
)


def budget_not_matched(df: Any) -> dict[str, str]:
    """``{variant: "budget not matched: ..."}`` for every variant whose compress rows say its shared budget
    was not met (``budget_matched`` 0) — the label the summary table and the run's printed table carry."""
    if df is None or len(df) == 0 or "metric" not in df:
        return {}
    rows = df[(df["evaluator"] == "compress") & (df["metric"] == "budget_matched") & (df["value"] < 1)]
    out: dict[str, str] = {}
    for r in rows.itertuples():
        ach, tgt = r.budget_achieved, r.budget_target
        ach_s = f"{ach:.4g}" if isinstance(ach, (int, float)) and ach == ach else "?"
        tgt_s = f"{tgt:g}" if isinstance(tgt, (int, float)) and tgt == tgt else "?"
        out.setdefault(
            r.variant, f"budget not matched: {r.budget_kind} {ach_s} of the parent for a target of {tgt_s} (±2 %)"
        )
    return out


TRAIN_METRICS = tuple(
    MetricSpec(name, label=label, fmt=fmt, unit=unit, **_NO_TABLE)
    for name, label, fmt, unit in (
        ("train_loss", "Train loss", "f3", ""),
        ("train_acc", "Train acc. %", "pct", ""),
        ("train_seconds", "Train seconds", "f1", "s"),
        ("train_images_per_s", "Train img/s", "int", "img/s"),
        ("train_steps", "Train steps", "int", "step"),
        ("train_adapt_loss", "Train adaptation loss", "g", ""),
        ("train_bf16", "Trained in bf16 (train.amp)", "int", ""),
    )
)

JOB_SPECS: dict[str, EvaluatorSpec] = {
    "compress": EvaluatorSpec(metrics=COMPRESS_METRICS, description="size of every saved model; achieved budget"),
    "train": EvaluatorSpec(metrics=TRAIN_METRICS, description="the baseline's training statistics"),
    "export": EXPORT_SPEC,  # rows of `compressbench export` (compressbench.deploy)
}

"""The calibration evaluator's part of the report (hooks named in its registration; imported by the
report only): ECE / NLL / Brier clean and averaged over corrupted conditions, and an ECE bar chart."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ..report import Column, ReportContext, Table
from ..report.plots import Plotter, agg, yerr

_LABELS = {"ece": "ECE", "nll": "NLL", "brier": "Brier"}


def tables(ctx: ReportContext) -> list[Table]:
    """Variant × metric, clean (no condition) and the mean over corrupted conditions."""
    df = ctx.rows
    if df.empty:
        return []
    clean = df["condition"].fillna("") == ""
    parts = {}
    for metric in _LABELS:
        parts[metric] = df[clean & (df["metric"] == metric)].groupby(["variant", "seed"])["value"].mean()
        parts[f"{metric}_corr"] = df[~clean & (df["metric"] == metric)].groupby(["variant", "seed"])["value"].mean()
    per = pd.DataFrame({k: v for k, v in parts.items() if len(v)})
    labels = {**_LABELS, **{f"{k}_corr": f"{v} (corrupted)" for k, v in _LABELS.items()}}
    columns = [Column.of(k, labels[k], "f3") for k in labels if k in per]
    return [ctx.table("calibration", f"{ctx.data.name}: calibration (15-bin ECE, NLL, Brier)", per, columns)]


def figures(ctx: ReportContext, plot: Plotter) -> None:
    """ECE clean vs corrupted (mean over corruptions), per variant."""
    df = ctx.rows
    sub = df[df["metric"] == "ece"].copy()
    if sub.empty:
        return
    sub["cond"] = np.where(sub["condition"].fillna("") == "", "clean", "corrupted (mean)")
    a = agg(sub.groupby(["variant", "seed", "cond"])["value"].mean(), ["variant", "cond"])
    conds = list(dict.fromkeys(sorted(a["cond"], key=lambda c: c != "clean")))
    vs = [v for v in ctx.data.variant_order if v in set(a["variant"])]
    fig, ax = plt.subplots(figsize=(max(5, 0.5 * len(vs) * len(conds) + 2), 3.6))
    w = 0.8 / len(conds)
    x = np.arange(len(vs))
    for i, c in enumerate(conds):
        ac = a[a["cond"] == c].set_index("variant").reindex(vs)
        ax.bar(
            x + (i - (len(conds) - 1) / 2) * w, ac["mean"], w, yerr=yerr(ac["mean"], ac["ci"], 0, 1), capsize=2, label=c
        )
    ax.set_xticks(x, [plot.short(v) for v in vs], rotation=30, ha="right")
    ax.set_ylabel("ECE (15 bins)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    plot.save(fig, "calibration_ece", "Expected calibration error, clean and under corruption")

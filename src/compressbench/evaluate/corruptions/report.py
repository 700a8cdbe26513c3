"""The corruptions evaluator's part of the report (hooks named in its registration; imported by the
report only): retention and CE / relative CE vs the baseline (summary columns), the per-corruption
table, and the bar, severity and retention figures.

Derived numbers follow ImageNet-C (Hendrycks & Dietterich 2019) with the experiment's baseline (the
uncompressed parent of the same seed) in place of AlexNet, per (variant, seed) first (as :mod:`.metrics`;
a relative CE whose baseline does not degrade is ``nan``):

* corruption error ``CE_c = Σ_s E_{s,c} / Σ_s E^{base}_{s,c}``, mCE = mean over corruptions;
* relative CE ``Σ_s (E_{s,c} − E_clean) / Σ_s (E^{base}_{s,c} − E^{base}_clean)``, relative mCE likewise;
* retention = mean corruption accuracy / clean accuracy.

The clean accuracy is the summary column declared with the role ``CLEAN_ACCURACY`` (the clean evaluator's
top-1), as in the tables.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ...report import Column, Derived, ReportContext, Table
from ...report.data import BASELINE, baseline_value, to_float
from ...report.plots import Plotter, agg, yerr
from ...specs import CLEAN_ACCURACY


def cells(ctx: ReportContext) -> pd.DataFrame:
    """Per-corruption × severity top-1: columns variant, seed, corruption, severity, value."""
    rows = ctx.rows
    m = (rows["metric"] == "top1").to_numpy()
    sub = rows[m]
    if sub.empty:
        return pd.DataFrame(columns=["variant", "seed", "corruption", "severity", "value"])
    corr = ctx.cond("corruption")[m].astype(str)
    suites = ctx.cond("suite")[m]
    if suites.nunique(dropna=True) > 1:
        corr = suites.astype(str) + "/" + corr
    out = pd.DataFrame(
        {
            "variant": sub["variant"],
            "seed": sub["seed"],
            "corruption": corr,
            "severity": ctx.cond("severity")[m].map(to_float),
            "value": sub["value"],
        }
    )
    return out.groupby(["variant", "seed", "corruption", "severity"], as_index=False)["value"].mean()


# ---------------------------------------------------------------- summary columns
def retention(ctx: ReportContext) -> pd.Series:
    """Mean corruption accuracy / clean accuracy, per (variant, seed)."""
    corr, clean = ctx.column("corr_top1"), ctx.role(CLEAN_ACCURACY)
    if not len(corr) or not len(clean):
        return corr.iloc[:0]
    return (corr / clean).dropna()


def _ce(ctx: ReportContext) -> pd.DataFrame:
    """mCE and relative mCE vs the baseline, per (variant, seed)."""
    c, clean = cells(ctx), ctx.role(CLEAN_ACCURACY)
    if c.empty or BASELINE not in set(c["variant"]):
        return pd.DataFrame(columns=["mce", "rel_mce"], index=clean.index[:0])
    base = c[c["variant"] == BASELINE]
    recs = []
    for (v, seed), g in c.groupby(["variant", "seed"]):
        b = base[base["seed"] == seed]
        if b.empty:
            b = base.groupby(["corruption", "severity"], as_index=False)["value"].mean()
        e_clean = 1 - float(clean.get((v, seed), math.nan))
        b_clean = 1 - baseline_value(clean, seed) if len(clean) else math.nan
        ces, rces = [], []
        for name, gc in g.groupby("corruption"):
            bc = b[b["corruption"] == name].set_index("severity")["value"]
            vc = gc.set_index("severity")["value"]
            common = vc.index.intersection(bc.index)
            if not len(common):
                continue
            ev, eb = (1 - vc[common]).sum(), (1 - bc[common]).sum()
            ces.append(ev / eb if eb > 0 else math.nan)
            den = (1 - bc[common] - b_clean).sum()  # relative CE: degradation from clean vs the baseline's
            rces.append((1 - vc[common] - e_clean).sum() / den if den > 0 else math.nan)
        recs.append(
            {
                "variant": v,
                "seed": seed,
                "mce": float(np.nanmean(ces)) if ces else math.nan,
                "rel_mce": float(np.nanmean(rces)) if rces and not all(map(math.isnan, rces)) else math.nan,
            }
        )
    return pd.DataFrame(recs).set_index(["variant", "seed"])


def mce(ctx: ReportContext) -> pd.Series:
    return ctx.memo("corruptions.ce", lambda: _ce(ctx))["mce"]


SMALL_DROP = 0.02  # a baseline losing less than 2 points under corruption makes relative CE a ratio of small numbers


def relative_mce(ctx: ReportContext) -> Derived:
    """Relative mCE per (variant, seed), and a note when the baseline barely degrades under corruption (the
    ratio's denominator): then large values and sign changes say little."""
    values = ctx.memo("corruptions.ce", lambda: _ce(ctx))["rel_mce"]
    c, clean = cells(ctx), ctx.role(CLEAN_ACCURACY)
    base = c[c["variant"] == BASELINE]
    notes = []
    if len(base) and len(clean):
        drop = float(np.nanmean([baseline_value(clean, s) - g["value"].mean() for s, g in base.groupby("seed")]))
        if drop < SMALL_DROP:
            notes.append(
                f"Rel. CE vs base: the baseline loses only {100 * drop:.2f} points under corruption, so "
                "this ratio divides by a small number — large values and sign changes are expected."
            )
    return Derived(values, notes)


# ---------------------------------------------------------------- table
def tables(ctx: ReportContext) -> list[Table]:
    """Variant × corruption: accuracy averaged over severities."""
    c = cells(ctx)
    if c.empty:
        return []
    per = c.groupby(["variant", "seed", "corruption"])["value"].mean().unstack("corruption")
    columns = [Column.of(name, name, "pct") for name in per.columns]
    return [
        ctx.table("corruptions", f"{ctx.data.name}: accuracy % per corruption (mean over severities)", per, columns)
    ]


# ---------------------------------------------------------------- figures
def _with_clean(ctx: ReportContext, per: pd.DataFrame, by: str, clean_as) -> pd.DataFrame:
    clean = ctx.role(CLEAN_ACCURACY)
    if not len(clean):
        return per
    c = clean.rename("value").reset_index()
    c[by] = clean_as
    return pd.concat([c[["variant", "seed", by, "value"]], per])


def figures(ctx: ReportContext, plot: Plotter) -> None:
    c = cells(ctx)
    if c.empty:
        return
    _bars(ctx, plot, c)
    _severity(ctx, plot, c)
    _retention_heatmap(ctx, plot, c)


def _bars(ctx: ReportContext, plot: Plotter, c: pd.DataFrame) -> None:
    """Grouped bars: variants × (clean, each corruption averaged over severities)."""
    per = _with_clean(
        ctx, c.groupby(["variant", "seed", "corruption"])["value"].mean().reset_index(), "corruption", "clean"
    )
    a = agg(per.set_index(["variant", "seed", "corruption"])["value"], ["variant", "corruption"])
    groups = list(dict.fromkeys(a["corruption"]))
    vs = [v for v in ctx.data.variant_order if v in set(a["variant"])]
    w = 0.8 / max(len(vs), 1)
    fig, ax = plt.subplots(figsize=(max(6, 0.35 * len(groups) * len(vs) + 2), 4))
    x = np.arange(len(groups))
    for i, v in enumerate(vs):
        av = a[a["variant"] == v].set_index("corruption").reindex(groups)
        ax.bar(
            x + (i - (len(vs) - 1) / 2) * w,
            100 * av["mean"],
            w,
            yerr=yerr(100 * av["mean"], 100 * av["ci"]),
            capsize=2,
            label=plot.short(v),
            color=plot.colors[v],
        )
    ax.set_xticks(x, groups, rotation=30, ha="right")
    ax.set_ylabel("top-1 accuracy %")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    plot.save(fig, "bars_corruptions", "Accuracy per corruption and variant (mean over severities)")


def _severity(ctx: ReportContext, plot: Plotter, c: pd.DataFrame) -> None:
    per = _with_clean(ctx, c.groupby(["variant", "seed", "severity"])["value"].mean().reset_index(), "severity", 0.0)
    a = agg(per.set_index(["variant", "seed", "severity"])["value"], ["variant", "severity"])
    fig, ax = plt.subplots(figsize=(6, 4))
    for v in ctx.data.variant_order:
        av = a[a["variant"] == v].sort_values("severity")
        if av.empty:
            continue
        ax.errorbar(
            av["severity"],
            100 * av["mean"],
            yerr=yerr(100 * av["mean"], 100 * av["ci"]),
            marker="o",
            capsize=3,
            label=plot.short(v),
            color=plot.colors[v],
            ls="--" if v == BASELINE else "-",
        )
    ax.set_xlabel("severity (0 = clean)")
    ax.set_ylabel("top-1 accuracy %, mean over corruptions")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    plot.save(fig, "acc_vs_severity", "Accuracy vs corruption severity")


def _retention_heatmap(ctx: ReportContext, plot: Plotter, c: pd.DataFrame) -> None:
    clean = ctx.role(CLEAN_ACCURACY)
    if not len(clean):
        return
    per = c.groupby(["variant", "seed", "corruption"])["value"].mean().reset_index()
    per["clean"] = [clean.get((v, s), math.nan) for v, s in zip(per["variant"], per["seed"], strict=False)]
    per["value"] = per["value"] / per["clean"]
    a = agg(per.set_index(["variant", "seed", "corruption"])["value"], ["variant", "corruption"])
    mat = a.pivot(index="variant", columns="corruption", values="mean")
    mat = mat.reindex([v for v in ctx.data.variant_order if v in mat.index])
    fig, ax = plt.subplots(figsize=(1.1 * mat.shape[1] + 3, 0.45 * mat.shape[0] + 1.6))
    im = ax.imshow(
        mat.values, cmap="viridis", aspect="auto", vmin=np.nanmin(mat.values), vmax=max(1.0, np.nanmax(mat.values))
    )
    ax.set_xticks(range(mat.shape[1]), mat.columns, rotation=30, ha="right")
    ax.set_yticks(range(mat.shape[0]), [plot.short(v) for v in mat.index])
    for i in range(mat.shape[0]):
        for j in range(mat.shape[1]):
            val = mat.values[i, j]
            if not math.isnan(val):
                ax.text(j, i, f"{val:.2f}", ha="center", va="center", fontsize=7, color="w")
    fig.colorbar(im, ax=ax, label="retention = corrupted / clean accuracy")
    fig.tight_layout()
    plot.save(
        fig,
        "retention_heatmap",
        "Retention (corrupted / clean accuracy), variant × corruption",
        "Mean over seeds and severities." if not plot.single_seed else "Mean over severities.",
        error_bars=False,
    )

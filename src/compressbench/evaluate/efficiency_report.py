"""The efficiency evaluator's part of the report (hooks named in its registration; imported by the
report only): compression % vs the baseline (a summary column) and the accuracy-vs-cost Pareto figures."""

from __future__ import annotations

import matplotlib.pyplot as plt

from ..report import Derived, ReportContext
from ..report.data import baseline_value
from ..report.plots import Plotter, agg, pareto_front, yerr
from ..report.tables import size_unit
from ..specs import CLEAN_ACCURACY


def compression_pct(ctx: ReportContext) -> Derived:
    """Size saved relative to the baseline's dense fp32 bytes of the same seed, in %."""
    bd, bc = ctx.column("bytes_dense"), ctx.column("bytes_compressed")
    if not (len(bc) and len(bd)):
        return Derived(bc.iloc[:0])
    values = (100 * (1 - bc / [baseline_value(bd, s) for _, s in bc.index])).astype(float)
    return Derived(values)  # what it computes: the declaration's description, under the summary


def figures(ctx: ReportContext, plot: Plotter) -> None:
    """Clean accuracy vs latency and vs compressed size, with the Pareto front."""
    clean = ctx.role(CLEAN_ACCURACY)
    if not len(clean):
        return
    acc = agg(clean, ["variant"]).set_index("variant")
    for key, name, xlabel in (
        ("latency_b1_ms", "pareto_latency", "latency at batch 1, ms"),
        ("bytes_compressed", "pareto_bytes", "compressed size"),
    ):
        col = ctx.summary.column(key)
        if not len(col.values):
            continue
        scale = 1.0
        if col.fmt == "bytes":  # the report's one size unit (decimal kB / MB), as in the tables
            divisor, unit = size_unit(col.values)
            scale, xlabel = 1 / divisor, f"{xlabel}, {unit}"
        cond = col.condition
        x = agg(col.values, ["variant"]).set_index("variant")
        vs = [v for v in ctx.data.variant_order if v in x.index and v in acc.index]
        if not vs:
            continue
        fig, ax = plt.subplots(figsize=(6, 4))
        pts = []
        for v in vs:
            xv, yv = x.at[v, "mean"] * scale, 100 * acc.at[v, "mean"]
            ax.errorbar(
                xv,
                yv,
                xerr=x.at[v, "ci"] * scale,
                yerr=yerr([yv], [100 * acc.at[v, "ci"]]),
                fmt="o",
                color=plot.colors[v],
                capsize=3,
                label=plot.short(v),
            )
            pts.append((xv, yv))
        front = pareto_front(pts)
        ax.plot([p[0] for p in front], [p[1] for p in front], "k--", lw=1, label="Pareto front")
        ax.set_xlabel(xlabel + (f" ({cond})" if cond else ""))
        ax.set_ylabel("clean top-1 accuracy %")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        plot.save(
            fig,
            name,
            f"Accuracy vs {'latency' if 'latency' in key else 'size'}: Pareto front",
            "Upper left is better; the dashed line joins the non-dominated variants.",
        )

"""The adversarial evaluator's part of the report (hooks named in its registration; imported by the
report only): robust accuracy at the report's main ε (summary column), the variant × attack table and
the robust-accuracy-vs-ε figures.

Summary: the worst case over white-box attacks at the largest stored ε ≤ ``--main-eps`` for ``--norm`` (the
evaluator's report options, read with ``ctx.option``);
a variant with no white-box rows (an int8 model attacked only by transfer from its float parent) gets
its worst transfer figure instead, and a note names it.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ...report import Column, Derived, ReportContext, Table
from ...report.data import BASELINE, to_float
from ...report.plots import Plotter, agg, yerr


def eps_str(eps: float) -> str:
    k = eps * 255
    return f"{round(k)}/255" if abs(k - round(k)) < 1e-3 and eps > 0 else f"{eps:g}"


def robust_cells(ctx: ReportContext) -> pd.DataFrame:
    """robust_top1 rows: variant, seed, attack, norm, eps, mode, value."""
    rows = ctx.rows
    m = (rows["metric"] == "robust_top1").to_numpy()
    sub = rows[m]
    attack = ctx.cond("attack")[m].astype(str)
    steps = ctx.cond("steps")[m]
    # the same attack at several step counts (e.g. the evaluator's stronger-attack check): name the steps
    multi = steps.groupby(attack).transform(lambda x: x.nunique(dropna=True) > 1).astype(bool)
    attack = attack.where(~multi, attack + "-" + steps.map(lambda x: f"{int(to_float(x))}" if x is not None else "?"))
    return pd.DataFrame(
        {
            "variant": sub["variant"],
            "seed": sub["seed"],
            "attack": attack,
            "norm": ctx.cond("norm")[m].astype(str),
            "eps": ctx.cond("eps")[m].map(to_float),
            "mode": ctx.cond("mode")[m].fillna(sub["tag"]).astype(str),
            "value": sub["value"],
        }
    )


def main_eps(ctx: ReportContext) -> float | None:
    """The largest ε ≤ the ``main_eps`` option stored for the ``norm`` option (None if there is none)."""
    r = robust_cells(ctx)
    eps = r.loc[r["norm"] == ctx.option("norm"), "eps"].dropna()
    eps = eps[eps <= ctx.option("main_eps") * (1 + 1e-4) + 1e-12]  # stored values may be rounded (0.0313725)
    return float(eps.max()) if len(eps) else None


def _at(ctx: ReportContext, eps: float) -> pd.DataFrame:
    r = robust_cells(ctx)
    return r[(r["norm"] == ctx.option("norm")) & (np.isclose(r["eps"], eps, rtol=1e-6, atol=1e-9))]


def robust_summary(ctx: ReportContext) -> Derived:
    """Worst case over white-box attacks at the main ε per (variant, seed), transfer where only that exists."""
    eps = main_eps(ctx)
    if eps is None:
        return Derived(pd.Series(dtype=float))
    r = _at(ctx, eps)
    white = r[r["mode"] != "transfer"].groupby(["variant", "seed"])["value"].min()
    transfer = r[r["mode"] == "transfer"].groupby(["variant", "seed"])["value"].min()
    values = pd.concat([white, transfer[~transfer.index.isin(white.index)]]).sort_index()
    label = f"{ctx.option('norm')} ε={eps_str(eps)}"
    notes = [
        f"Robust accuracy: worst case over white-box attacks ({', '.join(sorted(r['attack'].unique()))}) at {label}."
    ]
    modes = r.groupby("variant")["mode"].agg(lambda m: set(m))
    t_only = sorted(v for v, ms in modes.items() if ms == {"transfer"})
    if t_only:
        notes.append(
            f"Robust accuracy of {', '.join(t_only)}: transfer attacks from the float parent "
            "(no white-box gradient through int8 kernels)."
        )
    return Derived(values, notes, f"Robust acc. % ({label})")


def tables(ctx: ReportContext) -> list[Table]:
    """Variant × (attack, norm, ε, mode): robust accuracy."""
    r = robust_cells(ctx)
    if r.empty:
        return []
    r["col"] = (
        r["attack"]
        + " "
        + r["norm"]
        + " ε="
        + r["eps"].map(eps_str)
        + r["mode"].map(lambda m: "" if m in ("whitebox", "", "nan") else f" ({m})")
    )
    r["_mrank"] = r["mode"].map(lambda m: {"whitebox": 0, "": 0, "nan": 0, "whitebox-ste": 1}.get(m, 2))
    order = r.sort_values(["norm", "_mrank", "mode", "attack", "eps"])["col"].unique()
    per = r.groupby(["variant", "seed", "col"])["value"].mean().unstack("col")[list(order)]
    columns = [Column.of(c, c, "pct") for c in order]
    return [ctx.table("robustness", f"{ctx.data.name}: robust accuracy %", per, columns)]


def figures(ctx: ReportContext, plot: Plotter) -> None:
    """Worst case over white-box attacks vs ε, a figure per norm."""
    r = robust_cells(ctx)
    r = r[r["mode"] != "transfer"]
    for norm, g in r.groupby("norm"):
        worst = g.groupby(["variant", "seed", "eps"])["value"].min()
        a = agg(worst, ["variant", "eps"])
        fig, ax = plt.subplots(figsize=(6, 4))
        for v in ctx.data.variant_order:
            av = a[a["variant"] == v].sort_values("eps")
            if av.empty:
                continue
            ax.errorbar(
                av["eps"] * (255 if norm == "linf" else 1),
                100 * av["mean"],
                yerr=yerr(100 * av["mean"], 100 * av["ci"]),
                marker="o",
                capsize=3,
                label=plot.short(v),
                color=plot.colors[v],
                ls="--" if v == BASELINE else "-",
            )
        ax.set_xlabel("ε × 255" if norm == "linf" else "ε (L2)")
        ax.set_ylabel("robust top-1 accuracy %")
        ax.set_title(f"{norm}: worst case over white-box attacks")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        eps_main = eps_str(ctx.option("main_eps")) if norm == ctx.option("norm") else ""
        plot.save(
            fig,
            f"robust_vs_eps_{norm}",
            f"Robust accuracy vs ε ({norm})",
            f"The summary table uses the largest ε ≤ {eps_main}." if eps_main else "",
        )

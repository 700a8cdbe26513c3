"""The sensitivity evaluator's part of the report (hooks named in its registration; imported by the report only):
a table of each layer's clean and corrupted top-1 drop per op, and a figure of them, per measured variant."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from ..report import ReportContext
from ..report.plots import Plotter
from ..report.tables import Column, Table, estimates


def layer_drops(ctx: ReportContext) -> pd.DataFrame:
    """Rows: variant, seed, layer, op, clean_drop, corr_drop (the evaluator's per-layer rows)."""
    rows = ctx.rows
    sub = rows[rows["metric"].isin(["clean_drop", "corr_drop"])]
    if sub.empty:
        return pd.DataFrame(columns=["variant", "seed", "layer", "op", "clean_drop", "corr_drop"])
    df = sub.assign(layer=ctx.cond("layer")[sub.index], op=ctx.cond("op")[sub.index])
    wide = df.pivot_table(
        index=["variant", "seed", "layer", "op"], columns="metric", values="value", aggfunc="mean"
    ).reset_index()
    for c in ("clean_drop", "corr_drop"):
        if c not in wide:
            wide[c] = float("nan")
    return wide


def tables(ctx: ReportContext) -> list[Table]:
    """Variant · layer · op -> clean and corrupted top-1 drop (points; mean ± CI over seeds)."""
    d = layer_drops(ctx)
    if d.empty:
        return []
    layer_order = list(dict.fromkeys(d["layer"]))
    d = d.assign(_l=d["layer"].map(layer_order.index)).sort_values(["variant", "_l", "op"])
    d["row"] = d["variant"] + " · " + d["layer"] + " · " + d["op"]
    order = list(dict.fromkeys(d["row"]))
    per = d.set_index(["row", "seed"])[["clean_drop", "corr_drop"]]
    cols = [
        Column.of("clean_drop", "Clean top-1 drop (pts)", "pct"),
        Column.of("corr_drop", "Corrupted top-1 drop (pts)", "pct"),
    ]
    mean, ci, n = estimates(per, order, [c.key for c in cols], ctx.options.confidence)
    first = d.drop_duplicates("row").set_index("row").loc[order]
    text = pd.DataFrame({"variant": first["variant"], "layer": first["layer"], "op": first["op"]}, index=order)
    notes = [
        "The drop in top-1 when this layer alone is quantized to int8 (torch.ao, calibrated) or L1-pruned, "
        "everything else unchanged; corrupted: mean over the evaluator's corruptions × severities. Positive: "
        "the layer is sensitive. The goal's int8 fallback keeps the most sensitive layers in float."
    ]
    return [Table("sensitivity", f"{ctx.data.name}: per-layer sensitivity", text, cols, mean, ci, n, notes)]


def figures(ctx: ReportContext, plot: Plotter) -> None:
    """Per variant measured: a horizontal bar per layer and op, clean and corrupted drop side by side."""
    d = layer_drops(ctx)
    if d.empty:
        return
    for variant, g in d.groupby("variant", sort=False):
        m = g.groupby(["layer", "op"], sort=False)[["clean_drop", "corr_drop"]].mean().reset_index()
        labels = [f"{r.layer} ({r.op})" for r in m.itertuples()]
        y = range(len(m))
        fig, ax = plt.subplots(figsize=(6.5, 0.35 * len(m) + 1.4))
        ax.barh([i - 0.2 for i in y], 100 * m["clean_drop"], height=0.4, label="clean", color="#4a6fa5")
        ax.barh([i + 0.2 for i in y], 100 * m["corr_drop"], height=0.4, label="corrupted", color="#e0a000")
        ax.set_yticks(list(y), labels, fontsize=8)
        ax.invert_yaxis()
        ax.axvline(0, color="k", lw=0.8)
        ax.set_xlabel("top-1 drop when the layer alone is perturbed (points)")
        ax.grid(axis="x", alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        slug = "".join(c if c.isalnum() else "-" for c in str(variant)).strip("-").lower()
        plot.save(
            fig,
            f"sensitivity_{slug}",
            f"Per-layer sensitivity of {variant}",
            "Each layer quantized (or pruned) alone; longer bars: layers to keep in float.",
        )

"""The domain_shift evaluator's part of the report (hooks named in its registration; imported by the
report only).

Tables:

* ``domain_shift`` — the study's shape: a row per base model × compression × budget × adaptation (the
  variant's compressing stages, ``compress.budget.composition``; ``source-only`` first, then each
  adaptation the variants applied, e.g. ``coral(λ=10)``); a column per source → target pair (target top-1),
  then per pair Δ = adapted − source-only of the same compression and budget, paired by seed, then the
  in-domain top-1 per source. A variant that only adapts (``adapt.coral`` on the baseline) is a row of the
  baseline.
* ``domain_shift_variants`` — one row per variant: in-domain and target accuracy and the gap per pair.

Figures: ``target_acc_vs_<kind>`` (target accuracy vs the achieved budget, a panel per pair, a colour per
compression, solid = source-only, dashed / dotted with hollow markers = adapted; the baselines as
horizontal lines) and ``domain_pairs`` (bars per compression × budget, source-only next to adapted, a panel
per pair).

With several source domains (sibling experiments ``<name>.<source>``) the report draws these hooks once
more over all siblings' rows (``EvaluatorSpec.gathers``, ``report.study``): the full table of pairs.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ..report import Column, ReportContext, Table
from ..report.data import BASELINE
from ..report.plots import Plotter, agg, yerr
from ..report.stats import mean_ci
from ..report.tables import seeds_note

SOURCE_ONLY = "source-only"


def _arrow(src: str, tgt: str) -> str:
    return f"{src}→{tgt}"


def compositions(ctx: ReportContext) -> pd.DataFrame:
    """Per variant: compression ('' = none), adaptation label (``source-only`` when none) and budget."""
    rows = ctx.rows
    m = (rows["metric"] == "composition").to_numpy()
    comp = pd.DataFrame(
        {
            "variant": rows["variant"][m],
            "compression": ctx.cond("compression")[m].fillna(""),
            "adapt": ctx.cond("adapt")[m].fillna(""),
        }
    ).drop_duplicates("variant")
    comp["adapt"] = comp["adapt"].replace("", SOURCE_ONLY)
    var = ctx.data.variants.set_index("variant")
    comp["budget"] = [_budget(var.loc[v]) if v in var.index else "" for v in comp["variant"]]
    return comp.set_index("variant")


def _budget(r: pd.Series) -> str:
    if (
        r["method"] == BASELINE
        or r["budget_kind"] is None
        or not isinstance(r["budget_target"], float)
        or math.isnan(r["budget_target"])
    ):
        return ""
    return f"{r['budget_kind']}={r['budget_target']:g}"


def _per_seed(ctx: ReportContext, metric: str) -> pd.DataFrame:
    """Rows of ``metric``: variant, seed, source, target, value."""
    rows = ctx.rows
    m = (rows["metric"] == metric).to_numpy()
    return pd.DataFrame(
        {
            "variant": rows["variant"][m],
            "seed": rows["seed"][m],
            "source": ctx.cond("source")[m].astype(str),
            "target": ctx.cond("target")[m].where(ctx.cond("target")[m].notna(), ""),
            "value": rows["value"][m],
        }
    )


def _row_keys(comp: pd.DataFrame) -> pd.Series:
    """Each variant's group: ``compression|budget`` (the baseline's compression is ``baseline``); variants
    that would share a group and an adaptation keep a group of their own (``|<variant>``)."""
    key = comp["compression"].replace("", BASELINE) + "|" + comp["budget"]
    clash = comp.assign(key=key).groupby(["key", "adapt"])["compression"].transform("size") > 1
    return key.where(~clash, key + "|" + comp.index.to_series())


def _group_order(ctx: ReportContext, groups: pd.Series) -> list[str]:
    order = list(dict.fromkeys(groups[[v for v in ctx.data.variant_order if v in groups.index]]))
    return sorted(order, key=lambda k: not k.startswith(BASELINE + "|"))


def _model_name(ctx: ReportContext) -> str:
    for r in reversed(ctx.data.runs):
        name = ((r.get("config_json") or {}).get("model") or {}).get("name")
        if name:
            return str(name)
    return ""


def study_table(ctx: ReportContext) -> Table | None:
    """The study's shape: a row per model × compression × budget × adaptation (source-only first); a column
    per source → target pair (target top-1), then per pair Δ = adapted − source-only of the same group,
    paired by seed (both derive from that seed's baseline), then the in-domain top-1 per source."""
    comp = compositions(ctx)
    if comp.empty:
        return None
    group = _row_keys(comp)
    row_of = group + "#" + comp["adapt"]
    adapts = [SOURCE_ONLY] + sorted(set(comp["adapt"]) - {SOURCE_ONLY})
    order = [f"{g}#{a}" for g in _group_order(ctx, group) for a in adapts if f"{g}#{a}" in set(row_of)]
    cells: dict[tuple[str, str], dict[int, float]] = {}  # (row, column) -> {seed: value}
    columns: list[tuple[str, str]] = []  # (key, label)
    tgt, src = _per_seed(ctx, "target_top1"), _per_seed(ctx, "source_top1")
    tgt = tgt[tgt["variant"].isin(comp.index)]
    src = src[src["variant"].isin(comp.index)]
    pairs = sorted({_arrow(a, b) for a, b in zip(tgt["source"], tgt["target"], strict=True)})
    for frame, label_of, fmt in (
        (tgt, lambda r: _arrow(r.source, r.target), "{}"),
        (src, lambda r: r.source, "{} (in-domain)"),
    ):
        for r in frame.itertuples():
            cells.setdefault((row_of[r.variant], fmt.format(label_of(r))), {})[int(r.seed)] = r.value
        columns += [(fmt.format(x), fmt.format(x)) for x in sorted({label_of(r) for r in frame.itertuples()})]
        if frame is tgt and len(adapts) > 1:  # Δ columns right after the pairs
            for pair in pairs:
                key = f"Δ {pair}"
                for row in order:
                    g, a = row.split("#")
                    base, mine = cells.get((f"{g}#{SOURCE_ONLY}", pair), {}), cells.get((row, pair), {})
                    if a != SOURCE_ONLY and base and mine:
                        cells[row, key] = {sd: v - base[sd] for sd, v in mine.items() if sd in base}
                columns.append((key, f"{key} (pts)"))
    text = pd.DataFrame(
        {
            "model": _model_name(ctx),
            "compression": [r.split("#")[0].split("|")[0] for r in order],
            "budget": [r.split("#")[0].split("|")[1] for r in order],
            "adaptation": [r.split("#")[1] for r in order],
            "variant": [r.split("#")[0].split("|")[2] if r.count("|") > 1 else "" for r in order],
        },
        index=order,
    )
    if not (text["variant"] != "").any():
        text = text.drop(columns="variant")
    keys = [c[0] for c in columns]
    mean = pd.DataFrame(index=order, columns=keys, dtype=float)
    ci, n = mean.copy(), mean.copy()
    for row in order:
        for k in keys:
            e = mean_ci(list(cells.get((row, k), {}).values()), ctx.options.confidence)
            mean.at[row, k], ci.at[row, k], n.at[row, k] = e.mean, e.ci, e.n
    notes = [
        seeds_note(ctx.data),
        "Top-1 % on the target domain of each source → target pair, and on the source's "
        "own test split (in-domain). A row is a base model × compression × budget × adaptation; Δ: the row's "
        "target accuracy − the source-only row's of the same compression and budget, per seed (both derive "
        "from that seed's baseline), in points. Adaptation-only variants (adapt.coral on the baseline) are "
        "rows of the baseline; '(parent)': the baseline itself was trained with that adaptation.",
    ]
    return Table(
        "domain_shift",
        f"{ctx.data.name}: target-domain accuracy % (model × compression × budget × "
        "adaptation; columns: source → target)",
        text,
        [Column.of(k, lab, "pct") for k, lab in columns],
        mean,
        ci,
        n,
        notes,
    )


def variant_table(ctx: ReportContext) -> Table | None:
    """One row per variant: in-domain and target accuracy and the gap per pair."""
    parts: dict[str, pd.Series] = {}
    columns = []
    for metric, what in (
        ("source_top1", "in-domain"),
        ("target_top1", ""),
        ("gap", "gap (pts)"),
        ("target_corruption_mean", "corrupted"),
    ):
        f = _per_seed(ctx, metric)
        for (s, t), g in f.groupby(["source", "target"], sort=True):
            lab = f"{s} {what}" if not t else f"{_arrow(s, t)} {what}".strip()
            parts[lab] = g.groupby(["variant", "seed"])["value"].mean()
            columns.append(Column.of(lab, lab, "pct"))
    if not parts:
        return None
    per = pd.DataFrame(parts)
    per.index = per.index.set_names(["variant", "seed"])
    return ctx.table(
        "domain_shift_variants", f"{ctx.data.name}: in-domain and target accuracy % per variant", per, columns
    )


def tables(ctx: ReportContext) -> list[Table]:
    return [t for t in (study_table(ctx), variant_table(ctx)) if t is not None]


# ---------------------------------------------------------------- figures
def _achieved(ctx: ReportContext, kind: str) -> pd.Series:
    """Per variant: the achieved fraction of the parent in ``kind`` (budgeted or not), baseline 1."""
    df = ctx.data.df
    sub = df[(df["evaluator"] == "compress") & (df["metric"] == f"achieved_{kind}")]
    out = sub.groupby("variant")["value"].mean()
    var = ctx.data.variants.set_index("variant")
    for v, r in var.iterrows():
        if r["budget_kind"] == kind and not math.isnan(r["budget_achieved"]):
            out[v] = r["budget_achieved"]
    out[BASELINE] = 1.0
    return out


def figures(ctx: ReportContext, plot: Plotter) -> None:
    comp = compositions(ctx)
    tgt = _per_seed(ctx, "target_top1")
    if comp.empty or tgt.empty:
        return
    tgt = tgt[tgt["variant"].isin(comp.index)]
    tgt["pair"] = [_arrow(s, t) for s, t in zip(tgt["source"], tgt["target"], strict=True)]
    var = ctx.data.variants
    kinds = sorted(k for k in var.loc[var["method"] != BASELINE, "budget_kind"].dropna().unique() if k != "knob")
    for kind in kinds:
        _vs_budget(ctx, plot, comp, tgt, kind)
    _bars(ctx, plot, comp, tgt)


def _vs_budget(ctx: ReportContext, plot: Plotter, comp: pd.DataFrame, tgt: pd.DataFrame, kind: str) -> None:
    x = _achieved(ctx, kind)
    pairs = sorted(tgt["pair"].unique())
    a = agg(tgt.set_index(["variant", "seed", "pair"])["value"], ["variant", "pair"])
    a = a.join(comp, on="variant")
    a["x"] = a["variant"].map(x)
    lines = [c for c in dict.fromkeys(comp["compression"]) if c]
    if not lines or a["x"].isna().all():
        return
    cmap = plt.get_cmap("tab10")
    colour = {c: cmap(i % 10) for i, c in enumerate(lines)}
    adapts = [SOURCE_ONLY] + sorted(set(comp["adapt"]) - {SOURCE_ONLY})
    dashes = {a_: ("-" if i == 0 else ["--", ":", "-."][(i - 1) % 3]) for i, a_ in enumerate(adapts)}
    ncol = min(3, len(pairs))
    nrow = math.ceil(len(pairs) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.6 * ncol, 3.6 * nrow), squeeze=False)
    for ax, pair in zip(axes.flat, pairs, strict=False):
        ap = a[a["pair"] == pair]
        for (c, ad), g in ap.groupby(["compression", "adapt"], sort=False):
            g = g.dropna(subset=["x"]).sort_values("x")
            if g.empty:
                continue
            if not c:  # the baseline and adaptation-only variants: horizontal lines
                ax.axhline(100 * g["mean"].mean(), color="gray", ls=dashes[ad], lw=1, label=f"baseline, {ad}")
                continue
            hollow = ad != SOURCE_ONLY
            ax.errorbar(
                g["x"],
                100 * g["mean"],
                yerr=yerr(100 * g["mean"], 100 * g["ci"]),
                color=colour[c],
                ls=dashes[ad],
                marker="s" if hollow else "o",
                mfc="white" if hollow else colour[c],
                capsize=3,
                label=f"{c}, {ad}",
            )
        ax.set_title(pair)
        ax.set_xlabel(f"achieved {kind} (fraction of the parent)")
        ax.set_ylabel("target top-1 %")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(pairs) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=6)
    fig.tight_layout()
    plot.save(
        fig,
        f"target_acc_vs_{kind}",
        f"Target-domain accuracy vs {kind} budget, source-only and adapted",
        "A colour per compression; solid: source-only, dashed/dotted: adapted. Unbudgeted variants "
        "(e.g. int8) at their achieved fraction.",
    )


def _bars(ctx: ReportContext, plot: Plotter, comp: pd.DataFrame, tgt: pd.DataFrame) -> None:
    """A panel per pair: a group per row (compression × budget), a bar per adaptation."""
    rowkey = _row_keys(comp)
    t = tgt.assign(row=tgt["variant"].map(rowkey), adapt=tgt["variant"].map(comp["adapt"]))
    a = agg(t.set_index(["row", "adapt", "pair", "seed"])["value"], ["row", "adapt", "pair"])
    pairs = sorted(a["pair"].unique())
    rows = _group_order(ctx, rowkey)
    adapts = [SOURCE_ONLY] + sorted(set(a["adapt"]) - {SOURCE_ONLY})
    if len(adapts) < 2 and len(rows) < 2:
        return
    fig, axes = plt.subplots(
        len(pairs), 1, figsize=(max(6, 0.6 * len(rows) * len(adapts) + 2), 3.4 * len(pairs)), squeeze=False
    )
    w = 0.8 / len(adapts)
    xs = np.arange(len(rows))
    for ax, pair in zip(axes.flat, pairs, strict=True):
        for i, ad in enumerate(adapts):
            g = a[(a["pair"] == pair) & (a["adapt"] == ad)].set_index("row").reindex(rows)
            ax.bar(
                xs + (i - (len(adapts) - 1) / 2) * w,
                100 * g["mean"],
                w,
                yerr=yerr(100 * g["mean"], 100 * g["ci"]),
                capsize=2,
                label=ad,
            )
        ax.set_xticks(xs, [r.replace("|", " ").strip() for r in rows], rotation=25, ha="right", fontsize=7)
        ax.set_ylabel("target top-1 %")
        ax.set_title(pair)
        ax.grid(axis="y", alpha=0.3)
        low = float(np.nanmin(100 * (a.loc[a["pair"] == pair, "mean"] - a.loc[a["pair"] == pair, "ci"])))
        ax.set_ylim(max(0.0, 10 * math.floor(low / 10) - 10), 100)
    axes.flat[0].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    plot.save(
        fig,
        "domain_pairs",
        "Target-domain accuracy per compression and budget, source-only vs adapted",
        "The y axis starts below the lowest bar; the domain table has the paired differences.",
    )

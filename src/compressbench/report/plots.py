"""The report's figures (matplotlib, Agg backend; PNG and/or SVG). Each plot is drawn only when its
data exists. With several seeds every point is a mean with a 95 % Student-t error bar.

Generic figures come from declarations (``MetricSpec.figure``: the metric against the achieved budget,
a line per method); evaluators draw their own through ``EvaluatorSpec.figures`` hooks
``fn(ctx, plot)``, with the helpers here (:meth:`Plotter.save`, :func:`agg`, :func:`yerr`)."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .context import ReportContext  # noqa: E402
from .data import BASELINE, ExperimentData, reduce_rows, select_rows, series_of  # noqa: E402
from .declared import Decl, declarations, evaluator_order, hook  # noqa: E402
from .stats import mean_ci  # noqa: E402
from .tables import ReportOptions  # noqa: E402

log = logging.getLogger(__name__)


@dataclass
class Figure:
    name: str
    title: str
    files: dict[str, Path]  # format -> path
    caption: str = ""
    series: list[str] = field(default_factory=list)  # the legend's entries (first panel), as drawn
    xlabel: str = ""  # the first panel's x-axis label


def yerr(mean, ci, lo: float = 0.0, hi: float = 100.0) -> np.ndarray:
    """Asymmetric error bars clipped to the metric's valid range (a CI of 2 seeds can exceed 0–100 %)."""
    m, c = np.asarray(mean, float), np.nan_to_num(np.asarray(ci, float))
    return np.vstack([np.minimum(c, np.maximum(m - lo, 0)), np.minimum(c, np.maximum(hi - m, 0))])


def agg(s: pd.Series | pd.DataFrame, by: list[str], conf: float = 0.95) -> pd.DataFrame:
    """Per-seed values (index/columns include ``by`` + seed) -> mean, ci (0 for one seed), n."""
    df = s.reset_index() if isinstance(s, pd.Series) else s
    val = "value" if "value" in df else df.columns[-1]
    recs = []
    for k, g in df.groupby(by, sort=False):
        e = mean_ci(g[val], conf)
        k = k if isinstance(k, tuple) else (k,)
        ci = 0.0 if math.isnan(e.ci) else e.ci
        recs.append({**dict(zip(by, k, strict=False)), "mean": e.mean, "ci": ci, "n": e.n})
    return pd.DataFrame(recs, columns=by + ["mean", "ci", "n"])


class Plotter:
    """Draws every figure for one experiment into ``out_dir``: the declared vs-budget figures, then each
    evaluator's ``figures`` hook (evaluators in summary order)."""

    def __init__(
        self,
        data: ExperimentData,
        out_dir: Path,
        formats: set[str],
        opts: ReportOptions | None = None,
        ctx: ReportContext | None = None,
    ):
        self.ctx = ctx or ReportContext.build(data, opts)
        self.data, self.out_dir, self.opts = data, out_dir, self.ctx.options
        self.formats = [f for f in ("png", "svg") if f in formats] or ["png"]
        self.figures: list[Figure] = []
        cmap = plt.get_cmap("tab10" if len(data.variant_order) <= 10 else "tab20")
        self.colors = {v: cmap(i % cmap.N) for i, v in enumerate(data.variant_order)}
        mv = data.variants.set_index("variant")
        self.method_of = mv["method"].to_dict()
        self.budget = mv[["budget_kind", "budget_target", "budget_achieved"]]
        self.single_seed = len(data.seeds) <= 1

    # ------------------------------------------------------------ helpers for figure hooks
    def save(self, fig: plt.Figure, name: str, title: str, caption: str = "", error_bars: bool = True) -> None:
        """Write ``fig`` in every format, close it and list it in the report."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        ax = fig.axes[0] if fig.axes else None
        legend = ax.get_legend() if ax is not None else None
        series = [t.get_text() for t in legend.get_texts()] if legend is not None else []
        xlabel = ax.get_xlabel() if ax is not None else ""
        files = {}
        for fmt in self.formats:
            p = self.out_dir / f"{name}.{fmt}"
            fig.savefig(p, dpi=110, bbox_inches="tight", metadata={"Date": None} if fmt == "svg" else None)
            files[fmt] = p
        plt.close(fig)
        if not self.single_seed and error_bars:
            caption = (
                caption + " " if caption else ""
            ) + "Error bars: 95 % CI over seeds (clipped to the valid range)."
        self.figures.append(Figure(name, title, files, caption, series, xlabel))

    def short(self, v: str) -> str:
        return v if len(v) <= 32 else v[:30] + "…"

    def draw_all(self) -> list[Figure]:
        present = list(dict.fromkeys(self.data.df["evaluator"]))
        self._safe("vs_budget", self.vs_budget)
        for ev in evaluator_order(self.ctx.specs, present):
            spec = self.ctx.specs.get(ev)
            if spec is not None and spec.figures is not None:
                self._safe(f"figures of {ev}", lambda spec=spec, ev=ev: hook(spec.figures)(self.ctx.at(ev), self))
        return self.figures

    def _safe(self, what: str, fn) -> None:
        try:
            fn()
        except Exception:  # a plot must never take the report down
            log.exception("plot %s failed; skipped", what)

    # ------------------------------------------------------------ the declared vs-budget figures
    def _panels(self, d: Decl) -> list[tuple[str, pd.Series]]:
        """(title, per-seed values) panels of one declaration: one, or one per value of ``panels``."""
        rows, _ = select_rows(self.data, d.evaluator, replace(d.spec, protocol=()))
        if rows.empty:
            return []
        panels = d.spec.show.panels
        if panels is None:
            return [(d.spec.title, reduce_rows(rows, d.spec))]
        by = self.data.cond(panels)[rows.index].astype(str)
        return [(str(p), reduce_rows(g, d.spec)) for p, g in rows.groupby(by, sort=True)]

    def series_label(self, variants: list[str]) -> str:
        """A series' legend entry: its experiment-file entry's name, with the method when they differ."""
        name, method = series_of(variants[0]), self.method_of[variants[0]]
        return name if name == method else f"{name} ({method})"

    def vs_budget(self) -> None:
        """Each declared figure: its metrics (panels) vs the budget, a line per experiment-file entry (one
        method with one set of params: L1 and random pruning stay apart), the baseline dashed; one figure
        per budget kind with at least two variants."""
        groups: dict[str, list[Decl]] = {}
        for d in sorted(
            (d for d in declarations(self.ctx.specs) if d.spec.show.figure), key=lambda d: d.spec.show.order
        ):
            groups.setdefault(d.spec.show.figure, []).append(d)  # type: ignore[arg-type]
        var = self.data.variants
        kinds = sorted(k for k in var.loc[var["method"] != BASELINE, "budget_kind"].dropna().unique())
        for kind in kinds:
            vs = list(var.loc[(var["budget_kind"] == kind) & (var["method"] != BASELINE), "variant"])
            if len(vs) < 2:  # a single point says nothing about a trend; the tables have it
                continue
            for name, decls in groups.items():
                pans = [(t, s, d.spec) for d in decls for t, s in self._panels(d)]
                pans = [p for p in pans if set(vs) & set(p[1].index.get_level_values(0))]
                if pans:
                    self._vs_budget_figure(name.format(kind=kind), kind, vs, pans)

    def budget_axis(self, kind: str, vs: list[str]) -> tuple[list[float], str]:
        """The budget targets of ``vs`` in the order compression grows (left to right) and the axis label.
        A shared kind is the fraction of the parent kept (decreasing to the right); a knob is the methods'
        own (its name from the method's spec where this installation has it; increasing to the right
        when it shrinks the model)."""
        targets = sorted({t for t in (float(self.budget.at[v, "budget_target"]) for v in vs) if not math.isnan(t)})
        if kind != "knob":
            return targets[::-1], f"{kind} budget (target fraction of the parent kept) → more compressed"
        from ..registry import methods

        knobs = {m: methods.spec(m).knob for m in dict.fromkeys(self.method_of[v] for v in vs) if m in methods}
        names = sorted({k.name for k in knobs.values() if k is not None})
        grows = [k.shrinks for k in knobs.values() if k is not None]
        if grows and not any(grows):  # a knob that grows the model: more compressed at smaller values
            targets = targets[::-1]
        what = f"knob: {', '.join(names)}" if names else "the method's knob"
        return targets, f"{what} ({', '.join(knobs) or 'method'}) → more compressed"

    def _vs_budget_figure(self, name: str, kind: str, vs: list[str], pans: list) -> None:
        """Categorical x (the budget targets, evenly spaced: nearly equal achieved values such as 0.500 and
        0.5016 never crowd a linear axis), series side by side within a category."""
        ncol = min(4, len(pans))
        nrow = math.ceil(len(pans) / ncol)
        targets, xlabel = self.budget_axis(kind, vs)
        pos = {t: i for i, t in enumerate(targets)}
        series: dict[str, list[str]] = {}
        for v in vs:
            series.setdefault(series_of(v), []).append(v)
        cmap = plt.get_cmap("tab10" if len(series) <= 10 else "tab20")
        width = 0.5 / max(1, len(series))
        fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.4 * nrow), squeeze=False)
        for ax, (title, s, spec) in zip(axes.flat, pans, strict=False):
            k = 100 if spec.show.fmt == "pct" else 1
            a = agg(s, ["variant"])
            a = a[a["variant"].isin(vs + [BASELINE])]
            for i, members in enumerate(series.values()):
                am = a[a["variant"].isin(members)].copy()
                if am.empty:
                    continue
                am["x"] = [
                    pos[float(self.budget.at[v, "budget_target"])] + (i - (len(series) - 1) / 2) * width
                    for v in am["variant"]
                ]
                am = am.sort_values("x")
                err = yerr(k * am["mean"], k * am["ci"]) if k == 100 else k * am["ci"]
                ax.errorbar(
                    am["x"],
                    k * am["mean"],
                    yerr=err,
                    marker="o",
                    capsize=3,
                    label=self.series_label(members),
                    color=cmap(i % cmap.N),
                )
            b = a[a["variant"] == BASELINE]
            if len(b):
                ax.axhline(k * b["mean"].iloc[0], ls="--", color="gray", lw=1, label="baseline")
            ax.set_xticks(range(len(targets)), [f"{t:g}" for t in targets])
            ax.set_xlim(-0.6, len(targets) - 0.4)
            ax.set_title(title)
            ax.set_xlabel(xlabel, fontsize=8)
            ax.set_ylabel(pans[0][2].title)
            ax.grid(alpha=0.3)
        for ax in list(axes.flat)[len(pans) :]:
            ax.axis("off")
        axes.flat[0].legend(fontsize=7)
        fig.tight_layout()
        spec = pans[0][2]
        what = (
            f"{spec.title}, per {spec.show.panels}"
            if spec.show.panels
            else ", ".join(dict.fromkeys(p[2].title for p in pans))
        )
        self.save(
            fig,
            name,
            f"{what} vs {kind} budget",
            "x: the budget target, evenly spaced (the achieved values are in the summary table); "
            "one line per experiment-file entry (method and params).",
        )


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Non-dominated points for (minimise x, maximise y), sorted by x."""
    front: list[tuple[float, float]] = []
    best = -math.inf
    for x, y in sorted(points, key=lambda p: (p[0], -p[1])):
        if y > best:
            front.append((x, y))
            best = y
    return front

"""The report's figures (matplotlib, Agg backend; PNG and/or SVG). Each plot is drawn only when its
data exists. With several seeds every point is a mean with a 95 % Student-t error bar."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .data import BASELINE, ExperimentData, per_seed  # noqa: E402
from .stats import mean_ci  # noqa: E402
from .tables import ReportOptions, _eps_str, corruption_cells, robust_cells, timing  # noqa: E402

log = logging.getLogger(__name__)


@dataclass
class Figure:
    name: str
    title: str
    files: dict[str, Path]  # format -> path
    caption: str = ""


def _yerr(mean: pd.Series, ci: pd.Series, lo: float = 0.0, hi: float = 100.0) -> np.ndarray:
    """Asymmetric error bars clipped to the metric's valid range (a CI of 2 seeds can exceed 0–100 %)."""
    m, c = np.asarray(mean, float), np.nan_to_num(np.asarray(ci, float))
    return np.vstack([np.minimum(c, np.maximum(m - lo, 0)), np.minimum(c, np.maximum(hi - m, 0))])


def _agg(s: pd.Series, by: list[str], conf: float = 0.95) -> pd.DataFrame:
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
    """Draws every figure for one experiment into ``out_dir``."""

    def __init__(self, data: ExperimentData, out_dir: Path, formats: set[str], opts: ReportOptions = ReportOptions()):
        self.data, self.out_dir, self.opts = data, out_dir, opts
        self.formats = [f for f in ("png", "svg") if f in formats] or ["png"]
        self.figures: list[Figure] = []
        cmap = plt.get_cmap("tab10" if len(data.variant_order) <= 10 else "tab20")
        self.colors = {v: cmap(i % cmap.N) for i, v in enumerate(data.variant_order)}
        methods = list(dict.fromkeys(data.variants["method"]))
        self.mcolors = {m: cmap(i % cmap.N) for i, m in enumerate(methods)}
        mv = data.variants.set_index("variant")
        self.method_of = mv["method"].to_dict()
        self.budget = mv[["budget_kind", "budget_target", "budget_achieved"]]
        self.single_seed = len(data.seeds) <= 1

    # ------------------------------------------------------------ helpers
    def _save(self, fig: plt.Figure, name: str, title: str, caption: str = "", error_bars: bool = True) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        files = {}
        for fmt in self.formats:
            p = self.out_dir / f"{name}.{fmt}"
            fig.savefig(p, dpi=110, bbox_inches="tight", metadata={"Date": None} if fmt == "svg" else None)
            files[fmt] = p
        plt.close(fig)
        if not self.single_seed and error_bars:
            caption = (caption + " " if caption else "") + \
                "Error bars: 95 % CI over seeds (clipped to the valid range)."
        self.figures.append(Figure(name, title, files, caption))

    def _short(self, v: str) -> str:
        return v if len(v) <= 32 else v[:30] + "…"

    def draw_all(self) -> list[Figure]:
        for f in (self.acc_vs_budget, self.bars_corruptions, self.acc_vs_severity, self.retention_heatmap,
                  self.pareto, self.robust_vs_eps, self.calibration_bars):
            try:
                f()
            except Exception:  # a plot must never take the report down
                log.exception("plot %s failed; skipped", f.__name__)
        return self.figures

    # ------------------------------------------------------------ figures
    def _x_of(self, v: str) -> float:
        b = self.budget.loc[v]
        return b["budget_achieved"] if not math.isnan(b["budget_achieved"]) else b["budget_target"]

    def acc_vs_budget(self) -> None:
        """Clean accuracy (and per-corruption accuracy) vs budget, one line per method."""
        clean, _ = per_seed(self.data, "clean", "top1", clean_only=True)
        cells = corruption_cells(self.data)
        var = self.data.variants
        kinds = sorted(k for k in var.loc[var["method"] != BASELINE, "budget_kind"].dropna().unique())
        for kind in kinds:
            vs = list(var.loc[(var["budget_kind"] == kind) & (var["method"] != BASELINE), "variant"])
            if len(vs) < 2:  # a single point says nothing about a trend; the tables have it
                continue
            panels: list[tuple[str, pd.Series]] = []
            if len(clean):
                panels.append(("clean", clean))
            per_c = {}
            if not cells.empty:
                for c, g in cells.groupby("corruption"):
                    per_c[c] = g.groupby(["variant", "seed"])["value"].mean()
            for suffix, pans in (("", panels), ("_corruptions", list(per_c.items()))):
                pans = [(t, s) for t, s in pans if set(vs) & set(s.index.get_level_values(0))]
                if not pans:
                    continue
                ncol = min(4, len(pans))
                nrow = math.ceil(len(pans) / ncol)
                fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.2 * nrow), squeeze=False)
                for ax, (title, s) in zip(axes.flat, pans, strict=False):
                    a = _agg(s, ["variant"])
                    a = a[a["variant"].isin(vs + [BASELINE])]
                    for m in dict.fromkeys(self.method_of[v] for v in vs):
                        am = a[a["variant"].map(self.method_of) == m].copy()
                        if am.empty:
                            continue
                        am["x"] = am["variant"].map(self._x_of)
                        am = am.sort_values("x")
                        ax.errorbar(am["x"], 100 * am["mean"], yerr=_yerr(100 * am["mean"], 100 * am["ci"]),
                                    marker="o", capsize=3, label=m, color=self.mcolors[m])
                    b = a[a["variant"] == BASELINE]
                    if len(b):
                        ax.axhline(100 * b["mean"].iloc[0], ls="--", color="gray", lw=1, label="baseline")
                    ax.set_title(title)
                    ax.set_xlabel(f"budget ({kind}{'' if kind == 'knob' else ', fraction of parent'})")
                    ax.set_ylabel("top-1 accuracy %")
                    ax.grid(alpha=0.3)
                for ax in list(axes.flat)[len(pans):]:
                    ax.axis("off")
                axes.flat[0].legend(fontsize=7)
                fig.tight_layout()
                what = "clean" if not suffix else "per corruption (mean over severities)"
                self._save(fig, f"acc_vs_budget_{kind}{suffix}", f"Accuracy vs {kind} budget, {what}",
                           "x: achieved budget where recorded, else the target.")

    def bars_corruptions(self) -> None:
        """Grouped bars: variants × (clean, each corruption averaged over severities)."""
        cells = corruption_cells(self.data)
        if cells.empty:
            return
        clean, _ = per_seed(self.data, "clean", "top1", clean_only=True)
        per = cells.groupby(["variant", "seed", "corruption"])["value"].mean().reset_index()
        if len(clean):
            c = clean.reset_index()
            c["corruption"] = "clean"
            per = pd.concat([c[["variant", "seed", "corruption", "value"]], per])
        a = _agg(per.set_index(["variant", "seed", "corruption"])["value"], ["variant", "corruption"])
        groups = list(dict.fromkeys(a["corruption"]))
        vs = [v for v in self.data.variant_order if v in set(a["variant"])]
        w = 0.8 / max(len(vs), 1)
        fig, ax = plt.subplots(figsize=(max(6, 0.35 * len(groups) * len(vs) + 2), 4))
        x = np.arange(len(groups))
        for i, v in enumerate(vs):
            av = a[a["variant"] == v].set_index("corruption").reindex(groups)
            ax.bar(x + (i - (len(vs) - 1) / 2) * w, 100 * av["mean"], w, yerr=_yerr(100 * av["mean"], 100 * av["ci"]),
                   capsize=2,
                   label=self._short(v), color=self.colors[v])
        ax.set_xticks(x, groups, rotation=30, ha="right")
        ax.set_ylabel("top-1 accuracy %")
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
        fig.tight_layout()
        self._save(fig, "bars_corruptions", "Accuracy per corruption and variant (mean over severities)")

    def acc_vs_severity(self) -> None:
        cells = corruption_cells(self.data)
        if cells.empty:
            return
        clean, _ = per_seed(self.data, "clean", "top1", clean_only=True)
        per = cells.groupby(["variant", "seed", "severity"])["value"].mean().reset_index()
        if len(clean):
            c = clean.reset_index()
            c["severity"] = 0.0
            per = pd.concat([c[["variant", "seed", "severity", "value"]], per])
        a = _agg(per.set_index(["variant", "seed", "severity"])["value"], ["variant", "severity"])
        fig, ax = plt.subplots(figsize=(6, 4))
        for v in self.data.variant_order:
            av = a[a["variant"] == v].sort_values("severity")
            if av.empty:
                continue
            ax.errorbar(av["severity"], 100 * av["mean"], yerr=_yerr(100 * av["mean"], 100 * av["ci"]), marker="o",
                        capsize=3, label=self._short(v), color=self.colors[v], ls="--" if v == BASELINE else "-")
        ax.set_xlabel("severity (0 = clean)")
        ax.set_ylabel("top-1 accuracy %, mean over corruptions")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        self._save(fig, "acc_vs_severity", "Accuracy vs corruption severity")

    def retention_heatmap(self) -> None:
        cells = corruption_cells(self.data)
        clean, _ = per_seed(self.data, "clean", "top1", clean_only=True)
        if cells.empty or not len(clean):
            return
        per = cells.groupby(["variant", "seed", "corruption"])["value"].mean().reset_index()
        per["clean"] = [clean.get((v, s), math.nan) for v, s in zip(per["variant"], per["seed"], strict=False)]
        per["value"] = per["value"] / per["clean"]
        a = _agg(per.set_index(["variant", "seed", "corruption"])["value"], ["variant", "corruption"])
        mat = a.pivot(index="variant", columns="corruption", values="mean")
        mat = mat.reindex([v for v in self.data.variant_order if v in mat.index])
        fig, ax = plt.subplots(figsize=(1.1 * mat.shape[1] + 3, 0.45 * mat.shape[0] + 1.6))
        im = ax.imshow(mat.values, cmap="viridis", aspect="auto", vmin=np.nanmin(mat.values),
                       vmax=max(1.0, np.nanmax(mat.values)))
        ax.set_xticks(range(mat.shape[1]), mat.columns, rotation=30, ha="right")
        ax.set_yticks(range(mat.shape[0]), [self._short(v) for v in mat.index])
        for i in range(mat.shape[0]):
            for j in range(mat.shape[1]):
                val = mat.values[i, j]
                if not math.isnan(val):
                    ax.text(j, i, f"{val:.2f}", ha="center", va="center", fontsize=7, color="w")
        fig.colorbar(im, ax=ax, label="retention = corrupted / clean accuracy")
        fig.tight_layout()
        self._save(fig, "retention_heatmap", "Retention (corrupted / clean accuracy), variant × corruption",
                   "Mean over seeds and severities." if not self.single_seed else "Mean over severities.",
                   error_bars=False)

    def pareto(self) -> None:
        clean, _ = per_seed(self.data, "clean", "top1", clean_only=True)
        if not len(clean):
            return
        acc = _agg(clean, ["variant"]).set_index("variant")
        for metric, name, xlabel, scale in (("latency_b1_ms", "pareto_latency", "latency at batch 1, ms", 1.0),
                                            ("bytes_compressed", "pareto_bytes", "compressed size, KiB", 1 / 1024)):
            if metric.startswith("latency"):
                s, cond = timing(self.data, metric)
            else:
                s, cond = per_seed(self.data, "efficiency", metric, one_condition=False)
            if not len(s):
                continue
            x = _agg(s, ["variant"]).set_index("variant")
            vs = [v for v in self.data.variant_order if v in x.index and v in acc.index]
            if not vs:
                continue
            fig, ax = plt.subplots(figsize=(6, 4))
            pts = []
            for v in vs:
                xv, yv = x.at[v, "mean"] * scale, 100 * acc.at[v, "mean"]
                ax.errorbar(xv, yv, xerr=x.at[v, "ci"] * scale, yerr=_yerr([yv], [100 * acc.at[v, "ci"]]), fmt="o",
                            color=self.colors[v], capsize=3, label=self._short(v))
                pts.append((xv, yv))
            front = pareto_front(pts)
            ax.plot([p[0] for p in front], [p[1] for p in front], "k--", lw=1, label="Pareto front")
            ax.set_xlabel(xlabel + (f" ({cond})" if cond else ""))
            ax.set_ylabel("clean top-1 accuracy %")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
            fig.tight_layout()
            self._save(fig, name, f"Accuracy vs {'latency' if 'latency' in metric else 'size'}: Pareto front",
                       "Upper left is better; the dashed line joins the non-dominated variants.")

    def robust_vs_eps(self) -> None:
        r = robust_cells(self.data)
        r = r[r["mode"] != "transfer"]
        if r.empty:
            return
        for norm, g in r.groupby("norm"):
            worst = g.groupby(["variant", "seed", "eps"])["value"].min()
            a = _agg(worst, ["variant", "eps"])
            fig, ax = plt.subplots(figsize=(6, 4))
            for v in self.data.variant_order:
                av = a[a["variant"] == v].sort_values("eps")
                if av.empty:
                    continue
                ax.errorbar(av["eps"] * (255 if norm == "linf" else 1), 100 * av["mean"],
                            yerr=_yerr(100 * av["mean"], 100 * av["ci"]),
                            marker="o", capsize=3, label=self._short(v), color=self.colors[v],
                            ls="--" if v == BASELINE else "-")
            ax.set_xlabel("ε × 255" if norm == "linf" else "ε (L2)")
            ax.set_ylabel("robust top-1 accuracy %")
            ax.set_title(f"{norm}: worst case over white-box attacks")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
            fig.tight_layout()
            eps_main = _eps_str(self.opts.main_eps) if norm == self.opts.norm else ""
            self._save(fig, f"robust_vs_eps_{norm}", f"Robust accuracy vs ε ({norm})",
                       f"The summary table uses the largest ε ≤ {eps_main}." if eps_main else "")

    def calibration_bars(self) -> None:
        df = self.data.df
        m = (df["evaluator"] == "calibration") & (df["metric"] == "ece")
        if not m.any():
            return
        sub = df[m].copy()
        sub["cond"] = np.where(sub["condition"].fillna("") == "", "clean", "corrupted (mean)")
        per = sub.groupby(["variant", "seed", "cond"])["value"].mean()
        a = _agg(per, ["variant", "cond"])
        conds = list(dict.fromkeys(sorted(a["cond"], key=lambda c: c != "clean")))
        vs = [v for v in self.data.variant_order if v in set(a["variant"])]
        fig, ax = plt.subplots(figsize=(max(5, 0.5 * len(vs) * len(conds) + 2), 3.6))
        w = 0.8 / len(conds)
        x = np.arange(len(vs))
        for i, c in enumerate(conds):
            ac = a[a["cond"] == c].set_index("variant").reindex(vs)
            ax.bar(x + (i - (len(conds) - 1) / 2) * w, ac["mean"], w, yerr=_yerr(ac["mean"], ac["ci"], 0, 1), capsize=2,
                   label=c)
        ax.set_xticks(x, [self._short(v) for v in vs], rotation=30, ha="right")
        ax.set_ylabel("ECE (15 bins)")
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        self._save(fig, "calibration_ece", "Expected calibration error, clean and under corruption")


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Non-dominated points for (minimise x, maximise y), sorted by x."""
    front: list[tuple[float, float]] = []
    best = -math.inf
    for x, y in sorted(points, key=lambda p: (p[0], -p[1])):
        if y > best:
            front.append((x, y))
            best = y
    return front

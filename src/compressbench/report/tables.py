"""Summary and detail tables of one experiment (CSV, Markdown, LaTeX).

Every number is first computed per (variant, seed), then aggregated over seeds as mean ± 95 %
Student-t CI (:mod:`.stats`). Derived numbers follow ImageNet-C (Hendrycks & Dietterich 2019) with
the experiment's baseline (the uncompressed parent of the same seed) in place of AlexNet:

* corruption error ``CE_c = Σ_s E_{s,c} / Σ_s E^{base}_{s,c}``, mCE = mean over corruptions;
* relative CE ``Σ_s (E_{s,c} − E_clean) / Σ_s (E^{base}_{s,c} − E^{base}_clean)``, relative mCE likewise;
* retention = mean corruption accuracy / clean accuracy.

Markdown and LaTeX are written by hand (a dozen lines) so the report needs neither ``tabulate`` nor
``jinja2``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from .data import BASELINE, ExperimentData, per_seed, to_float
from .stats import mean_ci


@dataclass(frozen=True)
class ReportOptions:
    """Choices the report makes when the store holds several candidates."""

    main_eps: float = 8 / 255  # robust accuracy at the largest eps <= this ...
    norm: str = "linf"  # ... for this norm
    confidence: float = 0.95


@dataclass
class Column:
    key: str
    label: str
    fmt: Callable[[float], str]
    note: str = ""


def _pct(v: float) -> str:
    return f"{100 * v:.2f}"


def _f3(v: float) -> str:
    return f"{v:.3f}"


def _int(v: float) -> str:
    return f"{v:,.0f}"


def _kb(v: float) -> str:
    return f"{v / 1024:,.1f}"


def _g(v: float) -> str:
    return f"{v:.4g}"


def _ms(v: float) -> str:
    return f"{v:.3g}"


@dataclass
class Table:
    """A table: per-variant estimates (mean, ci, n per column) plus text columns."""

    name: str
    title: str
    text: pd.DataFrame  # index: variant; text columns (method, budget ...)
    columns: list[Column]
    mean: pd.DataFrame  # index: variant, columns: Column.key
    ci: pd.DataFrame
    n: pd.DataFrame
    notes: list[str] = field(default_factory=list)

    def cell(self, variant: str, key: str, with_ci: bool = True) -> str:
        col = next(c for c in self.columns if c.key == key)
        m = self.mean.at[variant, key] if key in self.mean else math.nan
        if m is None or (isinstance(m, float) and math.isnan(m)):
            return ""
        s = col.fmt(m)
        ci = self.ci.at[variant, key]
        if with_ci and not math.isnan(ci):
            ci = 0.0 if abs(ci) <= 1e-9 * max(abs(m), 1e-300) else ci
            s += " ± " + col.fmt(ci)
        return s

    def header(self) -> list[str]:
        return list(self.text.columns) + [c.label for c in self.columns]

    def string_rows(self) -> list[list[str]]:
        out = []
        for v in self.text.index:
            out.append([str(x) if x is not None and not (isinstance(x, float) and math.isnan(x)) else ""
                        for x in self.text.loc[v]] + [self.cell(v, c.key) for c in self.columns])
        return out

    def to_frame(self) -> pd.DataFrame:
        """Numbers for CSV: ``<key>`` (mean), ``<key>_ci95`` (half-width, blank for 1 seed), ``<key>_n``."""
        df = self.text.copy()
        for c in self.columns:
            df[c.key] = self.mean[c.key]
            df[f"{c.key}_ci95"] = self.ci[c.key]
            df[f"{c.key}_n"] = self.n[c.key].astype("Int64")
        return df.reset_index(drop=True)

    def to_markdown(self) -> str:
        h = self.header()
        lines = ["| " + " | ".join(h) + " |", "|" + "|".join("---" for _ in h) + "|"]
        lines += ["| " + " | ".join(x.replace("|", "\\|") for x in r) + " |" for r in self.string_rows()]
        if self.notes:
            lines += [""] + [f"- {n}" for n in self.notes]
        return "\n".join(lines) + "\n"

    def to_latex(self) -> str:
        h = self.header()
        body = [" & ".join(_tex(x) for x in r) + r" \\" for r in self.string_rows()]
        return "\n".join([r"\begin{tabular}{" + "l" * len(self.text.columns) + "r" * len(self.columns) + "}",
                          r"\toprule", " & ".join(_tex(x) for x in h) + r" \\", r"\midrule", *body,
                          r"\bottomrule", r"\end{tabular}"]) + "\n"

    def write(self, out_dir: Path, formats: set[str]) -> list[Path]:
        out_dir.mkdir(parents=True, exist_ok=True)
        paths = []
        if "csv" in formats:
            p = out_dir / f"{self.name}.csv"
            self.to_frame().to_csv(p, index=False)
            paths.append(p)
        if "md" in formats:
            p = out_dir / f"{self.name}.md"
            p.write_text(f"### {self.title}\n\n" + self.to_markdown())
            paths.append(p)
        if "tex" in formats:
            p = out_dir / f"{self.name}.tex"
            p.write_text(self.to_latex())
            paths.append(p)
        return paths


_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
        "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def _tex(s: str) -> str:
    s = "".join(_TEX.get(ch, ch) for ch in s)
    return s.replace("±", r"$\pm$").replace("ε", r"$\varepsilon$").replace("Δ", r"$\Delta$")


def _aggregate(name: str, title: str, data: ExperimentData, per: pd.DataFrame, columns: list[Column],
               confidence: float, text: pd.DataFrame | None = None, notes: list[str] | None = None) -> Table:
    """``per``: index (variant, seed), one column per Column.key -> Table over data.variant_order."""
    order = data.variant_order
    if text is None:
        text = variant_text(data)
    cols = [c.key for c in columns]
    mean = pd.DataFrame(index=order, columns=cols, dtype=float)
    ci = mean.copy()
    n = mean.copy()
    for v in order:
        for c in cols:
            vals = per.loc[v, c].tolist() if (c in per and v in per.index.get_level_values(0)) else []
            e = mean_ci(vals, confidence)
            mean.at[v, c], ci.at[v, c], n.at[v, c] = e.mean, e.ci, e.n
    return Table(name, title, text.loc[order], columns, mean, ci, n, notes or [])


def variant_text(data: ExperimentData) -> pd.DataFrame:
    v = data.variants.set_index("variant")

    def budget(r: pd.Series) -> str:
        if r["method"] == BASELINE or r["budget_kind"] is None or math.isnan(r["budget_target"]):
            return ""
        return f"{r['budget_kind']}={r['budget_target']:g}"

    return pd.DataFrame({"variant": v.index, "method": v["method"], "budget": v.apply(budget, axis=1),
                         "achieved": v["budget_achieved"].map(lambda x: "" if math.isnan(x) else f"{x:.3f}")},
                        index=v.index).rename_axis("variant")


# ---------------------------------------------------------------- per-seed building blocks
def corruption_cells(data: ExperimentData) -> pd.DataFrame:
    """Per-corruption × severity top-1: columns variant, seed, corruption, severity, value."""
    df = data.df
    m = (df["evaluator"] == "corruptions") & (df["metric"] == "top1")
    sub = df[m]
    if sub.empty:
        return pd.DataFrame(columns=["variant", "seed", "corruption", "severity", "value"])
    corr = data.cond("corruption")[m].astype(str)
    suites = data.cond("suite")[m]
    if suites.nunique(dropna=True) > 1:
        corr = suites.astype(str) + "/" + corr
    sev = data.cond("severity")[m].map(to_float)
    out = pd.DataFrame({"variant": sub["variant"], "seed": sub["seed"], "corruption": corr, "severity": sev,
                        "value": sub["value"]})
    return out.groupby(["variant", "seed", "corruption", "severity"], as_index=False)["value"].mean()


def main_eps(data: ExperimentData, opts: ReportOptions) -> float | None:
    """The largest ε ≤ ``opts.main_eps`` stored for ``opts.norm`` (None if there is none)."""
    m = (data.df["evaluator"] == "adversarial") & (data.df["metric"] == "robust_top1")
    m &= data.cond("norm") == opts.norm
    eps = data.cond("eps")[m].map(to_float).dropna()
    eps = eps[eps <= opts.main_eps * (1 + 1e-4) + 1e-12]  # stored values may be rounded (0.0313725)
    return float(eps.max()) if len(eps) else None


def robust_cells(data: ExperimentData) -> pd.DataFrame:
    """robust_top1 rows: variant, seed, attack, norm, eps, mode, value."""
    df = data.df
    m = (df["evaluator"] == "adversarial") & (df["metric"] == "robust_top1")
    sub = df[m]
    attack = data.cond("attack")[m].astype(str)
    steps = data.cond("steps")[m]
    # the same attack at several step counts (e.g. the evaluator's stronger-attack check): name the steps
    multi = steps.groupby(attack).transform(lambda x: x.nunique(dropna=True) > 1).astype(bool)
    attack = attack.where(~multi, attack + "-" + steps.map(lambda x: f"{int(to_float(x))}" if x is not None else "?"))
    return pd.DataFrame({"variant": sub["variant"], "seed": sub["seed"],
                         "attack": attack, "norm": data.cond("norm")[m].astype(str),
                         "eps": data.cond("eps")[m].map(to_float),
                         "mode": data.cond("mode")[m].fillna(sub["tag"]).astype(str), "value": sub["value"]})


def robust_at(data: ExperimentData, eps: float, norm: str) -> tuple[pd.Series, list[str]]:
    """Worst case over white-box attacks at (norm, eps), per (variant, seed); the attacks used.

    A variant with no white-box rows (e.g. an int8 model attacked only by transfer from its float
    parent) gets its worst transfer figure instead; :func:`robust_transfer_only` names those."""
    r = robust_cells(data)
    r = r[(r["norm"] == norm) & (np.isclose(r["eps"], eps, rtol=1e-6, atol=1e-9))]
    white = r[r["mode"] != "transfer"].groupby(["variant", "seed"])["value"].min()
    transfer = r[r["mode"] == "transfer"].groupby(["variant", "seed"])["value"].min()
    only_t = transfer[~transfer.index.isin(white.index)]
    return pd.concat([white, only_t]).sort_index(), sorted(r["attack"].unique())


def robust_transfer_only(data: ExperimentData, eps: float, norm: str) -> list[str]:
    """Variants whose robust figure at (norm, eps) comes from transfer attacks only."""
    r = robust_cells(data)
    r = r[(r["norm"] == norm) & (np.isclose(r["eps"], eps, rtol=1e-6, atol=1e-9))]
    modes = r.groupby("variant")["mode"].agg(lambda m: set(m))
    return sorted(v for v, ms in modes.items() if ms == {"transfer"})


def _baseline_of(series: pd.Series, seed: int) -> float:
    """The baseline's value for ``seed`` (or its mean over seeds if that seed is missing)."""
    if (BASELINE, seed) in series.index:
        return float(series.loc[(BASELINE, seed)])
    if BASELINE in series.index.get_level_values(0):
        return float(series.loc[BASELINE].mean())
    return math.nan


def ce_per_seed(data: ExperimentData, clean: pd.Series) -> pd.DataFrame:
    """mCE and relative mCE vs the baseline, per (variant, seed) (ImageNet-C formulas)."""
    cells = corruption_cells(data)
    if cells.empty or BASELINE not in set(cells["variant"]):
        return pd.DataFrame(columns=["mce", "rel_mce"])
    base = cells[cells["variant"] == BASELINE]
    recs = []
    for (v, seed), g in cells.groupby(["variant", "seed"]):
        b = base[base["seed"] == seed]
        if b.empty:
            b = base.groupby(["corruption", "severity"], as_index=False)["value"].mean()
        e_clean = 1 - float(clean.get((v, seed), math.nan))
        b_clean = 1 - _baseline_of(clean, seed) if len(clean) else math.nan
        ces, rces = [], []
        for c, gc in g.groupby("corruption"):
            bc = b[b["corruption"] == c].set_index("severity")["value"]
            vc = gc.set_index("severity")["value"]
            common = vc.index.intersection(bc.index)
            if not len(common):
                continue
            ev, eb = (1 - vc[common]).sum(), (1 - bc[common]).sum()
            ces.append(ev / eb if eb > 0 else math.nan)
            den = (1 - bc[common] - b_clean).sum()
            rces.append((1 - vc[common] - e_clean).sum() / den if den > 0 else math.nan)
        recs.append({"variant": v, "seed": seed, "mce": float(np.nanmean(ces)) if ces else math.nan,
                     "rel_mce": float(np.nanmean(rces)) if rces and not all(map(math.isnan, rces)) else math.nan})
    return pd.DataFrame(recs).set_index(["variant", "seed"])


def timing(data: ExperimentData, metric: str) -> tuple[pd.Series, str]:
    """Realised latency / throughput per (variant, seed) under one (threads, batch) protocol; runtimes
    may differ between variants (eager fp32 vs int8); for ONNX the fastest dtype is taken."""
    return per_seed(data, "efficiency", metric, tags=("realised", ""), protocol=("threads", "batch"),
                    agg="min" if metric.startswith("onnx") else "mean")


# ---------------------------------------------------------------- the tables
def summary_table(data: ExperimentData, opts: ReportOptions = ReportOptions()) -> Table:
    """One row per variant: accuracy, robustness, size, compute and speed (blank where not measured)."""
    cols: dict[str, pd.Series] = {}
    notes: list[str] = []
    clean, _ = per_seed(data, "clean", "top1", clean_only=True)
    cols["clean_top1"] = clean
    # the evaluator's overall mean (condition {suite} only; its per-severity / per-corruption means are
    # skipped); with several suites, their mean. Without the metric: mean over the stored cells.
    corr_mean, _ = per_seed(data, "corruptions", "mean_top1", exact_keys={"suite"}, one_condition=False)
    if corr_mean.empty:
        corr_mean, _ = per_seed(data, "corruptions", "mean_top1", exact_keys=set(), one_condition=False)
    cells = corruption_cells(data)
    if corr_mean.empty and not cells.empty:
        corr_mean = cells.groupby(["variant", "seed"])["value"].mean()
    suites = sorted(str(x) for x in data.cond("suite")[data.df["evaluator"] == "corruptions"].dropna().unique())
    if len(suites) > 1:
        notes.append(f"Corruption accuracy: mean over the suites {', '.join(suites)}.")
    cols["corr_top1"] = corr_mean
    if len(clean) and len(corr_mean):
        cols["retention"] = (corr_mean / clean).dropna()
    ce = ce_per_seed(data, clean)
    if len(ce):
        cols["mce"], cols["rel_mce"] = ce["mce"], ce["rel_mce"]
    eps = main_eps(data, opts)
    eps_label = "ε"
    if eps is not None:
        cols["robust_top1"], attacks = robust_at(data, eps, opts.norm)
        eps_label = f"{opts.norm} ε={_eps_str(eps)}"
        notes.append(f"Robust accuracy: worst case over white-box attacks ({', '.join(attacks)}) at {eps_label}.")
        t_only = robust_transfer_only(data, eps, opts.norm)
        if t_only:
            notes.append(f"Robust accuracy of {', '.join(t_only)}: transfer attacks from the float parent "
                         "(no white-box gradient through int8 kernels).")
    cols["ece"], _ = per_seed(data, "calibration", "ece", clean_only=True)
    cols["disagreement"], _ = per_seed(data, "agreement", "disagreement")
    effs = {}
    for metric in ("params_nonzero", "bytes_dense", "bytes_compressed", "flops_effective"):
        # one row per variant; its condition (encoding, counter) may differ between variants
        effs[metric], _ = per_seed(data, "efficiency", metric, one_condition=False)
    # without the efficiency evaluator: the runner's own counts from the compress job
    for metric, fallback in (("params_nonzero", "params_nonzero"), ("flops_effective", "flops")):
        if not len(effs[metric]):
            effs[metric], _ = per_seed(data, "compress", fallback, one_condition=False)
            if len(effs[metric]):
                notes.append(f"{metric}: from the compress job (no efficiency rows).")
    cols["params_nonzero"] = effs["params_nonzero"]
    cols["bytes_dense"] = effs["bytes_dense"]
    cols["bytes_compressed"] = effs["bytes_compressed"]
    # compression %: size saved relative to the baseline's dense fp32 bytes (same seed)
    comp = {}
    bd, bc = effs["bytes_dense"], effs["bytes_compressed"]
    if len(bc) and len(bd):
        for (v, s), val in bc.items():
            comp[(v, s)] = 100 * (1 - val / _baseline_of(bd, s))
    else:
        ach, _ = per_seed(data, "compress", "achieved_bytes")
        comp = {k: 100 * (1 - val) for k, val in ach.items()}
        if comp:
            notes.append("Compression % from the compressor's achieved_bytes (no efficiency rows).")
    if len(bc) and len(bd):
        notes.append("Compression %: 1 − compressed bytes / the baseline's dense (torch.save) bytes.")
    cols["compression_pct"] = pd.Series(comp, dtype=float)
    flops = effs["flops_effective"]
    small = len(flops) and float(flops.max()) < 1e8  # tiny models: MFLOPs are readable, GFLOPs are not
    cols["gflops"] = flops / (1e6 if small else 1e9)
    for metric in ("latency_b1_ms", "throughput_img_s", "onnx_latency_b1_ms"):
        cols[metric], cond = timing(data, metric)
        if cond and len(cols[metric]):
            extra = " (fastest ONNX dtype per variant)" if metric.startswith("onnx") else ""
            notes.append(f"{metric}: {cond}{extra}.")
    per = pd.DataFrame({k: v for k, v in cols.items() if len(v)})
    if not per.empty:
        per.index = per.index.set_names(["variant", "seed"])
    columns = [
        Column("clean_top1", "Clean acc. %", _pct), Column("corr_top1", "Corruption acc. %", _pct),
        Column("retention", "Retention", _f3), Column("mce", "CE vs base", _f3),
        Column("rel_mce", "Rel. CE vs base", _f3), Column("robust_top1", f"Robust acc. % ({eps_label})", _pct),
        Column("ece", "ECE", _f3), Column("disagreement", "Disagree %", _pct),
        Column("params_nonzero", "Params (nonzero)", _int), Column("bytes_dense", "Dense KiB", _kb),
        Column("bytes_compressed", "Compressed KiB", _kb), Column("compression_pct", "Compression %", _f1),
        Column("gflops", "MFLOPs (eff.)" if small else "GFLOPs (eff.)", _g),
        Column("latency_b1_ms", "Latency b1 ms", _ms),
        Column("throughput_img_s", "Throughput img/s", _int), Column("onnx_latency_b1_ms", "ORT latency b1 ms", _ms),
    ]
    # keep only columns with any data; the clean accuracy column always stays
    columns = [c for c in columns if c.key == "clean_top1" or (c.key in per and per[c.key].notna().any())]
    for c in columns:
        if c.key not in per:
            per[c.key] = math.nan
    if per.empty:
        per = pd.DataFrame(columns=[c.key for c in columns],
                           index=pd.MultiIndex.from_tuples([], names=["variant", "seed"]))
    notes.insert(0, seeds_note(data))
    if not data.errors.empty:
        failed = sorted(set(data.errors["variant"]) - set(data.df["variant"]))
        if failed:
            notes.append(f"No numbers for {', '.join(failed)}: every job failed (see Failed jobs).")
    return _aggregate("summary", f"{data.name}: summary", data, per, columns, opts.confidence, notes=notes)


def _f1(v: float) -> str:
    return f"{v:.1f}"


def _eps_str(eps: float) -> str:
    k = eps * 255
    return f"{round(k)}/255" if abs(k - round(k)) < 1e-3 and eps > 0 else f"{eps:g}"


def seeds_note(data: ExperimentData) -> str:
    n = len(data.seeds)
    if n == 0:
        return "No successful measurement yet."
    if n == 1:
        return f"{n} seed: no confidence interval."
    return f"{n} seeds ({', '.join(map(str, data.seeds))}): mean ± 95 % CI (Student t, {n - 1} d.o.f.)."


def corruption_table(data: ExperimentData, opts: ReportOptions = ReportOptions()) -> Table | None:
    """Variant × corruption: accuracy averaged over severities."""
    cells = corruption_cells(data)
    if cells.empty:
        return None
    per = cells.groupby(["variant", "seed", "corruption"])["value"].mean().unstack("corruption")
    columns = [Column(c, c, _pct) for c in per.columns]
    return _aggregate("corruptions", f"{data.name}: accuracy % per corruption (mean over severities)", data, per,
                      columns, opts.confidence, notes=[seeds_note(data)])


def robustness_table(data: ExperimentData, opts: ReportOptions = ReportOptions()) -> Table | None:
    """Variant × (attack, norm, ε, mode): robust accuracy."""
    r = robust_cells(data)
    if r.empty:
        return None
    r["col"] = r["attack"] + " " + r["norm"] + " ε=" + r["eps"].map(_eps_str) + \
        r["mode"].map(lambda m: "" if m in ("whitebox", "", "nan") else f" ({m})")
    r["_mrank"] = r["mode"].map(lambda m: {"whitebox": 0, "": 0, "nan": 0, "whitebox-ste": 1}.get(m, 2))
    order = r.sort_values(["norm", "_mrank", "mode", "attack", "eps"])["col"].unique()
    per = r.groupby(["variant", "seed", "col"])["value"].mean().unstack("col")[list(order)]
    columns = [Column(c, c, _pct) for c in order]
    return _aggregate("robustness", f"{data.name}: robust accuracy %", data, per, columns, opts.confidence,
                      notes=[seeds_note(data)])


def calibration_table(data: ExperimentData, opts: ReportOptions = ReportOptions()) -> Table | None:
    """Variant × metric (ECE/NLL/Brier) clean and averaged over corrupted conditions."""
    df = data.df[data.df["evaluator"] == "calibration"]
    if df.empty:
        return None
    clean = df["condition"].fillna("") == ""
    parts = {}
    for metric in ("ece", "nll", "brier"):
        parts[f"{metric}"] = df[clean & (df["metric"] == metric)].groupby(["variant", "seed"])["value"].mean()
        parts[f"{metric}_corr"] = df[~clean & (df["metric"] == metric)].groupby(["variant", "seed"])["value"].mean()
    per = pd.DataFrame({k: v for k, v in parts.items() if len(v)})
    labels = {"ece": "ECE", "nll": "NLL", "brier": "Brier", "ece_corr": "ECE (corrupted)",
              "nll_corr": "NLL (corrupted)", "brier_corr": "Brier (corrupted)"}
    columns = [Column(k, labels[k], _f3) for k in labels if k in per]
    return _aggregate("calibration", f"{data.name}: calibration (15-bin ECE, NLL, Brier)", data, per, columns,
                      opts.confidence, notes=[seeds_note(data)])


def all_tables(data: ExperimentData, opts: ReportOptions = ReportOptions()) -> list[Table]:
    out = [summary_table(data, opts)]
    for f in (corruption_table, robustness_table, calibration_table):
        t = f(data, opts)
        if t is not None:
            out.append(t)
    return out

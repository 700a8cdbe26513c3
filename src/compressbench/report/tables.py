"""Tables of one experiment (CSV, Markdown, LaTeX): the :class:`Table` container, cell formats and the
mean ± CI aggregation every table shares.

Every number is first computed per (variant, seed), then aggregated over seeds as mean ± 95 %
Student-t CI (:mod:`.stats`). Which numbers a table holds comes from metric declarations
(:mod:`.summary`, :mod:`.detail`) and evaluators' own report hooks.

Markdown and LaTeX are written by hand (a dozen lines) so the report needs neither ``tabulate`` nor
``jinja2``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import pandas as pd

from .data import BASELINE, ExperimentData
from .stats import mean_ci


@dataclass(frozen=True, init=False)
class ReportOptions:
    """Choices the report makes: ``confidence`` of the intervals over seeds, and the values of options that
    evaluators declare for their report hooks (``EvaluatorSpec.report_options``, e.g. the adversarial
    evaluator's ``main_eps`` and ``norm``), by name: ``ReportOptions(main_eps=4 / 255)``. An option not given
    takes its declared default (``ReportContext.option``)."""

    confidence: float
    values: Mapping[str, Any]

    def __init__(self, confidence: float = 0.95, **values: Any):
        object.__setattr__(self, "confidence", confidence)
        object.__setattr__(self, "values", dict(values))


@dataclass
class Column:
    key: str
    label: str
    fmt: Callable[[float], str]
    note: str = ""

    @classmethod
    def of(cls, key: str, label: str, fmt: str = "g") -> Column:
        """A column rendered with a declared format name (see :data:`CELL_FORMATS`)."""
        return cls(key, label, CELL_FORMATS[fmt].cell)


def _pct(v: float) -> str:
    return f"{100 * v:.2f}"


def _int(v: float) -> str:
    return f"{v:,.0f}"


@dataclass(frozen=True)
class CellFormat:
    """How a declared ``fmt`` renders: ``cell`` in report tables, ``console`` in the printed run summary."""

    cell: Callable[[float], str]
    console: Callable[[float], str]


def _same(f: Callable[[float], str]) -> CellFormat:
    return CellFormat(f, f)


CELL_FORMATS: dict[str, CellFormat] = {
    "pct": CellFormat(_pct, lambda v: f"{v:.2%}"),  # fractions shown in %
    "f1": _same(lambda v: f"{v:.1f}"),
    "f2": _same(lambda v: f"{v:.2f}"),
    "f3": _same(lambda v: f"{v:.3f}"),
    "int": _same(_int),
    "bytes": CellFormat(lambda v: f"{v / 1024:,.1f}", _int),  # KiB in tables (the CSV keeps bytes)
    "ms": _same(lambda v: f"{v:.3g}"),
    "g": _same(lambda v: f"{v:.4g}"),
}


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


def aggregate(name: str, title: str, data: ExperimentData, per: pd.DataFrame, columns: list[Column],
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


def seeds_note(data: ExperimentData) -> str:
    n = len(data.seeds)
    if n == 0:
        return "No successful measurement yet."
    if n == 1:
        return f"{n} seed: no confidence interval."
    return f"{n} seeds ({', '.join(map(str, data.seeds))}): mean ± 95 % CI (Student t, {n - 1} d.o.f.)."



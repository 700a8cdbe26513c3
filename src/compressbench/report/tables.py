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
import re
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
    """A numeric column: ``key`` (the CSV's), ``label``, cell format; ``note``: what it means (the HTML's hover
    text); ``ci_fmt``: the format of its ± half-width (default ``fmt``); ``good``: for a change-vs-parent
    column, +1 when a larger value is better, −1 when smaller is, around ``neutral`` (no change)."""

    key: str
    label: str
    fmt: Callable[[float], str]
    note: str = ""
    ci_fmt: Callable[[float], str] | None = None
    good: int = 0
    neutral: float = 0.0

    @classmethod
    def of(cls, key: str, label: str, fmt: str = "g", values: Any = None, note: str = "") -> Column:
        """A column rendered with a format name (see :data:`CELL_FORMATS`). A ``bytes`` column reads in one
        decimal unit, kB or MB, chosen from its largest value (``values``; kB without them), named in its label."""
        if fmt == "bytes":
            divisor, unit = size_unit(values)
            digits = 2 if divisor > 1e3 else 1
            return cls(key, f"{strip_size_unit(label)} {unit}", lambda v: f"{v / divisor:,.{digits}f}", note)
        f = CELL_FORMATS[fmt]
        return cls(key, label, f.cell, note, f.ci)


SIZE_UNITS = ((1e6, "MB"), (1e3, "kB"))  # the report's one size unit system: decimal (1 kB = 1,000 bytes)
_SIZE_WORDS = re.compile(r"\s*\(?\b(KiB|MiB|GiB|kB|KB|MB|GB|bytes|B)\)?\s*$")


def size_unit(values: Any = None) -> tuple[float, str]:
    """(divisor, unit) for a size column: MB when its largest value reaches 1 MB, else kB."""
    s = pd.Series(values, dtype=float) if values is not None else pd.Series(dtype=float)
    top = float(s.abs().max()) if s.notna().any() else 0.0
    return next(((d, u) for d, u in SIZE_UNITS if top >= d), SIZE_UNITS[-1])


def strip_size_unit(label: str) -> str:
    """A size column's label without the unit word it may carry (a store written by an older version says
    "Dense KiB"): the report appends the unit it shows."""
    return _SIZE_WORDS.sub("", label) or label


def _pct(v: float) -> str:
    return f"{100 * v:.2f}"


def _int(v: float) -> str:
    return f"{v:,.0f}"


def _ratio(v: float) -> str:
    return f"{v:.2f}×" if abs(v) >= 0.1 else f"{v:.2g}×"


@dataclass(frozen=True)
class CellFormat:
    """How a format renders: ``cell`` in report tables, ``console`` in the printed run summary, ``ci`` the
    ± half-width in report tables (default: as ``cell``)."""

    cell: Callable[[float], str]
    console: Callable[[float], str]
    ci: Callable[[float], str] | None = None


def _same(f: Callable[[float], str]) -> CellFormat:
    return CellFormat(f, f)


CELL_FORMATS: dict[str, CellFormat] = {
    "pct": CellFormat(_pct, lambda v: f"{v:.2%}"),  # fractions shown in %
    "f1": _same(lambda v: f"{v:.1f}"),
    "f2": _same(lambda v: f"{v:.2f}"),
    "f3": _same(lambda v: f"{v:.3f}"),
    "int": _same(_int),
    "bytes": CellFormat(lambda v: f"{v / 1e3:,.1f}", _int),  # kB in tables (the CSV keeps bytes): Column.of
    "ms": _same(lambda v: f"{v:.3g}"),
    "g": _same(lambda v: f"{v:.4g}"),
    # the summary's change-vs-parent columns (not declarable: the report derives them)
    "delta_pct": CellFormat(lambda v: f"{100 * v:+.2f}", lambda v: f"{100 * v:+.2f} pp", _pct),  # points
    "ratio": CellFormat(_ratio, _ratio, lambda v: f"{v:.2g}"),  # variant / parent
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
    lead: int | None = None  # the HTML shows the first ``lead`` columns, the rest behind "show all columns"

    def cell(self, variant: str, key: str, with_ci: bool = True) -> str:
        col = next(c for c in self.columns if c.key == key)
        m = self.mean.at[variant, key] if key in self.mean else math.nan
        if m is None or (isinstance(m, float) and math.isnan(m)):
            return ""
        s = col.fmt(m)
        ci = self.ci.at[variant, key]
        if with_ci and not math.isnan(ci):
            ci = 0.0 if abs(ci) <= 1e-9 * max(abs(m), 1e-300) else ci
            s += " ± " + (col.ci_fmt or col.fmt)(ci)
        return s

    def header(self) -> list[str]:
        return list(self.text.columns) + [c.label for c in self.columns]

    def string_rows(self) -> list[list[str]]:
        out = []
        for v in self.text.index:
            out.append(
                [
                    str(x) if x is not None and not (isinstance(x, float) and math.isnan(x)) else ""
                    for x in self.text.loc[v]
                ]
                + [self.cell(v, c.key) for c in self.columns]
            )
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
        return (
            "\n".join(
                [
                    r"\begin{tabular}{" + "l" * len(self.text.columns) + "r" * len(self.columns) + "}",
                    r"\toprule",
                    " & ".join(_tex(x) for x in h) + r" \\",
                    r"\midrule",
                    *body,
                    r"\bottomrule",
                    r"\end{tabular}",
                ]
            )
            + "\n"
        )

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


_TEX = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def _tex(s: str) -> str:
    s = "".join(_TEX.get(ch, ch) for ch in s)
    return s.replace("±", r"$\pm$").replace("ε", r"$\varepsilon$").replace("Δ", r"$\Delta$")


def estimates(
    per: pd.DataFrame, order: list[str], cols: list[str], confidence: float
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """``per``: index (row, seed), a column per key -> (mean, CI half-width, n) per row of ``order`` and key."""
    mean = pd.DataFrame(index=order, columns=cols, dtype=float)
    ci = mean.copy()
    n = mean.copy()
    rows = set(per.index.get_level_values(0))
    for v in order:
        for c in cols:
            vals = per.loc[v, c].tolist() if (c in per and v in rows) else []
            e = mean_ci(vals, confidence)
            mean.at[v, c], ci.at[v, c], n.at[v, c] = e.mean, e.ci, e.n
    return mean, ci, n


def aggregate(
    name: str,
    title: str,
    data: ExperimentData,
    per: pd.DataFrame,
    columns: list[Column],
    confidence: float,
    text: pd.DataFrame | None = None,
    notes: list[str] | None = None,
) -> Table:
    """``per``: index (variant, seed), one column per Column.key -> Table over data.variant_order."""
    order = data.variant_order
    if text is None:
        text = variant_text(data)
    mean, ci, n = estimates(per, order, [c.key for c in columns], confidence)
    return Table(name, title, text.loc[order], columns, mean, ci, n, notes or [])


def variant_text(data: ExperimentData) -> pd.DataFrame:
    v = data.variants.set_index("variant")

    def budget(r: pd.Series) -> str:
        if r["method"] == BASELINE or r["budget_kind"] is None or math.isnan(r["budget_target"]):
            return ""
        return f"{r['budget_kind']}={r['budget_target']:g}"

    return pd.DataFrame(
        {
            "variant": v.index,
            "method": v["method"],
            "budget": v.apply(budget, axis=1),
            "achieved": v["budget_achieved"].map(lambda x: "" if math.isnan(x) else f"{x:.3f}"),
        },
        index=v.index,
    ).rename_axis("variant")


def seeds_note(data: ExperimentData) -> str:
    n = len(data.seeds)
    if n == 0:
        return "No successful measurement yet."
    if n == 1:
        return f"{n} seed: no confidence interval."
    return f"{n} seeds ({', '.join(map(str, data.seeds))}): mean ± 95 % CI (Student t, {n - 1} d.o.f.)."

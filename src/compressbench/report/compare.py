"""A report across results stores: ``compressbench report A.sqlite B.sqlite ...`` (or a folder of stores)
compares models and runs kept in separate stores — e.g. a ResNet-18 study and a MobileNetV3 study.

Each experiment keeps its own section; in front of them one comparison table has a row per (store,
experiment, variant) with the summary's columns, the store and the experiment as text columns. Every
number is computed inside its own experiment first (per seed, against that experiment's own baseline:
changes vs the parent, retention, CE ...), so rows from different models compare like the rows of one
summary. Units are chosen over the union (one kB/MB, one MFLOPs/GFLOPs for the whole column). A figure
puts the first leading column (clean accuracy) against each leading column measured as a ratio to the
parent (sizes, latency), one colour per experiment.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from ..store import ResultStore  # noqa: E402
from .context import ReportContext, rescale  # noqa: E402
from .data import ExperimentData  # noqa: E402
from .plots import Figure  # noqa: E402
from .summary import DELTA_NOTE, SummaryColumn, lead_count, summary_columns  # noqa: E402
from .tables import Table, estimates, size_unit, variant_text  # noqa: E402

_SQLITE_MAGIC = b"SQLite format 3\x00"


def find_stores(paths: list[str | Path]) -> list[Path]:
    """The store files named: each path a store, or a folder whose SQLite files (its direct children, by
    name) are stores. A path that does not exist, or a folder without a store, is a one-line error."""
    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.is_file() and _is_sqlite(f))
            if not found:
                raise FileNotFoundError(f"no results store (SQLite file) in the folder {p}")
            out += found
        elif p.is_file():
            out.append(p)
        else:
            raise FileNotFoundError(f"no results store at {p}")
    unique = list(dict.fromkeys(f.resolve() for f in out))
    return [next(f for f in out if f.resolve() == u) for u in unique]


def _is_sqlite(p: Path) -> bool:
    try:
        with p.open("rb") as f:
            return f.read(len(_SQLITE_MAGIC)) == _SQLITE_MAGIC
    except OSError:
        return False


def store_labels(paths: list[Path]) -> list[str]:
    """Short distinct names for stores: the file name, with as many parent folders as it takes."""
    parts = [p.resolve().parts for p in paths]
    for k in range(1, max((len(x) for x in parts), default=1) + 1):
        labels = ["/".join(x[-k:]) for x in parts]
        if len(set(labels)) == len(labels):
            return labels
    return [str(p) for p in paths]


def open_stores(paths: list[Path]) -> list[tuple[str, ResultStore]]:
    return [(label, ResultStore(p)) for label, p in zip(store_labels(paths), paths, strict=True)]


def comparison_table(
    parts: list[tuple[ExperimentData, ReportContext]], confidence: float = 0.95
) -> tuple[Table, list[SummaryColumn]]:
    """One row per (store, experiment, variant): the summary columns of every experiment, computed within it.
    Returns the table and its columns' declarations (for the figure)."""
    keyed: dict[str, list[tuple[str, SummaryColumn]]] = {}
    notes: dict[str, list[str]] = {}  # note -> the experiments it is about
    text = []
    for data, ctx in parts:
        prefix = f"{data.source}/{data.name}/"
        cols, col_notes = summary_columns(ctx, scaled=False)
        for n in col_notes:
            if n != DELTA_NOTE:
                notes.setdefault(n, []).append(f"{data.name} ({data.source})")
        for c in cols:
            keyed.setdefault(c.key, []).append((prefix, c))
        t = variant_text(data).reset_index(drop=True)
        t.insert(0, "experiment", data.name)
        t.insert(0, "store", data.source)
        t.index = [prefix + v for v in t["variant"]]
        text.append(t)
    # leading columns first (with their changes), then the rest, each in first-seen order
    order = sorted(keyed, key=lambda k: (not keyed[k][0][1].lead, list(keyed).index(k)))
    per = {}
    columns = []
    shown: list[SummaryColumn] = []
    for key in order:
        series = []
        for prefix, c in keyed[key]:
            s = c.values.copy()
            s.index = pd.MultiIndex.from_tuples([(prefix + v, seed) for v, seed in s.index], names=["row", "seed"])
            series.append(s)
        first = keyed[key][0][1]
        values = pd.concat(series) if series else first.values
        label = first.label
        if first.spec is not None:
            values, label = rescale(values, first.spec, label)  # one unit over the union
        col = replace(first, label=label, values=values)
        shown.append(col)
        per[key] = values
        columns.append(col.column())
    frame = pd.DataFrame(per)
    text_df = pd.concat(text) if text else pd.DataFrame()
    rows = list(text_df.index)
    mean, ci, n = estimates(frame, rows, [c.key for c in columns], confidence)
    seeds = "; ".join(f"{d.source} · {d.name}: {len(d.seeds)} seed(s)" for d, _ in parts)
    lines = [
        f"Each row: mean ± 95 % CI over its experiment's seeds ({seeds}); changes vs the parent and "
        "every derived column are computed within each experiment, against its own baseline."
    ]
    lines += [n if len(exps) == len(parts) else f"{n} [{'; '.join(exps)}]" for n, exps in notes.items()]
    if any(c.fmt in ("delta_pct", "ratio") for c in shown):
        lines.append(DELTA_NOTE)
    t = Table("comparison", "Every experiment: summary", text_df, columns, mean, ci, n, lines)
    t.lead = lead_count(shown)
    return t, shown


def comparison_figures(table: Table, shown: list[SummaryColumn], out_dir: Path, formats: set[str]) -> list[Figure]:
    """The first leading column against each leading column measured as a ratio to the parent (sizes,
    latency), one colour per experiment, log x; one figure, a panel each."""
    lead = [c for c in shown if c.lead]
    if not lead:
        return []
    y = lead[0]
    xcols = [lead[i - 1] for i, c in enumerate(lead) if i > 0 and c.fmt == "ratio"]
    if not xcols:
        return []
    exps = list(dict.fromkeys(zip(table.text["store"], table.text["experiment"], strict=True)))
    cmap = plt.get_cmap("tab10" if len(exps) <= 10 else "tab20")
    labels = {c.key: c.label for c in table.columns}
    k = 100 if y.fmt == "pct" else 1
    fig, axes = plt.subplots(1, len(xcols), figsize=(5.2 * len(xcols), 3.8), squeeze=False)
    for ax, xc in zip(axes.flat, xcols, strict=True):
        divisor = size_unit(table.mean[xc.key])[0] if xc.fmt == "bytes" else 1.0
        for i, (store, exp) in enumerate(exps):
            m = table.mean.loc[table.text.index[(table.text["store"] == store) & (table.text["experiment"] == exp)]]
            ok = m[xc.key].notna() & m[y.key].notna()
            if ok.any():
                ax.scatter(
                    m.loc[ok, xc.key] / divisor,
                    k * m.loc[ok, y.key],
                    color=cmap(i % cmap.N),
                    s=28,
                    label=f"{exp} ({store})",
                )
        ax.set_xscale("log")
        ax.set_xlabel(f"{labels[xc.key]} (log scale)")
        ax.set_ylabel(labels[y.key])
        ax.grid(alpha=0.3, which="both")
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {}
    for fmt in [f for f in ("png", "svg") if f in formats] or ["png"]:
        p = out_dir / f"comparison.{fmt}"
        fig.savefig(p, dpi=110, bbox_inches="tight", metadata={"Date": None} if fmt == "svg" else None)
        files[fmt] = p
    plt.close(fig)
    what = ", ".join(labels[c.key] for c in xcols)
    return [
        Figure(
            "comparison",
            f"{labels[y.key]} vs {what}: every experiment",
            files,
            "One colour per experiment (and store), one point per variant; upper left is better.",
        )
    ]

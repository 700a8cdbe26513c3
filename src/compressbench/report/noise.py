"""Which timings can be trusted for a decision: a latency row is **noisy** when its own spread or the machine's
load while it was measured says so.

A timing's declaration names the rows that say it (``MetricSpec(spread=..., load=...)``: rows of the same job
and condition): its inter-quartile range over the repeated calls, and the load on the cores the timing left
free (:func:`compressbench.measure.protocol.free_core_load`: other work, from ``/proc/stat``, over the free
cores). Thresholds (docs/efficiency.md, "Noisy timings"):

* ``SPREAD_MAX``: IQR / median above 0.25 — a quarter of the median between the 25th and 75th percentile call.
  A quiet run of the quickstart's 140 k-parameter CNN stays below it; a loaded one does not.
* ``LOAD_MAX``: load on free cores above 0.5 — other work used more than half of the cores the timing did not
  use (on a 2-core machine timing 1 thread: more than half a core), so the timed thread shared its core for
  part of the time.

A row without its spread / load rows (an older store, another OS) is judged on what it has. Everything here
is a function of the store's rows; nothing is written. ``compressbench remeasure STORE --evaluator efficiency``
(:mod:`compressbench.remeasure`) re-times the noisy rows and keeps the quieter measurement.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from ..specs import EvaluatorSpec
from .data import ExperimentData

SPREAD_MAX = 0.25
LOAD_MAX = 0.5


@dataclass(frozen=True)
class Timing:
    """One timing row and what its spread and load say."""

    evaluator: str
    metric: str
    variant: str
    seed: int
    condition: str
    job_key: str
    value: float
    spread: float = math.nan  # IQR / median
    load: float = math.nan  # load on free cores
    reasons: tuple[str, ...] = field(default=())

    @property
    def noisy(self) -> bool:
        return bool(self.reasons)

    def describe(self) -> str:
        return "; ".join(self.reasons) if self.reasons else "quiet"


def judge(value: float, iqr: float | None, load: float | None) -> tuple[float, float, tuple[str, ...]]:
    """(spread ratio, load, reasons it is noisy) of one timing."""
    spread = iqr / value if iqr is not None and value and value > 0 and not math.isnan(iqr) else math.nan
    ld = float(load) if load is not None and not math.isnan(load) else math.nan
    why = []
    if spread > SPREAD_MAX:
        why.append(f"IQR/median {spread:.2f} > {SPREAD_MAX:g}")
    if ld > LOAD_MAX:
        why.append(f"load on free cores {ld:.2f} > {LOAD_MAX:g}")
    return spread, ld, tuple(why)


def timing_declarations(specs: dict[str, EvaluatorSpec | None]) -> dict[tuple[str, str], tuple[str, str]]:
    """(evaluator, timing metric) -> (its spread metric, its load metric) as declared ('' when none)."""
    out: dict[tuple[str, str], tuple[str, str]] = {}
    for ev, spec in specs.items():
        for m in spec.metrics if spec is not None else ():
            if m.show.spread or m.show.load:
                out.setdefault((ev, m.name), (m.show.spread, m.show.load))
    return out


def timings(data: ExperimentData, specs: dict[str, EvaluatorSpec | None]) -> list[Timing]:
    """Every timing row of the experiment whose declaration names a spread or load, judged."""
    return frame_timings(data.df, specs)


def frame_timings(df: pd.DataFrame, specs: dict[str, EvaluatorSpec | None]) -> list[Timing]:
    """Every timing row of a frame of store rows (columns of ``results``) whose declaration names a spread or
    load, judged against the rows of the same job and condition."""
    decl = timing_declarations(specs)
    if not decl or df.empty:
        return []
    idx = {
        (r.job_key, r.evaluator, r.condition, r.metric): float(r.value)
        for r in df[["job_key", "evaluator", "condition", "metric", "value"]].itertuples(index=False)
    }
    out = []
    for r in df[df.set_index(["evaluator", "metric"]).index.isin(list(decl))].itertuples(index=False):
        spread_m, load_m = decl[(r.evaluator, r.metric)]
        iqr = idx.get((r.job_key, r.evaluator, r.condition, spread_m)) if spread_m else None
        load = idx.get((r.job_key, r.evaluator, r.condition, load_m)) if load_m else None
        value = float(r.value)
        spread, ld, why = judge(value, iqr, load)
        out.append(
            Timing(
                str(r.evaluator),
                str(r.metric),
                str(r.variant),
                int(r.seed),
                str(r.condition),
                str(r.job_key),
                value,
                spread,
                ld,
                why,
            )
        )
    return out


def noisy_index(items: list[Timing]) -> dict[tuple[str, str, str, int], Timing]:
    """(evaluator, metric, variant, seed) -> its noisiest timing row, for those with a noisy row."""
    out: dict[tuple[str, str, str, int], Timing] = {}
    for t in items:
        if t.noisy:
            out.setdefault((t.evaluator, t.metric, t.variant, t.seed), t)
    return out


def noise_frame(items: list[Timing]) -> pd.DataFrame:
    """The noisy timings as a table (variant, seed, metric, condition, value, spread, load, why)."""
    recs = [
        {
            "variant": t.variant,
            "seed": t.seed,
            "evaluator": t.evaluator,
            "metric": t.metric,
            "condition": t.condition,
            "value": t.value,
            "iqr_over_median": t.spread,
            "load_free_cores": t.load,
            "why": t.describe(),
        }
        for t in items
        if t.noisy
    ]
    return pd.DataFrame(
        recs,
        columns=[
            "variant",
            "seed",
            "evaluator",
            "metric",
            "condition",
            "value",
            "iqr_over_median",
            "load_free_cores",
            "why",
        ],
    )


def noise_note(items: list[Timing], limit: int = 6) -> str:
    """One line for under a table: which timings are noisy and why ("" when none)."""
    bad = [t for t in items if t.noisy]
    if not bad:
        return ""
    shown = "; ".join(f"{t.variant} {t.metric} ({t.describe()})" for t in bad[:limit])
    more = f"; and {len(bad) - limit} more" if len(bad) > limit else ""
    return (
        f"Noisy timings ({len(bad)} of {len(items)} rows; thresholds: IQR/median > {SPREAD_MAX:g}, load on free "
        f"cores > {LOAD_MAX:g}): {shown}{more}. A decision leaves them out unless accepted (--accept-noisy); "
        f"re-time them on a quieter machine: `compressbench remeasure STORE --evaluator efficiency`."
    )


__all__ = [
    "SPREAD_MAX",
    "LOAD_MAX",
    "Timing",
    "judge",
    "timings",
    "frame_timings",
    "timing_declarations",
    "noisy_index",
    "noise_frame",
    "noise_note",
]

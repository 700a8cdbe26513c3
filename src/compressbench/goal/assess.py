"""A goal's numbers on a store: for every candidate variant, the drop of each constraint metric from the parent
with its confidence bound, and each objective's value — exactly the report's numbers (summary columns), tested
with the paired statistics of :mod:`compressbench.stats` as the declared findings are.

**A constraint holds** when the one-sided upper confidence bound of the drop (at ``confidence``) is within its
tolerance. The drop is ``parent − variant`` for a metric where higher is better, ``variant − parent`` where
lower is (``ece``), per seed: with ≥ 2 seeds having both numbers, a Student-t bound over the per-seed drops
(retraining noise); with one seed, a paired bootstrap over the evaluation images (the report's number
re-computed on resampled images, the same draw for the parent and every candidate:
:func:`compressbench.findings.replicate_values`). Without either (one seed, a metric that is not a mean over
images, e.g. ``ece``), the point estimate is checked and the output says so. A missing number (an evaluation
that failed or never ran) is ``unknown``: the candidate is not shown to meet the goal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..config.goal import constraint_metrics, describe_tolerance, tolerance_units
from ..config.schema import BASELINE, GoalConfig, Tolerance
from ..findings.engine import OutcomeFiles, replicate_values
from ..job_metrics import JOB_SPECS
from ..report.context import ReportContext
from ..report.data import ExperimentData, per_seed
from ..report.noise import Timing, noisy_index, timings
from ..report.tables import ReportOptions
from ..stats import DEFAULT_BOOTSTRAP, Estimate, from_replicates, t_estimate

HOLDS, BROKEN, UNKNOWN = "holds", "broken", "unknown"


@dataclass
class Drop:
    """One constraint on one candidate: the drop's estimate (two-sided interval at ``confidence``), its one-sided
    upper bound, the limit in the metric's units, and the status."""

    key: str
    label: str
    fmt: str
    tolerance: Tolerance
    limit: float
    estimate: Estimate | None
    bound: float  # one-sided upper confidence bound (the point estimate when there is no interval)
    status: str
    reason: str = ""

    @property
    def excess(self) -> float:
        """How far the bound is beyond the limit (negative: within it; nan: unknown)."""
        return self.bound - self.limit if self.status != UNKNOWN else math.nan

    @property
    def basis(self) -> str:
        """How the bound was obtained: ``3 seeds (t)``, ``1 seed, 1,000 images (paired bootstrap)``, ``point``."""
        if self.estimate is None:
            return "no number"
        return self.estimate.describe() if self.estimate.defined else "point estimate (no interval)"

    def amount(self, v: float, signed: bool = False) -> str:
        """A drop in readable units: points for a percentage metric."""
        if v is None or math.isnan(v):
            return "–"
        sign = "+" if signed else ""
        return f"{100 * v:{sign}.2f} pts" if self.fmt == "pct" else f"{v:{sign}.4g}"

    def limit_text(self) -> str:
        return describe_tolerance(self.tolerance, self.fmt)


@dataclass
class Candidate:
    """A variant the decision may recommend: its constraint drops and objective values (mean over seeds)."""

    variant: str
    method: str
    budget_kind: str | None
    budget_target: float
    drops: dict[str, Drop] = field(default_factory=dict)
    objectives: dict[str, float] = field(default_factory=dict)
    noisy: dict[str, Timing] = field(default_factory=dict)  # objective -> its noisy timing row

    @property
    def meets(self) -> bool:
        """Every constraint holds."""
        return bool(self.drops) and all(d.status == HOLDS for d in self.drops.values())

    @property
    def broken(self) -> list[Drop]:
        return [d for d in self.drops.values() if d.status != HOLDS]

    def worst(self) -> float:
        """How far the candidate is from meeting the goal: the largest excess over a limit, in units of that
        limit (0 or below: it meets it; inf: a number is missing)."""
        out = -math.inf
        for d in self.drops.values():
            if d.status == UNKNOWN:
                return math.inf
            out = max(out, d.excess / d.limit if d.limit > 0 else (math.inf if d.excess > 0 else d.excess))
        return out


@dataclass
class Objective:
    """An objective as measured here: which declaration gives it, its label and unit, values per variant."""

    name: str
    evaluator: str
    label: str
    unit: str
    values: pd.Series  # mean over seeds, per variant (the parent included)


def _two_sided(est: Estimate, confidence: float) -> Estimate:
    """A one-sided estimate's (interval at 2c − 1) two-sided interval at ``confidence``."""
    if not est.defined:
        return est
    if est.method == "seeds":
        from scipy import stats as st

        if est.se == 0:
            return Estimate(est.mean, est.mean, est.mean, est.n_seeds, est.n_images, "seeds", confidence, 0.0, est.df)
        h = float(st.t.ppf(0.5 + confidence / 2, est.df)) * est.se
        return Estimate(
            est.mean, est.mean - h, est.mean + h, est.n_seeds, est.n_images, "seeds", confidence, est.se, est.df
        )
    return from_replicates(est.mean, est.replicates, confidence, est.n_seeds, est.n_images)


def _drop_estimates(
    data: ExperimentData,
    key: str,
    values: pd.Series,
    sign: float,
    variants: list[str],
    one_sided: float,
    confidence: float,
    options: ReportOptions,
    files: OutcomeFiles,
    n_boot: int,
) -> dict[str, tuple[Estimate | None, str]]:
    """variant -> (drop estimate with ``hi`` the one-sided bound, reason when there is no interval)."""
    out: dict[str, tuple[Estimate | None, str]] = {}
    have = set(values.index.get_level_values(0)) if len(values) else set()
    if BASELINE not in have:
        return {v: (None, "the parent has no number") for v in variants}
    parent = values.loc[BASELINE]
    need_boot: dict[int, list[str]] = {}
    for v in variants:
        if v not in have:
            out[v] = (None, f"no number for {v}")
            continue
        mine = values.loc[v]
        seeds = sorted(set(mine.index) & set(parent.index))
        if not seeds:
            out[v] = (None, "no seed has numbers for both the parent and the variant")
            continue
        d = np.array([sign * (float(parent[s]) - float(mine[s])) for s in seeds])
        if len(seeds) >= 2:
            out[v] = (t_estimate(d, one_sided), "")
        else:
            out[v] = (Estimate(float(d[0]), math.nan, math.nan, 1, 0, "none", one_sided), "")
            need_boot.setdefault(seeds[0], []).append(v)
    for seed, vs in need_boot.items():  # one seed: a paired bootstrap over the evaluation images
        reps = replicate_values(data, seed, [BASELINE, *vs], key, options, files, n_boot)
        if isinstance(reps, str):  # all at once failed: one at a time (one candidate may lack outcomes)
            per = {v: replicate_values(data, seed, [BASELINE, v], key, options, files, n_boot) for v in vs}
        else:
            per = {v: reps for v in vs}
        for v in vs:
            r = per[v]
            if isinstance(r, str):
                out[v] = (out[v][0], f"1 seed and no image-level test: {r}")
                continue
            rep, n_images = r
            drops = sign * (rep[BASELINE] - rep[v])
            out[v] = (from_replicates(out[v][0].mean, drops, one_sided, 1, n_images), "")
    return out


def objective_series(ctx: ReportContext, name: str) -> Objective | None:
    """The objective ``name`` per variant (mean over seeds): from the first declaration measuring it that has
    rows — an evaluator's before the runner's own size rows."""
    own = set(JOB_SPECS)
    decls = [(ev, m) for ev, s in ctx.specs.items() if s is not None for m in s.metrics if m.show.objective == name]
    decls.sort(key=lambda d: d[0] in own)
    for ev, m in decls:
        vals = ctx.summary.column(m.column).values if m.show.summary else per_seed(ctx.data, ev, m)[0]
        vals = vals.dropna()
        if len(vals):
            return Objective(name, ev, m.title, m.show.unit, vals.groupby(level=0).mean())
    return None


def measured_objectives(ctx: ReportContext) -> list[str]:
    """Every objective some declaration of this experiment measures (in declaration order)."""
    return list(
        dict.fromkeys(
            m.show.objective for s in ctx.specs.values() if s is not None for m in s.metrics if m.show.objective
        )
    )


@dataclass
class Assessment:
    """A goal on one experiment: the candidates, the objectives measured, the parent's values, the timings."""

    experiment: str
    goal: GoalConfig
    candidates: list[Candidate]
    objectives: dict[str, Objective]
    timings: list[Timing]
    notes: list[str] = field(default_factory=list)


def assess(
    data: ExperimentData, goal: GoalConfig, options: ReportOptions | None = None, n_boot: int = DEFAULT_BOOTSTRAP
) -> Assessment:
    """Every variant of ``data`` (the parent excluded) against ``goal`` (see the module docstring)."""
    c = goal.confidence
    one_sided = 2 * c - 1  # a two-sided interval at 2c − 1 has its upper end at the one-sided c bound
    opts = ReportOptions(one_sided, **(options.values if options is not None else {}))
    ctx = ReportContext.build(data, opts)
    files = OutcomeFiles(data)
    names = [v for v in data.variant_order if v != BASELINE]
    info = data.variants.set_index("variant")
    cands = {
        v: Candidate(
            v,
            str(info.at[v, "method"]),
            info.at[v, "budget_kind"] if isinstance(info.at[v, "budget_kind"], str) else None,
            float(info.at[v, "budget_target"]),
        )
        for v in names
    }
    declared = constraint_metrics({ev: s for ev, s in ctx.specs.items() if s is not None})
    notes: list[str] = []
    for key, tol in goal.tolerances().items():
        col = ctx.summary.column(key)
        main = col.main if col.main is not None else (declared[key][1] if key in declared else None)
        hib = main.show.higher_is_better if main is not None else None
        label = col.label if main is not None else key
        if hib is None:
            for cand in cands.values():
                cand.drops[key] = Drop(
                    key,
                    label,
                    col.fmt,
                    tol,
                    math.nan,
                    None,
                    math.nan,
                    UNKNOWN,
                    f"no metric '{key}' is declared in this store",
                )
            notes.append(f"{key}: no evaluator of this store declares it (every candidate is 'unknown' on it)")
            continue
        sign = 1.0 if hib else -1.0
        values = col.values.dropna()
        parent_mean = (
            float(values.loc[BASELINE].mean())
            if len(values) and BASELINE in values.index.get_level_values(0)
            else math.nan
        )
        limit = (
            tolerance_units(tol, col.fmt, parent_mean) if not math.isnan(parent_mean) or not tol.relative else math.nan
        )
        ests = _drop_estimates(data, key, values, sign, names, one_sided, c, opts, files, n_boot)
        for v, (est, why) in ests.items():
            if est is None:
                cands[v].drops[key] = Drop(key, label, col.fmt, tol, limit, None, math.nan, UNKNOWN, why)
                continue
            bound = est.hi if est.defined else est.mean
            status = HOLDS if bound <= limit + 1e-12 else BROKEN
            shown = _two_sided(est, c) if est.defined else est
            shown = Estimate(
                shown.mean,
                shown.lo,
                shown.hi,
                shown.n_seeds,
                shown.n_images,
                shown.method,
                c,
                shown.se,
                shown.df,
                shown.replicates,
            )
            cands[v].drops[key] = Drop(key, label, col.fmt, tol, limit, shown, bound, status, why)
    objectives: dict[str, Objective] = {}
    for name in dict.fromkeys([goal.objective.minimize, *measured_objectives(ctx)]):
        o = objective_series(ctx, name)
        if o is not None:
            objectives[name] = o
    items = timings(data, ctx.specs)
    if data.superseded:
        notes.append(
            f"{len(data.superseded)} measurement(s) re-timed by `compressbench remeasure`: the decision uses "
            f"the quieter one kept (`compressbench results STORE --superseded` lists the others)"
        )
    noisy = noisy_index(items)
    for name, o in objectives.items():
        evm = _objective_metrics(ctx, name)
        for v, cand in cands.items():
            if v in o.values.index:
                cand.objectives[name] = float(o.values[v])
            t = next((noisy[(ev, m, v, s)] for (ev, m, vv, s) in noisy if vv == v and (ev, m) in evm), None)
            if t is not None:
                cand.noisy[name] = t
    return Assessment(data.name, goal, list(cands.values()), objectives, items, notes)


def _objective_metrics(ctx: ReportContext, name: str) -> set[tuple[str, str]]:
    """(evaluator, metric) of the declarations measuring objective ``name``."""
    return {(ev, m.name) for ev, s in ctx.specs.items() if s is not None for m in s.metrics if m.show.objective == name}


def parent_value(a: Assessment, objective: str) -> float:
    o = a.objectives.get(objective)
    return float(o.values[BASELINE]) if o is not None and BASELINE in o.values.index else math.nan


__all__ = [
    "Drop",
    "Candidate",
    "Objective",
    "Assessment",
    "assess",
    "objective_series",
    "measured_objectives",
    "parent_value",
    "HOLDS",
    "BROKEN",
    "UNKNOWN",
]

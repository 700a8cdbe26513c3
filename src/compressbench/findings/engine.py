"""Testing declared findings on a results store: numbers per (variant, seed) as the report computes them,
paired differences over seeds or over images, Holm across a file's findings, and a verdict per test.

A metric's value per (variant, seed) is exactly the report's: a summary key is the summary column
(declarations, fallbacks, derived columns), a ``{evaluator, metric, where}`` selection is read like a study
table's column. With one seed, the image-level test re-computes those same numbers on bootstrap resamples
of the evaluation images: every stored row that has per-image outcomes (:mod:`compressbench.outcomes`) is
re-evaluated on each resample — the same resample for every variant, which pairs them — and the replicates
go through the report's own computation as if each were a seed. So a worst case over attacks or a ratio to
the baseline is bootstrapped as what it is, not as a mean.

Only functions of the store (and of the outcomes files its rows point to) are used; nothing is written.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from ..config.findings import ALL, BASELINE, Finding, MetricRef, trend_members
from ..outcomes import FILE, Outcomes, OutcomesError, condition_key, load_outcomes
from ..report.context import ReportContext
from ..report.data import ExperimentData, per_seed
from ..report.tables import ReportOptions
from ..specs import ANY, MetricSpec
from ..stats import (
    DEFAULT_BOOTSTRAP,
    Estimate,
    from_replicates,
    holm,
    p_equivalent,
    p_greater,
    p_less,
    p_outside,
    resample_counts,
    t_estimate,
    trend_weights,
)

log = logging.getLogger(__name__)

HOLDS, CONTRADICTED, INCONCLUSIVE = "holds", "contradicted", "inconclusive"
_CHUNK = 250  # bootstrap replicates evaluated together (rows × chunk replicated rows in memory at once)


@dataclass
class Verdict:
    """One tested statement of a finding in one experiment (a ``vs_parent`` finding has one per variant)."""

    finding: Finding
    fid: str
    experiment: str
    subject: str  # what is compared: "a − b", "trend over ...", "v − parent"
    fmt: str = "g"  # the metric's cell format (pct: differences shown in points)
    estimate: Estimate | None = None
    p_holds: float = math.nan  # one-sided p-value for the claim
    p_against: float = math.nan  # ... for its opposite
    p: float = math.nan  # 2 × the smaller of the two (Bonferroni over the two directions)
    p_holm: float = math.nan
    verdict: str = INCONCLUSIVE
    reason: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def claim(self) -> str:
        return self.finding.claim


@dataclass
class FindingsResult:
    """The tests of one experiment file's findings (every sibling experiment of the run), Holm-adjusted
    together at ``1 − confidence``."""

    name: str
    tests: list[Verdict]
    confidence: float = 0.95

    @property
    def alpha(self) -> float:
        return 1 - self.confidence


# ---------------------------------------------------------------- numbers per (variant, seed)
def metric_values(data: ExperimentData, metric: str | MetricRef, options: ReportOptions) -> tuple[pd.Series, str]:
    """The metric per (variant, seed), as the report computes it, and its cell format."""
    ctx = ReportContext.build(data, options)
    if isinstance(metric, str):
        col = ctx.summary.column(metric)
        return col.values, col.fmt
    spec = _ref_spec(metric)
    declared = ctx.specs.get(metric.evaluator)
    d = declared.metric(metric.metric) if declared is not None else None
    return per_seed(data, metric.evaluator, spec)[0], (d.show.fmt if d is not None else "g")


def _ref_spec(ref: MetricRef) -> MetricSpec:
    where = {k: (ANY if v == "*" else v) for k, v in ref.where.items()}
    return MetricSpec(ref.metric, where=where, exact=ref.exact, aggregate=ref.aggregate, tag=ref.tag)


def _reads(data: ExperimentData, metric: str | MetricRef, options: ReportOptions) -> tuple[set[tuple[str, str]], bool]:
    """(evaluator, metric name) pairs of the rows a metric reads, and whether a derived column (which may read
    more) is involved."""
    if isinstance(metric, MetricRef):
        return {(metric.evaluator, metric.metric)}, False
    ctx = ReportContext.build(data, options)
    decls = ctx.summary.by_key.get(metric, [])
    return {(d.evaluator, d.spec.name) for d in decls}, any(d.spec.select.derive is not None for d in decls)


# ---------------------------------------------------------------- per-image outcomes of a store's rows
class OutcomeFiles:
    """The outcomes files of an experiment's jobs: where the store's artifacts table (or the run's cache
    folder) says they are; each loaded and verified once."""

    def __init__(self, data: ExperimentData):
        self.paths: dict[str, Path] = {
            a["job_key"]: Path(a["path"]) for a in data.artifacts if a.get("name") == FILE and a.get("path")
        }
        self.caches = list(
            dict.fromkeys(
                Path(str((r.get("config_json") or {}).get("cache_dir")))
                for r in data.runs
                if (r.get("config_json") or {}).get("cache_dir")
            )
        )
        self._loaded: dict[str, Outcomes | None] = {}
        self.problems: list[str] = []

    def get(self, job_key: str) -> Outcomes | None:
        if job_key not in self._loaded:
            path = self.paths.get(job_key)
            if path is None or not path.is_file():
                path = next((p for c in self.caches if (p := c / "jobs" / job_key / FILE).is_file()), None)
            out = None
            if path is not None:
                try:
                    out = load_outcomes(path)
                except OutcomesError as e:
                    self.problems.append(str(e))
                    log.warning("findings: %s", e)
            self._loaded[job_key] = out
        return self._loaded[job_key]


@dataclass
class _Form:
    const: float
    terms: list[tuple[tuple[str, str], np.ndarray, float]]  # (image set key, boolean vector, weight)


def _forms(sub: pd.DataFrame, files: OutcomeFiles) -> tuple[dict[int, _Form], dict[tuple[str, str], int], str]:
    """Per row position of ``sub``: its form over image sets (absent: no outcomes); the image sets (key ->
    number of images); and a reason the outcomes cannot be used ("" when they can): a form that does not
    reproduce its row, or variants evaluated on different images (nothing to pair)."""
    forms: dict[int, _Form] = {}
    sets: dict[tuple[str, str], int] = {}
    images: dict[tuple[str, tuple[str, str]], list[tuple[str, str]]] = {}  # a row of every variant: same images
    for pos, (job, ev, metric, cond, value) in enumerate(
        zip(sub["job_key"], sub["evaluator"], sub["metric"], sub["condition_json"], sub["value"], strict=True)
    ):
        oc = files.get(job)
        key = condition_key(metric, cond)
        if oc is None or key not in oc.forms:
            continue
        if not math.isclose(oc.value(key), float(value), rel_tol=0, abs_tol=1e-6):
            return {}, {}, f"the per-image outcomes of {ev}.{metric} do not reproduce its stored value"
        const, terms = oc.forms[key]
        out = []
        for s, k, w in terms:
            iset = oc.sets[s]
            sets[iset.key] = len(iset.index)
            out.append((iset.key, iset.bits[k], w))
        used = [t[0] for t in out]
        if images.setdefault((str(ev), key), used) != used:
            return {}, {}, f"the variants' {ev}.{metric} rows were measured on different images"
        forms[pos] = _Form(const, out)
    return forms, sets, ""


def _set_seed(key: tuple[str, str], seed: int, chunk: int) -> list[int]:
    return [seed, int(key[1][:8], 16), chunk]


def replicate_values(
    data: ExperimentData,
    seed: int,
    variants: list[str],
    metric: str | MetricRef,
    options: ReportOptions,
    files: OutcomeFiles,
    n_boot: int = DEFAULT_BOOTSTRAP,
    boot_seed: int = 0,
) -> tuple[dict[str, np.ndarray], int] | str:
    """Bootstrap replicates of ``metric`` for ``variants`` at ``seed``: {variant: n_boot values} and the number
    of images behind the rows it reads (every image set they use, counted once) — or the reason there are
    none. Each replicate resamples every image set once (the same draw for every variant and every row on
    those images; sets are drawn independently of each other) and re-computes the metric from the
    re-evaluated rows exactly as the report does."""
    df = data.df
    keep = set(variants) | {BASELINE}
    sub = df[(df["seed"] == seed) & df["variant"].isin(keep)]
    reads, derived = _reads(data, metric, options)
    forms, _, why = _forms(sub, files)
    if why:
        return why
    # the rows the metric reads; with a derived column, every row that has outcomes and its evaluator's rows
    # (the rest of the experiment's rows cannot change between resamples)
    evs = {str(sub["evaluator"].iloc[p]) for p in forms} | {e for e, _ in reads} if derived else set()
    pairs = list(zip(sub["evaluator"], sub["metric"], strict=True))
    kept = np.flatnonzero([(e, m) in reads or e in evs for e, m in pairs])
    new_pos = {int(old): new for new, old in enumerate(kept)}
    forms = {new_pos[p]: f for p, f in forms.items() if p in new_pos}
    sub = sub.iloc[kept]
    sets = {key: len(vec) for f in forms.values() for key, vec, _ in f.terms}
    read_pos = [i for i, (e, m) in enumerate(zip(sub["evaluator"], sub["metric"], strict=True)) if (e, m) in reads]
    missing = [i for i in read_pos if i not in forms]
    if not forms or missing:
        what = sorted({f"{sub['evaluator'].iloc[i]}.{sub['metric'].iloc[i]}" for i in (missing or read_pos)})
        return (
            f"no per-image outcomes for {', '.join(what) or 'its rows'} (evaluated before outcomes were "
            f"recorded, or not a mean over images)"
        )
    n_rows = len(sub)
    out: dict[str, list[np.ndarray]] = {v: [] for v in variants}
    for c0 in range(0, n_boot, _CHUNK):
        b = min(_CHUNK, n_boot - c0)
        values = np.tile(sub["value"].to_numpy(dtype=float), (b, 1))  # replicate × row
        means: dict[tuple[str, str], Callable[[np.ndarray], np.ndarray]] = {}
        for key, n in sets.items():
            w = resample_counts(n, b, np.random.default_rng(_set_seed(key, boot_seed, c0)))
            means[key] = lambda vec, w=w, n=n: w @ vec.astype(np.float32) / n
        for pos, form in forms.items():
            col = np.full(b, form.const)
            for key, vec, wt in form.terms:
                col = col + wt * means[key](vec)
            values[:, pos] = col
        rep = sub.iloc[np.tile(np.arange(n_rows), b)].copy()
        rep["seed"] = np.repeat(np.arange(b), n_rows)
        rep["value"] = values.reshape(-1)
        rep["id"] = np.arange(len(rep))
        rdata = ExperimentData(
            data.name,
            rep.reset_index(drop=True),
            data.errors.iloc[:0],
            data.variants,
            list(range(b)),
            [],
            data.runs,
            data.declared,
        )
        vals, _ = metric_values(rdata, metric, options)
        for v in variants:
            s = vals.loc[v] if v in vals.index.get_level_values(0) else pd.Series(dtype=float)
            out[v].append(s.reindex(range(b)).to_numpy(dtype=float))
    reps = {v: np.concatenate(x) for v, x in out.items()}
    if all(np.nanmax(r) - np.nanmin(r) == 0 if np.isfinite(r).any() else True for r in reps.values()):
        return "the metric does not change with the evaluation images (no image-level test)"
    # the images behind the rows the metric reads (a derived column's own rows: e.g. the attacks' subset)
    read_sets = {key for i in read_pos for key, _, _ in forms[i].terms} or set(sets)
    return reps, sum(sets[k] for k in read_sets)


# ---------------------------------------------------------------- one test
def _observed(values: pd.Series, variants: list[str]) -> pd.DataFrame:
    """(seed × variant) values of ``variants`` at the seeds where all of them have one."""
    cols = {}
    for v in variants:
        cols[v] = values.loc[v] if v in values.index.get_level_values(0) else pd.Series(dtype=float)
    return pd.DataFrame(cols).dropna()


def _estimate(
    data: ExperimentData,
    variants: list[str],
    weights: np.ndarray,
    values: pd.Series,
    metric: str | MetricRef,
    options: ReportOptions,
    files: OutcomeFiles,
    n_boot: int,
    boot_seed: int,
) -> tuple[Estimate | None, str]:
    """The contrast ``weights · values`` of ``variants`` (a − b: [1, −1]; a trend: its slope weights): over
    seeds when ≥ 2 seeds have every variant, else a paired bootstrap over the images of the one seed."""
    obs = _observed(values, variants)
    missing = [v for v in variants if v not in values.index.get_level_values(0)]
    if missing:
        return None, f"no {('numbers' if len(missing) > 1 else 'number')} for {', '.join(missing)}"
    if obs.empty:
        return None, "no seed has a number for every variant compared"
    per = obs.to_numpy(dtype=float) @ weights
    if len(obs) >= 2:
        return t_estimate(per, options.confidence), ""
    seed = int(obs.index[0])
    reps = replicate_values(data, seed, variants, metric, options, files, n_boot, boot_seed)
    if isinstance(reps, str):
        return (
            Estimate(float(per[0]), math.nan, math.nan, 1, 0, "none", options.confidence),
            f"1 seed and no image-level test: {reps}",
        )
    rep, n_images = reps
    r = np.column_stack([rep[v] for v in variants]) @ weights
    return from_replicates(float(per[0]), r, options.confidence, 1, n_images), ""


def _pvalues(f: Finding, est: Estimate) -> tuple[float, float]:
    """(p for the claim, p for its opposite) of a finding's expectation."""
    if f.expect in ("a > b", "increases"):
        return p_greater(est), p_less(est)
    if f.expect in ("a < b", "decreases"):
        return p_less(est), p_greater(est)
    m = float(f.margin or 0.0)
    return p_equivalent(est, m), p_outside(est, m)


def subjects(
    f: Finding, budgets: dict[str, tuple[str | None, float | None]]
) -> list[tuple[str, list[str], np.ndarray]]:
    """The tests a finding makes on an experiment with these variants: (subject, variants, weights)."""
    if f.compare is not None:
        return [(f"{f.compare.a} − {f.compare.b}", [f.compare.a, f.compare.b], np.array([1.0, -1.0]))]
    if f.vs_parent is not None:
        names = [n for n in budgets if n != BASELINE] if f.vs_parent == ALL else list(f.vs_parent)
        return [(f"{n} − parent", [n, BASELINE], np.array([1.0, -1.0])) for n in names]
    members = list(f.trend) if isinstance(f.trend, list) else trend_members(str(f.trend), budgets)
    if f.parent:
        members = [BASELINE, *members]
    if len(members) < 2:
        return [(f"trend of {f.trend}", members, np.zeros(len(members)))]
    label = f.trend if isinstance(f.trend, str) else "listed variants"
    return [
        (
            f"slope per step over {label} ({len(members)} points, least compressed first)",
            members,
            trend_weights(len(members)),
        )
    ]


def evaluate_experiment(
    data: ExperimentData,
    findings: list[Finding],
    options: ReportOptions | None = None,
    n_boot: int = DEFAULT_BOOTSTRAP,
    boot_seed: int = 0,
) -> list[Verdict]:
    """Every test of ``findings`` on one experiment's data (not yet Holm-adjusted: :func:`decide`)."""
    options = options or ReportOptions()
    files = OutcomeFiles(data)
    budgets = budgets_of(data)
    out: list[Verdict] = []
    for i, f in enumerate(findings):
        fid = f.id or f"F{i + 1}"
        try:
            values, fmt = metric_values(data, f.metric, options)
        except Exception as e:  # a metric the report cannot compute here: say so, test the rest
            log.warning("finding %s: metric %s: %s", fid, f.metric_label(), e)
            values, fmt = pd.Series(dtype=float), "g"
        for subject, variants, weights in subjects(f, budgets):
            t = Verdict(f, fid, data.name, subject, fmt)
            if len(variants) < 2:
                t.reason = f"fewer than 2 points in {data.name}"
            else:
                t.estimate, t.reason = _estimate(
                    data, variants, weights, values, f.metric, options, files, n_boot, boot_seed
                )
                if t.estimate is not None and t.estimate.defined:
                    t.p_holds, t.p_against = _pvalues(f, t.estimate)
                    t.p = min(1.0, 2 * min(t.p_holds, t.p_against))
                    if t.estimate.method == "bootstrap":
                        t.notes.append("1 seed: the interval covers the choice of test images, not retraining")
            out.append(t)
    return out


def decide(tests: list[Verdict], confidence: float = 0.95) -> list[Verdict]:
    """Holm-adjust the tests' p-values together and give each its verdict: holds / contradicted when the
    adjusted p-value is below ``1 − confidence`` (in the claim's / the opposite direction), else
    inconclusive (with the reason)."""
    alpha = 1 - confidence
    adj = holm([t.p for t in tests])
    for t, pa in zip(tests, adj, strict=True):
        t.p_holm = float(pa)
        if math.isnan(pa):
            t.verdict = INCONCLUSIVE
            t.reason = t.reason or "no interval"
            continue
        if pa < alpha:
            t.verdict = HOLDS if t.p_holds <= t.p_against else CONTRADICTED
            t.reason = ""
        else:
            t.verdict = INCONCLUSIVE
            t.reason = (
                f"not significant at {alpha:g} after Holm over {int(np.isfinite(adj).sum())} tests"
                if t.p < alpha
                else f"not significant at {alpha:g}"
            )
    return tests


def _latest_config(data: ExperimentData) -> dict[str, Any] | None:
    """The config of the experiment's latest run (a sibling ``<name>.<part>`` runs its parent's config)."""
    for run in reversed(data.runs):
        cfg = run.get("config_json") or {}
        name = cfg.get("name", data.name)
        if data.name == name or data.name.startswith(f"{name}."):
            return cfg
    return None


def budgets_of(data: ExperimentData) -> dict[str, tuple[str | None, float | None]]:
    """Variant -> (budget kind, target) of the variants the latest run's config declares (the names
    ``validate`` gives them), the parent first; without a config, every variant in the store."""
    cfg = _latest_config(data)
    out: dict[str, tuple[str | None, float | None]] = {BASELINE: (None, None)}
    entries = (cfg or {}).get("variants")
    if isinstance(entries, list):
        try:
            for e in entries:
                label = e.get("name") or e["method"]
                if e.get("budgets"):
                    kind, vals = next(iter(e["budgets"].items()))
                    out.update({f"{label}@{kind}={float(x):g}": (kind, float(x)) for x in vals})
                elif e.get("budget"):
                    kind, val = next(iter(e["budget"].items()))
                    out[e.get("name") or f"{label}@{kind}={float(val):g}"] = (kind, float(val))
                else:
                    out[label] = (None, None)
            return out
        except (AttributeError, KeyError, TypeError, ValueError, StopIteration):
            log.warning("experiment %s: variants of the stored config not read; using the store's", data.name)
    for r in data.variants.itertuples():
        t = r.budget_target
        out[r.variant] = (
            r.budget_kind if isinstance(r.budget_kind, str) else None,
            None if t is None or math.isnan(t) else float(t),
        )
    return out


def findings_of(data: ExperimentData) -> tuple[str, list[Finding]]:
    """(file name, findings) of the experiment's latest run config (a sibling ``<name>.<part>`` runs its
    parent's config); ("", []) when none is declared or they do not read under this version."""
    cfg = _latest_config(data)
    if cfg is None:
        return data.name, []
    name = cfg.get("name", data.name)
    try:
        return name, [Finding.model_validate(x) for x in cfg.get("findings") or []]
    except Exception as e:  # written by another version: say so, report the rest
        log.warning("experiment %s: findings not read (%s)", data.name, str(e).splitlines()[0])
        return name, []


def evaluate(
    datas: list[ExperimentData],
    findings: list[Finding] | None = None,
    options: ReportOptions | None = None,
    n_boot: int = DEFAULT_BOOTSTRAP,
    boot_seed: int = 0,
) -> list[FindingsResult]:
    """Test findings on experiments: ``findings`` on every one of them, or (None) each experiment's own,
    from its latest run. Experiments of one file (siblings) form one family for Holm."""
    options = options or ReportOptions()
    groups: dict[str, list[tuple[ExperimentData, list[Finding]]]] = {}
    for d in datas:
        name, own = findings_of(d)
        fs = findings if findings is not None else own
        if fs:
            groups.setdefault(name, []).append((d, fs))
    out = []
    for name, members in groups.items():
        tests = [t for d, fs in members for t in evaluate_experiment(d, fs, options, n_boot, boot_seed)]
        out.append(FindingsResult(name, decide(tests, options.confidence), options.confidence))
    return out


__all__ = [
    "Verdict",
    "FindingsResult",
    "HOLDS",
    "CONTRADICTED",
    "INCONCLUSIVE",
    "metric_values",
    "replicate_values",
    "evaluate_experiment",
    "decide",
    "evaluate",
    "findings_of",
    "OutcomeFiles",
    "subjects",
]

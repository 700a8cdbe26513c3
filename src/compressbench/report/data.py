"""Reading the store for the report: one experiment's rows as a tidy DataFrame, plus helpers that
pick "one number per (variant, seed)" out of it.

Everything here is a pure function of the store's contents; nothing is written.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import pandas as pd

from ..config.schema import BASELINE  # noqa: F401 (the parent's label; re-exported for the report)
from ..specs import ANY, MetricSpec
from ..store import ResultStore

log = logging.getLogger(__name__)

# preference when one metric is stored under several tags (efficiency: realised vs theoretical ...)
TAG_PREFERENCE = ("realised", "", "theoretical", "simulated")


def to_float(v: Any) -> float:
    """Condition values as numbers: ``0.031``, ``"8/255"``, ``"0.5"``; anything else -> nan."""
    if v is None:
        return math.nan
    if isinstance(v, (int, float)):
        return float(v)
    try:
        return float(Fraction(str(v).strip()))
    except (ValueError, ZeroDivisionError):
        return math.nan


@dataclass
class ExperimentData:
    """One experiment's measurements, ready for tables and plots."""

    name: str
    df: pd.DataFrame  # successful rows, deduplicated; condition keys expanded to ``c_<key>`` columns
    errors: pd.DataFrame  # failed jobs (metric 'error' / value NULL with an error message)
    variants: pd.DataFrame  # one row per variant: variant, method, budget_kind, budget_target, budget_achieved
    seeds: list[int]
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
    # evaluator -> its stored declarations (``compressbench.declarations``), from the latest run recording it
    declared: dict[str, dict[str, Any]] = field(default_factory=dict)
    source: str = ""  # the store it was read from, as the report names it (a report across stores)
    # measurements a re-timing replaced (``compressbench remeasure``; the store's ``superseded`` table)
    superseded: list[dict[str, Any]] = field(default_factory=list)

    @property
    def variant_order(self) -> list[str]:
        return list(self.variants["variant"])

    @property
    def evaluators(self) -> list[str]:
        """Evaluators with rows (successful or failed), in the order they first appear in the store."""
        both = pd.concat([self.df, self.errors])
        return list(dict.fromkeys(both.sort_values("id")["evaluator"])) if len(both) else []

    def cond(self, key: str) -> pd.Series:
        """The condition column ``key`` (all-None when no row has it)."""
        col = f"c_{key}"
        if col in self.df:
            return self.df[col]
        return pd.Series([None] * len(self.df), index=self.df.index, dtype=object)


def _expand_conditions(df: pd.DataFrame) -> pd.DataFrame:
    keys: set[str] = set()
    for c in df["condition_json"]:
        keys.update(c or {})
    for k in sorted(keys):
        df[f"c_{k}"] = [(c or {}).get(k) for c in df["condition_json"]]
    return df


def series_of(variant: str) -> str:
    """The series a variant belongs to: its experiment-file entry (one method with one set of params), whose
    name (or method) the runner writes before ``@<budget>`` when the entry lists several budgets."""
    return variant.split("@", 1)[0]


def _file_position(variant: str, kind: Any, target: float, entries: list[dict[str, Any]]) -> tuple[float, float]:
    """(entry index, budget index) of a variant in the experiment file's ``variants`` list (``inf`` when it
    cannot be placed): the entry named as the variant's series whose budget list holds its target."""
    best = (math.inf, math.inf)
    for i, e in enumerate(entries):
        if not isinstance(e, dict) or series_of(variant) != str(e.get("name") or e.get("method")):
            continue
        budgets = e.get("budgets") or {k: [v] for k, v in (e.get("budget") or {}).items()}
        values = budgets.get(kind) if isinstance(budgets, dict) and kind is not None else None
        for j, x in enumerate(values or []):
            if isinstance(x, (int, float)) and math.isclose(float(x), target, rel_tol=1e-9, abs_tol=1e-12):
                return (i, j)
        best = min(best, (i, math.inf))
    return best


def _variant_table(df: pd.DataFrame, config: dict[str, Any] | None = None) -> pd.DataFrame:
    """Variant, method and budget: target from any row, achieved = the mean over seeds of the value the
    runner stamped on the variant's rows (the compress job's achieved fraction, or its knob). Order: the
    baseline, then the experiment file's order (``config``: the run's resolved config; entries, then each
    entry's budgets as listed), then — for variants the file does not place — method, kind and target."""
    recs = []
    for v, g in df.groupby("variant", sort=False):
        kind = g["budget_kind"].dropna()
        target = g["budget_target"].dropna()
        achieved = g.dropna(subset=["budget_achieved"]).groupby("seed")["budget_achieved"].first()
        recs.append(
            {
                "variant": v,
                "method": str(g["method"].iloc[0]),
                "budget_kind": kind.iloc[0] if len(kind) else None,
                "budget_target": float(target.iloc[0]) if len(target) else math.nan,
                "budget_achieved": float(achieved.mean()) if len(achieved) else math.nan,
            }
        )
    out = pd.DataFrame(recs, columns=["variant", "method", "budget_kind", "budget_target", "budget_achieved"])
    if out.empty:
        return out
    entries = (config or {}).get("variants") or []
    pos = [
        _file_position(r.variant, r.budget_kind, r.budget_target, entries if isinstance(entries, list) else [])
        for r in out.itertuples()
    ]
    out["_base"] = out["method"] != BASELINE
    out["_i"], out["_j"] = [p[0] for p in pos], [p[1] for p in pos]
    out["_t"] = out["budget_target"].fillna(math.inf)
    out = out.sort_values(
        ["_base", "_i", "_j", "method", "budget_kind", "_t", "variant"],
        ascending=[True, True, True, True, True, False, True],
        na_position="last",
    )
    return out.drop(columns=["_base", "_i", "_j", "_t"]).reset_index(drop=True)


def load_experiment(store: ResultStore, name: str) -> ExperimentData:
    """Read one experiment's rows, artifacts and runs from the store."""
    rows = store.rows(name)
    df = pd.DataFrame(rows)
    if df.empty:
        raise ValueError(f"experiment '{name}' has no rows in {store.path}")
    err_mask = df["error"].notna() & (df["error"].astype(str) != "") | df["value"].isna()
    errors = df[err_mask].copy()
    df = df[~err_mask].copy()
    # a job re-run under a new evaluator version adds rows; keep the latest per measurement
    key = ["variant", "seed", "evaluator", "condition", "metric", "tag"]
    df = df.sort_values("id").drop_duplicates(key, keep="last")
    df["seed"] = df["seed"].fillna(0).astype(int)
    df = _expand_conditions(df.reset_index(drop=True))
    artifacts: list[dict[str, Any]] = []
    if hasattr(store, "artifacts"):
        try:
            artifacts = [a for a in store.artifacts(experiment=name)]
        except Exception as e:  # an older store without the table
            log.warning("could not read artifacts from %s: %s", store.path, e)
    # a sibling experiment <name>.<part> (one per source domain, ...) was run under <name>
    runs = [r for r in store.runs() if r.get("experiment") in (name, name.rsplit(".", 1)[0], None)]
    variants = _variant_table(pd.concat([df, errors]) if len(errors) else df, latest_config(runs))
    seeds = sorted(int(s) for s in df["seed"].unique())
    superseded = store.superseded(name) if hasattr(store, "superseded") else []
    return ExperimentData(
        name, df, errors, variants, seeds, artifacts, runs, latest_declarations(store, runs), superseded=superseded
    )


def latest_config(runs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The resolved config of the latest run that recorded one (runs in start order)."""
    return next((r["config_json"] for r in reversed(runs) if isinstance(r.get("config_json"), dict)), None)


def latest_declarations(store: ResultStore, runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per evaluator, the declarations stored by the latest of ``runs`` that recorded it (runs in start order)."""
    by_run = store.declarations(r["run_id"] for r in runs)
    out: dict[str, dict[str, Any]] = {}
    for r in runs:
        out.update(by_run.get(r["run_id"], {}))
    return out


def pick_tag(sub: pd.DataFrame, tags: tuple[str, ...] | None = None) -> pd.DataFrame:
    """Keep, per (variant, seed, condition, metric), the row with the most preferred tag. Given ``tags``,
    rows with other tags are dropped (e.g. only ``realised`` timings, never ``simulated`` ones)."""
    if sub.empty:
        return sub
    if tags:
        sub = sub[sub["tag"].fillna("").isin(tags)]
    tags = tags or TAG_PREFERENCE
    rank = {t: i for i, t in enumerate(tags)}
    sub = sub.assign(_rank=sub["tag"].fillna("").map(lambda t: rank.get(t, len(rank))))
    sub = sub.sort_values("_rank").drop_duplicates(["variant", "seed", "condition", "metric"], keep="first")
    return sub.drop(columns="_rank")


def pick_condition(sub: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """When one metric is stored under several conditions (e.g. threads=1 and threads=4), keep the
    condition that covers the most variants (ties: the first in sort order). Returns (rows, condition)."""
    if sub.empty:
        return sub, ""
    cover = sub.groupby("condition")["variant"].nunique()
    best = sorted(cover.index, key=lambda c: (-cover[c], str(c)))[0]
    return sub[sub["condition"] == best], str(best)


def select_rows(data: ExperimentData, evaluator: str, spec: MetricSpec) -> tuple[pd.DataFrame, str]:
    """The rows a declaration reads (its :class:`~compressbench.specs.Selection`): metric ``spec.name`` of
    ``evaluator`` matching ``where`` / ``exact`` / ``positive``, one tag per measurement, and — with a
    ``protocol`` — the protocol covering most variants. Returns (rows, protocol condition or "")."""
    df, sel = data.df, spec.select
    sub = df[(df["evaluator"] == evaluator) & (df["metric"] == spec.name)]
    for k, v in sel.where.items():
        col = data.cond(k)[sub.index]
        if v is None:
            keep = col.isna()
        elif v == ANY:
            keep = col.notna()
        else:
            keep = col.astype(object).map(lambda x, v=v: x == v or str(x) == str(v))
        sub = sub[keep.astype(bool)]
    if sel.exact:
        keys = {k for k, v in sel.where.items() if v is not None}
        sub = sub[sub["condition_json"].map(lambda c: set(c or {}) == keys).astype(bool)]
    if sel.positive:
        sub = sub[sub["value"] > 0]
    tags = (sel.tag,) if isinstance(sel.tag, str) else sel.tag
    sub = pick_tag(sub, tags)
    cond = ""
    if sel.protocol and not sub.empty:
        sub = sub.assign(
            condition=sub["condition_json"].map(
                lambda c: ",".join(f"{k}={(c or {}).get(k)}" for k in sel.protocol if k in (c or {}))
            )
        )
        sub, cond = pick_condition(sub)
    return sub, cond


def per_seed(data: ExperimentData, evaluator: str, spec: MetricSpec) -> tuple[pd.Series, str]:
    """One value per (variant, seed) for a declaration: its rows reduced with ``spec.select.aggregate``.
    Returns the Series (MultiIndex variant, seed) and the protocol condition used."""
    sub, cond = select_rows(data, evaluator, spec)
    return reduce_rows(sub, spec), cond


def reduce_rows(sub: pd.DataFrame, spec: MetricSpec) -> pd.Series:
    """Selected rows -> one value per (variant, seed) with ``spec.select.aggregate``."""
    if sub.empty:
        return empty_series()
    return sub.groupby(["variant", "seed"])["value"].agg(spec.select.aggregate)


def empty_series() -> pd.Series:
    """An empty per-(variant, seed) Series."""
    return pd.Series(dtype=float, index=pd.MultiIndex.from_tuples([], names=["variant", "seed"]))


def baseline_value(series: pd.Series, seed: int) -> float:
    """The baseline's value in a per-(variant, seed) Series for ``seed`` (its mean over seeds if that seed
    is missing; nan without a baseline)."""
    if (BASELINE, seed) in series.index:
        return float(series.loc[(BASELINE, seed)])
    if BASELINE in series.index.get_level_values(0):
        return float(series.loc[BASELINE].mean())
    return math.nan


def load_store(store_path: str | Path) -> ResultStore:
    p = Path(store_path)
    if not p.is_file():
        raise FileNotFoundError(f"no results store at {p}")
    return ResultStore(p)

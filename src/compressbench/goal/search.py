"""The search for a goal: for every family under ``variants``, the most compressed budget that meets every
constraint, found by bisection through the ordinary job DAG and cache.

* **Families.** A ``variants`` entry with a ``budgets`` list of two or more values (a method or a pipeline) is a
  family: its smallest and largest budget bound the search range, walked on ``goal.search.points`` evenly spaced
  budgets. An entry with one budget (or none: int8, fp16 ...) is a candidate as it is.
* **Bisection.** Compression is assumed to cost more as the budget shrinks (params / bytes / FLOPs fractions;
  a knob by its method's declared direction), so the budgets that meet the goal are the least compressed ones.
  Sentinels past both ends (the uncompressed end counted as meeting, the far end as breaking) give at most
  ``ceil(log2(points + 1))`` probes per family: 4 for 10 points, against 10 for the grid. All families advance
  together, one probe each per round.
* **Probes are ordinary jobs.** Each round is a resolved experiment whose variants are the round's probes
  (named as a budgets list names them: ``prune.structured@params=0.3667``), planned by :func:`compressbench.plan.plan`
  and run by the experiment's executor (local or Ray) into the same cache and store: a probe is cached, a
  search resumes where it stopped, and a rerun re-walks the same probes with every job cached. The rows are read
  back from the store and assessed (:mod:`.assess`) exactly as ``compressbench recommend`` would.
* **Monotonicity** is an assumption, not a fact: the decision reports every pair of a family's probes that
  contradicts it (:func:`.decision.monotonicity`).
* **int8 fallback** (:mod:`.fallback`): a variant of a method that can keep layers in float (``MethodSpec.
  float_layers``) and breaks a constraint gets mixed-precision variants, bisected on how many of the most
  sensitive layers stay float.

docs/goal.md describes the whole, with the numbers of the benchmark.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import ConfigError, ResolvedExperiment, resolve_experiment
from ..config.schema import Experiment
from ..plan import plan
from ..registry import methods
from ..report.data import load_experiment
from ..runner import RunSummary, Session, _resolved, execute, start_run
from .assess import Assessment, assess
from .decision import Decision, decide
from .fallback import fallback
from .probes import single

log = logging.getLogger("compressbench")


def budget_grid(values: list[float], points: int, kind: str) -> list[float]:
    """``points`` budgets evenly spaced from the smallest to the largest of ``values`` (rounded to 4 decimals
    for shared kinds — the variant names read ``params=0.3667`` —, 6 significant digits for a knob)."""
    lo, hi = min(values), max(values)
    raw = [lo + (hi - lo) * i / (points - 1) for i in range(points)]
    out = [round(x, 4) if kind != "knob" else float(f"{x:.6g}") for x in raw]
    return sorted(set(out))


def more_compressed_first(kind: str, method: str, params: Any) -> bool:
    """Whether a smaller budget value compresses more: always for params / bytes / FLOPs fractions; for a knob,
    when the method's knob does not shrink the model as it grows (a width, a rank)."""
    if kind != "knob":
        return True
    spec = methods.spec(method)
    knob = spec.knob
    if knob is None and spec.stages is not None:  # a pipeline: the first stage with a knob
        knob = next((methods.spec(m).knob for m, _ in spec.stages(params) if methods.spec(m).knob), None)
    return not (knob.shrinks if knob is not None else True)


@dataclass
class Family:
    """One budgets list under bisection: ``grid`` from the least to the most compressed budget; ``ok`` / ``bad``:
    the indexes of the most compressed budget known to meet the goal and the least compressed known to break it
    (sentinels −1 and ``len(grid)``)."""

    index: int  # its position in the config's variants list
    label: str  # its name (or method): the probes' name before "@"
    kind: str
    grid: list[float]
    ok: int = -1
    bad: int = -1
    probes: list[tuple[float, str, str]] = field(default_factory=list)  # (budget, variant, outcome)

    def __post_init__(self) -> None:
        self.bad = len(self.grid)

    @property
    def done(self) -> bool:
        return self.bad - self.ok <= 1

    def next_value(self) -> float:
        return self.grid[(self.ok + self.bad) // 2]

    def record(self, value: float, variant: str, meets: bool, outcome: str) -> None:
        i = self.grid.index(value)
        if meets:
            self.ok = i
        else:
            self.bad = i
        self.probes.append((value, variant, outcome))

    @property
    def best(self) -> float | None:
        """The most compressed budget found to meet the goal (None: not even the least compressed one does)."""
        return self.grid[self.ok] if self.ok >= 0 else None

    def variant_name(self, value: float) -> str:
        return f"{self.label}@{self.kind}={value:g}"


@dataclass
class SearchResult:
    """What a search did and decided: the families' probes, the fallback's, the decision, the job counts."""

    summary: RunSummary
    decision: Decision | None
    families: list[Family]
    fallback: list[Any]
    rounds: int
    jobs: int  # distinct jobs planned over every round
    ran: int
    cached: int
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"search: {self.rounds} round(s), {self.jobs} distinct jobs ({self.ran} ran, {self.cached} cached)"]
        for f in self.families:
            walked = ", ".join(f"{v:g} {o}" for v, _, o in f.probes)
            best = f"{f.kind}={f.best:g}" if f.best is not None else "none in range"
            out.append(
                f"  {f.label}: most compressed budget meeting the goal: {best} "
                f"(range {f.grid[0]:g}..{f.grid[-1]:g}, {len(f.grid)} points; probes: {walked})"
            )
        for fb in self.fallback:
            out += [f"  {ln}" for ln in fb.lines()]
        out += [f"  note: {n}" for n in self.notes]
        return out


# ---------------------------------------------------------------- probe experiments
def probe_config(
    exp: ResolvedExperiment, variants: list[dict[str, Any]], extra_evaluations: list[dict[str, Any]] | None = None
) -> ResolvedExperiment:
    """The experiment one round runs: the file's with ``variants`` as its variants (each a single-budget entry
    named as the probe), without its goal and findings (the probes are ordinary variants), plus
    ``extra_evaluations``. Resolved like any config — so a Ray worker resolving it gets the same fingerprint."""
    raw = exp.config.model_dump(mode="json", exclude_defaults=False)
    raw["variants"] = variants
    raw["goal"] = None
    raw["findings"] = []
    raw["report"] = None
    if extra_evaluations:
        raw["evaluations"] = list(raw["evaluations"]) + extra_evaluations
    try:
        return resolve_experiment(Experiment.model_validate(raw))
    except ConfigError as e:  # e.g. a knob value the method refuses
        raise ConfigError(f"goal search: {e}") from None


def entry_of(exp: ResolvedExperiment, index: int) -> dict[str, Any]:
    """The config's ``variants[index]`` as written (JSON)."""
    return exp.config.variants[index].model_dump(mode="json", exclude_none=True)


def families_and_fixed(exp: ResolvedExperiment) -> tuple[list[Family], list[dict[str, Any]]]:
    """The budgets lists to bisect, and every other variant as a single-variant entry."""
    fams, fixed = [], []
    points = exp.goal.search.points
    by_index: dict[int, list[Any]] = {}
    for v in exp.variants:
        by_index.setdefault(v.index, []).append(v)
    for i, vs in sorted(by_index.items()):
        entry = entry_of(exp, i)
        if len(vs) >= 2:
            kind = vs[0].budget.kind
            grid = budget_grid([v.budget.value for v in vs], points, kind)
            if not more_compressed_first(kind, vs[0].method, vs[0].params):
                grid = grid[::-1]
            grid = grid[::-1]  # least compressed first
            fams.append(Family(i, entry.get("name") or entry["method"], kind, grid))
        else:
            v = vs[0]
            fixed.append(
                single(entry, v.name, v.budget.kind if v.budget else None, v.budget.value if v.budget else None)
            )
    return fams, fixed


# ---------------------------------------------------------------- the search
class Searcher:
    """The state of one search (see the module docstring)."""

    def __init__(self, exp: ResolvedExperiment, progress: bool | None):
        self.exp = exp
        self.session: Session = start_run(exp, progress)
        self.families, self.fixed = families_and_fixed(exp)
        self.rounds = 0
        self.entries: dict[str, dict[str, Any]] = {}  # every variant run so far, by name
        self.extra_evaluations: list[dict[str, Any]] = []
        self.notes: list[str] = []

    def run_round(self, new: list[dict[str, Any]], what: str) -> None:
        """Plan and execute the experiment of every variant so far plus ``new`` (cached jobs cost nothing)."""
        for e in new:
            self.entries[e["name"]] = e
        self.rounds += 1
        log.info("goal search, round %d: %s", self.rounds, what)
        pexp = probe_config(self.exp, list(self.entries.values()), self.extra_evaluations)
        names = {e["name"] for e in new}
        jobs = [j for j in plan(pexp) if j.labels.variant in names or j.labels.is_parent or self.rounds == 1]
        execute(self.session, pexp, jobs)

    def assess(self) -> Assessment:
        data = load_experiment(self.session.store, self.exp.parts[0].name)
        return assess(data, self.exp.goal)

    def bisect(self) -> None:
        """Advance every family one probe per round until each is done."""
        first = [self.families_probe(f) for f in self.families if not f.done]
        self.run_round(
            self.fixed + first,
            f"the parent, {len(self.fixed)} fixed variant(s), the first probe of "
            f"{len(first)} famil{'y' if len(first) == 1 else 'ies'}",
        )
        while True:
            a = self.assess()
            by_name = {c.variant: c for c in a.candidates}
            pending = []
            for f in self.families:
                if f.done:
                    continue
                value = f.next_value()
                name = f.variant_name(value)
                c = by_name.get(name)
                meets = c is not None and c.meets
                outcome = (
                    "meets"
                    if meets
                    else (
                        "breaks "
                        + ", ".join(
                            f"{d.key}" + (f" (+{d.amount(d.excess)})" if d.status == "broken" else " (unknown)")
                            for d in c.broken
                        )
                        if c is not None
                        else "has no rows"
                    )
                )
                f.record(value, name, meets, outcome)
                log.info("goal search: %s %s", name, outcome)
                if not f.done:
                    pending.append(self.families_probe(f))
            if not pending:
                return
            self.run_round(pending, ", ".join(p["name"] for p in pending))

    def families_probe(self, f: Family) -> dict[str, Any]:
        value = f.next_value()
        return single(entry_of(self.exp, f.index), f.variant_name(value), f.kind, value)


def search(
    experiment: ResolvedExperiment | Experiment | str | Path,
    *,
    progress: bool | None = None,
    accept_noisy: bool | None = None,
) -> SearchResult:
    """Search for the experiment's goal (see the module docstring); returns what was done and decided. The rows of
    every probe are in the experiment's store under one run; ``compressbench report`` draws the decision first."""
    exp = _resolved(experiment)
    if exp.goal is None:
        raise ConfigError(f"experiment '{exp.name}' declares no goal (add goal: {{objective: ..., constraints: ...}})")
    s = Searcher(exp, progress)
    s.bisect()
    fbs = fallback(s) if exp.goal.search.fallback else []
    a = s.assess()
    dec = decide(a, accept_noisy)
    summary = s.session.summary()
    return SearchResult(summary, dec, s.families, fbs, s.rounds, summary.jobs, summary.ran, summary.cached, s.notes)


def run(
    experiment: ResolvedExperiment | Experiment | str | Path,
    *,
    progress: bool | None = None,
    executor: str | None = None,
) -> RunSummary:
    """``compressbench.run``: an experiment with a goal is searched (:func:`search`), any other run as it is
    (:func:`compressbench.runner.run`). Same code path as the CLI's ``run``."""
    from ..runner import run as run_plain
    from ..validate import with_executor

    exp = _resolved(experiment)
    if executor is not None and executor != exp.executor.name:
        exp = with_executor(exp, executor)
    if exp.goal is None:
        return run_plain(exp, progress=progress)
    return search(exp, progress=progress).summary


__all__ = [
    "search",
    "run",
    "SearchResult",
    "Family",
    "Searcher",
    "budget_grid",
    "probe_config",
    "families_and_fixed",
    "more_compressed_first",
    "single",
    "entry_of",
]

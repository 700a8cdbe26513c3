"""int8 with an accuracy-aware fallback: when a quantized variant breaks a constraint, keep its most sensitive
layers in float until the constraints hold — as OpenVINO's AccuracyAware quantization does, but ranked on the
goal's own metrics (clean *and* corrupted accuracy), not clean accuracy alone.

1. **Which variants.** Every candidate the search ran that breaks the goal and whose method can keep layers in
   float (``MethodSpec.float_layers``: the params field listing them; ``quantize.static``'s ``keep_float``).
2. **Sensitivity.** The ``sensitivity`` evaluator on the parent (the experiment's own ``evaluator: sensitivity``
   when it measures the parent with the ``quantize`` op; else the search adds one with its defaults): each
   conv / linear layer quantized alone, its drop in clean and in corrupted top-1.
3. **Ranking.** A layer's score is its largest drop relative to the tolerance it eats into: for each constraint
   whose metric has a per-layer measure (matched by the declared role: clean accuracy, corruption accuracy),
   ``drop / limit``. Constraints without one (robust accuracy, ECE) are said not to rank.
4. **Bisection on k**, the number of top-ranked layers kept in float (full int8, k = 0, is known to break; k =
   every layer would be the parent): at most ``ceil(log2(k_max + 1))`` mixed-precision variants, named
   ``<variant>+<k>float``, each an ordinary compress + evaluate job whose bytes and latency are measured like any
   other variant's (its checkpoint really holds float32 weights for those layers: ``compress.quantize.FloatIsland``).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

from ..config.schema import BASELINE
from ..evaluate.sensitivity import drops_by_role
from ..registry import evaluators, methods
from ..report.context import ReportContext
from ..report.data import load_experiment
from .assess import Assessment
from .probes import single

log = logging.getLogger("compressbench")

SENSITIVITY = {"evaluator": "sensitivity", "params": {"ops": ["quantize"]}, "variants": [BASELINE]}


@dataclass
class Fallback:
    """The fallback of one int8 variant: the ranking, the probes (k, variant, outcome), the result."""

    base: str
    field: str  # the params field listing float layers
    ranking: list[tuple[str, float]]
    ranked_on: list[str]
    unranked: list[str]
    k_max: int
    ok: int = 0
    bad: int = 0
    probes: list[tuple[int, str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.ok = self.k_max + 1

    @property
    def done(self) -> bool:
        return self.ok - self.bad <= 1

    def next_k(self) -> int:
        return (self.ok + self.bad) // 2

    def name(self, k: int) -> str:
        return f"{self.base}+{k}float"

    def layers(self, k: int) -> list[str]:
        return [n for n, _ in self.ranking[:k]]

    @property
    def best(self) -> int | None:
        return self.ok if self.ok <= self.k_max else None

    def lines(self) -> list[str]:
        rank = ", ".join(f"{n} ({s:.2f})" for n, s in self.ranking[:6]) + (" ..." if len(self.ranking) > 6 else "")
        walked = ", ".join(f"k={k} {o}" for k, _, o in self.probes)
        res = (
            f"{self.name(self.best)} keeps {', '.join(self.layers(self.best))} in float"
            if self.best is not None
            else f"none of 1..{self.k_max} float layers meets the goal"
        )
        out = [
            f"int8 fallback for {self.base}: {res}; layers ranked by drop / tolerance on "
            f"{', '.join(self.ranked_on) or 'nothing'}: {rank}; probes: {walked or 'none'}"
        ]
        if self.unranked:
            out.append(f"  (not ranked on {', '.join(self.unranked)}: no per-layer measure of it)")
        return out


def _sensitivity_evaluation(s: Any) -> str | None:
    """The registered name of an evaluation of the experiment that measures per-layer quantization sensitivity on
    the parent (the one this module reads), or None."""
    for e in s.exp.evaluations:
        ops = getattr(e.params, "ops", None)
        if (
            e.evaluator == evaluators.resolve(SENSITIVITY["evaluator"])
            and ops
            and "quantize" in ops
            and e.runs_on(BASELINE)
        ):
            return e.evaluator
    return None


def _ranking(s: Any, a: Assessment) -> tuple[list[tuple[str, float]], list[str], list[str]]:
    """(layer, score) best first, the constraints that ranked them, those that could not."""
    data = load_experiment(s.session.store, s.exp.parts[0].name)
    ctx = ReportContext.build(data)
    rows = data.df[data.df["evaluator"] == evaluators.resolve(SENSITIVITY["evaluator"])]
    drops = drops_by_role(rows, BASELINE)
    limits = {
        k: next((c.drops[k].limit for c in a.candidates if k in c.drops and not math.isnan(c.drops[k].limit)), math.nan)
        for k in a.goal.constraints
    }
    scores: dict[str, float] = {}
    used, unused = [], []
    for key in a.goal.constraints:
        main = ctx.summary.column(key).main
        role = main.role if main is not None else ""
        per = drops.get(role) if role else None
        lim = limits.get(key, math.nan)
        if not per or math.isnan(lim):
            unused.append(key)
            continue
        used.append(key)
        for layer, d in per.items():
            score = d / lim if lim > 0 else (math.inf if d > 0 else 0.0)
            scores[layer] = max(scores.get(layer, -math.inf), score)
    if not used:  # no constraint has a per-layer measure: rank on every measured drop
        for per in drops.values():
            for layer, d in per.items():
                scores[layer] = max(scores.get(layer, -math.inf), d)
    return sorted(scores.items(), key=lambda kv: -kv[1]), used, unused


def fallback(s: Any) -> list[Fallback]:
    """Run the fallback for every int8 variant of the search that breaks the goal (see the module docstring)."""
    a = s.assess()
    targets = []
    for c in a.candidates:
        entry = s.entries.get(c.variant)
        spec = methods.spec(c.method) if c.method in methods else None
        fld = spec.float_layers if spec is not None else None
        if entry is None or fld is None or c.meets or (entry.get("params") or {}).get(fld):
            continue
        targets.append((c.variant, fld, entry))
    if not targets:
        return []
    if _sensitivity_evaluation(s) is None:
        s.extra_evaluations.append(dict(SENSITIVITY))
        s.run_round([], "per-layer sensitivity of the parent (for the int8 fallback)")
        a = s.assess()
    ranking, used, unused = _ranking(s, a)
    if not ranking:
        s.notes.append("int8 fallback: no per-layer sensitivity rows for the parent; nothing kept in float")
        return []
    cap = s.exp.goal.search.max_float_layers
    k_max = min(len(ranking) - 1, cap) if cap else len(ranking) - 1
    fbs = [Fallback(v, fld, ranking, used, unused, max(0, k_max)) for v, fld, _ in targets]
    entries = {v: e for v, _, e in targets}
    while True:
        pending = [fb for fb in fbs if not fb.done]
        if not pending:
            return fbs
        probes: list[dict[str, Any]] = []
        for fb in pending:
            k = fb.next_k()
            e = entries[fb.base]
            params = {**(e.get("params") or {}), fb.field: fb.layers(k)}
            budget = next(iter((e.get("budget") or {}).items()), (None, None))
            probes.append(single(e, fb.name(k), budget[0], budget[1], params=params))
        s.run_round(probes, "int8 fallback: " + ", ".join(p["name"] for p in probes))
        by_name = {c.variant: c for c in s.assess().candidates}
        for fb in pending:
            k = fb.next_k()
            c = by_name.get(fb.name(k))
            meets = c is not None and c.meets
            outcome = "meets" if meets else ("breaks " + ", ".join(d.key for d in c.broken) if c else "has no rows")
            fb.probes.append((k, fb.name(k), outcome))
            log.info("goal search: %s (%s in float) %s", fb.name(k), ", ".join(fb.layers(k)), outcome)
            if meets:
                fb.ok = k
            else:
                fb.bad = k

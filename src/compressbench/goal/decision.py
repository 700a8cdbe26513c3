"""From an assessment to a decision: which variant to ship for each objective, what it gains and loses, the
Pareto front of each constraint metric against the objective, every rejected candidate with the constraint it
broke and by how much, and — when nothing qualifies — the candidates that came closest.

A candidate **qualifies** when every constraint holds (:mod:`.assess`) and it has a number for the objective;
a timing flagged noisy (:mod:`compressbench.report.noise`) does not decide unless ``accept_noisy``. Among the
qualifying candidates the one with the smallest objective is recommended; its gain is the parent's value over
its own (× smaller, × faster).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..config.schema import BASELINE
from ..registry import methods
from .assess import BROKEN, HOLDS, Assessment, Candidate, parent_value


@dataclass
class Pick:
    """The recommended candidate for one objective (None: no candidate qualifies)."""

    objective: str
    label: str
    unit: str
    candidate: Candidate | None
    value: float
    parent: float
    left_noisy: list[Candidate] = field(default_factory=list)  # met the constraints, left out: noisy timing

    @property
    def gain(self) -> float:
        """Parent / candidate (× smaller or faster; nan without both)."""
        return self.parent / self.value if self.value and self.value > 0 and not math.isnan(self.parent) else math.nan


@dataclass(frozen=True)
class Violation:
    """Within one family (a ``variants`` entry: its budgets), a constraint metric that does not get worse as
    compression grows: ``more`` (more compressed) loses significantly less than ``less`` — or meets a constraint
    that ``less`` breaks. The search's bisection assumes the opposite; the decision reports it."""

    family: str
    key: str
    less: str
    more: str
    detail: str


@dataclass
class Decision:
    """A goal decided on one experiment (see the module docstring)."""

    assessment: Assessment
    accept_noisy: bool
    recommended: Pick
    per_objective: dict[str, Pick]
    qualifying: list[Candidate]
    rejected: list[Candidate]
    closest: list[Candidate]
    pareto: dict[str, list[str]]  # constraint key -> variants on the front (objective vs drop), cheapest first
    violations: list[Violation] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def experiment(self) -> str:
        return self.assessment.experiment

    @property
    def objective(self) -> str:
        return self.assessment.goal.objective.minimize

    @property
    def met(self) -> bool:
        return self.recommended.candidate is not None


def pick(a: Assessment, objective: str, accept_noisy: bool) -> Pick:
    """The qualifying candidate with the smallest ``objective``."""
    o = a.objectives.get(objective)
    label, unit = (o.label, o.unit) if o is not None else (objective, "")
    ok = [c for c in a.candidates if c.meets and objective in c.objectives]
    noisy = [c for c in ok if objective in c.noisy]
    usable = ok if accept_noisy else [c for c in ok if objective not in c.noisy]
    best = min(usable, key=lambda c: (c.objectives[objective], c.worst()), default=None)
    left = (
        []
        if accept_noisy
        else [c for c in noisy if best is None or c.objectives[objective] < best.objectives[objective]]
    )
    return Pick(
        objective,
        label,
        unit,
        best,
        best.objectives[objective] if best else math.nan,
        parent_value(a, objective),
        sorted(left, key=lambda c: c.objectives[objective]),
    )


def pareto_front(a: Assessment, key: str, objective: str) -> list[str]:
    """Variants not dominated on (objective, drop of ``key``): nothing is both cheaper and loses less. The parent
    (drop 0) is a point of it when it has the objective."""
    pts = [
        (c.objectives[objective], c.drops[key].estimate.mean, c.variant)
        for c in a.candidates
        if objective in c.objectives
        and key in c.drops
        and c.drops[key].estimate is not None
        and not math.isnan(c.drops[key].estimate.mean)
    ]
    pv = parent_value(a, objective)
    if not math.isnan(pv):
        pts.append((pv, 0.0, BASELINE))
    front, best = [], math.inf
    for _x, y, v in sorted(pts):
        if y < best - 1e-12:
            front.append(v)
            best = y
    return front


def aggressiveness(c: Candidate) -> float | None:
    """A number that grows as the candidate is compressed harder within its family: minus the fraction of a
    params / bytes / FLOPs budget; the knob (or minus it) by its method's declared direction; None: unknown."""
    if c.budget_kind is None or math.isnan(c.budget_target):
        return None
    if c.budget_kind != "knob":
        return -c.budget_target
    knob = methods.spec(c.method).knob if c.method in methods else None
    return None if knob is None else (c.budget_target if knob.shrinks else -c.budget_target)


def family_of(variant: str) -> str:
    """The ``variants`` entry a variant came from: its name before ``@<budget>``."""
    return variant.split("@", 1)[0]


def monotonicity(a: Assessment) -> list[Violation]:
    """Every pair of one family's budgets where a constraint metric contradicts "more compression, more loss"
    (see :class:`Violation`): significantly — the two-sided intervals do not overlap — or, without intervals,
    by the point estimates (said so); and every pair where the more compressed budget meets a constraint the less
    compressed one breaks."""
    fams: dict[str, list[tuple[float, Candidate]]] = {}
    for c in a.candidates:
        g = aggressiveness(c)
        if g is not None:
            fams.setdefault(family_of(c.variant), []).append((g, c))
    out: list[Violation] = []
    for fam, members in fams.items():
        members.sort(key=lambda m: m[0])
        for key in a.goal.constraints:
            for i, (_, less) in enumerate(members):
                for _, more in members[i + 1 :]:
                    v = _violation(fam, key, less, more)
                    if v is not None:
                        out.append(v)
    return out


def _violation(fam: str, key: str, less: Candidate, more: Candidate) -> Violation | None:
    dl, dm = less.drops.get(key), more.drops.get(key)
    if dl is None or dm is None or dl.estimate is None or dm.estimate is None:
        return None
    el, em = dl.estimate, dm.estimate
    if dm.status == HOLDS and dl.status == BROKEN:
        return Violation(
            fam,
            key,
            less.variant,
            more.variant,
            f"{more.variant} meets {key} (bound {dm.amount(dm.bound)}) but the less compressed "
            f"{less.variant} breaks it (bound {dl.amount(dl.bound)})",
        )
    if el.defined and em.defined:
        if em.hi < el.lo:
            return Violation(
                fam,
                key,
                less.variant,
                more.variant,
                f"{key} drops less at {more.variant} ({dm.amount(em.mean)}, CI up to {dm.amount(em.hi)}) "
                f"than at the less compressed {less.variant} ({dl.amount(el.mean)}, CI from "
                f"{dl.amount(el.lo)})",
            )
    elif em.mean < el.mean - 1e-9:
        return Violation(
            fam,
            key,
            less.variant,
            more.variant,
            f"{key} drops less at {more.variant} ({dm.amount(em.mean)}) than at the less compressed "
            f"{less.variant} ({dl.amount(el.mean)}) (point estimates: no intervals)",
        )
    return None


def decide(a: Assessment, accept_noisy: bool | None = None) -> Decision:
    """The decision for an assessment (``accept_noisy``: the goal's setting when None)."""
    accept = a.goal.accept_noisy if accept_noisy is None else accept_noisy
    goal_obj = a.goal.objective.minimize
    per = {name: pick(a, name, accept) for name in a.objectives}
    rec = per.get(goal_obj) or pick(a, goal_obj, accept)
    per[goal_obj] = rec
    qualifying = sorted([c for c in a.candidates if c.meets], key=lambda c: c.objectives.get(goal_obj, math.inf))
    rejected = sorted([c for c in a.candidates if not c.meets], key=lambda c: c.worst())
    closest = [] if rec.candidate is not None else (rejected[:3] if rejected else qualifying[:3])
    notes = list(a.notes)
    if goal_obj not in a.objectives:
        notes.append(f"no variant has a number for the objective {goal_obj}")
    if rec.candidate is not None and not math.isnan(rec.parent) and rec.value >= rec.parent:
        notes.append(
            f"the best qualifying variant ({rec.candidate.variant}) is not below the parent on {goal_obj} "
            f"({rec.value:.4g} vs {rec.parent:.4g}): keeping the parent gives up nothing"
        )
    pareto = {k: pareto_front(a, k, goal_obj) for k in a.goal.constraints}
    return Decision(a, accept, rec, per, qualifying, rejected, closest, pareto, monotonicity(a), notes)


__all__ = [
    "Pick",
    "Decision",
    "Violation",
    "decide",
    "pick",
    "pareto_front",
    "monotonicity",
    "aggressiveness",
    "family_of",
]

"""What an evaluator declares about its rows (lm-evaluation-harness' ``Metric`` idea): one :class:`MetricSpec`
per metric — *which rows* make one number per (variant, seed) (:class:`Selection`) and *how it shows*
(:class:`Presentation`) — and the report options its report hooks read (:class:`ReportOption`).

Registration stays flat (the fields of both parts as keyword arguments)::

    MetricSpec("top1", label="Clean acc. %", fmt="pct", higher_is_better=True, where={}, exact=True,
               summary=True, key="clean_top1", order=10, table=None, figure="acc_vs_budget_{kind}")

and readers use the parts: ``m.select.where``, ``m.show.label``. Everything here but ``derive`` is plain
data, which is what lets a run store its declarations with its rows (``compressbench.declarations``) and
the report render them without importing the evaluator (docs/report.md, "What travels as data").
These classes are re-exported by :mod:`compressbench.specs`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any, Callable, Mapping

from .fields import Aggregate, Format  # the vocabulary shared with the config's study tables

ANY = "*"  # a ``where`` value: the condition has this key, with any value

# the quantity a declaration stands for, for other evaluators' report hooks (``MetricSpec.role``)
CLEAN_ACCURACY = "clean_accuracy"
CORRUPTION_ACCURACY = "corruption_accuracy"


@dataclass(frozen=True)
class Console:
    """A column of the table ``compressbench run`` prints: ``title``; ``missing``: an empty cell's text
    (why it is empty); ``note``: a line printed under the table."""

    title: str
    missing: str = "–"
    note: str = ""


@dataclass(frozen=True)
class Selection:
    """Which rows make one number per (variant, seed): rows of the metric whose condition matches ``where``
    (``{key: value}``; ``None``: the key is absent; ``ANY``: present with any value) — with ``exact``, the
    condition has no other key (``where={}, exact=True``: unconditioned rows only); ``tag``: only rows with
    this tag (a tuple: these tags, preferred in order; None: prefer realised, then untagged, theoretical,
    simulated); ``positive``: values ≤ 0 are not measurements (a counter blind to int8 kernels reports 0);
    ``protocol``: condition keys of one measurement protocol — the protocol covering most variants is kept
    and named in a note; the remaining rows reduce with ``aggregate``. ``derive``: instead of reading rows,
    ``fn(ctx) -> Series | report.Derived`` (or a ``"pkg.mod:fn"`` string, imported by the report only)
    computes the number, e.g. from other summary columns (``ctx.column(key)``) or relative to the
    baseline — the one field that is code, not data."""

    where: Mapping[str, Any] = field(default_factory=dict)
    exact: bool = False
    tag: str | tuple[str, ...] | None = None
    positive: bool = False
    protocol: tuple[str, ...] = ()
    aggregate: Aggregate = "mean"
    derive: Callable[..., Any] | str | None = None

    def __post_init__(self) -> None:
        if self.aggregate not in Aggregate.__args__:  # type: ignore[attr-defined]
            raise TypeError(f"aggregate must be one of {Aggregate.__args__}, got {self.aggregate!r}")  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Presentation:
    """How a number reads and where it shows. ``label``, ``unit``, ``fmt`` (a cell format),
    ``higher_is_better``, ``description``. ``summary``: a column of the summary table, keyed ``key``
    (default: the metric's name; the CSV's column) at position ``order``; ``fallback``: fills its key's
    column only when the main declaration of that key has no numbers; ``scale``: ``((below, divisor,
    label), ...)``, the first step whose ``below`` exceeds the column's largest value divides it and names
    it (MFLOPs vs GFLOPs); ``note``: a note under the summary table when the column shows a protocol or a
    fallback (``{name}``, ``{label}``, ``{condition}``, ``{evaluator}``, ``{primary}``). ``table``: the
    detail table (``""``: its evaluator's generic table, ``None``: none — e.g. an evaluator's own
    ``report`` draws it). ``figure``: a figure (file stem, ``{kind}`` = budget kind) plotting it against
    the achieved budget, a line per method, panels per declaration or, with ``panels``, per value of that
    condition key. ``check``: a self-check (1 = passed), counted and failures listed. ``console``: a
    column of the table ``compressbench run`` prints. ``lead``: a summary column a decision needs (accuracy
    clean / corrupted / under attack, size, latency): the summary shows it first, with its change vs the
    parent next to it — points for a ``pct`` metric, a ratio (×) otherwise, when ``higher_is_better`` is
    set — and the other summary columns behind a "show all columns" control. ``objective``: the goal
    objective this metric measures (``latency_b1_ms``, ``onnx_latency_b1_ms``, ``latency_b1_ms@<format>``,
    ``bytes``, ``flops``, ``params``: ``goal.objective.minimize`` names it; a ``fallback`` declaration
    serves it only when no other does). A timing: ``spread`` names the metric holding its spread (IQR) and
    ``load`` the one holding the machine's load while it was measured, rows of the same job and condition —
    what flags it as noisy (:mod:`compressbench.noise`)."""

    label: str = ""
    unit: str = ""
    fmt: Format = "g"
    higher_is_better: bool | None = None
    description: str = ""
    summary: bool = False
    key: str = ""
    order: float = 100.0
    fallback: bool = False
    scale: tuple[tuple[float, float, str], ...] = ()
    note: str = ""
    table: str | None = ""
    figure: str | None = None
    panels: str | None = None
    check: bool = False
    console: Console | None = None
    lead: bool = False
    objective: str = ""
    spread: str = ""
    load: str = ""

    def __post_init__(self) -> None:
        if self.fmt not in Format.__args__:  # type: ignore[attr-defined]
            raise TypeError(f"fmt must be one of {Format.__args__}, got {self.fmt!r}")  # type: ignore[attr-defined]
        if self.fallback and not self.summary:
            raise TypeError("fallback=True needs summary=True")


SELECTION_FIELDS = tuple(f.name for f in fields(Selection))
PRESENTATION_FIELDS = tuple(f.name for f in fields(Presentation))


@dataclass(frozen=True, init=False)
class MetricSpec:
    """One metric an evaluator declares: ``name``, which rows make its number (``select``), how it shows
    (``show``) and, optionally, the quantity it stands for (``role``, e.g. :data:`CLEAN_ACCURACY`), which
    other evaluators' report hooks ask for instead of naming an evaluator's column.

    Built from flat keyword arguments (the fields of :class:`Selection` and :class:`Presentation`), or from
    ready parts (``select=``, ``show=``; flat arguments given too override their fields — what
    ``dataclasses.replace(m, protocol=())`` does). The report reads these declarations, never metric names
    (docs/report.md, "Declaring metrics")."""

    name: str
    select: Selection
    show: Presentation
    role: str

    def __init__(
        self,
        name: str,
        *,
        select: Selection | None = None,
        show: Presentation | None = None,
        role: str = "",
        **flat: Any,
    ):
        bad = sorted(set(flat) - set(SELECTION_FIELDS) - set(PRESENTATION_FIELDS))
        if bad:
            raise TypeError(
                f"metric '{name}': unknown field(s) {bad}; selection: {', '.join(SELECTION_FIELDS)}; "
                f"presentation: {', '.join(PRESENTATION_FIELDS)}"
            )
        try:
            sel = replace(select or Selection(), **{k: v for k, v in flat.items() if k in SELECTION_FIELDS})
            shw = replace(show or Presentation(), **{k: v for k, v in flat.items() if k in PRESENTATION_FIELDS})
        except TypeError as e:
            raise TypeError(f"metric '{name}': {e}") from None
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "select", sel)
        object.__setattr__(self, "show", shw)
        object.__setattr__(self, "role", role)

    @property
    def title(self) -> str:
        return self.show.label or self.name

    @property
    def column(self) -> str:
        """The key of its summary / detail column."""
        return self.show.key or self.name


@dataclass(frozen=True)
class ReportOption:
    """An option of ``compressbench report`` that an evaluator's report hooks read (``ctx.option(name)``),
    declared on its spec (``EvaluatorSpec.report_options``) so the generic report knows no evaluator's
    options. ``name`` is also the flag (``main_eps`` -> ``--main-eps``); ``default``: the value when not
    given (text, with ``parse``: ``"8/255"``); ``parse(text) -> value``: converts the flag's text (raise
    ``ValueError`` with what is allowed);
    ``choices``: the allowed values, if a closed set. Two evaluators declaring one name share its value."""

    name: str
    default: Any
    help: str = ""
    parse: Callable[[str], Any] | None = None
    choices: tuple[Any, ...] = ()

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def default_value(self) -> Any:
        return self.value(self.default)

    def value(self, raw: Any) -> Any:
        """A given value (text from the command line, or a Python value), checked."""
        v = self.parse(raw) if isinstance(raw, str) and self.parse is not None else raw
        if self.choices and v not in self.choices:
            raise ValueError(f"must be one of {', '.join(map(str, self.choices))}, got {raw!r}")
        return v

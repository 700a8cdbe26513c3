"""Metric declarations as data: what the report needs of an evaluator's spec, stored with every run.

When a run starts, the driver writes one record per evaluator the experiment uses (the runner's own
``train`` / ``compress`` rows and every evaluator, a plug-in's included) into the store's ``declarations``
table (:meth:`~compressbench.store.ResultStore.add_declarations`). ``compressbench report`` reads them back,
so a plug-in's metric gets its summary column, detail table, label and format from the store alone — the
report process need not (and does not) import the plug-in.

What travels as data: every field of each :class:`~compressbench.specs.MetricSpec` but ``derive`` (its
selection and presentation, its role), the evaluator's ``captions`` and ``gathers``, the *names* of its
hooks and its report options — for information only. Code does not travel: a name read from the store
is never imported. When the report renders a record (:func:`spec_from_record`), the code parts come from
the evaluator of the same name that this installation has registered (the built-ins, an installed
plug-in's entry point); where there is none, a ``derive``-d column and the evaluator's own ``report`` /
``figures`` hooks are left out with a note, and the metrics only those hooks showed go to the
evaluator's generic table instead. A store written before this table existed renders from the registry,
as it always did.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from typing import Any, Iterable, Mapping

from .job_metrics import JOB_SPECS
from .metric_specs import PRESENTATION_FIELDS
from .registry import evaluators as registry
from .specs import Console, EvaluatorSpec, MetricSpec, Presentation, Selection
from .store import ResultStore

RECORD_FORMAT = 1  # bump when the record's layout changes (a reader then ignores records it cannot read)


def code_name(obj: Any) -> str | None:
    """A hook's name for the record: its ``"pkg.mod:fn"`` string as declared, or where a callable lives."""
    if obj is None or isinstance(obj, str):
        return obj
    return f"{getattr(obj, '__module__', '?')}:{getattr(obj, '__qualname__', type(obj).__name__)}"


def metric_record(m: MetricSpec) -> dict[str, Any]:
    select = {k: v for k, v in asdict(m.select).items() if k != "derive"}
    select["derive"] = code_name(m.select.derive)
    show = asdict(m.show)
    return {"name": m.name, "role": m.role, "select": select, "show": show}


def evaluator_record(spec: EvaluatorSpec) -> dict[str, Any]:
    """The data form of what the report reads of ``spec`` (JSON-serialisable)."""
    return {
        "format": RECORD_FORMAT,
        "description": spec.description,
        "version": spec.version,
        "metrics": [metric_record(m) for m in spec.metrics],
        "gathers": spec.gathers,
        "captions": dict(spec.captions),
        "report": code_name(spec.report),
        "figures": code_name(spec.figures),
        "report_options": [{"name": o.name, "default": o.default, "help": o.help} for o in spec.report_options],
        "measures_time": spec.measures_time,
    }


def to_json(record: Mapping[str, Any]) -> str:
    return json.dumps(record, sort_keys=True, default=str)


def _tuple(v: Any) -> Any:
    return tuple(_tuple(x) for x in v) if isinstance(v, list) else v


def metric_from_record(r: Mapping[str, Any]) -> MetricSpec:
    """A :class:`MetricSpec` from its record; ``derive`` is left None (code: see :func:`spec_from_record`)."""
    sel = dict(r["select"])
    sel.pop("derive", None)
    sel["protocol"], sel["tag"] = _tuple(sel.get("protocol", ())), _tuple(sel.get("tag"))
    show = dict(r["show"])
    show["scale"] = _tuple(show.get("scale", ()))
    if show.get("console") is not None:
        show["console"] = Console(**show["console"])
    return MetricSpec(r["name"], role=r.get("role", ""), select=Selection(**sel), show=Presentation(**show))


@dataclass
class Rendered:
    """A stored record turned into the spec the report uses, and what was left out (code not installed)."""

    spec: EvaluatorSpec
    notes: list[str]


def spec_from_record(evaluator: str, record: Mapping[str, Any], code: EvaluatorSpec | None) -> Rendered:
    """The spec the report renders ``evaluator``'s rows with: the stored declarations, with the code parts
    (``derive``, ``report`` / ``figures`` hooks, report options) of ``code`` — the evaluator registered here
    under that name, or None. Nothing named in ``record`` is imported."""
    metrics, notes = [], []
    for r in record.get("metrics", []):
        m = metric_from_record(r)
        m = _newer_fields(m, r, code)
        derive = r["select"].get("derive")
        if derive is not None:
            own = next(
                (
                    c
                    for c in (code.metrics if code else ())
                    if c.name == m.name and c.column == m.column and c.select.derive is not None
                ),
                None,
            )
            if own is None:
                notes.append(
                    f"{m.title} ({evaluator}): computed by code this installation does not have ({derive}); not shown."
                )
                continue
            m = replace(m, derive=own.select.derive)
        metrics.append(m)
    fields: dict[str, Any] = {
        "metrics": tuple(metrics),
        "captions": dict(record.get("captions", {})),
        "gathers": bool(record.get("gathers", False)),
        "description": record.get("description", ""),
    }
    if code is not None:
        return Rendered(replace(code, **fields), notes)
    hooks = [h for h in (record.get("report"), record.get("figures")) if h]
    if hooks:  # the metrics its own tables showed go to its generic table instead
        fields["metrics"] = tuple(
            replace(m, table="") if m.show.table is None and not m.show.summary else m for m in metrics
        )
        notes.append(
            f"{evaluator}: its own tables and figures are drawn by code this installation does not have "
            f"({', '.join(hooks)}); its rows are in its generic table."
        )
    return Rendered(EvaluatorSpec(version=int(record.get("version", 1)), **fields), notes)


def _newer_fields(m: MetricSpec, r: Mapping[str, Any], code: EvaluatorSpec | None) -> MetricSpec:
    """A record written before a presentation field existed (e.g. ``lead``) takes that field from this
    installation's declaration of the same metric and column; every field the record has is kept."""
    missing = set(PRESENTATION_FIELDS) - set(r.get("show", {}))
    own = next((c for c in (code.metrics if code else ()) if c.name == m.name and c.column == m.column), None)
    if not missing or own is None:
        return m
    return MetricSpec(
        m.name, role=m.role, select=m.select, show=replace(m.show, **{f: getattr(own.show, f) for f in missing})
    )


def run_records(evaluators: Iterable[str]) -> dict[str, dict[str, Any]]:
    """``{evaluator: record}`` for the runner's own rows (``train``, ``compress``) and ``evaluators``
    (registered names)."""
    specs = {**JOB_SPECS, **{name: registry.spec(name) for name in sorted(set(evaluators))}}
    return {name: evaluator_record(spec) for name, spec in specs.items()}


def record_run(store: ResultStore, run_id: str, evaluators: Iterable[str]) -> None:
    """The driver, when a run starts: store the declarations of every evaluator the run uses."""
    records = run_records(evaluators)
    store.add_declarations(
        run_id, {ev: to_json(r) for ev, r in records.items()}, {ev: int(r["version"]) for ev, r in records.items()}
    )

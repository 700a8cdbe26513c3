"""Study tables: a report layout declared in the experiment file, so a preset prints its study's
tables in the study's shape (rows and columns) next to compressbench's standard report.

A table is rows (the variants, optionally one block per compression family with the baseline first)
by columns, each column one measurement selected like a declared metric (evaluator, metric, condition
items, aggregation) with its own label, format and scale::

    report:
      tables:
        - name: efficiency-by-family
          title: "Efficiency per family (batch 256)"
          group_by: family             # one block per family, the baseline on top of each
          row_label: reduction         # "90 % smaller" from the budget target (or: variant, budget)
          columns:
            - {label: "Latency ms", evaluator: efficiency, metric: latency_b1_ms, fmt: ms}
            - {label: "img/s @256", evaluator: efficiency, metric: throughput_img_s, where: {batch: 256}, fmt: int}
            - {label: "Size MB", evaluator: efficiency, metric: bytes_dense, scale: 1.0e-6, fmt: f2}

The schema lives here (no pandas) so that ``validate`` checks it before any work; the report renders it
(``report/study.py``). Names in a layout are data the user wrote, compared with the experiment's own
evaluations — never imported.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .fields import FileName
from .specs import Aggregate, Format

RUNNER_EVALUATORS = ("compress", "train")  # the rows the runner's own jobs write (job_metrics.py)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StudyColumn(_Strict):
    """One column: the rows of ``metric`` from ``evaluator`` whose condition has the ``where`` items
    (``null``: the key must be absent; ``"*"``: present with any value), reduced per (variant, seed)
    with ``aggregate`` (over the matching conditions), multiplied by ``scale``, then mean ± 95 % CI
    over seeds."""

    label: str = Field(min_length=1, max_length=80)
    evaluator: str
    metric: str
    where: dict[str, str | int | float | bool | None] = {}
    exact: bool = False
    aggregate: Aggregate = "mean"
    tag: str | None = None
    fmt: Format = "g"
    scale: float = Field(1.0, gt=0, allow_inf_nan=False)


class StudyTable(_Strict):
    name: FileName(64)  # type: ignore[valid-type]
    title: str = Field(min_length=1, max_length=200)
    group_by: Literal["none", "family", "method", "name"] = "none"  # name: the variant name before "@"
    row_label: Literal["variant", "budget", "reduction"] = "variant"
    columns: list[StudyColumn] = Field(min_length=1, max_length=64)


class ReportLayout(_Strict):
    tables: list[StudyTable] = Field(default_factory=list, max_length=32)

    @field_validator("tables")
    @classmethod
    def _distinct(cls, v: list[StudyTable]) -> list[StudyTable]:
        names = [t.name for t in v]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"duplicate study table name(s) {dup}")
        return v


def check_layout(layout: ReportLayout, evaluators: list[str]) -> str | None:
    """Why a layout cannot be drawn from this experiment's rows (a column reading an evaluator the
    experiment does not run), or None."""
    known = list(dict.fromkeys([*evaluators, *RUNNER_EVALUATORS]))
    for i, t in enumerate(layout.tables):
        for j, c in enumerate(t.columns):
            if c.evaluator not in known:
                return (f"report.tables[{i}].columns[{j}].evaluator: '{c.evaluator}' is not among this "
                        f"experiment's evaluations ({', '.join(known)})")
    return None

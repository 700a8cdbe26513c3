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

The schema lives in :mod:`compressbench.config.schema` (no pandas), so that ``validate`` checks it before
any work; the report renders it (``report/study.py``). Names in a layout are data the user wrote,
compared with the experiment's own evaluations — never imported.
"""

from __future__ import annotations

from .config.schema import ReportLayout, StudyColumn, StudyTable  # noqa: F401 (the schema, re-exported)

RUNNER_EVALUATORS = ("compress", "train")  # the rows the runner's own jobs write (job_metrics.py)


def check_layout(
    layout: ReportLayout, evaluators: list[str], metrics: dict[str, list[str]] | None = None
) -> str | None:
    """Why a layout cannot be drawn from this experiment's rows (a column reading an evaluator the
    experiment does not run, or a metric its evaluator does not declare: ``metrics`` = {evaluator: the
    metric names its spec declares}; an evaluator declaring none is not checked), or None."""
    from .errors import did_you_mean
    from .job_metrics import JOB_SPECS

    known = list(dict.fromkeys([*evaluators, *RUNNER_EVALUATORS]))
    declared = {k: [m.name for m in JOB_SPECS[k].metrics] for k in RUNNER_EVALUATORS} | (metrics or {})
    for i, t in enumerate(layout.tables):
        for j, c in enumerate(t.columns):
            if c.evaluator not in known:
                return (
                    f"report.tables[{i}].columns[{j}].evaluator: '{c.evaluator}' is not among this "
                    f"experiment's evaluations ({', '.join(known)})"
                )
            names = declared.get(c.evaluator) or []
            if names and c.metric not in names:  # the column would stay empty: no row can match it
                return (
                    f"report.tables[{i}].columns[{j}].metric: '{c.metric}' is not a metric of "
                    f"'{c.evaluator}'{did_you_mean(c.metric, names)}; it declares {', '.join(names[:12])}"
                    + (" ..." if len(names) > 12 else "")
                )
    return None

"""Declared metrics of export rows (``specs.MetricSpec``): the report reads these, never the names.

The same rows come from two places: the ``runtimes`` evaluator (a study measures every variant on its
deployment runtimes) and ``compressbench export`` (evaluator ``export``, one variant and format at a
time). Each metric has one generic declaration (the detail table: a column per condition) and, per
registered format, a summary declaration keyed ``<metric>@<format>`` (e.g. ``latency_b1_ms@executorch``)
that reads the rows with ``format=<format>`` — so the summary gets a latency column per runtime and a
later objective can name one. ``export`` rows are declared as fallbacks: they fill a column only when the
study did not measure that runtime itself.
"""

from __future__ import annotations

from ..specs import EvaluatorSpec, MetricSpec
from .formats import formats

# (metric, label, unit, fmt, higher is better, summary column per format, order)
_METRICS = (
    ("latency_b1_ms", "latency b1 ms", "ms", "ms", False, True, 72.5),
    ("throughput_img_s", "throughput img/s", "img/s", "int", True, False, 100.0),
    ("latency_b1_iqr_ms", "latency b1 IQR ms", "ms", "ms", None, False, 100.0),
    ("top1", "top-1 %", "", "pct", True, False, 100.0),
    ("agreement", "agreement %", "", "pct", True, False, 100.0),
    ("max_abs_dlogit", "max |Δlogit|", "logit", "g", False, False, 100.0),
    ("file_bytes", "file KiB", "B", "bytes", False, False, 100.0),
    ("latency_b1_load", "load on free cores, latency b1", "", "f2", None, False, 100.0),
)
_TIMING = {"latency_b1_ms", "throughput_img_s", "latency_b1_iqr_ms", "latency_b1_load"}


def _links(name: str, fmt_name: str) -> dict[str, str]:
    """A runtime's batch-1 latency: the goal objective it measures and its spread / load rows (noise flag)."""
    if name != "latency_b1_ms":
        return {}
    return {"objective": f"{name}@{fmt_name}", "spread": "latency_b1_iqr_ms", "load": "latency_b1_load"}


def declarations(fallback: bool = False) -> tuple[MetricSpec, ...]:
    """The generic and per-format declarations (``fallback``: for ``export`` rows, see the module docstring)."""
    out = [
        MetricSpec(
            "verified",
            label="export verified",
            fmt="int",
            check=True,
            table=None,
            description="1 = the artifact ran in its runtime and agreed with the variant",
        )
    ]
    for name, label, unit, fmt, hib, _, _ in _METRICS:
        timing = name in _TIMING
        out.append(
            MetricSpec(
                name,
                label=label,
                unit=unit,
                fmt=fmt,
                higher_is_better=hib,  # type: ignore[arg-type]
                tag=None,
                protocol=("threads", "batch") if timing else (),
                description=f"{label} of the exported artifact in its runtime",
            )
        )
    for i, fmt_name in enumerate(formats.names()):
        spec = formats.spec(fmt_name)
        for name, label, unit, fmt, hib, summary, order in _METRICS:
            timing = name in _TIMING
            out.append(
                MetricSpec(
                    name,
                    label=f"{spec.label} {label}",
                    unit=unit,
                    fmt=fmt,
                    higher_is_better=hib,  # type: ignore[arg-type]
                    where={"format": fmt_name},
                    key=f"{name}@{fmt_name}",
                    summary=summary,
                    fallback=fallback and summary,
                    order=order + i / 100,
                    table=None,
                    tag=("realised",) if timing else None,
                    protocol=("threads", "batch") if timing else (),
                    note="{label}: {condition}." if timing and summary else "",
                    description=f"{label} of the {fmt_name} export in {spec.label}",
                    **_links(name, fmt_name),
                )
            )
    return tuple(out)


EXPORT_SPEC = EvaluatorSpec(
    metrics=declarations(fallback=True),
    version=1,
    description="compressbench export: an exported artifact verified and timed in its runtime",
)

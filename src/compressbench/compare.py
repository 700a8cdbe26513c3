"""``compressbench compare STORE_A STORE_B``: which numbers differ between two results stores, and which
recorded environment fields (:mod:`compressbench.provenance`) could explain it.

On one machine an unchanged experiment is bit-identical; across machines CPU kernels, library versions
and generated datasets move values by small amounts. This command pairs the measurements of two stores
by (experiment, variant, seed, evaluator, condition, metric) and prints every pair whose values are not
identical, with both values — except timing measurements, which differ on every run: a metric is timing
when its stored unit or its declared unit (the declarations stored with the run, else ``MetricSpec``'s
``unit`` of the evaluator registered here, or of the runner's own rows) is a time (``s``, ``ms`` ...) or
a rate (``img/s``). Then it prints every field of the runs' host
and versions records that differs (``host.cpu_capability: AVX512 | AVX2``), over the runs that wrote the
compared rows.

Exit status 0 whatever differs (the output is the answer); 2 with one line for a missing or damaged store.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import UserError
from .provenance import flatten
from .store import ResultStore

TIME_UNITS = {"s", "ms", "us", "µs", "ns", "min", "h"}
KEY = ("experiment", "variant", "seed", "evaluator", "condition", "metric")


def is_timing_unit(unit: str | None) -> bool:
    """A duration or a rate per second (what differs on every run, not across machines only)."""
    u = (unit or "").strip()
    return u in TIME_UNITS or u.endswith("/s")


def declared_unit(evaluator: str, metric: str) -> str:
    """The unit ``metric`` is declared with by ``evaluator`` (a registered evaluator or the runner's own
    ``train`` / ``compress`` rows); '' when undeclared or the evaluator is unknown here."""
    from .job_metrics import JOB_SPECS
    from .registry import evaluators

    spec = JOB_SPECS.get(evaluator)
    if spec is None and evaluator in evaluators.names():
        spec = evaluators.spec(evaluator)
    m = spec.metric(metric) if spec is not None else None
    return m.show.unit if m is not None else ""


def _stored_units(store: ResultStore, run_ids: set[str]) -> dict[tuple[str, str], str]:
    """``{(evaluator, metric): unit}`` from the declarations the runs stored with their rows."""
    out: dict[tuple[str, str], str] = {}
    for records in store.declarations(run_ids).values():
        for ev, rec in records.items():
            for m in rec.get("metrics", []):
                out.setdefault((ev, m["name"]), (m.get("show") or {}).get("unit", ""))
    return out


@dataclass
class Comparison:
    """What :func:`compare_stores` found."""

    compared: int = 0  # pairs of non-timing values present in both stores
    timing_metrics: list[str] = field(default_factory=list)  # evaluator/metric left out as timing
    values: list[tuple[tuple, float | None, float | None]] = field(default_factory=list)  # differing pairs
    only_a: list[tuple] = field(default_factory=list)
    only_b: list[tuple] = field(default_factory=list)
    environment: list[tuple[str, Any, Any]] = field(default_factory=list)  # (field, in A, in B)


def _open(path: str | Path, label: str) -> ResultStore:
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{label} {p}: no such results store")
    return ResultStore(p)


def _same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return a == b or (math.isnan(a) and math.isnan(b))


def _values(store: ResultStore) -> tuple[dict[tuple, float | None], dict[tuple, str], set[str]]:
    """Successful rows by key, the unit of each key's metric (stored, else declared), and the run ids."""
    vals: dict[tuple, float | None] = {}
    units: dict[tuple, str] = {}
    runs: set[str] = set()
    for r in store.rows():
        if r.get("error"):
            continue
        k = tuple(r[c] for c in KEY)
        vals[k] = r["value"]
        units[k] = r.get("unit") or ""
        if r.get("run_id"):
            runs.add(r["run_id"])
    return vals, units, runs


def _environment(store: ResultStore, run_ids: set[str]) -> dict[str, Any]:
    """Flattened host / versions / git of the runs that wrote the rows (all runs if none did); a field the
    runs disagree on reads 'v1 | v2'."""
    runs = [r for r in store.runs() if not run_ids or r["run_id"] in run_ids]
    seen: dict[str, list[Any]] = {}
    for r in runs:
        rec = {"host": r["host_json"], "versions": r["versions_json"], "git": r["git_hash"], "device": r["device"]}
        for k, v in flatten(rec).items():
            vs = seen.setdefault(k, [])
            if v not in vs:
                vs.append(v)
    return {k: vs[0] if len(vs) == 1 else " | ".join(map(str, vs)) for k, vs in seen.items()}


def compare_stores(a: str | Path, b: str | Path) -> Comparison:
    """Pair the two stores' measurements and environments (see the module docstring)."""
    sa, sb = _open(a, "STORE_A"), _open(b, "STORE_B")
    va, ua, ra = _values(sa)
    vb, ub, rb = _values(sb)
    out = Comparison()
    timing: set[str] = set()
    units = {**_stored_units(sb, rb), **_stored_units(sa, ra)}  # declared with the rows; else this installation's
    for k in sorted(set(va) & set(vb), key=str):
        ev, metric = k[3], k[5]
        if (ev, metric) not in units:
            units[ev, metric] = declared_unit(ev, metric)
        if is_timing_unit(ua.get(k)) or is_timing_unit(ub.get(k)) or is_timing_unit(units[ev, metric]):
            timing.add(f"{ev}/{metric}")
            continue
        out.compared += 1
        if not _same(va[k], vb[k]):
            out.values.append((k, va[k], vb[k]))
    out.only_a = sorted(set(va) - set(vb), key=str)
    out.only_b = sorted(set(vb) - set(va), key=str)
    out.timing_metrics = sorted(timing)
    ea, eb = _environment(sa, ra), _environment(sb, rb)
    for f in sorted(set(ea) | set(eb)):
        x, y = ea.get(f, "(absent)"), eb.get(f, "(absent)")
        if x != y:
            out.environment.append((f, x, y))
    return out


def _short(v: Any, n: int = 80) -> str:
    s = str(v)
    return s if len(s) <= n else s[: n - 3] + "..."


def _fmt(v: float | None) -> str:
    return "(none)" if v is None else f"{v:.10g}"


def render(c: Comparison, a: str, b: str, limit: int = 50) -> str:
    """The printed answer: differing values (with both), rows in one store only, differing environment."""
    lines = [
        f"A: {a}",
        f"B: {b}",
        f"values: {c.compared} non-timing measurements in both stores, {len(c.values)} differ"
        + (f" (timing left out by unit: {', '.join(c.timing_metrics)})" if c.timing_metrics else ""),
    ]
    for k, x, y in c.values[:limit]:
        exp, variant, seed, ev, cond, metric = k
        delta = f"  Δ {y - x:+.3g}" if x is not None and y is not None and not (math.isnan(x) or math.isnan(y)) else ""
        lines.append(
            f"  {exp} / {variant} / seed {seed} / {ev} / {cond or '-'} / {metric}: {_fmt(x)} | {_fmt(y)}{delta}"
        )
    if len(c.values) > limit:
        lines.append(f"  ... and {len(c.values) - limit} more")
    for label, only in (("A", c.only_a), ("B", c.only_b)):
        if only:
            lines.append(f"only in {label}: {len(only)} measurements, e.g. {' / '.join(map(str, only[0]))}")
    lines.append(f"environment: {len(c.environment)} fields differ" + (" (A | B)" if c.environment else ""))
    for f, x, y in c.environment:
        lines.append(f"  {f}: {_short(x)} | {_short(y)}")
    return "\n".join(lines)


def add_compare_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("store_a", metavar="STORE_A", help="a results store (SQLite)")
    p.add_argument("store_b", metavar="STORE_B", help="another results store")
    p.add_argument("--limit", type=int, default=50, help="differing values to print (default 50)")


def compare_command(args: argparse.Namespace) -> int:
    c = compare_stores(args.store_a, args.store_b)
    print(render(c, args.store_a, args.store_b, args.limit))
    return 0

"""``compressbench verify STORE [--cache DIR] [--rehash]``: is every number in the store the number that was
measured?

Two checks, the second only with the cache the store was filled from:

1. **The store's own hashes.** Every row of every table carries ``row_sha256`` (:mod:`compressbench.store`);
   each is recomputed. A row that fails was changed after it was written (a flipped bit, an edit).
2. **Re-derivation from the job records.** For every successful result row, its job's record
   (``<cache>/jobs/<job_key>/result.json``) is verified as a whole (:func:`~compressbench.execute.cache.
   inspect_cached`: its content hash, its files' checksums) and the row is derived from it again exactly as the
   run derived it (:func:`~compressbench.jobs.measurement_rows`: the measurement, its evaluator / condition /
   metric / value / tag / unit, the seed, method and budget from the record's spec, the budget achieved from the
   record of the job that made the model, the record's own hash). The row must equal it field by field; every
   measurement of a record must have its row. Labels (experiment, variant names, run, time) are not part of a
   job record — a renamed variant reuses the cache — so they are checked by the row's hash alone.

Rows written before rows carried hashes (a schema-2 store) are reported as such; with ``--rehash`` each one the
record re-derives exactly gets its hashes (nothing else is written). Exit codes: 0 every row checks out, 1 some
row fails (each named, up to ``--show``), 2 the store cannot be read at all (one line).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import Budget
from .execute.cache import inspect_cached, job_dir
from .jobs import BASELINE, ModelOutcome, measurement_rows
from .store import HASHED, ResultStore, TableCheck, condition_str, row_hash

EXIT_OK, EXIT_PROBLEMS = 0, 1


@dataclass
class VerifyReport:
    """What :func:`verify_store` found."""

    store: Path
    tables: dict[str, TableCheck]
    cache: Path | None = None
    derived: int = 0  # result rows re-derived from their job record and equal to it
    problems: list[str] = field(default_factory=list)  # one line each: rows that fail or differ
    unhashed_equal: dict[int, tuple[str, str]] = field(default_factory=dict)  # id -> hashes (rehash candidates)
    rehashed: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems and not any(t.bad for t in self.tables.values())


def _record(cache: Path, key: str, memo: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """(the verified record of job ``key``, None) or (None, why not)."""
    if key not in memo:
        res, problem = inspect_cached(cache, key)
        if res is None:
            memo[key] = (None, problem or "not in the cache")
        else:
            data = json.loads((job_dir(cache, key) / "result.json").read_bytes())
            memo[key] = (data, None)
    return memo[key]


def _derived(cache: Path, key: str, memo: dict[str, Any]) -> tuple[dict[tuple, dict[str, Any]] | None, str | None]:
    """The rows a job's record gives, by (evaluator, condition, metric), with its labels left out, or why none."""
    rec, why = _record(cache, key, memo)
    if rec is None:
        return None, why
    spec = rec.get("spec") or {}
    producer_key = spec.get("model_job", key) if rec.get("kind") == "evaluate" else key
    prod, pwhy = _record(cache, producer_key, memo) if producer_key != key else (rec, None)
    if prod is None:
        return None, f"the record of the job that made its model ({producer_key[:12]}) is {pwhy}"
    pspec = prod.get("spec") or {}
    b = pspec.get("budget") if prod.get("kind") == "compress" else None
    budget = Budget(b["kind"], float(b["value"])) if isinstance(b, dict) else None
    base = {
        "method": pspec.get("method", BASELINE) if prod.get("kind") == "compress" else BASELINE,
        "budget_kind": budget.kind if budget else None,
        "budget_target": budget.value if budget else None,
        "budget_achieved": ModelOutcome.from_info(prod.get("info") or {}).budget_achieved(budget),
        "seed": spec.get("seed"),
        "job_key": key,
    }
    default = spec.get("evaluator") if rec.get("kind") == "evaluate" else rec.get("kind")
    out: dict[tuple, dict[str, Any]] = {}
    for r in measurement_rows(base, default, None, rec["measurements"], rec["record_sha256"]):
        cond = r["condition"] if isinstance(r["condition"], str) else condition_str(r["condition"])
        cj = "{}" if isinstance(r["condition"], str) else json.dumps(r["condition"], sort_keys=True, default=str)
        out.setdefault((r["evaluator"], cond, r["metric"]), {**r, "condition": cond, "condition_json": cj})
    return out, None


def _diff(stored: dict[str, Any], want: dict[str, Any]) -> list[str]:
    """The hashed fields where a stored row and its re-derived form differ (``record_sha256`` left out for an
    unhashed row)."""
    probe = {**want}
    if stored.get("row_sha256") is None:
        probe["record_sha256"] = None
    a = dict(zip([c for c, _ in HASHED["results"]], _values(stored)))
    b = dict(zip([c for c, _ in HASHED["results"]], _values(probe)))
    return [f"{k} {a[k]!r} != {b[k]!r}" for k in a if a[k] != b[k]]


def _values(row: dict[str, Any]) -> list[Any]:
    from .store import hashed_values

    return list(hashed_values("results", row)[:-1])


def _rederive(store_rows: list[dict[str, Any]], cache: Path, rep: VerifyReport, bad_ids: set[int]) -> None:
    memo: dict[str, Any] = {}
    seen: dict[tuple, set[tuple]] = {}  # (job, experiment, variant, run) -> the measurements that have a row
    for r in store_rows:
        if r["error"] is not None:
            continue
        if r["id"] in bad_ids:  # reported by the hash check; its measurement is not "missing"
            seen.setdefault((r["job_key"], r["experiment"], r["variant"], r["run_id"] or ""), set()).add(
                (r["evaluator"], r["condition"], r["metric"])
            )
            continue
        where = (
            f"row id {r['id']} ({r['experiment']} / {r['variant']} / {r['evaluator']} {r['condition']} "
            f"{r['metric']})".replace("  ", " ")
        )
        rows, why = _derived(cache, r["job_key"], memo)
        if rows is None:
            rep.problems.append(f"{where}: job {r['job_key'][:12]}'s record cannot be used: {why}")
            continue
        k = (r["evaluator"], r["condition"], r["metric"])
        want = rows.get(k)
        if want is None:
            rep.problems.append(f"{where}: its job's record has no such measurement")
            continue
        full = {
            **want,
            "experiment": r["experiment"],
            "variant": r["variant"],
            "run_id": r["run_id"],
            "created_at": r["created_at"],
            "evaluator_version": r["evaluator_version"],
        }
        diff = _diff(r, full)
        if diff:
            rep.problems.append(f"{where}: differs from its job record: {'; '.join(diff[:3])}")
            continue
        rep.derived += 1
        seen.setdefault((r["job_key"], r["experiment"], r["variant"], r["run_id"] or ""), set()).add(k)
        if r.get("row_sha256") is None:
            rep.unhashed_equal[r["id"]] = (want["record_sha256"], row_hash("results", full))
    by_job: dict[tuple, set[tuple]] = {}
    for (job, exp, var, _run), keys in seen.items():  # a job's rows may come from several runs
        by_job.setdefault((job, exp, var), set()).update(keys)
    for (job, exp, var), keys in by_job.items():
        rows, _ = _derived(cache, job, memo)
        missing = sorted(set(rows or {}) - keys)
        if missing:
            ev, cond, metric = missing[0]
            rep.problems.append(
                f"job {job[:12]} ({exp} / {var}): {len(missing)} measurement(s) of its record have "
                f"no row (first: {ev} {cond} {metric})".replace("  ", " ")
            )


def _check_superseded(s: ResultStore, raw: list[dict[str, Any]], rep: VerifyReport) -> None:
    """Each ``superseded`` row (``compressbench remeasure``) names two jobs that both have rows of its experiment,
    variant and evaluator: the superseded one and the one kept instead."""
    if rep.tables.get("superseded") is None or rep.tables["superseded"].bad or not rep.tables["superseded"].rows:
        return
    have = {(r["experiment"], r["variant"], r["evaluator"], r["job_key"]) for r in raw if r["error"] is None}
    for sup in s.superseded():
        for role, key in (("superseded", sup["job_key"]), ("kept", sup["by_job_key"])):
            if (sup["experiment"], sup["variant"], sup["evaluator"], key) not in have:
                rep.problems.append(
                    f"superseded row of {sup['experiment']} / {sup['variant']} {sup['evaluator']}: the "
                    f"{role} job {key[:12]} has no rows in the store"
                )


def verify_store(store: str | Path, cache: str | Path | None = None, rehash: bool = False) -> VerifyReport:
    """Check a store's hashes and, with its ``cache``, re-derive every result row (see the module docstring).
    Raises :class:`~compressbench.errors.StoreError` (one line) when the store cannot be read."""
    p = Path(store)
    if not p.is_file():
        raise FileNotFoundError(f"no results store at {p}")
    s = ResultStore(p)
    rep = VerifyReport(p, s.verify(), Path(cache) if cache is not None else None)
    bad_ids = {i for i, _ in rep.tables["results"].bad}
    if rep.cache is not None:
        if not (rep.cache / "jobs").is_dir():
            raise FileNotFoundError(f"--cache: {rep.cache} holds no jobs folder (give the run's cache_dir)")
        raw = s.raw_rows()
        _rederive(raw, rep.cache, rep, bad_ids)
        _check_superseded(s, raw, rep)
        if rehash and rep.unhashed_equal:
            rep.rehashed = s.rehash(rep.unhashed_equal)
    return rep


def render(rep: VerifyReport, show: int = 20) -> list[str]:
    """The report as lines: one per table, one for the re-derivation, then the problems (up to ``show``)."""
    lines = []
    for name, t in rep.tables.items():
        if not t.rows:
            continue
        parts = [f"{t.rows - len(t.bad) - t.unhashed} ok"]
        if t.bad:
            parts.append(f"{len(t.bad)} FAIL their hash")
        if t.unhashed:
            parts.append(f"{t.unhashed} carry no row hash (written by schema 2, before hashes)")
        lines.append(f"{name}: {t.rows} row(s): " + ", ".join(parts))
    for _, what in rep.tables["results"].bad[:show]:
        lines.append(f"  FAIL {what}: its hash does not match its values")
    for name, t in rep.tables.items():
        if name != "results":
            lines += [f"  FAIL {what}: its hash does not match its values" for _, what in t.bad[:show]]
    if rep.cache is not None:
        lines.append(
            f"re-derived from the job records in {rep.cache}: {rep.derived} row(s) equal, "
            f"{len(rep.problems)} problem(s)"
        )
        lines += [f"  {p}" for p in rep.problems[:show]]
        if len(rep.problems) > show:
            lines.append(f"  ... and {len(rep.problems) - show} more (--show N)")
        unhashed = rep.tables["results"].unhashed
        if unhashed:
            lines.append(
                f"{rep.rehashed} unhashed row(s) given their hashes (--rehash)"
                if rep.rehashed
                else f"{len(rep.unhashed_equal)} of {unhashed} unhashed row(s) equal their job record: "
                f"`--rehash` gives them their hashes"
            )
    else:
        lines.append("(give --cache DIR to re-derive every row from its job record)")
    lines.append(
        "OK: every row checks out"
        if rep.ok
        else "PROBLEMS: see above; `compressbench run` replaces damaged rows of its jobs from the verified cache"
    )
    return lines


def add_verify_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("store", help="the results store (SQLite)")
    p.add_argument(
        "--cache",
        metavar="DIR",
        help="the cache_dir the store was filled from: re-derive every row from its job record",
    )
    p.add_argument(
        "--rehash",
        action="store_true",
        help="with --cache: give rows written before hashes (schema 2) that equal their job record their hashes",
    )
    p.add_argument("--show", type=int, default=20, metavar="N", help="problems listed (default 20)")


def verify_command(args: argparse.Namespace) -> int:
    if args.rehash and not args.cache:
        raise FileNotFoundError("--rehash needs --cache DIR (rows get hashes only after they are re-derived)")
    rep = verify_store(args.store, args.cache, rehash=args.rehash)
    for line in render(rep, args.show):
        print(line)
    return EXIT_OK if rep.ok else EXIT_PROBLEMS


__all__ = ["verify_store", "VerifyReport", "render", "add_verify_arguments", "verify_command"]

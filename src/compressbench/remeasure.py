"""``compressbench remeasure STORE --evaluator efficiency``: re-time the timing rows of a store — by default those
flagged noisy (:mod:`compressbench.report.noise`), with ``--all`` every variant's, with ``--variant`` the named
ones' — on the models already in the run's cache, and keep the quieter measurement.

Nothing is rebuilt or retrained. For each timing job to re-time (an evaluate job of an evaluator whose spec
``measures_time``), its record in the cache gives the exact spec the run timed with: the evaluator's params
(threads, warm-up, repeats, throughput batch, ONNX Runtime, fresh process ...), the images and seed, and the
jobs that made the model and its parent. Before anything is timed, every such record and the model files it
lists are verified (:func:`~compressbench.execute.cache.inspect_cached`: the record's content hash, each file's
size and sha256 — the trust model of docs/reliability.md) and the model is loaded as the run loaded it (weights
only); a record or file that is missing or changed is refused in one line, nothing timed or written.

The re-timing is an ordinary evaluate job of the cache (``jobs/<key>/result.json``: the original spec plus
``remeasure_of`` and ``remeasured_at``, so a new key), and its rows are ordinary rows of the same experiment,
variant, seed, evaluator, condition and metric labels under that key — ``compressbench verify --cache`` re-derives
them from their record like any other. The run that re-timed is a new row of ``runs`` (its host: CPU, threads,
versions); each timing row carries its own load (``latency_b1_load``). Of the two measurements the quieter is
kept: fewer noisy timing rows, then the lower worst IQR / median (ties: the new one). The other job's rows of the
evaluator are recorded in the store's ``superseded`` table (which job replaced them, when, why) in the same
transaction as the new rows; every reader (report, recommend, findings, results, compare, export) then sees only
the kept one, and ``compressbench results STORE --superseded`` lists what was replaced. Nothing is deleted.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import difflib
import json
import logging
import math
import os
import re
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from .errors import UserError
from .jobs import EvaluateSpec, Job, JobLabels, dataset_record
from .report import noise
from .report.noise import Timing, frame_timings
from .store import ResultStore, open_existing

log = logging.getLogger("compressbench")


class RemeasureError(UserError):
    """Input ``remeasure`` refuses (one line; the CLI exits 2, nothing is timed or written)."""


@dataclass(frozen=True)
class RemeasureSpec(EvaluateSpec):
    """An evaluate job that re-times another: its spec plus which job it re-times and when (a new key: each
    re-timing is its own measurement, never a cache hit)."""

    remeasure_of: str = ""
    at: str = ""

    def key_spec(self) -> dict[str, Any]:
        return {**super().key_spec(), "remeasure_of": self.remeasure_of, "remeasured_at": self.at}


@dataclass
class Target:
    """One timing job of the store to re-time: its current rows and what they say."""

    experiment: str
    variant: str
    seed: int
    job_key: str
    rows: list[dict[str, Any]]
    timings: list[Timing]
    job: Job | None = None  # the re-timing job (after the checks)
    upstream: dict[str, Any] = field(default_factory=dict)  # the verified results of its model and parent jobs
    run: dict[str, Any] = field(default_factory=dict)  # the run that timed it
    cache: Path | None = None  # the cache holding its records (the run's, or --cache)

    @property
    def noisy(self) -> bool:
        return any(t.noisy for t in self.timings)


@dataclass
class Outcome:
    """What re-timing one job did: its attempts, and which measurement is kept."""

    target: Target
    new_key: str | None = None  # the kept re-timing, or the last attempt when the old one is kept
    new_timings: list[Timing] = field(default_factory=list)
    kept: str = ""  # "new" | "old"
    why: str = ""
    error: str | None = None
    attempts: int = 0


# ------------------------------------------------------------------------------------------------- judging
def _timings(rows: list[dict[str, Any]], evaluator: str) -> list[Timing]:
    from .registry import evaluators

    return frame_timings(pd.DataFrame(rows), {evaluator: evaluators.spec(evaluator)}) if rows else []


def quietness(ts: list[Timing]) -> tuple[int, float]:
    """(noisy timing rows, worst IQR / median): lower is quieter (an unknown spread counts as 0)."""
    spreads = [t.spread for t in ts if not math.isnan(t.spread)]
    return sum(t.noisy for t in ts), max(spreads, default=0.0)


def _state(ts: list[Timing]) -> str:
    n, worst = quietness(ts)
    return (f"{n} noisy timing row(s)" if n else "quiet") + f", worst IQR/median {worst:.2f}"


def _label(t: Timing) -> tuple[str, str]:
    """A timing's identity across two measurements (its device or runtime version may differ): its metric and,
    when it has one, its ONNX dtype."""
    m = re.search(r"(?:^|,)dtype=([^,]*)", t.condition)
    return t.metric, m.group(1) if m else ""


# ------------------------------------------------------------------------------------------------- selecting
def _check_evaluator(name: str) -> None:
    from .registry import evaluators

    known = evaluators.names()
    timing = [n for n in known if evaluators.spec(n).measures_time]
    if name not in known:
        near = difflib.get_close_matches(name, known, n=1)
        raise RemeasureError(
            f"--evaluator: no evaluator '{name}'{f'; did you mean {near[0]!r}?' if near else ''} "
            f"(timing evaluators: {', '.join(timing) or 'none'})"
        )
    if not evaluators.spec(name).measures_time:
        raise RemeasureError(
            f"--evaluator {name}: it does not measure time; remeasure re-times timing evaluators "
            f"({', '.join(timing) or 'none'})"
        )


def select(
    store: ResultStore,
    evaluator: str,
    variants: list[str] | None = None,
    every: bool = False,
    experiment: str | None = None,
) -> tuple[list[Target], list[Target]]:
    """(the timing jobs to re-time, every timing job of ``evaluator``) in the store's current rows."""
    exps = store.experiments()
    if experiment is not None and experiment not in exps:
        raise RemeasureError(f"--experiment: no experiment '{experiment}' in {store.path} (has: {', '.join(exps)})")
    rows = store.rows(experiment)
    mine = [r for r in rows if r["evaluator"] == evaluator and r["error"] is None]
    names = list(dict.fromkeys(r["variant"] for r in rows))
    for v in variants or []:
        if v not in names:
            near = [n for n in names if v in n][:1] or difflib.get_close_matches(v, names, n=1)
            raise RemeasureError(
                f"--variant: no variant '{v}' in {store.path}"
                f"{f'; did you mean {near[0]!r}?' if near else ''} (known: {', '.join(names)})"
            )
        if not any(r["variant"] == v for r in mine):
            raise RemeasureError(f"--variant {v}: it has no {evaluator} rows in {store.path} (nothing to re-time)")
    if not mine:
        raise RemeasureError(f"{store.path}: no {evaluator} rows to re-time")
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in mine:
        groups.setdefault((r["experiment"], r["variant"], int(r["seed"] or 0), r["job_key"]), []).append(r)
    every_target = [Target(e, v, s, k, g, _timings(g, evaluator)) for (e, v, s, k), g in groups.items()]
    if every:
        chosen = every_target
    elif variants:
        chosen = [t for t in every_target if t.variant in variants]
    else:
        chosen = [t for t in every_target if t.noisy]
    return chosen, every_target


# ------------------------------------------------------------------------------------------------- checking
def _run_config(store: ResultStore, t: Target, runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    run = runs.get(t.rows[0]["run_id"] or "")
    if run is None:
        raise RemeasureError(
            f"the store has no record of the run that timed '{t.variant}' (run "
            f"{t.rows[0]['run_id']}): its cache and config are unknown"
        )
    return run


def _verified(cache: Path, key: str, what: str, upstream: dict[str, Any] | None = None) -> Any:
    from .execute.cache import inspect_cached

    res, why = inspect_cached(cache, key, upstream)
    if res is None:
        state = f"is damaged ({why})" if why else "is not there"
        raise RemeasureError(
            f"{what} (job {key[:12]}) {state} in the cache {cache}: give the cache the run used with "
            f"--cache, or rerun `compressbench run` to rebuild it (remeasure rebuilds nothing)"
        )
    return res


def prepare(
    store: ResultStore, targets: list[Target], evaluator: str, cache: str | Path | None = None, trust: bool = False
) -> dict[str, Any]:
    """Check every target before anything is timed: its run, its config, the records of its timing job, of the job
    that made its model and of the parent's, their files' checksums, its params here. Fills each target's
    re-timing job. Returns the experiments' resolved configs by run id."""
    from .config import resolve_config
    from .deploy.locate import check_code_trust
    from .registry import evaluators

    spec_ev = evaluators.spec(evaluator)
    store.check_writable()
    runs = {r["run_id"]: r for r in store.runs()}
    resolved: dict[str, Any] = {}
    at = dt.datetime.now(dt.timezone.utc).isoformat()
    for t in targets:
        t.run = _run_config(store, t, runs)
        cfg = t.run.get("config_json") or {}
        where = Path(cache) if cache is not None else Path(cfg.get("cache_dir") or "")
        if not (where / "jobs").is_dir():
            raise RemeasureError(
                f"the cache of the run that timed '{t.variant}' ({where}) holds no jobs folder: give "
                f"the run's cache_dir with --cache"
            )
        if not os.access(where / "jobs", os.W_OK | os.X_OK):
            raise RemeasureError(
                f"the cache {where} is not writable: the re-timing is a new job of it; fix the "
                f"permissions or copy the cache and give --cache"
            )
        what = f"the {evaluator} record of '{t.variant}' seed {t.seed}"
        rec_res = _verified(where, t.job_key, what)
        rec = json.loads((rec_res.dir / "result.json").read_bytes())
        spec = rec.get("spec") or {}
        if rec.get("kind") != "evaluate" or spec.get("evaluator") != evaluator:
            raise RemeasureError(f"{what} (job {t.job_key[:12]}) is not an {evaluator} evaluate job in the cache")
        model = _verified(where, spec["model_job"], f"the model of '{t.variant}' seed {t.seed}")
        parent = _verified(where, spec["parent_job"], f"the parent model of '{t.variant}' seed {t.seed}")
        _verified(where, t.job_key, what, {spec["model_job"]: model, spec["parent_job"]: parent})
        run_id = t.run["run_id"]
        if run_id not in resolved:
            check_code_trust(cfg, trust, store.path, "resolving it again", RemeasureError)
            try:
                resolved[run_id] = resolve_config(cfg)
            except UserError as e:
                raise RemeasureError(f"the config of run {run_id} no longer resolves here: {e}") from None
        exp = resolved[run_id]
        ds = next(
            (
                p.dataset
                for p in exp.parts
                if json.dumps(dataset_record(p.dataset), sort_keys=True, default=str)
                == json.dumps(spec.get("dataset"), sort_keys=True, default=str)
            ),
            None,
        )
        if ds is None:
            raise RemeasureError(
                f"{what}: its images ({(spec.get('dataset') or {}).get('name')}) are not a dataset of "
                f"its run's config here"
            )
        try:
            params = spec_ev.params.model_validate(spec.get("params") or {}) if spec_ev.params else None
        except Exception as e:  # pydantic: the recorded params do not validate under this version
            raise RemeasureError(f"{what}: its params do not validate here ({str(e).splitlines()[0][:160]})") from None
        first = t.rows[0]
        from .config import Budget

        budget = Budget(first["budget_kind"], float(first["budget_target"])) if first["budget_kind"] else None
        new = RemeasureSpec(
            evaluator,
            params,
            spec.get("eval_subset"),
            ds,
            int(spec["seed"]),
            spec["model_job"],
            spec["parent_job"],
            remeasure_of=t.job_key,
            at=at,
        )
        from .config import BASELINE

        labels = JobLabels(
            t.experiment,
            t.seed,
            t.variant,
            first["method"],
            budget,
            evaluator,
            spec_ev.version,
            is_parent=first["method"] == BASELINE,
        )
        t.job = retime_job(new, labels)
        t.upstream, t.cache = {spec["model_job"]: model, spec["parent_job"]: parent}, where
    return resolved


# ------------------------------------------------------------------------------------------------- re-timing
def retime_job(spec: RemeasureSpec, labels: JobLabels) -> Job:
    """The evaluate job of one re-timing: its key from its spec (which names the job it re-times and when)."""
    from .plan import content_key

    key = content_key({"kind": "evaluate", "spec": spec.key_spec(), "version": labels.evaluator_version})
    return Job("evaluate", key, spec, [spec.model_job, spec.parent_job], labels)


def _superseded(loser: str, winner: str, t: Target, run_id: str, why: str) -> dict[str, Any]:
    return {
        "experiment": t.experiment,
        "variant": t.variant,
        "seed": t.seed,
        "evaluator": t.rows[0]["evaluator"],
        "job_key": loser,
        "by_job_key": winner,
        "run_id": run_id,
        "at": dt.datetime.now(dt.timezone.utc).isoformat(),
        "why": why,
    }


def remeasure(
    store_path: str | Path,
    evaluator: str = "efficiency",
    variants: list[str] | None = None,
    every: bool = False,
    experiment: str | None = None,
    cache: str | Path | None = None,
    trust: bool = False,
    progress: Callable[[str], None] | None = None,
    tries: int = 1,
) -> list[Outcome]:
    """Re-time the store's timing jobs of ``evaluator`` (see the module docstring), each up to ``tries`` times
    until the kept measurement is quiet. Raises :class:`RemeasureError` (one line; nothing timed or written) for
    a path that is not a store, an evaluator that does not time, an unknown variant, a cache whose records or
    files are missing or changed."""
    import torch

    from .declarations import record_run
    from .provenance import host_info, versions
    from .report.data import latest_config
    from .runner import JobEnv, _git_hash
    from .train import resolve_device

    if not 1 <= tries <= 20:
        raise RemeasureError(f"--tries must be between 1 and 20, got {tries}")
    _check_evaluator(evaluator)
    store = open_existing(store_path)
    targets, _ = select(store, evaluator, variants, every, experiment)
    if not targets:
        return []
    resolved = prepare(store, targets, evaluator, cache, trust)
    say = progress or (lambda s: None)
    run_ids: dict[str, str] = {}
    all_runs = store.runs()
    out = []
    for i, t in enumerate(targets, 1):
        exp = resolved[t.run["run_id"]]
        if t.experiment not in run_ids:
            run_id = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]
            if exp.threads:
                torch.set_num_threads(exp.threads)
            mine = [r for r in all_runs if r.get("experiment") in (t.experiment, t.experiment.rsplit(".", 1)[0])]
            cfg = latest_config(mine) or t.run.get("config_json") or {}  # readers keep reading the latest config
            store.add_run(
                run_id,
                t.run.get("experiment") or t.experiment,
                dt.datetime.now(dt.timezone.utc).isoformat(),
                cfg,
                _git_hash(),
                versions(exp),
                str(resolve_device(exp.device)),
                host_info(),
                plugins=exp.plugins.to_json(),
            )
            record_run(store, run_id, {evaluator})
            run_ids[t.experiment] = run_id
        run_id = run_ids[t.experiment]
        assert t.job is not None and t.cache is not None
        where = t.cache
        env = JobEnv(where.resolve(), resolve_device(exp.device), False, exp.plugins)
        out.append(_retime(store, t, env, run_id, evaluator, tries, f"remeasure [{i}/{len(targets)}]", say))
    return out


def _retime(
    store: ResultStore,
    t: Target,
    env: Any,
    run_id: str,
    evaluator: str,
    tries: int,
    tag: str,
    say: Callable[[str], None],
) -> Outcome:
    """Up to ``tries`` re-timings of one job, each compared with the measurement kept so far (the loser's rows
    superseded in the same transaction as the new rows), until the kept one is quiet."""
    from .execute.cache import execute_job
    from .runner import job_evaluate, job_rows

    assert t.job is not None and t.cache is not None
    o = Outcome(t)
    cur_key, cur = t.job_key, t.timings
    for attempt in range(1, tries + 1):
        now = dt.datetime.now(dt.timezone.utc).isoformat()
        job = (
            t.job
            if attempt == 1
            else retime_job(dataclasses.replace(t.job.spec, remeasure_of=cur_key, at=now), t.job.labels)
        )  # type: ignore[arg-type]
        more = f", attempt {attempt}/{tries}" if tries > 1 else ""
        say(f"{tag} {job.describe()} ({'noisy' if t.noisy else 'asked'}{more}) ...")
        res = execute_job(job, t.cache, lambda j, d, up: job_evaluate(j, d, up, env), t.upstream)
        if res.error:
            o.error = res.error
            say(f"{tag} {t.variant} seed {t.seed}: FAILED ({res.error}); the kept rows stay")
            break
        o.attempts = attempt
        rows, arts = job_rows(job, res, t.upstream, run_id)
        new = _timings([{**r, "id": 0, "condition": _cond(r["condition"])} for r in rows], evaluator)
        if quietness(new) <= quietness(cur):
            why = f"re-timed: the new measurement is quieter or as quiet ({_state(new)}; was {_state(cur)})"
            sup = _superseded(cur_key, job.key, t, run_id, why)
            cur_key, cur = job.key, new
        else:
            why = f"re-timed: the new measurement was noisier ({_state(new)}; the kept one {_state(cur)})"
            sup = _superseded(job.key, cur_key, t, run_id, why)
        store.add_job(rows, arts, superseded=[sup])
        o.why = why
        o.new_key, o.new_timings = (cur_key, cur) if cur_key != t.job_key else (job.key, new)
        if not any(x.noisy for x in cur):
            break
    o.kept = "new" if cur_key != t.job_key else "old"
    if o.attempts:
        say(
            f"{tag} {t.variant} seed {t.seed}: kept the {o.kept} measurement"
            + (f" after {o.attempts} attempt(s)" if tries > 1 else "")
        )
    return o


def _cond(c: Any) -> str:
    from .store import condition_str

    return c if isinstance(c, str) else condition_str(c)


# ------------------------------------------------------------------------------------------------- showing
def _fmt(t: Timing | None) -> str:
    if t is None:
        return "-"
    iqr = t.spread * t.value if not math.isnan(t.spread) else math.nan
    load = "" if math.isnan(t.load) else f", load {t.load:.2f}"
    return f"{t.value:.3g} (IQR {iqr:.2g}{load}) {'NOISY' if t.noisy else 'quiet'}"


def lines(outcomes: list[Outcome]) -> list[str]:
    """Per re-timed job: each timing's old median (IQR, load) and noisy flag -> the new one, and which is kept."""
    out = []
    for o in outcomes:
        t = o.target
        head = f"{t.experiment} / {t.variant} seed {t.seed}"
        if o.error:
            out.append(f"{head}: re-timing FAILED ({o.error}); the old rows stay")
            continue
        kept = o.new_key if o.kept == "new" else t.job_key
        tries = f" after {o.attempts} re-timing(s)" if o.attempts > 1 else ""
        out.append(f"{head}: kept the {o.kept} measurement (job {(kept or '')[:12]}){tries}: {o.why}")
        new = {_label(n): n for n in o.new_timings}
        for old in t.timings:
            metric, dtype = _label(old)
            label = metric + (f" [{dtype}]" if dtype else "")
            out.append(f"    {label:34s} {_fmt(old):44s} -> {_fmt(new.get((metric, dtype)))}")
    return out


def add_remeasure_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("store", help="the results store (SQLite) whose timing rows to re-time")
    p.add_argument(
        "--evaluator",
        required=True,
        metavar="NAME",
        help="the timing evaluator whose rows to re-time (one that measures time: efficiency)",
    )
    p.add_argument(
        "--all",
        action="store_true",
        dest="every",
        help="re-time every variant's rows (default: only those flagged noisy)",
    )
    p.add_argument("--variant", action="append", metavar="NAME", help="re-time this variant's rows (repeatable)")
    p.add_argument("--experiment", help="only this experiment of the store")
    p.add_argument("--cache", metavar="DIR", help="the cache_dir the run used (default: the one its config names)")
    p.add_argument(
        "--tries",
        type=int,
        default=1,
        metavar="N",
        help="re-time a job up to N times until the kept measurement is quiet (default 1; each attempt is recorded)",
    )
    p.add_argument(
        "--trust-code",
        action="store_true",
        help="resolve a run config that names code (package.module:object) again, importing it",
    )


def remeasure_command(args: argparse.Namespace) -> int:
    """``compressbench remeasure``: exit 0 all re-timed (or nothing to re-time), 1 some re-timing failed."""
    store = Path(args.store)
    outcomes = remeasure(
        store,
        args.evaluator,
        args.variant,
        args.every,
        args.experiment,
        args.cache,
        args.trust_code,
        progress=lambda s: print(s, file=sys.stderr, flush=True),
        tries=args.tries,
    )
    if not outcomes:
        print(
            f"no noisy {args.evaluator} timing in {store} (thresholds: IQR/median > {noise.SPREAD_MAX:g}, load on "
            f"free cores > {noise.LOAD_MAX:g}; docs/efficiency.md): nothing re-timed (--all re-times every variant)"
        )
        return 0
    print(f"re-timed {len(outcomes)} {args.evaluator} job(s) in {store}: median (IQR, load on free cores) old -> new")
    for line in lines(outcomes):
        print(line)
    print(f"superseded measurements stay in the store: `compressbench results {store} --superseded`")
    return 1 if any(o.error for o in outcomes) else 0


__all__ = [
    "remeasure",
    "select",
    "prepare",
    "quietness",
    "lines",
    "Outcome",
    "Target",
    "RemeasureError",
    "RemeasureSpec",
    "add_remeasure_arguments",
    "remeasure_command",
]

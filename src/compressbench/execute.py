"""Executors run a job DAG. Jobs are plain functions of (job spec, upstream artifact dirs), so an
executor only has to respect dependencies; the local one runs them in order in this process.

Artifacts live under ``<cache>/jobs/<key>/``; a job is done when its ``result.json`` exists (written
atomically, last). A failed job writes nothing to the cache, so the next run retries it; its
dependents are skipped with an "upstream failed" error.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

from .checkpoint import atomic_write_bytes
from .plan import Job
from .progress import progress_bar

log = logging.getLogger("compressbench")


@dataclass
class JobResult:
    key: str
    dir: Path
    measurements: list[dict[str, Any]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)  # e.g. achieved budget, steps, timings
    error: str | None = None
    cached: bool = False
    seconds: float = 0.0


JobFn = Callable[[Job, Path, dict[str, "JobResult"]], tuple[list[dict[str, Any]], dict[str, Any]]]


class Executor(Protocol):
    def run(self, jobs: list[Job], fn: JobFn, on_done: Callable[[Job, JobResult], None]) -> dict[str, JobResult]:
        ...


def job_dir(cache: Path, key: str) -> Path:
    return cache / "jobs" / key


def load_cached(cache: Path, key: str) -> JobResult | None:
    d = job_dir(cache, key)
    f = d / "result.json"
    if not f.is_file():
        return None
    data = json.loads(f.read_text())
    return JobResult(key, d, data["measurements"], data.get("info", {}), cached=True,
                     seconds=data.get("seconds", 0.0))


def run_one(job: Job, cache: Path, fn: JobFn, upstream: dict[str, JobResult]) -> JobResult:
    """Run a job into a temporary dir, then move it into place (atomic on one filesystem)."""
    cached = load_cached(cache, job.key)
    if cached is not None:
        return cached
    failed = [k for k in job.deps if upstream.get(k) is None or upstream[k].error]
    final = job_dir(cache, job.key)
    if failed:
        why = upstream[failed[0]].error if failed[0] in upstream else failed[0]
        return JobResult(job.key, final, error=f"upstream job failed: {why}")
    tmp = cache / "jobs" / f".tmp-{job.key}-{time.time_ns()}"
    tmp.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    try:
        measurements, info = fn(job, tmp, upstream)
    except Exception as e:  # a failed job is a row with its error, not a crashed sweep
        shutil.rmtree(tmp, ignore_errors=True)
        msg = f"{type(e).__name__}: {e}".splitlines()[0][:500]
        log.error("job %s failed: %s", job.describe(), msg)
        log.debug("%s", traceback.format_exc())
        return JobResult(job.key, final, error=msg, seconds=time.perf_counter() - t0)
    secs = time.perf_counter() - t0
    atomic_write_bytes(tmp / "result.json", json.dumps(
        {"key": job.key, "kind": job.kind, "spec": job.spec, "measurements": measurements, "info": info,
         "seconds": secs}, default=str, indent=1).encode())
    if final.exists():  # another process finished it meanwhile
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        tmp.rename(final)
    res = load_cached(cache, job.key)
    assert res is not None
    res.cached, res.seconds = False, secs
    return res


class LocalExecutor:
    """Runs jobs one after another in this process, in topological order."""

    def __init__(self, cache: Path, show_progress: bool = True):
        self.cache = cache
        self.show_progress = show_progress

    def run(self, jobs: list[Job], fn: JobFn, on_done: Callable[[Job, JobResult], None]) -> dict[str, JobResult]:
        results: dict[str, JobResult] = {}
        bar = progress_bar(total=len(jobs), desc="jobs", unit="job", disable=not self.show_progress, position=1)
        for i, job in enumerate(jobs, 1):
            res = run_one(job, self.cache, fn, results)
            results[job.key] = res
            state = "cached" if res.cached else ("FAILED" if res.error else f"{res.seconds:.1f}s")
            log.info("[%d/%d] %s: %s", i, len(jobs), job.describe(), state)
            on_done(job, res)
            bar.update(1)
        bar.close()
        return results


EXECUTORS: dict[str, Callable[..., Executor]] = {"local": LocalExecutor}

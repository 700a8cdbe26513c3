"""Several evaluation jobs run as one: corrupt once, evaluate many.

Within a seed, the inputs some evaluators build do not depend on the model they evaluate: the corrupted
images of a condition, a transfer attack's adversarial examples (crafted on the parent). An evaluator
that can share that work declares a ``group`` form (``EvaluatorSpec.group``: the evaluator run on several
models at once); ``plan`` gives its jobs of one seed, parent and params the same :attr:`Job.group
<compressbench.jobs.Job.group>`, and the scheduling loop (:mod:`.loop`) starts the jobs of a group
together once all of them are ready, in chunks of at most :data:`GROUP_MAX` models (they are in memory
at once).

Each job of a group keeps the whole cache protocol of :func:`~.cache.run_one` — verified, claimed,
committed by rename and released on its own (:func:`run_group`) — so the cache, the store and resume are
exactly those of jobs run one by one: a cached member is not run again (adding one variant to a study runs
that variant's evaluation alone), a member another driver holds is left to it, a member whose model
fails is one error row and the others go on. Only the work in between is shared. A member's ``seconds``
is its share of the group's time (the group's size and time are in its ``info``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

from ..jobs import Job
from .cache import DeadOwner, JobResult, claim_to_run, commit_job, cpu_seconds, failed_job, tmp_job_dir

GROUP_MAX = 16  # models of one group in memory at once

GroupFn = Callable[
    [list[Job], dict[str, Path], dict[str, dict[str, JobResult]]],
    dict[str, "tuple[list[dict[str, Any]], dict[str, Any]] | BaseException"],
]
"""``fn(jobs, out dirs, upstream results per job) -> {job key: (measurements, info) or the exception that
failed it}`` (the runner's ``JobRunner.group``)."""


def chunks(jobs: list[Job]) -> list[list[Job]]:
    """``jobs`` in groups of at most :data:`GROUP_MAX`, in order."""
    return [jobs[i : i + GROUP_MAX] for i in range(0, len(jobs), GROUP_MAX)]


def run_group(
    jobs: list[Job],
    cache: Path,
    fn: GroupFn,
    upstreams: dict[str, dict[str, JobResult]],
    *,
    owner: dict[str, Any] | None = None,
    is_dead: DeadOwner | None = None,
) -> dict[str, JobResult | None]:
    """The cache protocol for a group of jobs run by one call of ``fn``: each job cached, failed upstream,
    held by another driver (None) or claimed; the claimed ones run together into their own temporary
    folders and are committed one by one; every claim released. Returns each job's result (None: held)."""
    results: dict[str, JobResult | None] = {}
    claims = {}
    try:
        for job in jobs:
            res, claim = claim_to_run(job, cache, upstreams[job.key], owner=owner, is_dead=is_dead)
            if claim is None:
                results[job.key] = res
            else:
                claims[job.key] = claim
        todo = [j for j in jobs if j.key in claims]
        if not todo:
            return results
        tmps = {j.key: tmp_job_dir(cache, j.key) for j in todo}
        t0, c0 = time.perf_counter(), cpu_seconds()
        try:
            outs = fn(todo, tmps, {j.key: upstreams[j.key] for j in todo})
        except Exception as e:  # the shared work failed: every member is an error row
            outs = {j.key: e for j in todo}
        total, cpu = time.perf_counter() - t0, cpu_seconds() - c0
        share = total / len(todo)
        for j in todo:
            out = outs.get(j.key, RuntimeError("the group evaluation returned nothing for this job"))
            if isinstance(out, BaseException):
                results[j.key] = failed_job(j, cache, tmps[j.key], out, share)
            else:
                ms, info = out
                info = {**info, "group": {"jobs": len(todo), "seconds": total}}
                results[j.key] = commit_job(j, cache, tmps[j.key], ms, info, share, upstreams[j.key], cpu / len(todo))
    finally:
        for c in claims.values():
            c.release()
    return results

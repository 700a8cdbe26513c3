"""Executors run a job DAG. Jobs are plain functions of (typed job spec, upstream results), so an executor
only decides what runs where and when; the cache protocol (:mod:`.cache`) makes any of them kill-safe and
lets several share one cache, and one scheduling loop (:mod:`.loop`) walks the DAG for all of them.

* ``local`` (:mod:`.local`): every job in this process, one after another.
* ``ray`` (:mod:`.ray_executor`): jobs as Ray tasks on a local instance or a cluster, in parallel.

Executors are a registry (``registry.executors``) like every other extension point: a plug-in registers a
factory ``(cache, show_progress=..., options=..., experiment=...)`` of an object with ``run(jobs, fn,
on_done) -> {key: JobResult}`` — usually a :class:`~.loop.Backend` handed to :func:`~.loop.schedule` —
with its options' schema as ``params`` (validated when the experiment is resolved, from the ``executor:
{name: ..., <options>}`` mapping) and ``check(experiment, options) -> error line | None`` for rules that
need the whole experiment (run by ``validate``)::

    executors.register("myexec", MyExecutor, params=MyOptions, description="...")
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..registry import executors
from .cache import (  # noqa: F401 — the protocol's public names (and _HOST, read by tests)
    _HOST,
    GPU_SHARE,
    HEARTBEAT_S,
    LOCK_STALE_S,
    RECORD_FORMAT,
    WAIT_LOG_S,
    WAIT_POLL_S,
    Claim,
    Executor,
    JobFn,
    JobResult,
    artifact_manifest,
    canonical_json,
    claim_job,
    clean_stale_tmp,
    discard_job,
    execute_job,
    file_sha256,
    inspect_cached,
    job_dir,
    load_cached,
    lock_is_stale,
    lock_owner,
    prepare_cache,
    record_hash,
    run_one,
)
from .local import LocalExecutor
from .loop import SUBMITTED, Backend, schedule
from .ray_executor import ExecutorError, RayExecutor
from .ray_options import check_experiment

executors.register("local", LocalExecutor)
executors.register("ray", RayExecutor, check=check_experiment)


def create_executor(experiment: Any, cache: Path, show_progress: bool) -> Executor:
    """The resolved experiment's executor, with its validated options."""
    factory = executors.get(experiment.executor.name)
    return factory(cache, show_progress=show_progress, options=experiment.executor.options, experiment=experiment)


__all__ = [
    "Executor",
    "ExecutorError",
    "JobFn",
    "JobResult",
    "LocalExecutor",
    "RayExecutor",
    "Backend",
    "schedule",
    "SUBMITTED",
    "create_executor",
    "run_one",
    "prepare_cache",
    "clean_stale_tmp",
    "claim_job",
    "inspect_cached",
    "load_cached",
    "execute_job",
    "discard_job",
    "GPU_SHARE",
]

"""Executors run a job DAG. Jobs are plain functions of (job spec, upstream artifact dirs), so an
executor only decides what runs where and when; the cache protocol (:mod:`.cache`) makes any of them
kill-safe and lets several share one cache.

* ``local`` (:mod:`.local`): every job in this process, one after another.
* ``ray`` (:mod:`.ray_executor`): jobs as Ray tasks on a local instance or a cluster, in parallel.

Adding an executor is a registration in :data:`EXECUTORS`: a factory ``(cache, show_progress=...)``
returning an object with ``run(jobs, fn, on_done) -> {key: JobResult}``. A factory that takes options
declares them as a pydantic schema in its ``Options`` attribute (validated with the config, from the
``executor: {name: ..., <options>}`` mapping; it is then called with ``options=`` and ``experiment=``)
and may define ``check(experiment, options) -> error line | None`` for rules that need the experiment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

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
    run_one,
)
from .local import LocalExecutor
from .ray_executor import ExecutorError, RayExecutor

EXECUTORS: dict[str, Callable[..., Executor]] = {"local": LocalExecutor, "ray": RayExecutor}


def executor_options(name: str, raw: dict[str, Any]) -> Any:
    """The validated options of executor ``name`` (None when it takes none). Raises pydantic's
    ValidationError; :func:`compressbench.config.validate` turns it into one line."""
    schema = getattr(EXECUTORS[name], "Options", None)
    return schema.model_validate(raw) if schema is not None else None


def create_executor(experiment: Any, cache: Path, show_progress: bool) -> Executor:
    """The experiment's executor, with its validated options."""
    spec = experiment.executor
    factory = EXECUTORS[spec.name]
    if getattr(factory, "Options", None) is None:
        return factory(cache, show_progress=show_progress)
    return factory(cache, show_progress=show_progress, options=executor_options(spec.name, spec.options),
                   experiment=experiment)


__all__ = ["EXECUTORS", "Executor", "ExecutorError", "JobFn", "JobResult", "LocalExecutor", "RayExecutor",
           "create_executor", "executor_options", "run_one", "prepare_cache", "clean_stale_tmp", "claim_job",
           "inspect_cached", "load_cached", "execute_job", "discard_job", "GPU_SHARE"]

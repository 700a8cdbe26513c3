"""The Ray executor's worker side: one job (or the jobs of one group, :mod:`.group`) in a Ray worker process,
through the same cache protocol as the local executor (:func:`~compressbench.execute.cache.run_one`), with the
task's identity in its claim.

Workers import the driver's compressbench (:func:`worker_env` puts its folder first on their
``PYTHONPATH``, and the folders of the experiment's plug-in set after it, so a job whose params are a
plug-in's class can be unpickled) and check that their code is the driver's (:func:`code_fingerprint`).
The job function (the runner's ``JobRunner``) then loads the plug-in set, resolves the experiment once per
worker process and compares its fingerprint with the driver's: exactly the ``"pkg.mod:obj"`` names the
user wrote are imported, nothing is validated again, no model is built."""

from __future__ import annotations

import hashlib
import logging
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..config.plugins import PluginSet
from ..jobs import Job
from .allocator import keep_freed_memory
from .cache import _HOST, GPU_SHARE, JobFn, JobResult, run_one
from .group import run_group


@lru_cache(maxsize=1)
def code_fingerprint() -> tuple[str, str]:
    """(sha256 of compressbench's Python sources, their folder): a worker must run the driver's code."""
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for f in sorted(root.rglob("*.py")):
        h.update(f.relative_to(root).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest(), str(root)


def _setup_worker(setup: dict[str, Any]) -> str | None:
    """Prepare this worker for a task (cwd, threads); an error line when its code is not the driver's."""
    if setup["cwd"] and os.path.isdir(setup["cwd"]):
        os.chdir(setup["cwd"])  # relative paths in the config mean what they mean to the driver
    digest, where = code_fingerprint()
    if digest != setup["code"][0]:
        return (
            f"the worker on {_HOST} runs compressbench from {where}, whose code differs from the driver's "
            f"({setup['code'][1]}): install the same compressbench on every node"
        )
    import torch

    torch.set_num_threads(setup["threads"])
    _log_like_the_driver(setup.get("log_level", logging.INFO))
    return None


def _log_like_the_driver(level: int) -> None:
    """The job's own lines (a training loop's epoch / loss / images/s) at the driver's level on the worker's
    stderr, which Ray forwards to the driver's log (``log_to_driver``)."""
    lg = logging.getLogger("compressbench")
    if not lg.handlers:
        h = logging.StreamHandler()
        h.setFormatter(logging.Formatter("%(asctime)s %(levelname).1s %(message)s", datefmt="%H:%M:%S"))
        lg.addHandler(h)
        lg.propagate = False  # one copy of each line, whatever the worker's root logger does
    lg.setLevel(level)


def _worker_run(
    job: Job, cache: Path, fn: JobFn, upstream: dict[str, JobResult], setup: dict[str, Any]
) -> JobResult | None:
    """One job in a Ray worker: the cache protocol (:func:`run_one`), with this task's identity in its claim."""
    import ray

    bad = _setup_worker(setup)
    if bad:
        return JobResult(job.key, cache / "jobs" / job.key, error=bad)
    task = ray.get_runtime_context().get_task_id()
    token = GPU_SHARE.set(setup["num_gpus"])
    try:
        with keep_freed_memory():  # as in a local run (execute.allocator)
            return run_one(
                job, cache, fn, upstream, owner={"ray_task": task}, is_dead=lambda info: info.get("ray_task") == task
            )  # an earlier attempt of this very task
    finally:
        GPU_SHARE.reset(token)


def _worker_run_group(
    jobs: list[Job], cache: Path, fn: Any, upstreams: dict[str, dict[str, JobResult]], setup: dict[str, Any]
) -> dict[str, JobResult | None]:
    """The jobs of one group in a Ray worker, together (:func:`~.group.run_group`)."""
    import ray

    bad = _setup_worker(setup)
    if bad:
        return {j.key: JobResult(j.key, cache / "jobs" / j.key, error=bad) for j in jobs}
    task = ray.get_runtime_context().get_task_id()
    token = GPU_SHARE.set(setup["num_gpus"])
    try:
        with keep_freed_memory():
            return run_group(
                jobs,
                cache,
                fn.group,
                upstreams,
                owner={"ray_task": task},
                is_dead=lambda info: info.get("ray_task") == task,
            )
    finally:
        GPU_SHARE.reset(token)


def _worker_run_group_gpu(
    jobs: list[Job], cache: Path, fn: Any, upstreams: dict[str, dict[str, JobResult]], setup: dict[str, Any]
) -> dict[str, JobResult | None]:
    """:func:`_worker_run_group` with a GPU share (one task per worker process, as :func:`_worker_run_gpu`)."""
    return _worker_run_group(jobs, cache, fn, upstreams, setup)


def _worker_run_gpu(
    job: Job, cache: Path, fn: JobFn, upstream: dict[str, JobResult], setup: dict[str, Any]
) -> JobResult | None:
    """:func:`_worker_run` for a job with a GPU share: submitted as a function whose worker process serves
    one task only (``max_calls=1``, as Ray does for ``@ray.remote(num_gpus=...)``): CUDA, once initialised
    in a process, keeps the GPU it saw first, and the next job may be given another one."""
    return _worker_run(job, cache, fn, upstream, setup)


def warm() -> int:
    """Import what the jobs need (torch, the methods, the training loop) in a worker, while the driver
    prepares: a fresh worker takes seconds to get there, and the first jobs would wait for it anyway."""
    from .. import compress, train  # noqa: F401 — imports torch and registers the methods

    return os.getpid()


def worker_env(plugins: PluginSet | None = None) -> dict[str, str]:
    """Environment of the workers: the driver's ``COMPRESSBENCH_*`` settings, no progress bars (a worker's
    output is forwarded to the driver's log), and on ``PYTHONPATH`` — when the driver imports compressbench
    from a source folder (a checkout on ``PYTHONPATH``, an editable install) — that folder first, so workers
    import the same code, then the folders of the experiment's plug-ins. An installed package needs nothing:
    workers in the same environment import the same copy (a site-packages folder is never put ahead of the
    standard library)."""
    env = {k: v for k, v in os.environ.items() if k.startswith("COMPRESSBENCH_")}
    env["COMPRESSBENCH_PROGRESS"] = "0"
    pkg_parent = Path(__file__).resolve().parents[2]
    first = [str(pkg_parent)] if pkg_parent.name not in ("site-packages", "dist-packages") else []
    paths = list(dict.fromkeys(first + list(plugins.paths if plugins is not None else ())))
    if paths:
        env["PYTHONPATH"] = os.pathsep.join(paths + ["${PYTHONPATH}"])
    return env

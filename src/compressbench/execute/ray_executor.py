"""The Ray executor: a study's jobs in parallel on a local Ray instance or a Ray cluster, kill-safe.

``executor: {name: ray, address: null | auto | "ray://host:10001" | "host:6379", resources: {...},
max_retries: 2}``. With no address a local Ray instance sized to this machine is started (and stopped at
the end), bound to 127.0.0.1; ``auto`` joins the cluster ``ray start`` runs on this machine; otherwise the
given cluster. Ray's usage statistics are off unless ``RAY_USAGE_STATS_ENABLED`` is set.

Scheduling follows the DAG (Ray's task API): the shared loop of :mod:`.loop` starts a job once its
upstream jobs are done — this executor looks it up in the cache in the driver and submits it as a task if
it is not there; independent tasks run concurrently; ``ray.wait`` collects them as they finish. Each task
asks for its kind's resources (``num_cpus``, ``num_gpus`` — a fraction lets small jobs share a GPU —,
``memory``) and sets torch's threads to its CPU share, so jobs never oversubscribe the cores. Evaluators
that measure wall-clock time (a declared metric in ms, s or img/s) get a whole node's CPUs unless
configured: latency measured beside other jobs would be noise.

A task runs :func:`~compressbench.execute.cache.run_one` in its worker — the same verify / claim /
atomic-commit protocol as the local executor, into the shared cache folder (every node must see it:
docs/reliability.md) — and returns the job's result; the driver alone writes the store (one writer per
store, docs/architecture.md). A worker that dies mid-job is retried (``max_retries``): its claim names
the Ray task, so the retry takes it over at once, on any node. A driver killed with SIGKILL leaves only
claims of dead processes and temporary folders that the next run cleans; it resumes from the cache.

Workers import the driver's compressbench and check that their code is the driver's; the experiment's
plug-in set travels with the job function (its folders on the workers' ``PYTHONPATH``), and a worker
resolves the experiment once and checks its fingerprint — it never validates it again
(:mod:`.ray_worker`, ``runner.JobRunner``). The options and their validation: :mod:`.ray_options`.
docs/executors.md is the user's guide.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import time
from pathlib import Path
from typing import Any, Callable

from ..jobs import Job
from ..progress import progress_enabled
from ..progress.board import RunBoard
from . import ray_reaper
from .cache import JobFn, JobResult, clean_stale_tmp, inspect_cached, uncached
from .loop import SUBMITTED, schedule
from .ray_options import (  # noqa: F401 — re-exported: the options live beside the executor for readers
    ExecutorError,
    JobResources,
    RayOptions,
    ResourceTable,
    check_experiment,
    measures_time,
    ray_missing,
    resources_for,
)
from .ray_worker import (
    _worker_run,
    _worker_run_gpu,
    _worker_run_group,
    _worker_run_group_gpu,
    code_fingerprint,
    warm,
    worker_env,
)

log = logging.getLogger("compressbench")


# how long `executor.address` may stay silent before the run stops (ray.init itself retries for minutes)
CONNECT_TIMEOUT_S = 10.0


def _host_port(address: str) -> tuple[str, int] | None:
    """(host, port) of ``"ray://host:10001"`` / ``"host:6379"`` / ``"[::1]:6379"``, or None (``auto``, no port)."""
    rest = address.removeprefix("ray://")
    host, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit():
        return None
    return host.strip("[]"), int(port)


def probe(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """One TCP connection to the address's head port, bounded by ``timeout``: ``ray.init`` itself retries a port
    where nothing listens for over ten minutes. One-line :class:`ExecutorError` when nothing answers."""
    import socket

    hp = _host_port(address)
    if hp is None:
        return
    t0 = time.monotonic()
    try:
        socket.create_connection(hp, timeout=timeout).close()
    except OSError as e:
        why = "timed out" if isinstance(e, TimeoutError) else (e.strerror or type(e).__name__)
        raise ExecutorError(
            f"executor.address: nothing answers at '{address}' ({why} after "
            f"{time.monotonic() - t0:.1f}s; limit {timeout:g}s): is the Ray cluster running there "
            f"(`ray status`), and is the port its head's?"
        ) from None


def _is_loopback(address: str) -> bool:
    if address == "auto":
        try:
            from ray._private.services import get_ray_address_from_environment

            address = get_ray_address_from_environment("auto", None) or ""
        except Exception:  # no cluster recorded: ray.init says so
            return False
    host = address.removeprefix("ray://").rsplit(":", 1)[0].strip("[]")
    return host == "localhost" or host.startswith("127.") or host == "::1"


def _loopback_only() -> None:
    """Keep Ray on 127.0.0.1 in this process and the ones it starts. Ray replaces a loopback node address
    by the machine's network address unless it runs in its single-host mode (its default on macOS and
    Windows), which ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` selects; Ray reads it when imported, so the
    flag it read is set too."""
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    try:
        from ray._private import ray_constants

        ray_constants.ENABLE_RAY_CLUSTER = os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] not in ("0", "false")
    except (ImportError, AttributeError):  # pragma: no cover — Ray moved it; _node_ip_address still asks
        pass


class RayExecutor:
    """Runs the DAG on Ray; see the module docstring."""

    def __init__(
        self, cache: Path, show_progress: bool = True, options: RayOptions | None = None, experiment: Any = None
    ):
        self.cache = Path(cache).resolve()
        self.show_progress = show_progress
        self.options = options or RayOptions()
        self.threads = getattr(experiment, "threads", None)
        self.plugins = getattr(experiment, "plugins", None)  # its folders go on the workers' PYTHONPATH
        self._local = False  # whether _connect started a local instance (not a cluster)

    # ------------------------------------------------------------------ connecting
    def _connect(self) -> tuple[Any, bool]:
        """(the ray module, whether this call started Ray and must shut it down)."""
        if ray_missing():
            raise ExecutorError("the ray executor needs Ray, which is not installed: pip install 'compressbench[ray]'")
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        import ray

        address = self.options.address
        if ray.is_initialized():
            if address is not None:
                raise ExecutorError(
                    f"executor.address: Ray is already initialised in this process; leave the address "
                    f"empty to use that connection, or call ray.shutdown() first (got '{address}')"
                )
            return ray, False
        # no address: like Ray itself, join RAY_ADDRESS when set (e.g. under `ray job submit`), else start one
        target = address or os.environ.get("RAY_ADDRESS") or None
        if target is None or _is_loopback(target):
            _loopback_only()
        kw: dict[str, Any] = {"include_dashboard": False, "log_to_driver": True, "logging_level": logging.WARNING}
        self._local = target is None
        if target is None:
            cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
            if cpus and cpus < (os.cpu_count() or cpus):
                kw["num_cpus"] = cpus  # e.g. a Slurm allocation: the cores this process may use
            kw["_node_ip_address"] = "127.0.0.1"
        else:
            kw["address"] = target
            probe(target)
        t0 = time.perf_counter()
        try:
            ray.init(**kw)
        except Exception as e:  # unreachable cluster, bad address, version mismatch
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            where = f"cannot connect to Ray at '{target}'" if target else "cannot start a local Ray instance"
            hint = (
                "; a cluster with token authentication also needs RAY_AUTH_MODE=token and its token (Ray's "
                "docs: token-auth)"
                if target and "RAY_AUTH_MODE" not in os.environ
                else ""
            )
            raise ExecutorError(f"executor.address: {where}: {first[:300]}{hint}") from None
        res = ray.cluster_resources()
        log.info(
            "%s in %.1fs: %g CPU(s), %g GPU(s), %d node(s)",
            "started a local Ray instance" if target is None else f"joined the Ray cluster at {target}",
            time.perf_counter() - t0,
            res.get("CPU", 0),
            res.get("GPU", 0),
            len([n for n in ray.nodes() if n.get("Alive")]),
        )
        return ray, True

    # ------------------------------------------------------------------ resources
    def _plan_resources(self, ray: Any, jobs: list[Job]) -> tuple[dict[str, dict[str, Any]], dict[str, int]]:
        """Ray options per job — its kind's (or its evaluator's) resources, checked against the cluster —
        and its torch threads."""
        nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
        max_cpus = max((n.get("CPU", 0) for n in nodes), default=0)
        max_gpus = max((n.get("GPU", 0) for n in nodes), default=0)
        table = self.options.resources
        out: dict[str, dict[str, Any]] = {}
        threads: dict[str, int] = {}
        timed_note: set[str] = set()
        for job in jobs:
            ev = job.labels.evaluator
            r = resources_for(table, job.kind, ev)
            cpus = r.num_cpus or self.threads or 1
            threads[job.key] = max(1, math.floor(cpus))
            if ev and r is table.evaluate and measures_time(ev):  # no resources.evaluators entry for it
                cpus = max(max_cpus, 1)  # a whole node: timings beside other jobs would be noise
                threads[job.key] = self.threads or max(1, math.floor(cpus))  # as many as the local executor's
                timed_note.add(ev)
            where = f"evaluators.{ev}" if ev and r is not table.evaluate else job.kind
            if cpus > max_cpus or r.num_gpus > max_gpus:
                msg = (
                    f"executor.resources.{where}: a {job.kind} job asks for {cpus:g} CPU(s) and {r.num_gpus:g} "
                    f"GPU(s), but the largest node of the Ray cluster has {max_cpus:g} CPU(s) and {max_gpus:g} "
                    f"GPU(s)"
                )
                if self.options.address is None:
                    raise ExecutorError(msg)
                log.warning("%s: it waits until the cluster grows", msg)
            opts = {"num_cpus": cpus, "num_gpus": r.num_gpus}
            if r.memory is not None:
                opts["memory"] = r.memory
            out[job.key] = opts
        for ev in sorted(timed_note):
            log.info(
                "%s jobs measure wall-clock time: each runs alone on a node (num_cpus=%g); set "
                "executor.resources.evaluators.%s to share nodes instead",
                ev,
                max_cpus,
                ev,
            )
        return out, threads

    # ------------------------------------------------------------------ the run
    def run(self, jobs: list[Job], fn: JobFn, on_done: Callable[[Job, JobResult], None]) -> dict[str, JobResult]:
        ray, started = self._connect()
        # a local instance this driver started is torn down even if the driver is killed (:mod:`.ray_reaper`)
        watcher = ray_reaper.spawn() if started and self._local else None
        try:
            return self._run(ray, jobs, fn, on_done)
        finally:
            if started:
                ray.shutdown()
            ray_reaper.stop(watcher)

    def _run(
        self, ray: Any, jobs: list[Job], fn: JobFn, on_done: Callable[[Job, JobResult], None]
    ) -> dict[str, JobResult]:
        clean_stale_tmp(self.cache)
        asks, threads = self._plan_resources(ray, jobs)
        total = ray.cluster_resources()
        cpus, gpus = total.get("CPU", 1) or 1, total.get("GPU", 0)

        def share(job: Job) -> float:
            a = asks[job.key]
            return max(a["num_cpus"] / cpus, a["num_gpus"] / gpus if a["num_gpus"] and gpus else 0.0)

        env = {"env_vars": worker_env(self.plugins)}
        todo = uncached(jobs, self.cache)
        self._warm(ray, [asks[j.key]["num_cpus"] for j in todo if not asks[j.key]["num_gpus"]], cpus, env)
        if todo and hasattr(fn, "prepare"):  # e.g. download a missing dataset once, here, not in every worker
            fn.prepare(todo)
        board = RunBoard(
            jobs,
            live=self.show_progress and progress_enabled(),
            share=share,
            title=f"jobs on Ray ({cpus:g} CPU, {gpus:g} GPU)",
        )
        backend = _RayTasks(self, ray, fn, asks, threads, env, board)
        with board:
            results = schedule(jobs, backend, self.cache, board, on_done)
        clean_stale_tmp(self.cache)  # e.g. the temporary folder of a worker killed mid-job on another node
        return results

    @staticmethod
    def _warm(ray: Any, cpu_asks: list[float], cpus: float, env: dict[str, Any]) -> None:
        """Start the workers now, in parallel with the driver's preparation."""
        if not cpu_asks:
            return
        each = min(cpu_asks)
        warming = [
            ray.remote(warm).options(num_cpus=each, runtime_env=env).remote()
            for _ in range(min(len(cpu_asks), max(1, int(cpus // each))))
        ]
        log.debug("warming %d worker(s): %s", len(warming), warming)

    def _collect(self, ray: Any, ref: Any, jobs: list[Job]) -> list[tuple[Job, JobResult | None]]:
        """A finished task's result per job (a group's task ran several); a task that raised or whose workers
        kept dying is an error result for each of its jobs."""
        try:
            got = ray.get(ref)
        except ray.exceptions.RayTaskError as e:  # our code raised outside the job function
            cause = e.cause if getattr(e, "cause", None) is not None else e
            msg = f"{type(cause).__name__}: {str(cause).strip().splitlines()[-1][:400]}"
            return [(j, JobResult(j.key, self.cache / "jobs" / j.key, error=msg)) for j in jobs]
        except (
            ray.exceptions.WorkerCrashedError,
            ray.exceptions.NodeDiedError,
            ray.exceptions.OutOfMemoryError,
            ray.exceptions.RayError,
        ) as e:
            first = str(e).strip().splitlines()[0][:300] if str(e).strip() else ""
            msg = (
                f"{type(e).__name__} after {self.options.max_retries + 1} attempt(s) "
                f"(executor.max_retries={self.options.max_retries}): {first}"
            )
            return [(j, JobResult(j.key, self.cache / "jobs" / j.key, error=msg)) for j in jobs]
        if not isinstance(got, dict):
            got = {jobs[0].key: got}
        return [(j, self._seen(j, got.get(j.key))) for j in jobs]

    def _seen(self, job: Job, res: JobResult | None) -> JobResult | None:
        """``res``, once the driver sees the folder the worker committed."""
        d = self.cache / "jobs" / job.key
        if res is None or res.error or res.digest is None:
            return res
        try:  # the driver must see what the worker committed: the cache is on a filesystem every node sees
            seen = hashlib.sha256((d / "result.json").read_bytes()).hexdigest()
        except OSError:
            seen = None
        if seen != res.digest:
            return JobResult(
                job.key,
                d,
                error=f"the job finished on a worker, but the driver does not see its folder "
                f"{d} (or sees other bytes): cache_dir must be on a filesystem every Ray node and the "
                f"driver share, at the same path",
            )
        return res


class _RayTasks:
    """The :class:`~.loop.Backend` of the Ray executor: a job is looked up in the cache in the driver and
    submitted as a task if it is not there; finished tasks are collected with ``ray.wait``."""

    def __init__(
        self,
        ex: RayExecutor,
        ray: Any,
        fn: JobFn,
        asks: dict[str, dict[str, Any]],
        threads: dict[str, int],
        env: dict[str, Any],
        board: RunBoard,
    ):
        self.ex, self.ray, self.asks, self.threads, self.env, self.board = ex, ray, asks, threads, env, board
        self.remote = ray.remote(_worker_run)
        self.remote_gpu = ray.remote(max_calls=1)(_worker_run_gpu)
        self.remote_group = ray.remote(_worker_run_group)
        self.remote_group_gpu = ray.remote(max_calls=1)(_worker_run_group_gpu)
        self.fn = fn
        self.fn_ref = ray.put(fn)
        self.setup = {"cwd": os.getcwd(), "code": code_fingerprint(), "log_level": log.getEffectiveLevel()}
        self.inflight: dict[Any, list[Job]] = {}

    def _known(self, job: Job, upstream: dict[str, JobResult]) -> JobResult | None:
        """The job's result without running it: cached (looked up in the driver), or an upstream failed."""
        cache = self.ex.cache
        res, _ = inspect_cached(cache, job.key, upstream)
        failed = [d for d in job.deps if upstream[d].error]
        if res is None and failed:
            res = JobResult(
                job.key, cache / "jobs" / job.key, error=f"upstream job failed: {upstream[failed[0]].error}"
            )
        return res

    def _submit(self, jobs: list[Job], fun: Any, what: Any, upstream: Any) -> None:
        """One task running ``what`` (a job, or the jobs of a group) with the first job's resources."""
        a = self.asks[jobs[0].key]
        setup = {**self.setup, "threads": self.threads[jobs[0].key], "num_gpus": a["num_gpus"]}
        name = f"compressbench {jobs[0].kind} {jobs[0].key[:8]}" + (f" +{len(jobs) - 1}" if len(jobs) > 1 else "")
        ref = fun.options(
            **a, max_retries=self.ex.options.max_retries, retry_exceptions=False, runtime_env=self.env, name=name
        ).remote(what, self.ex.cache, self.fn_ref, upstream, setup)
        self.inflight[ref] = jobs

    def start(self, job: Job, upstream: dict[str, JobResult]) -> JobResult | object:
        res = self._known(job, upstream)
        if res is not None:
            return res
        self._submit([job], self.remote_gpu if self.asks[job.key]["num_gpus"] else self.remote, job, upstream)
        return SUBMITTED

    def start_group(self, jobs: list[Job], upstreams: dict[str, dict[str, JobResult]]) -> dict[str, JobResult | object]:
        """The group's jobs not known yet as one task (:mod:`.group`); one job alone as :meth:`start` does."""
        out: dict[str, JobResult | object] = {}
        todo = []
        for j in jobs:
            res = self._known(j, upstreams[j.key])
            out[j.key] = res if res is not None else SUBMITTED
            if res is None:
                todo.append(j)
        if len(todo) == 1 or (todo and not hasattr(self.fn, "group")):
            for j in todo:
                out[j.key] = self.start(j, upstreams[j.key])
        elif todo:
            gpu = self.asks[todo[0].key]["num_gpus"]
            self._submit(
                todo, self.remote_group_gpu if gpu else self.remote_group, todo, {j.key: upstreams[j.key] for j in todo}
            )
        return out

    def in_flight(self) -> int:
        return sum(len(js) for js in self.inflight.values())

    def collect(self, timeout: float) -> list[tuple[Job, JobResult | None]]:
        ready, _ = self.ray.wait(list(self.inflight), num_returns=1, timeout=timeout)
        if ready:
            ready, _ = self.ray.wait(list(self.inflight), num_returns=len(self.inflight), timeout=0)
        out = [pair for ref in ready for pair in self.ex._collect(self.ray, ref, self.inflight.pop(ref))]
        for jobs in self.inflight.values():  # started = claimed (its lock exists)
            for job in jobs:
                self.board.set(
                    job.key, "running" if (self.ex.cache / "jobs" / f"{job.key}.lock").exists() else "queued"
                )
        return out

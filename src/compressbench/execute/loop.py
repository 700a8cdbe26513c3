"""The one scheduling loop every executor shares: it walks the DAG, starts each job once its upstream jobs
are done, collects what finishes, and waits for jobs another driver holds. An executor supplies only a
:class:`Backend` — how a job is started and how finished ones are collected:

* the local executor runs a job to completion inside :meth:`Backend.start` (the cache protocol's
  :func:`~.cache.run_one`) and never has jobs in flight;
* the Ray executor looks a job up in the cache in the driver, submits it as a task otherwise, and
  :meth:`Backend.collect` gathers finished tasks with ``ray.wait``.

Jobs that share their inputs (the same :attr:`Job.group <compressbench.jobs.Job.group>`: one evaluator, seed,
parent and params) start together once all of them are ready, when the backend can run a group
(``start_group``; :mod:`.group`): corrupt once, evaluate many.

A job another live driver has claimed (``start`` or ``collect`` answers None) is set aside: the other
runnable jobs go first, then this driver polls the cache for its result (a log line every ``WAIT_LOG_S``)
and runs it itself if its claim disappears or goes stale. The driver alone calls ``on_done`` (which writes
the store), once per job, in the order jobs finish.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Protocol

from ..jobs import Job
from ..progress.board import RunBoard
from .cache import WAIT_LOG_S, WAIT_POLL_S, JobResult, inspect_cached, lock_is_stale, lock_owner
from .group import chunks

log = logging.getLogger("compressbench")

SUBMITTED = object()  # what Backend.start returns for a job now running elsewhere (collect() returns it later)


class Backend(Protocol):
    """What an executor supplies to :func:`schedule`."""

    def start(self, job: Job, upstream: dict[str, JobResult]) -> JobResult | None | object:
        """Run or submit ``job`` (its upstream results in ``upstream``): its result, ``None`` when another
        driver holds it, or :data:`SUBMITTED` when it runs elsewhere and :meth:`collect` will return it."""
        ...

    def in_flight(self) -> int:
        """How many submitted jobs have not been collected yet."""
        ...

    def collect(self, timeout: float) -> list[tuple[Job, JobResult | None]]:
        """Submitted jobs that finished within ``timeout`` seconds (None: another driver holds it)."""
        ...


class GroupBackend(Backend, Protocol):
    """A backend that can run the jobs of a group together (:mod:`.group`)."""

    def start_group(
        self, jobs: list[Job], upstreams: dict[str, dict[str, JobResult]]
    ) -> dict[str, JobResult | None | object]:
        """Run or submit ``jobs`` together: per job, what :meth:`Backend.start` returns."""
        ...


def owner_str(info: dict[str, Any] | None) -> str:
    """A claim's owner for log lines (the Ray task when a Ray worker holds it)."""
    if not info:
        return "another driver"
    task = f", Ray task {info['ray_task'][:8]}" if info.get("ray_task") else ""
    return f"pid {info.get('pid')} on {info.get('host')}{task} since {info.get('started', '?')}"


class _Run:
    """The state of one :func:`schedule` call."""

    def __init__(
        self,
        jobs: list[Job],
        backend: Backend,
        cache: Any,
        board: RunBoard,
        on_done: Callable[[Job, JobResult], None],
        tick: Callable[[], None],
    ):
        self.jobs, self.backend, self.cache, self.board = jobs, backend, cache, board
        self.on_done, self.tick = on_done, tick
        self.results: dict[str, JobResult] = {}
        self.waiting = list(jobs)  # not started yet, in plan (topological) order
        self.held: dict[str, Job] = {}  # claimed by another driver: it runs there
        self.last_wait_log = time.monotonic()

    def finish(self, job: Job, res: JobResult) -> None:
        self.results[job.key] = res
        state = "cached" if res.cached else ("FAILED" if res.error else f"{res.seconds:.1f}s")
        log.info("[%d/%d] %s: %s", len(self.results), len(self.jobs), job.describe(), state)
        self.board.finish(job.key, "cached" if res.cached else ("failed" if res.error else "ran"), res.seconds)
        self.on_done(job, res)
        self.tick()

    def hold(self, job: Job) -> None:
        self.held[job.key] = job
        self.board.set(job.key, "held")
        log.info(
            "%s is being run by %s: doing other work first, then waiting for its result",
            job.describe(),
            owner_str(lock_owner(self.cache, job.key)),
        )

    def ready(self, job: Job) -> bool:
        return all(d in self.results for d in job.deps)

    def started(self, job: Job, res: JobResult | None | object) -> bool:
        """Book what starting ``job`` gave; whether it finished."""
        if res is SUBMITTED:
            self.board.set(job.key, "queued")
        elif res is None:
            self.hold(job)
        else:
            self.finish(job, res)  # type: ignore[arg-type]
            return True
        return False

    def start_ready(self) -> bool:
        """Start every job whose upstream jobs are done (a group once all its jobs are); whether any finished."""
        progressed = False
        still: list[Job] = []
        taken: set[str] = set()
        grouping = hasattr(self.backend, "start_group")
        for job in self.waiting:
            if job.key in taken:
                continue
            if not self.ready(job):  # an upstream job is still running (or held)
                still.append(job)
                continue
            if grouping and job.group is not None:
                members = [j for j in self.waiting if j.group == job.group and j.key not in taken]
                if not all(self.ready(j) for j in members):  # the group starts together
                    still.append(job)
                    continue
                taken.update(j.key for j in members)
                progressed = self.start_group(members) or progressed
                continue
            self.board.set(job.key, "running")
            progressed = (
                self.started(job, self.backend.start(job, {d: self.results[d] for d in job.deps})) or progressed
            )
        self.waiting = [j for j in still if j.key not in taken]
        return progressed

    def start_group(self, members: list[Job]) -> bool:
        progressed = False
        for chunk in chunks(members):
            for j in chunk:
                self.board.set(j.key, "running")
            ups = {j.key: {d: self.results[d] for d in j.deps} for j in chunk}
            out = self.backend.start_group(chunk, ups)  # type: ignore[attr-defined]
            for j in chunk:
                progressed = self.started(j, out[j.key]) or progressed
        return progressed

    def collect(self) -> bool:
        done = self.backend.collect(WAIT_POLL_S)
        for job, res in done:
            if res is None:
                self.hold(job)
            else:
                self.finish(job, res)
        return bool(done)

    def poll_held(self) -> bool:
        """Jobs another driver holds: its result once cached; back to waiting if its claim went away."""
        progressed = False
        for key, job in list(self.held.items()):
            res, _ = inspect_cached(self.cache, key, {d: self.results[d] for d in job.deps})
            lock = self.cache / "jobs" / f"{key}.lock"
            if res is not None:
                del self.held[key]
                self.finish(job, res)
                progressed = True
            elif not lock.exists() or lock_is_stale(lock, lock_owner(self.cache, key)):
                del self.held[key]  # its owner failed it or died: run it here
                self.board.set(key, "waiting")
                self.waiting.append(job)
                progressed = True
        return progressed

    def wait(self) -> None:
        if self.held and time.monotonic() - self.last_wait_log >= WAIT_LOG_S:
            self.last_wait_log = time.monotonic()
            first = next(iter(self.held.values()))
            log.info(
                "waiting for %d job(s) run by other drivers, e.g. %s (%s)",
                len(self.held),
                first.describe(),
                owner_str(lock_owner(self.cache, first.key)),
            )
        time.sleep(WAIT_POLL_S)


def schedule(
    jobs: list[Job],
    backend: Backend,
    cache: Any,
    board: RunBoard,
    on_done: Callable[[Job, JobResult], None],
    tick: Callable[[], None] = lambda: None,
) -> dict[str, JobResult]:
    """Run ``jobs`` (a DAG in topological order) through ``backend`` until every one has a result (see the
    module docstring). ``tick`` is called after each finished job (e.g. a progress bar's update)."""
    r = _Run(jobs, backend, cache, board, on_done, tick)
    while r.waiting or r.held or backend.in_flight():
        if r.start_ready():
            continue
        progressed = r.collect() if backend.in_flight() else False
        progressed = r.poll_held() or progressed
        if not progressed and not backend.in_flight():
            r.wait()
        elif progressed:
            r.last_wait_log = time.monotonic()
    return r.results

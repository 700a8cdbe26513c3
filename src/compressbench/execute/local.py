"""The local executor: every job in this process, one after another, in topological order (the jobs of a
group — one evaluator's jobs that share their inputs — together, :mod:`.group`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from ..jobs import Job
from ..progress import progress_bar
from ..progress.board import LOG_EVERY_S, RunBoard
from .cache import JobFn, JobResult, clean_stale_tmp, run_one, uncached
from .group import run_group
from .loop import schedule


class _InProcess:
    """The :class:`~.loop.Backend` of the local executor: a job runs to completion when it is started."""

    def __init__(self, cache: Path, fn: JobFn):
        self.cache, self.fn = cache, fn

    def start(self, job: Job, upstream: dict[str, JobResult]) -> JobResult | None:
        return run_one(job, self.cache, self.fn, upstream)

    def start_group(self, jobs: list[Job], upstreams: dict[str, dict[str, JobResult]]) -> dict[str, JobResult | None]:
        group = getattr(self.fn, "group", None)
        if group is None:  # a job function without a group form: one by one
            return {j.key: run_one(j, self.cache, self.fn, upstreams[j.key]) for j in jobs}
        return run_group(jobs, self.cache, group, upstreams)

    def in_flight(self) -> int:
        return 0

    def collect(self, timeout: float) -> list[tuple[Job, JobResult | None]]:
        return []


class LocalExecutor:
    """Runs jobs one after another in this process, in topological order (the shared loop of :mod:`.loop`:
    a job another driver has claimed is set aside, the other runnable jobs go first, then this driver waits
    for it and uses its cached result). On a terminal a progress bar shows the run; otherwise a summary line
    is logged at least every 30 s (:class:`~compressbench.progress.board.RunBoard`). Takes no options."""

    def __init__(self, cache: Path, show_progress: bool = True, options: Any = None, experiment: Any = None):
        self.cache = cache
        self.show_progress = show_progress

    def run(self, jobs: list[Job], fn: JobFn, on_done: Callable[[Job, JobResult], None]) -> dict[str, JobResult]:
        bar = progress_bar(total=len(jobs), desc="jobs", unit="job", disable=not self.show_progress, position=1)
        # on a terminal the bars show progress; in a log, the board's line every 30 s does
        board = RunBoard(jobs, live=False, log_every=LOG_EVERY_S if bar.disable else 0)
        clean_stale_tmp(self.cache)
        # before any job: the datasets the uncached jobs read, decoded here (the jobs, in this process, reuse them):
        # a missing or malformed dataset is one line and exit 2 instead of a failed row for every job of the plan
        todo = uncached(jobs, self.cache)
        if todo and hasattr(fn, "prepare"):
            fn.prepare(todo)
        with board:
            results = schedule(jobs, _InProcess(self.cache, fn), self.cache, board, on_done, lambda: bar.update(1))
        bar.close()
        return results

"""The local executor: every job in this process, one after another, in topological order."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Callable

from ..plan import Job
from ..progress import progress_bar
from ..progress.board import LOG_EVERY_S, RunBoard
from .cache import WAIT_LOG_S, WAIT_POLL_S, JobFn, JobResult, clean_stale_tmp, lock_owner, run_one

log = logging.getLogger("compressbench")


class LocalExecutor:
    """Runs jobs one after another in this process, in topological order. A job another driver has
    claimed is set aside: the other runnable jobs go first, then this driver waits for it (a log line
    every ``WAIT_LOG_S``) and uses its cached result. On a terminal a progress bar shows the run;
    otherwise a summary line is logged at least every 30 s (:class:`~compressbench.progress.board.RunBoard`)."""

    Options = None  # takes no options: ``executor: local``

    def __init__(self, cache: Path, show_progress: bool = True):
        self.cache = cache
        self.show_progress = show_progress

    def run(self, jobs: list[Job], fn: JobFn, on_done: Callable[[Job, JobResult], None]) -> dict[str, JobResult]:
        bar = progress_bar(total=len(jobs), desc="jobs", unit="job", disable=not self.show_progress, position=1)
        # on a terminal the bars show progress; in a log, the board's line every 30 s does
        board = RunBoard(jobs, live=False, log_every=LOG_EVERY_S if bar.disable else 0)
        with board:
            results = self._run(jobs, fn, on_done, bar, board)
        bar.close()
        return results

    def _run(self, jobs: list[Job], fn: JobFn, on_done: Callable[[Job, JobResult], None], bar: Any,
             board: RunBoard) -> dict[str, JobResult]:
        results: dict[str, JobResult] = {}
        clean_stale_tmp(self.cache)
        pending = list(jobs)
        done = 0
        told: set[str] = set()
        last_log = time.monotonic()
        unverified = 0
        while pending:
            progressed = False
            waiting: list[Job] = []
            for job in pending:
                if any(d not in results for d in job.deps):  # an upstream job is still elsewhere
                    waiting.append(job)
                    continue
                board.set(job.key, "running")
                res = run_one(job, self.cache, fn, results)
                if res is None:
                    board.set(job.key, "held")
                    waiting.append(job)
                    if job.key not in told:
                        told.add(job.key)
                        log.info("%s is being run by %s: doing other work first", job.describe(),
                                 _owner_str(lock_owner(self.cache, job.key)))
                    continue
                results[job.key] = res
                done += 1
                progressed = True
                unverified += res.cached and not res.verified
                state = "cached" if res.cached else ("FAILED" if res.error else f"{res.seconds:.1f}s")
                log.info("[%d/%d] %s: %s", done, len(jobs), job.describe(), state)
                board.finish(job.key, "cached" if res.cached else ("failed" if res.error else "ran"), res.seconds)
                on_done(job, res)
                bar.update(1)
            pending = waiting
            if pending and not progressed:
                if time.monotonic() - last_log >= WAIT_LOG_S:
                    last_log = time.monotonic()
                    held = [j for j in pending if j.key in told]
                    first = held[0] if held else pending[0]
                    log.info("waiting for %d job(s) run by other drivers, e.g. %s (%s)", len(pending),
                             first.describe(), _owner_str(lock_owner(self.cache, first.key)))
                time.sleep(WAIT_POLL_S)
            elif progressed:
                last_log = time.monotonic()
        if unverified:
            log.warning("%d cached job(s) were written by an older compressbench and carry no checksums: used "
                        "unverified (delete the cache folder to rebuild them with checksums)", unverified)
        return results


def _owner_str(info: dict[str, Any] | None) -> str:
    if not info:
        return "another driver"
    return f"pid {info.get('pid')} on {info.get('host')} since {info.get('started', '?')}"


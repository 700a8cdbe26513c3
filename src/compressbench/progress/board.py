"""One live view of a run: per job kind, how many jobs ran, were cached, failed, are running, queued or
waiting for their upstream jobs — and an ETA.

On a terminal (progress enabled) it is a rich table redrawn twice a second, the run's log lines printed
above it. Otherwise (CI, a log file, ``COMPRESSBENCH_PROGRESS=0``) it is one summary line (counts, the running
jobs by name, ETA) at least every ``LOG_EVERY_S`` seconds (``COMPRESSBENCH_PROGRESS_LOG_S``), next to the
executor's per-job lines and the training loop's epoch / loss / images-per-second lines, so a long job never
leaves a log silent.

The ETA is the remaining work divided among the slots: each job left is expected to take what the plan's
cost model says (``job.expected_s``: ``compressbench plan``'s estimate for it on this machine, FLOPs and
fixed costs, set by the runner before the jobs start), scaled by how the jobs that ran so far compared with
their own expectation (measured / expected, so a busy machine or a model the estimate misjudges corrects
itself as the run goes), minus what the running ones have already done, each weighted by the share of the
cluster one such job occupies (``share(job)``: 1 for the local executor, e.g. 0.5 for a 1-CPU job on 2
CPUs). So the first job already has an ETA. A job without an expectation (a plug-in executor's own plan)
counts its kind's mean time of the jobs that ran (cached jobs take no time); a kind with neither makes the
ETA a lower bound (``≥``).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import Any, Callable, Iterable

from . import log_interval

log = logging.getLogger("compressbench")

LOG_EVERY_S = log_interval()
KINDS = ("train", "compress", "evaluate")
# per-job states; "held": claimed by another driver (it runs there, this run waits for its result)
STATES = ("waiting", "queued", "running", "held", "ran", "cached", "failed")
_FINISHED = ("ran", "cached", "failed")


def fmt_seconds(s: float) -> str:
    s = max(0.0, s)
    if s < 60:
        return f"{s:.0f}s"
    if s < 3600:
        return f"{int(s // 60)}m{int(s % 60):02d}s"
    return f"{int(s // 3600)}h{int(s % 3600 // 60):02d}m"


def _name(job: Any) -> str:
    describe = getattr(job, "describe", None)
    return describe() if callable(describe) else str(job.key)


class RunBoard:
    """Counts per kind and state, updated by an executor (thread-safe), shown live or logged.

    ``jobs``: the plan (objects with ``key``, ``kind``, ``describe()``); ``live``: draw a rich table
    (else log a line every ``log_every`` seconds; ``log_every=0``: never); ``share(job)``: the fraction
    of the cluster one such job occupies (for the ETA)."""

    def __init__(
        self,
        jobs: Iterable[Any],
        *,
        live: bool,
        share: Callable[[Any], float] | None = None,
        log_every: float = LOG_EVERY_S,
        title: str = "jobs",
        console: Any = None,
    ):
        self.jobs = {j.key: j for j in jobs}
        self.live = live
        self.share = share or (lambda job: 1.0)
        self.log_every = log_every
        self.title = title
        self.state = {k: "waiting" for k in self.jobs}
        self.started: dict[str, float] = {}
        self.seconds: dict[str, list[float]] = {}
        # what the plan's cost model expects of each job (seconds here); measured vs expected of those that ran
        self.expected = {
            k: float(e) for k, j in self.jobs.items() if (e := getattr(j, "expected_s", None)) is not None and e >= 0
        }
        self._ran_expected = self._ran_measured = 0.0
        self.t0 = time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._live: Any = None
        self._console = console  # live mode's rich Console (default: stderr)
        self._swapped: list[tuple[logging.StreamHandler, Any]] = []

    # ------------------------------------------------------------------ updates (from the executor)
    def set(self, key: str, state: str) -> None:
        with self._lock:
            if state == "running" and self.state.get(key) != "running":
                self.started[key] = time.monotonic()
            self.state[key] = state

    def finish(self, key: str, state: str, seconds: float = 0.0) -> None:
        """A job finished: ``ran`` (its ``seconds`` feed the ETA), ``cached`` or ``failed``."""
        with self._lock:
            self.state[key] = state
            self.started.pop(key, None)
            if state == "ran":
                self.seconds.setdefault(self.jobs[key].kind, []).append(seconds)
                if key in self.expected:
                    self._ran_expected += self.expected[key]
                    self._ran_measured += seconds

    # ------------------------------------------------------------------ reading
    def counts(self) -> dict[str, dict[str, int]]:
        """``{kind: {state: n, "total": n}}`` for the kinds in the plan, plus ``"all"``."""
        with self._lock:
            out: dict[str, dict[str, int]] = {}
            for k, st in self.state.items():
                kind = self.jobs[k].kind
                for row in (kind, "all"):
                    c = out.setdefault(row, {s: 0 for s in (*STATES, "total")})
                    c[st] += 1
                    c["total"] += 1
            order = [k for k in KINDS if k in out] + sorted(k for k in out if k not in KINDS and k != "all")
            return {k: out[k] for k in [*order, "all"] if k in out}

    def correction(self) -> float:
        """Measured / expected seconds of the jobs that ran so far (1 before any): how the plan's cost model
        is doing on this run, applied to the jobs left (bounded to [1/4, 4]: one odd job must not swing it)."""
        with self._lock:
            if self._ran_expected <= 0:
                return 1.0
            return min(4.0, max(0.25, self._ran_measured / self._ran_expected))

    def eta(self) -> tuple[float | None, bool]:
        """(seconds left, exact?) — not exact when some job left has neither an expectation nor a finished job
        of its kind to go by."""
        now = time.monotonic()
        scale = self.correction()
        with self._lock:
            means = {k: sum(v) / len(v) for k, v in self.seconds.items() if v}
            left = [(k, st) for k, st in self.state.items() if st not in _FINISHED]
            work, exact, known = 0.0, True, False
            for k, st in left:
                job = self.jobs[k]
                mean = self.expected[k] * scale if k in self.expected else means.get(job.kind)
                if mean is None:
                    exact = False
                    continue
                known = True
                done = now - self.started[k] if st == "running" and k in self.started else 0.0
                work += max(mean - done, 0.0) * max(min(self.share(job), 1.0), 0.0)
        if not left:
            return 0.0, True
        if not known and not means:
            return None, False
        return work, exact

    def running(self) -> list[tuple[str, float]]:
        """(name, seconds so far) of the running jobs, longest first."""
        now = time.monotonic()
        with self._lock:
            run = [
                (_name(self.jobs[k]), now - self.started.get(k, now)) for k, st in self.state.items() if st == "running"
            ]
        return sorted(run, key=lambda r: -r[1])

    def line(self) -> str:
        """One summary line, e.g. for a log every 30 s: counts, the running jobs by name, elapsed and ETA."""
        c = self.counts()
        a = c.get("all", {s: 0 for s in (*STATES, "total")})
        fin = sum(a[s] for s in _FINISHED)
        parts = [
            f"{fin}/{a['total']} finished ({a['ran']} ran, {a['cached']} cached, {a['failed']} failed)",
            f"{a['running']} running, {a['queued']} queued, {a['waiting']} waiting",
        ]
        if a["held"]:
            parts[-1] += f", {a['held']} run by other drivers"
        parts.append(", ".join(f"{k} {sum(v[s] for s in _FINISHED)}/{v['total']}" for k, v in c.items() if k != "all"))
        run = self.running()
        if run:
            more = f" and {len(run) - 3} more" if len(run) > 3 else ""
            parts.append("running: " + ", ".join(f"{name} ({fmt_seconds(s)})" for name, s in run[:3]) + more)
        eta, exact = self.eta()
        tail = f"elapsed {fmt_seconds(time.monotonic() - self.t0)}"
        if eta is not None:
            tail += f", ETA {'' if exact else '≥ '}{fmt_seconds(eta)}"
        return f"{self.title}: " + "; ".join(parts + [tail])

    def table(self) -> Any:
        from rich import box
        from rich.table import Table

        eta, exact = self.eta()
        cap = f"elapsed {fmt_seconds(time.monotonic() - self.t0)}"
        if eta is not None:
            cap += f" · ETA {'' if exact else '≥ '}{fmt_seconds(eta)}"
        t = Table(title=self.title, caption=cap, title_justify="left", caption_justify="left", box=box.SIMPLE_HEAD)
        cols = ("ran", "cached", "failed", "running", "queued", "waiting")
        t.add_column("kind", no_wrap=True, min_width=8)
        for col in cols:
            t.add_column(col, justify="right", no_wrap=True)
        c = self.counts()
        held = c.get("all", {}).get("held", 0)
        if held:
            t.caption = f"{cap} · {held} run by other drivers (waited for)"
        t.add_column("done", justify="right", no_wrap=True, min_width=5)
        t.add_column("mean", justify="right", no_wrap=True, min_width=5)
        with self._lock:
            means = {k: sum(v) / len(v) for k, v in self.seconds.items() if v}
        for kind, v in c.items():
            row = [kind, *(str(v[s]) for s in cols)]
            row.append(f"{sum(v[s] for s in _FINISHED)}/{v['total']}")
            row.append(fmt_seconds(means[kind]) if kind in means else "")
            t.add_row(*row, style="bold" if kind == "all" else None)
        return t

    # ------------------------------------------------------------------ showing
    def __enter__(self) -> RunBoard:
        self.t0 = time.monotonic()
        if self.live:
            from rich.console import Console
            from rich.live import Live

            self._live = Live(
                get_renderable=self.table,
                console=self._console or Console(stderr=True),
                refresh_per_second=2,
                redirect_stdout=True,
                redirect_stderr=True,
                transient=False,
            )
            before = sys.stderr
            self._live.start()
            # log lines go through the live display (printed above the table), not across it
            for h in {*logging.getLogger().handlers, *log.handlers}:
                if isinstance(h, logging.StreamHandler) and h.stream in (sys.__stderr__, before):
                    self._swapped.append((h, h.stream))
                    h.setStream(sys.stderr)
        elif self.log_every > 0:
            self._thread = threading.Thread(target=self._log_loop, name="compressbench-progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._live is not None:
            self._live.stop()
            for h, stream in self._swapped:
                h.setStream(stream)
            self._swapped.clear()
            self._live = None
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None

    def _log_loop(self) -> None:
        while not self._stop.wait(self.log_every):
            log.info("%s", self.line())

"""The run's live view (``compressbench.progress.board.RunBoard``): counts per kind and state, the ETA,
the summary line logged when not on a terminal, and the rich table drawn when on one."""

from __future__ import annotations

import io
import logging
import sys
import time
from dataclasses import dataclass

import pytest
from rich.console import Console

from compressbench.progress.board import RunBoard, fmt_seconds


@dataclass
class J:
    key: str
    kind: str


JOBS = [J("t", "train")] + [J(f"c{i}", "compress") for i in range(3)] + [J(f"e{i}", "evaluate") for i in range(6)]


@dataclass
class JE:
    key: str
    kind: str
    expected_s: float


def test_eta_from_the_plans_cost_model_before_any_job_ran():
    jobs = [JE("t", "train", 100.0), JE("c", "compress", 20.0), JE("e0", "evaluate", 5.0), JE("e1", "evaluate", 5.0)]
    b = RunBoard(jobs, live=False)
    assert b.eta() == (pytest.approx(130.0), True)  # the first job already has an ETA
    b.set("t", "running")
    b.started["t"] = time.monotonic() - 40
    assert b.eta()[0] == pytest.approx(90.0, abs=0.5)
    b.finish("t", "ran", 200.0)  # twice what the model said: the jobs left are expected to take twice as long
    assert b.correction() == pytest.approx(2.0)
    assert b.eta() == (pytest.approx(60.0), True)
    b.finish("c", "ran", 10_000.0)  # one odd job moves the correction at most to 4×
    assert b.correction() == 4.0


def test_counts_per_kind_and_state():
    b = RunBoard(JOBS, live=False)
    b.finish("t", "ran", 100)
    b.finish("c0", "cached")
    b.set("c1", "running")
    b.set("c2", "queued")
    b.finish("e0", "failed")
    b.set("e1", "held")
    c = b.counts()
    assert list(c) == ["train", "compress", "evaluate", "all"]
    assert c["train"] == {
        "waiting": 0,
        "queued": 0,
        "running": 0,
        "held": 0,
        "ran": 1,
        "cached": 0,
        "failed": 0,
        "total": 1,
    }
    assert (c["compress"]["cached"], c["compress"]["running"], c["compress"]["queued"]) == (1, 1, 1)
    assert (c["evaluate"]["failed"], c["evaluate"]["held"], c["evaluate"]["waiting"]) == (1, 1, 4)
    assert c["all"]["total"] == 10 and c["all"]["waiting"] == 4


def test_eta_is_the_remaining_work_shared_among_the_slots():
    b = RunBoard(JOBS, live=False, share=lambda j: 0.5)  # e.g. 1-CPU jobs on 2 CPUs
    assert b.eta() == (None, False)  # nothing measured yet
    b.finish("t", "ran", 100)
    b.finish("c0", "ran", 10)
    b.finish("c1", "ran", 30)  # compress mean 20 s
    assert b.eta() == (pytest.approx(20 * 0.5), False)  # one compress left; evaluate has no timing yet
    b.finish("e0", "ran", 4)
    assert b.eta() == (pytest.approx(20 * 0.5 + 5 * 4 * 0.5), True)
    b.finish("e1", "cached")  # cached jobs take no time and leave the mean alone
    assert b.eta() == (pytest.approx(20 * 0.5 + 4 * 4 * 0.5), True)
    b.set("c2", "running")
    b.started["c2"] = time.monotonic() - 15  # ran 15 of its expected 20 s
    assert b.eta()[0] == pytest.approx(5 * 0.5 + 4 * 4 * 0.5, abs=0.2)
    for k in ("c2", "e2", "e3", "e4", "e5"):
        b.finish(k, "ran", 4)
    assert b.eta() == (0.0, True)


def test_summary_line():
    b = RunBoard(JOBS, live=False, share=lambda j: 1.0, title="jobs on Ray (2 CPU, 0 GPU)")
    b.finish("t", "ran", 100)
    b.finish("c0", "ran", 10)
    b.finish("c1", "cached")
    b.set("c2", "running")
    b.finish("e0", "failed")
    b.set("e1", "held")
    line = b.line()
    assert line.startswith(
        "jobs on Ray (2 CPU, 0 GPU): 4/10 finished (2 ran, 1 cached, 1 failed); 1 running, "
        "0 queued, 4 waiting, 1 run by other drivers; train 1/1, compress 2/3, evaluate 1/6; "
        "running: c2 (0s); elapsed 0s, ETA ≥ "
    )  # the running job by name (no describe(): key)
    assert [fmt_seconds(s) for s in (0.4, 59, 61, 3599, 3600 * 2 + 65)] == ["0s", "59s", "1m01s", "59m59s", "2h01m"]


def test_a_summary_line_is_logged_periodically_when_not_on_a_terminal(caplog):
    caplog.set_level(logging.INFO, logger="compressbench")
    with RunBoard(JOBS, live=False, log_every=0.05, title="jobs"):
        time.sleep(0.4)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("jobs: 0/10 finished")]
    assert len(lines) >= 2


def test_live_table_and_log_lines_above_it(monkeypatch):
    b = RunBoard(JOBS, live=False, title="jobs on Ray")
    b.finish("t", "ran", 160)
    b.set("c0", "running")
    out = Console(width=80, record=True, file=io.StringIO())
    out.print(b.table())
    text = out.export_text()
    assert "kind       ran   cached   failed   running   queued   waiting    done    mean" in text
    assert "train        1        0        0         0        0         0     1/1   2m40s" in text
    assert "compress     0        0        0         1        0         2     0/3" in text
    # live: a log record is printed through the live display, and the handler's stream is restored after
    buf = io.StringIO()
    monkeypatch.setattr(sys, "stderr", buf)
    handler = logging.StreamHandler(sys.stderr)
    log = logging.getLogger("compressbench")
    log.addHandler(handler)
    old_level = log.level
    log.setLevel(logging.INFO)
    try:
        with RunBoard(JOBS, live=True, title="jobs on Ray", console=Console(file=buf, force_terminal=True, width=80)):
            assert handler.stream is not buf
            log.info("[1/10] train baseline seed=0: 160.0s")
    finally:
        log.removeHandler(handler)
        log.setLevel(old_level)
    assert handler.stream is buf
    printed = buf.getvalue()
    assert printed.count("[1/10] train baseline seed=0: 160.0s") == 1 and "jobs on Ray" in printed

"""The Ray executor's edges (issue 22), on real local Ray instances started by real `compressbench run`
processes: an address where nothing listens is one line within seconds (it hung for over 10 minutes); a driver
killed with SIGKILL leaves no Ray process of its own alive (its agents used to survive, re-parented to pid 1);
a worker that crashes natively (``os.abort()``) is a failed job, and the driver lives to say so."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from compressbench.cli import main as cli_main

ray = pytest.importorskip("ray")
reaper = pytest.importorskip("compressbench.execute.ray_reaper")

SRC = str(Path(__file__).resolve().parents[1] / "src")
PLUGINS = str(Path(__file__).parent / "plugins")


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    return port


def test_address_where_nothing_listens_is_one_line_within_15_s(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "name": "p",
                "dataset": {"name": "digits"},
                "model": {"name": "tinycnn"},
                "train": {"epochs": 1},
                "cache_dir": str(tmp_path / "cache"),
                "store": str(tmp_path / "r.sqlite"),
            }
        )
    )
    port = _closed_port()
    t0 = time.monotonic()
    assert cli_main(["run", str(cfg), "-q", "--executor", "ray", "--address", f"127.0.0.1:{port}"]) == 2
    took = time.monotonic() - t0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"nothing answers at '127.0.0.1:{port}'" in err[0], err
    assert took <= 15, took
    print(f"closed port refused in {took:.1f}s")


class _Tree(threading.Thread):
    """Records the Ray processes under a driver (pid and start time) while it runs."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.seen, self.done = pid, {}, threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.seen.update(reaper.ray_tree(self.pid))
            time.sleep(0.2)


def _wait_gone(known: dict[int, int], timeout: float = 20.0) -> list[int]:
    t0 = time.monotonic()
    while reaper.alive(known) and time.monotonic() - t0 < timeout:
        time.sleep(0.2)
    return reaper.alive(known)


@pytest.mark.slow  # two local Ray instances started by two drivers (about 100 s on a loaded 2-core machine)
@pytest.mark.skipif(not reaper.supported(), reason="the watcher reads /proc (Linux)")
def test_driver_sigkill_leaves_no_ray_process_and_a_native_crash_is_a_failed_job(tmp_path):
    marks = tmp_path / "marks"
    marks.mkdir()
    raw = {
        "name": "life",
        "seeds": [0],
        "threads": 1,
        "dataset": {"name": "digits", "eval_subset": 100},
        "model": {"name": "tinycnn"},
        "train": {"epochs": 1, "batch_size": 64, "augment": "none"},
        "evaluations": [{"evaluator": "cb_ray_plugin:sleepy", "params": {"dir": str(marks)}}],
        "executor": {"name": "ray", "max_retries": 0},
        "cache_dir": str(tmp_path / "cache"),
        "store": str(tmp_path / "r.sqlite"),
    }
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(PYTHONPATH=os.pathsep.join([SRC, PLUGINS]), COMPRESSBENCH_PROGRESS="0", RAY_USAGE_STATS_ENABLED="0")
    p = subprocess.Popen(
        [sys.executable, "-m", "compressbench", "run", str(cfg), "-q"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    tree = _Tree(p.pid)
    tree.start()
    try:
        t0 = time.monotonic()
        while not (marks / "started").exists() and p.poll() is None and time.monotonic() - t0 < 180:
            time.sleep(0.1)
        assert (marks / "started").exists(), p.stderr.read() if p.poll() is not None else "no job started"
        time.sleep(0.5)
        os.kill(p.pid, signal.SIGKILL)  # the sleepy job is mid-run in a worker
        p.wait()
    finally:
        tree.done.set()
        if p.poll() is None:
            p.kill()
    tree.join()
    first = dict(tree.seen)
    names = {
        Path(f"/proc/{q}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace") for q in reaper.alive(first)
    }
    assert len(first) >= 4, first  # gcs_server, raylet, agents, the worker ...
    left = _wait_gone(first)
    assert left == [], f"Ray processes of the killed driver still alive: {left} ({names})"
    # the rerun: finishes the sleepy job from the cache's state; an evaluator that aborts its worker natively
    raw["evaluations"].append({"evaluator": "cb_ray_plugin:abort", "params": {"dir": str(marks)}})
    cfg.write_text(yaml.safe_dump(raw))
    p = subprocess.Popen(
        [sys.executable, "-m", "compressbench", "run", str(cfg), "-q"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    tree = _Tree(p.pid)
    tree.start()
    try:
        out, err = p.communicate(timeout=300)
    finally:
        tree.done.set()
        if p.poll() is None:
            p.kill()
    tree.join()
    assert p.returncode == 1, err[-2000:]  # a failed job, reported by a living driver
    assert "1 failed" in out + err and "Traceback" not in err, out + err
    assert _wait_gone(tree.seen) == [] and reaper.alive(first) == []

"""Tear down the local Ray instance a driver started when that driver dies without stopping it (SIGKILL, an OOM
kill, a native crash).

``ray.init()`` without an address starts gcs_server, raylet, a dashboard agent, a runtime-env agent, monitors
and workers as the driver's descendants. ``ray.shutdown()`` stops them; a driver killed with SIGKILL cannot,
and Ray's agents (``ray::DashboardAgent``, ``ray::RuntimeEnvAgent``) were seen re-parented to pid 1, alive
after the rerun. So the Ray executor starts this small watcher in its own session (it survives the driver's
process group): while the driver lives it records the Ray processes of the driver's tree — its children that
are Ray's (their command line names Ray's package or starts with ``ray::``) and all their descendants — with
each one's start time; when the driver is gone it sends them SIGTERM, then SIGKILL to what is left after a few
seconds. Only processes it recorded, with the start time it recorded (a reused pid is never touched): nothing
of another Ray instance, another user's or another driver's. The watcher exits when the driver ends normally
(the driver stops it after ``ray.shutdown()``, and it then removes whatever the shutdown left).

Linux only (it reads ``/proc``); elsewhere the executor does not start it. Ray offers no option for this: its
own cleanup runs in the driver's ``atexit``, which SIGKILL skips. Our own code because no maintained library
does it (psutil is not a dependency; ``/proc`` is enough here).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

POLL_S = 0.5
GRACE_S = 3.0


def supported() -> bool:
    return sys.platform.startswith("linux") and Path("/proc/self/stat").is_file()


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (``/proc/PID/stat`` field 22), or None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    return int(stat[stat.rindex(b")") + 2 :].split()[19])


def _children() -> dict[int, list[int]]:
    """{ppid: [pids]} of every process now."""
    out: dict[int, list[int]] = {}
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            stat = (p / "stat").read_bytes()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
        out.setdefault(ppid, []).append(int(p.name))
    return out


def _is_ray(pid: int) -> bool:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return cmd.startswith(b"ray::") or b"/ray/" in cmd


def ray_tree(driver: int) -> dict[int, int]:
    """{pid: start time} of the Ray processes under ``driver``: its children that are Ray's, and all theirs."""
    kids = _children()
    todo = [p for p in kids.get(driver, []) if _is_ray(p)]
    out: dict[int, int] = {}
    while todo:
        p = todo.pop()
        st = start_time(p)
        if st is None or p in out:
            continue
        out[p] = st
        todo += kids.get(p, [])
    return out


def alive(known: dict[int, int]) -> list[int]:
    """The recorded processes still running as themselves (same pid, same start time)."""
    return [p for p, st in known.items() if start_time(p) == st]


def reap(known: dict[int, int], grace: float = GRACE_S) -> int:
    """SIGTERM the recorded processes still alive, SIGKILL what is left after ``grace`` seconds; how many."""
    left = alive(known)
    for p in left:
        try:
            os.kill(p, signal.SIGTERM)
        except OSError:
            pass
    t0 = time.monotonic()
    while alive(known) and time.monotonic() - t0 < grace:
        time.sleep(0.1)
    for p in alive(known):
        try:
            os.kill(p, signal.SIGKILL)
        except OSError:
            pass
    return len(left)


def watch(driver: int, driver_start: int) -> None:
    """Record the driver's Ray tree while it lives; reap it when it is gone (or when told to stop: SIGTERM)."""
    known: dict[int, int] = {}
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    while not stop and start_time(driver) == driver_start:
        known.update(ray_tree(driver))
        time.sleep(POLL_S)
    reap(known)


def spawn() -> subprocess.Popen | None:
    """Start the watcher for this process (the driver), in its own session; None where unsupported."""
    if not supported():
        return None
    me = os.getpid()
    # by path, not -m: the watcher needs the standard library only, not compressbench's (torch's) imports
    return subprocess.Popen(
        [sys.executable, "-I", str(Path(__file__).resolve()), str(me), str(start_time(me))],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        close_fds=True,
    )


def stop(proc: subprocess.Popen | None, timeout: float = GRACE_S + 5) -> None:
    """After ``ray.shutdown()``: let the watcher remove what the shutdown left, and wait for it."""
    if proc is None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


if __name__ == "__main__":  # python ray_reaper.py DRIVER_PID DRIVER_START
    watch(int(sys.argv[1]), int(sys.argv[2]))

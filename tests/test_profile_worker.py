"""Fresh-process measurement leaves nothing behind: with real processes, a driver killed with SIGKILL
mid-measurement leaves no worker and no ``cb-profile-*`` folder; a worker whose parent closes the pipe
exits (the portable fallback); a timed-out worker is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import compressbench
from compressbench.measure.fresh import WORKER, ScratchDir, forked_workers, run_worker

SRC = str(Path(compressbench.__file__).resolve().parents[1])
pytestmark = pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="needs /proc (Linux)")


def _procs_mentioning(text: str) -> dict[int, str]:
    """pid -> command line of every live process whose command line contains ``text``."""
    out = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if text in cmd:
                out[int(d.name)] = cmd
    return out


def _wait_for(cond, timeout: float, step: float = 0.05):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        v = cond()
        if v:
            return v
        time.sleep(step)
    return cond()


def _long_job(tmp: Path) -> dict:
    return {
        "mode": "torch",
        "input_shape": [1, 3, 16, 16],
        "threads": 1,
        "throughput_batch": 0,
        "warmup": 0,
        "repeats": 10_000_000,
        "throughput_repeats": 1,
        "device": "cpu",
        "target": {"kind": "factory", "target": "tinycnn", "kwargs": {}, "input_shape": [1, 3, 16, 16]},
    }


def test_sigkilled_driver_leaves_no_worker_and_no_folder(tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = dict(os.environ, TMPDIR=str(tmp), PYTHONPATH=SRC, COMPRESSBENCH_PROGRESS="0")
    driver = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "compressbench",
            "profile",
            "tinycnn",
            "--input-shape",
            "1,3,16,16",
            "--repeats",
            "10000000",
            "--warmup",
            "0",
            "--batch",
            "0",
            "--no-onnx",
        ],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        workers = _wait_for(lambda: {p: c for p, c in _procs_mentioning(str(tmp)).items() if "--parent" in c}, 120)
        assert workers, "no worker process started"
        (wpid,) = workers

        def measuring() -> bool:  # torch loaded in the worker: the model is being built or timed
            try:
                return "libtorch_cpu" in Path(f"/proc/{wpid}/maps").read_text()
            except OSError:
                return False

        assert _wait_for(measuring, 60)
        time.sleep(0.5)
        assert driver.poll() is None and list(tmp.glob("cb-profile-*"))
        assert len(_procs_mentioning(str(tmp))) == 2  # the worker and the scratch folder's janitor
        driver.send_signal(signal.SIGKILL)
        driver.wait(10)
        t0 = time.monotonic()
        gone = _wait_for(lambda: not _procs_mentioning(str(tmp)) and not list(tmp.glob("cb-profile-*")), 5)
        assert gone, (_procs_mentioning(str(tmp)), list(tmp.iterdir()))
        print(f"orphans gone {time.monotonic() - t0:.2f} s after SIGKILL")
    finally:
        if driver.poll() is None:
            driver.kill()
        for pid in _procs_mentioning(str(tmp)):
            os.kill(pid, signal.SIGKILL)


def test_worker_exits_when_parent_closes_pipe(tmp_path):
    """The portable fallback (no PR_SET_PDEATHSIG needed): EOF on stdin ends the worker."""
    import json

    job = tmp_path / "job.json"
    job.write_text(json.dumps(_long_job(tmp_path)))
    proc = subprocess.Popen(
        [sys.executable, str(WORKER), str(job), str(tmp_path / "out.json"), "--parent", str(os.getpid())],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=dict(os.environ, PYTHONPATH=SRC),
    )
    try:
        time.sleep(0.5)
        assert proc.poll() is None
        proc.stdin.close()
        assert proc.wait(10) == 70
    finally:
        if proc.poll() is None:
            proc.kill()


def test_timeout_kills_worker_and_scratch_is_removed(tmp_path):
    with ScratchDir(tmp_path) as sd:
        with pytest.raises(subprocess.TimeoutExpired):
            run_worker(_long_job(tmp_path), timeout=1.0, scratch=sd)
        assert not [c for c in _procs_mentioning(str(tmp_path)).values() if "--parent" in c]
        assert sd.path.is_dir()
    assert not list(tmp_path.glob("cb-profile-*"))
    assert _wait_for(lambda: not _procs_mentioning(str(tmp_path)), 5)  # the janitor is gone too


def _short_job() -> dict:
    return {**_long_job(Path()), "repeats": 5, "warmup": 1, "throughput_batch": 4, "throughput_repeats": 1}


def _children_of(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def test_forked_worker_measures_as_a_fresh_one(tmp_path):
    """A measurement forked from the template reports what a fresh interpreter reports: the same fields, the
    job's thread count, and the same peak memory (model + activations) — the child maps the template's file
    pages back before its base is read, so library code is not counted as the model's memory."""
    fresh = run_worker(_short_job())
    with forked_workers():
        forked = [run_worker(_short_job()) for _ in range(2)]
        from compressbench.measure import fresh as fresh_mod

        (tpl,) = fresh_mod._templates.values()  # one template served both
    assert tpl.proc.poll() is not None  # ended with the block
    for r in forked:
        assert r.keys() == fresh.keys() and r["torch_threads"] == fresh["torch_threads"] == 1
        assert r["latency"]["median_ms"] > 0
        assert abs(r["peak_mem_mb"] - fresh["peak_mem_mb"]) < 1.5, (r["peak_mem_mb"], fresh["peak_mem_mb"])


def test_forked_worker_timeout_kills_the_child_and_the_template_serves_on(tmp_path):
    with forked_workers():
        with pytest.raises(subprocess.TimeoutExpired):
            run_worker(_long_job(tmp_path), timeout=1.0)
        from compressbench.measure import fresh as fresh_mod

        (tpl,) = fresh_mod._templates.values()
        assert _wait_for(lambda: not _children_of(tpl.proc.pid), 5)  # the child was killed and reaped
        assert run_worker(_short_job())["torch_threads"] == 1  # answers are in step: the next job runs


def test_sigkilled_driver_takes_template_and_child_along(tmp_path):
    code = (
        "import sys; from compressbench.measure.fresh import forked_workers, run_worker\n"
        "job = {'mode': 'torch', 'input_shape': [1, 3, 16, 16], 'threads': 1, 'throughput_batch': 0, "
        "'warmup': 0, 'repeats': 10_000_000, 'throughput_repeats': 1, 'device': 'cpu', 'target': "
        "{'kind': 'factory', 'target': 'tinycnn', 'kwargs': {}, 'input_shape': [1, 3, 16, 16]}}\n"
        "with forked_workers():\n    run_worker(job)\n"
    )
    driver = subprocess.Popen(
        [sys.executable, "-c", code],
        env=dict(os.environ, PYTHONPATH=SRC),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        mark = f"--template --parent {driver.pid}"
        tpl = _wait_for(lambda: list(_procs_mentioning(mark)), 120)
        assert tpl, "no template started"
        child = _wait_for(lambda: _children_of(tpl[0]), 60)
        assert child
        driver.send_signal(signal.SIGKILL)
        driver.wait(10)
        assert _wait_for(lambda: not _procs_mentioning(mark) and not Path(f"/proc/{child[0]}").exists(), 10)
    finally:
        if driver.poll() is None:
            driver.kill()


def test_forked_children_cpu_is_counted_for_the_job():
    """A forked child is the template's child: its CPU reaches this process only through the template's answer,
    which ``execute.cache.cpu_seconds`` (each job's ``cpu_seconds``) adds."""
    from compressbench.execute.cache import cpu_seconds
    from compressbench.measure.fresh import forked_cpu_seconds

    with forked_workers():
        run_worker(_short_job())  # the template's start is not a job's
        f0, c0 = forked_cpu_seconds(), cpu_seconds()
        run_worker(_short_job())
        child = forked_cpu_seconds() - f0
        assert child > 0.01  # it built a model and timed it
        assert cpu_seconds() - c0 >= child

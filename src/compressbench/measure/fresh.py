"""Fresh-process runs: one measurement per new interpreter, and nothing left behind.

Each job runs in its own Python process (:mod:`.worker`, started as a file) so that nothing one
measurement leaves behind — thread pools, allocator caches, oneDNN primitive caches, ``torch.compile``
state, ORT sessions — can change the next. Thread env vars are pinned so the child's pools match
``job["threads"]``. The job names everything the child may import: a checkpoint target carries the
experiment's plug-in set (``checkpoint.worker_trust``), which the child loads before the model.

Nothing outlives the run, whatever ends it: a worker is killed on timeout or when the caller is
interrupted, and dies by itself when its parent dies (``kill -9``; see :mod:`.worker`). Job files live
in a :class:`ScratchDir` (``cb-profile-*``) that is removed on exit and, should the parent die first,
by a janitor process that waits on a pipe from it.

Within :func:`forked_workers` (a whole ``compressbench run``), a torch measurement's process is forked from
a *template* instead of started from scratch: one process per thread setting that has imported torch and
the model code (≈ 3 s of CPU per fresh interpreter) and never run a kernel. Each child is still a new
process that runs one measurement and exits — own heap, thread pools and peak resident set — so what the
fresh process isolates stays isolated; only the interpreter start and the imports are paid once per run
instead of once per variant. ONNX Runtime and exported-artifact timings keep their own fresh processes
(they must not have torch loaded).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from types import TracebackType
from typing import Any, Iterator

log = logging.getLogger(__name__)

WORKER = Path(__file__).with_name("worker.py")


class ScratchDir:
    """A ``cb-profile-*`` folder under ``base`` (default: the system temp dir), created on first use and
    removed by :meth:`close` — or by its janitor process if this process dies without closing it."""

    def __init__(self, base: str | Path | None = None) -> None:
        self.base = Path(base) if base is not None else None
        self._path: Path | None = None
        self._janitor: subprocess.Popen[bytes] | None = None

    @property
    def path(self) -> Path:
        if self._path is None:
            if self.base is not None:
                self.base.mkdir(parents=True, exist_ok=True)
            self._path = Path(tempfile.mkdtemp(prefix="cb-profile-", dir=self.base))
            try:
                self._janitor = subprocess.Popen(
                    [sys.executable, "-I", str(WORKER), "--janitor", str(self._path)],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            except OSError as e:  # pragma: no cover — still removed by close()
                log.debug("no janitor for %s: %s", self._path, e)
        return self._path

    def close(self) -> None:
        if self._path is not None:
            shutil.rmtree(self._path, ignore_errors=True)
        if self._janitor is not None:
            self._janitor.stdin.close()  # type: ignore[union-attr]
            self._janitor.wait()
        self._path = self._janitor = None

    def __enter__(self) -> ScratchDir:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


class _Template:
    """A ``worker.py --template`` process: forks one child per job (see :func:`.worker.template`)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(WORKER), "--template", "--parent", str(os.getpid())],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self.lock = threading.Lock()

    def _line(self, timeout: float | None) -> str | None:
        """The template's next answer line; None on timeout; EOFError if it died."""
        out = self.proc.stdout
        assert out is not None
        if timeout is not None and not select.select([out], [], [], max(timeout, 0.0))[0]:
            return None
        line = out.readline()
        if not line:
            raise EOFError("the worker template exited")
        return line.decode().strip()

    def run(self, jpath: Path, opath: Path, lpath: Path, timeout: float) -> int | None:
        """Fork a child for the job; its exit code, or None when it ran past ``timeout`` (then killed)."""
        with self.lock:
            assert self.proc.stdin is not None
            try:
                self.proc.stdin.write(
                    (json.dumps({"job": str(jpath), "out": str(opath), "log": str(lpath)}) + "\n").encode()
                )
                self.proc.stdin.flush()
            except OSError as e:  # a broken pipe: the template died
                raise EOFError(f"the worker template exited ({e})") from None
            pid, done = int(self._line(None) or 0), None
            try:
                done = self._line(timeout)
            except BaseException:  # Ctrl-C, the template gone: the child does not outlive this call
                self.kill(pid)
                self.close()  # its answers are out of step now: a new template serves the next job
                raise
            if done is None:  # timeout
                self.kill(pid)
                _count_cpu(self._line(None) or "")  # the template's answer for the killed child
                return None
            return _count_cpu(done)

    @staticmethod
    def kill(pid: int) -> None:
        if pid > 0:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def close(self) -> None:
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:  # pragma: no cover — a child still running: it dies with the template
            self.proc.kill()
            self.proc.wait()


_templates: dict[str, _Template] | None = None  # thread setting -> template, while forked_workers() is active
_forked_cpu_s = 0.0  # CPU seconds of the forked children that ended (see forked_cpu_seconds)


def _count_cpu(answer: str) -> int:
    """Add the CPU seconds of a template's ``PID STATUS CPU`` answer to :func:`forked_cpu_seconds`; the status."""
    global _forked_cpu_s
    _, rc, cpu = answer.split()
    _forked_cpu_s += float(cpu)
    return int(rc)


def forked_cpu_seconds() -> float:
    """CPU seconds (user + sys) of every measurement child forked by a template for this process so far: they
    are the template's children, so this process's ``RUSAGE_CHILDREN`` would not count them while the
    template lives (``execute.cache.cpu_seconds`` adds them to the job that ran them)."""
    return _forked_cpu_s


@contextlib.contextmanager
def forked_workers() -> Iterator[None]:
    """Within this block torch measurements fork from a template process (module docstring); on exit the
    templates end. Outside it every measurement starts a fresh interpreter."""
    global _templates
    if _templates is not None:  # nested: the outer block owns them
        yield
        return
    _templates = {}
    try:
        yield
    finally:
        tpl, _templates = _templates, None
        for t in tpl.values():
            t.close()


def _worker_env(threads: str) -> dict[str, str]:
    return dict(os.environ, OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads, COMPRESSBENCH_PROGRESS="0")


def _template(threads: str) -> _Template | None:
    """The live template for ``threads`` (started on first use), or None outside :func:`forked_workers`."""
    if _templates is None:
        return None
    t = _templates.get(threads)
    if t is None or t.proc.poll() is not None:
        t = _templates[threads] = _Template(_worker_env(threads))
    return t


def run_worker(job: dict[str, Any], timeout: float = 900.0, scratch: ScratchDir | None = None) -> dict[str, Any]:
    """Run one measurement job (see ``profiling.timing_job``) in a fresh process, return its JSON result.
    ``scratch``: where the job files go (a private :class:`ScratchDir` if None)."""
    threads = str(job.get("threads", 1))
    env = _worker_env(threads)
    with ScratchDir() if scratch is None else contextlib.nullcontext(scratch) as sd:
        d = Path(tempfile.mkdtemp(prefix="job-", dir=sd.path))
        try:
            jpath, opath, lpath = d / "job.json", d / "out.json", d / "log.txt"
            jpath.write_text(json.dumps(job))
            tpl = _template(threads) if job.get("mode") == "torch" else None
            if tpl is not None:
                try:
                    rc = tpl.run(jpath, opath, lpath, timeout)
                except EOFError as e:
                    raise RuntimeError(f"profile worker failed ({job.get('mode')}): {e}") from None
                if rc is None:
                    raise subprocess.TimeoutExpired(["worker", str(jpath)], timeout)
                return _result(job, rc, opath, lpath)
            with open(lpath, "wb") as logf:
                proc = subprocess.Popen(
                    [sys.executable, str(WORKER), str(jpath), str(opath), "--parent", str(os.getpid())],
                    env=env,
                    stdin=subprocess.PIPE,
                    stdout=logf,
                    stderr=subprocess.STDOUT,
                )
                try:
                    rc = proc.wait(timeout)
                finally:  # timeout, Ctrl-C, any error: the worker does not outlive this call
                    if proc.poll() is None:
                        proc.kill()
                        proc.wait()
                    proc.stdin.close()  # type: ignore[union-attr]
            return _result(job, rc, opath, lpath)
        finally:
            shutil.rmtree(d, ignore_errors=True)


def _result(job: dict[str, Any], rc: int, opath: Path, lpath: Path) -> dict[str, Any]:
    if rc != 0 or not opath.is_file():
        tail = lpath.read_text(errors="replace").strip().splitlines()[-3:] if lpath.is_file() else []
        raise RuntimeError(f"profile worker failed ({job.get('mode')}, exit {rc}): {' | '.join(tail)}")
    return json.loads(opath.read_text())

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
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any

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
                self._janitor = subprocess.Popen([sys.executable, "-I", str(WORKER), "--janitor", str(self._path)],
                                                 stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                                 stderr=subprocess.DEVNULL)
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


def run_worker(job: dict[str, Any], timeout: float = 900.0, scratch: ScratchDir | None = None) -> dict[str, Any]:
    """Run one measurement job (see ``profiling.timing_job``) in a fresh process, return its JSON result.
    ``scratch``: where the job files go (a private :class:`ScratchDir` if None)."""
    threads = str(job.get("threads", 1))
    env = dict(os.environ, OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads, COMPRESSBENCH_PROGRESS="0")
    with ScratchDir() if scratch is None else contextlib.nullcontext(scratch) as sd:
        d = Path(tempfile.mkdtemp(prefix="job-", dir=sd.path))
        try:
            jpath, opath, lpath = d / "job.json", d / "out.json", d / "log.txt"
            jpath.write_text(json.dumps(job))
            with open(lpath, "wb") as logf:
                proc = subprocess.Popen([sys.executable, str(WORKER), str(jpath), str(opath), "--parent",
                                         str(os.getpid())], env=env, stdin=subprocess.PIPE, stdout=logf,
                                        stderr=subprocess.STDOUT)
                try:
                    rc = proc.wait(timeout)
                finally:  # timeout, Ctrl-C, any error: the worker does not outlive this call
                    if proc.poll() is None:
                        proc.kill()
                        proc.wait()
                    proc.stdin.close()  # type: ignore[union-attr]
            if rc != 0 or not opath.is_file():
                tail = lpath.read_text(errors="replace").strip().splitlines()[-3:]
                raise RuntimeError(f"profile worker failed ({job.get('mode')}, exit {rc}): {' | '.join(tail)}")
            return json.loads(opath.read_text())
        finally:
            shutil.rmtree(d, ignore_errors=True)

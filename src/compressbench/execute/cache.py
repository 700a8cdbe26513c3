"""The artifact cache protocol that every executor uses (the local one in this process, the Ray one in
its workers): verify, claim, run into a temporary folder, commit by rename, release.

The cache protocol (every executor uses these functions; docs/reliability.md states the guarantees)
----------------------------------------------------------------------------------------------------
* Artifacts live under ``<cache>/jobs/<key>/``. A job runs into a private ``.tmp-*`` folder that is
  renamed into place when complete (atomic on one filesystem), ``result.json`` written last: a job
  folder is either whole or absent. A failed job writes nothing, so the next run retries it; its
  dependents are skipped with an "upstream failed" error.
* ``result.json`` records the sha256 and size of every file the job left, the digests of its upstream
  jobs' ``result.json``, and its own content hash (``record_sha256``: sha256 of the record's canonical JSON
  without that field — measurements and info included). :func:`inspect_cached` verifies all of it on every
  load: a damaged or missing file, an unreadable or edited record, a record without checksums (written by an
  older compressbench: never trusted), or an upstream that was rebuilt since (its digest changed) makes the
  job *not cached* — it is discarded and re-run, with one warning, and so, transitively, is everything
  computed from it.
* Before running, a job is *claimed*: :func:`claim_job` creates ``<cache>/jobs/<key>.lock`` with
  ``O_CREAT|O_EXCL`` (owner pid, host, start time; its mtime is a heartbeat refreshed every
  ``HEARTBEAT_S``). A driver that meets a job claimed by a live owner does other work and comes back
  (:func:`run_one` returns ``None``); it never runs the job twice. A lock is stale when its owner is
  on this host and dead, or when its heartbeat is older than ``LOCK_STALE_S``; breaking a stale lock
  is serialised by a second ``O_EXCL`` file, so two drivers cannot both take it over.

:func:`run_one` is the whole protocol for one job (verify → claim → re-verify → run → commit →
release); an executor only decides what to run next and what to do with ``None`` (come back later).
(One module of ≈ 470 lines on purpose: hashing, claims and the commit are one protocol, read together.)
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import logging
import os
import shutil
import socket
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

from ..checkpoint import atomic_write_bytes
from ..errors import CacheError
from ..jobs import Job

log = logging.getLogger("compressbench")

RECORD_FORMAT = 3  # 1: no checksums; 2: files + upstream digests; 3: + the record's own content hash
# records of an older format are not trusted: re-run (their values could have been edited unnoticed)
HEARTBEAT_S = float(os.environ.get("COMPRESSBENCH_LOCK_HEARTBEAT_S", "30"))
LOCK_STALE_S = float(os.environ.get("COMPRESSBENCH_LOCK_STALE_S", "600"))
WAIT_POLL_S = 0.5
WAIT_LOG_S = 30.0
_HASH_CHUNK = 1 << 20
# the GPU share an executor gave the running job (None: the executor assigns no devices, e.g. local);
# the job function reads it to choose its device (0: the CPU, whatever GPUs the process could see)
GPU_SHARE: contextvars.ContextVar[float | None] = contextvars.ContextVar("compressbench_gpu_share", default=None)


@dataclass
class JobResult:
    key: str
    dir: Path
    measurements: list[dict[str, Any]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)  # e.g. achieved budget, steps, timings
    error: str | None = None
    cached: bool = False
    seconds: float = 0.0
    digest: str | None = None  # sha256 of the job's result.json (dependents record it)
    record_sha256: str | None = None  # the record's own content hash (each of its rows in the store carries it)


JobFn = Callable[[Job, Path, dict[str, "JobResult"]], tuple[list[dict[str, Any]], dict[str, Any]]]
"""``fn(job, out dir, upstream results) -> (measurements, info)``. An executor that runs jobs in parallel
or in other processes needs it picklable, and calls its ``prepare(jobs)``, if it has one, once in the
driver before (e.g. the runner's ``JobRunner`` loads each dataset there once, downloading it if missing)."""


class Executor(Protocol):
    def run(self, jobs: list[Job], fn: JobFn, on_done: Callable[[Job, JobResult], None]) -> dict[str, JobResult]: ...


def job_dir(cache: Path, key: str) -> Path:
    return cache / "jobs" / key


def uncached(jobs: list[Job], cache: Path) -> list[Job]:
    """The jobs whose result the cache does not hold (yet), in order."""
    return [j for j in jobs if not (job_dir(cache, j.key) / "result.json").is_file()]


# =========================================================================== integrity
def file_sha256(path: Path) -> str:
    """sha256 of a file, streamed in 1 MiB chunks (≈ 0.1 s for 50 MB on one core of this machine)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def artifact_manifest(d: Path) -> dict[str, dict[str, Any]]:
    """``{relative path: {"sha256", "size"}}`` of every file under a job folder but ``result.json``."""
    out: dict[str, dict[str, Any]] = {}
    for f in sorted(d.rglob("*")):
        if f.is_file() and f.relative_to(d).as_posix() != "result.json":
            out[f.relative_to(d).as_posix()] = {"sha256": file_sha256(f), "size": f.stat().st_size}
    return out


def canonical_json(obj: Any) -> bytes:
    """The one JSON form a record's content hash is computed over (keys sorted, no spaces)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str, allow_nan=True).encode()


def record_hash(record: dict[str, Any]) -> str:
    """sha256 of a job record's canonical JSON without its ``record_sha256`` field."""
    return hashlib.sha256(canonical_json({k: v for k, v in record.items() if k != "record_sha256"})).hexdigest()


def _record_problem(data: Any) -> str | None:
    if not isinstance(data, dict):
        return "result.json is not a JSON object"
    if data.get("format") != RECORD_FORMAT or "record_sha256" not in data or "files" not in data:
        return (
            f"result.json carries no content hash (record format {data.get('format')!r}, this version writes "
            f"{RECORD_FORMAT}: written by an older compressbench, or edited); it is not trusted"
        )
    if data["record_sha256"] != record_hash(data):
        return "result.json does not match its own content hash (a value in it changed after it was written)"
    ms = data.get("measurements")
    if not isinstance(ms, list):
        return "result.json has no 'measurements' list"
    if not all(isinstance(m, dict) and isinstance(m.get("metric"), str) for m in ms):
        return "result.json has a measurement without a metric name"
    if not isinstance(data.get("info", {}), dict):
        return "result.json 'info' is not an object"
    if not isinstance(data.get("files"), dict) or not isinstance(data.get("upstream", {}), dict):
        return "result.json 'files'/'upstream' are not objects"
    return None


def inspect_cached(
    cache: Path, key: str, upstream: dict[str, JobResult] | None = None
) -> tuple[JobResult | None, str | None]:
    """Look a job up in the cache and verify it. Returns ``(result, None)`` when it is usable,
    ``(None, None)`` when it is absent, ``(None, why)`` when it is there but must not be used:
    unreadable record, no or a wrong content hash (an older format, an edit), another job's record, a file
    missing or changed (size / sha256), or an upstream job (in ``upstream``) whose ``result.json`` digest
    differs from the one this job was computed from."""
    d = job_dir(cache, key)
    f = d / "result.json"
    if not f.is_file():
        return None, ("its folder has no result.json" if d.is_dir() else None)
    try:
        blob = f.read_bytes()
        data = json.loads(blob)
    except (OSError, ValueError) as e:
        return None, f"result.json is unreadable ({type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''})"
    bad = _record_problem(data)
    if bad:
        return None, bad
    if data.get("key") != key:
        return None, f"result.json is the record of job {str(data.get('key'))[:24]}, not of this job"
    for rel, want in data["files"].items():
        if Path(rel).is_absolute() or ".." in Path(rel).parts:
            return None, f"result.json lists an artifact outside the job's folder ({rel[:80]})"
        p = d / rel
        try:
            size = p.stat().st_size
        except OSError:
            return None, f"artifact {rel} is missing"
        if not isinstance(want, dict):
            return None, f"result.json lists artifact {rel} without its size and sha256"
        if size != want.get("size"):
            return None, f"artifact {rel} has {size} bytes, {want.get('size')} were written"
        if file_sha256(p) != want.get("sha256"):
            return None, f"artifact {rel} does not match its sha256 (changed on disk)"
    for dep, digest in (data.get("upstream") or {}).items():
        up = (upstream or {}).get(dep)
        if up is not None and up.digest is not None and digest != up.digest:
            return None, f"upstream job {dep} was rebuilt since this job used it"
    return JobResult(
        key,
        d,
        data["measurements"],
        data.get("info", {}),
        cached=True,
        seconds=data.get("seconds", 0.0),
        digest=hashlib.sha256(blob).hexdigest(),
        record_sha256=data["record_sha256"],
    ), None


def load_cached(cache: Path, key: str, upstream: dict[str, JobResult] | None = None) -> JobResult | None:
    """A verified cached result, or None (absent or not usable — see :func:`inspect_cached`)."""
    return inspect_cached(cache, key, upstream)[0]


# =========================================================================== claims (lock files)
_HOST = socket.gethostname()


def _proc_start(pid: int) -> str | None:
    """The kernel's start time of a process (field 22 of /proc/PID/stat): tells a reused pid apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _pid_alive(pid: int, start: str | None = None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] in ("Z", "X"):  # zombie: dead, not yet reaped
            return False
        if start is not None and fields[19] != start:
            return False  # the pid was reused by another process
    except (OSError, IndexError):
        pass
    return True


def _owner() -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "host": _HOST,
        "pid_start": _proc_start(os.getpid()),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _read_lock(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else None
    except (OSError, ValueError):
        return None  # being written, or garbage: judged by its age alone


DeadOwner = Callable[[dict[str, Any]], bool]
"""An executor's extra knowledge of dead owners: ``is_dead(lock info) -> True`` when the lock's owner is
known to be gone (e.g. the Ray executor: the lock names this very task, whose earlier attempt's worker
died — that is why Ray retries it — possibly on another host, where pids tell nothing)."""


def lock_is_stale(path: Path, info: dict[str, Any] | None, is_dead: DeadOwner | None = None) -> bool:
    """Stale: the owner is on this host and dead, or ``is_dead`` says it is gone; otherwise, no heartbeat
    for ``LOCK_STALE_S``."""
    try:
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return True
    if info and is_dead is not None and is_dead(info):
        return True
    if info and info.get("host") == _HOST and isinstance(info.get("pid"), int):
        if not _pid_alive(info["pid"], info.get("pid_start")):
            return True
    return age > LOCK_STALE_S


@dataclass
class Claim:
    """This process's claim on a job (its lock file); :meth:`release` when the job is committed."""

    path: Path
    token: str
    released: bool = False

    def release(self) -> None:
        if self.released:
            return
        self.released = True
        _Heartbeat.forget(self)
        info = _read_lock(self.path)
        if info is not None and info.get("token") == self.token:  # never remove a lock someone else took over
            self.path.unlink(missing_ok=True)


class _Heartbeat:
    """One daemon thread per process refreshing the mtime of every lock it holds."""

    _lock = threading.Lock()
    _claims: dict[Path, Claim] = {}
    _thread: threading.Thread | None = None

    @classmethod
    def add(cls, claim: Claim) -> None:
        with cls._lock:
            cls._claims[claim.path] = claim
            if cls._thread is None or not cls._thread.is_alive():
                cls._thread = threading.Thread(target=cls._beat, name="compressbench-heartbeat", daemon=True)
                cls._thread.start()

    @classmethod
    def forget(cls, claim: Claim) -> None:
        with cls._lock:
            if cls._claims.get(claim.path) is claim:
                del cls._claims[claim.path]

    @classmethod
    def _beat(cls) -> None:
        while True:
            time.sleep(HEARTBEAT_S)
            with cls._lock:
                claims = list(cls._claims.values())
            for c in claims:
                try:
                    os.utime(c.path)
                except OSError:
                    log.warning("lost the claim on %s (lock file removed)", c.path.name)
                    cls.forget(c)


def _break_stale(lock: Path, seen: dict[str, Any] | None, is_dead: DeadOwner | None = None) -> None:
    """Remove a stale lock, serialised by ``<lock>.break`` (O_EXCL): of several drivers that judged the
    same lock stale, one removes it and the others find it changed or gone; then all race for a
    fresh claim with O_EXCL, which exactly one wins."""
    breaker = lock.with_name(lock.name + ".break")
    try:
        fd = os.open(breaker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except FileExistsError:
        try:  # a breaker holds it for microseconds; one older than a minute was left by a killed process
            if time.time() - breaker.stat().st_mtime > 60:
                breaker.unlink(missing_ok=True)
        except FileNotFoundError:
            pass
        return
    os.close(fd)
    try:
        now = _read_lock(lock)
        same = (now or {}).get("token") == (seen or {}).get("token")
        if same and lock_is_stale(lock, now, is_dead):
            owner = f"pid {now.get('pid')} on {now.get('host')}" if now else "an unknown owner"
            log.warning(
                "taking over the stale claim on job %s (%s, started %s)",
                lock.stem,
                owner,
                (now or {}).get("started", "?"),
            )
            lock.unlink(missing_ok=True)
    finally:
        breaker.unlink(missing_ok=True)


def claim_job(
    cache: Path, key: str, owner: dict[str, Any] | None = None, is_dead: DeadOwner | None = None
) -> Claim | None:
    """Claim a job for this process, or None when a live owner holds it. ``owner``: extra fields for
    the lock file (who we are, e.g. a Ray task id); ``is_dead``: see :data:`DeadOwner`. Raises
    :class:`CacheError` when the cache cannot be written."""
    lock = cache / "jobs" / f"{key}.lock"
    for _ in range(3):
        try:
            fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            info = _read_lock(lock)
            if not lock_is_stale(lock, info, is_dead):
                return None
            _break_stale(lock, info, is_dead)
            continue
        except OSError as e:
            raise CacheError(
                f"{cache}: cannot claim job {key} ({e.strerror}); the cache must be writable to run "
                f"jobs that are not in it yet"
            ) from None
        token = os.urandom(8).hex()
        with os.fdopen(fd, "w") as f:
            json.dump({**(owner or {}), **_owner(), "token": token, "key": key}, f)
        claim = Claim(lock, token)
        _Heartbeat.add(claim)
        return claim
    return None


def lock_owner(cache: Path, key: str) -> dict[str, Any] | None:
    """Who holds a job's claim (for log lines), if anyone."""
    return _read_lock(cache / "jobs" / f"{key}.lock")


# =========================================================================== running one job
def _tag() -> str:
    return f"{time.time_ns()}-{os.getpid()}-{hashlib.sha256(_HOST.encode()).hexdigest()[:8]}"


def discard_job(cache: Path, key: str) -> None:
    """Remove a job's folder (hold its claim): renamed aside first, so nobody sees it half-deleted."""
    d = job_dir(cache, key)
    if not d.exists():
        return
    trash = d.with_name(f".trash-{key}-{_tag()}")
    try:
        d.rename(trash)
    except OSError as e:
        raise CacheError(f"{d}: cannot discard this damaged job ({e.strerror}); remove the folder by hand") from None
    shutil.rmtree(trash, ignore_errors=True)


def tmp_job_dir(cache: Path, key: str) -> Path:
    """A new private folder a claimed job runs into (renamed into place by :func:`commit_job`)."""
    tmp = cache / "jobs" / f".tmp-{key}-{_tag()}"
    tmp.mkdir(parents=True)
    return tmp


def failed_job(job: Job, cache: Path, tmp: Path, e: BaseException, seconds: float) -> JobResult:
    """The error result of a job whose function raised ``e`` (its temporary folder removed, nothing cached)."""
    shutil.rmtree(tmp, ignore_errors=True)
    msg = f"{type(e).__name__}: {e}".splitlines()[0][:500]
    log.error("job %s failed: %s", job.describe(), msg)
    log.debug("%s", "".join(traceback.format_exception(e)))
    return JobResult(job.key, job_dir(cache, job.key), error=msg, seconds=seconds)


def execute_job(job: Job, cache: Path, fn: JobFn, upstream: dict[str, JobResult]) -> JobResult:
    """Run a claimed job into a private temporary folder, record checksums, move it into place."""
    tmp = tmp_job_dir(cache, job.key)
    t0, c0 = time.perf_counter(), cpu_seconds()
    try:
        measurements, info = fn(job, tmp, upstream)
    except Exception as e:  # a failed job is a row with its error, not a crashed sweep
        return failed_job(job, cache, tmp, e, time.perf_counter() - t0)
    return commit_job(job, cache, tmp, measurements, info, time.perf_counter() - t0, upstream, cpu_seconds() - c0)


def cpu_seconds() -> float:
    """CPU time (user + sys) of this process, of the child processes it has waited for (e.g. a fresh timing
    process) and of the timing processes a template forked for it (``measure.fresh``); recorded with each job
    (``result.json``'s ``cpu_seconds``: what ``compressbench plan`` models)."""
    import resource

    from ..measure.fresh import forked_cpu_seconds

    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime + forked_cpu_seconds()


def commit_job(
    job: Job,
    cache: Path,
    tmp: Path,
    measurements: list[dict[str, Any]],
    info: dict[str, Any],
    secs: float,
    upstream: dict[str, JobResult],
    cpu: float | None = None,
) -> JobResult:
    """Record a finished job's checksums in ``tmp/result.json`` and move ``tmp`` into place (the commit).
    ``secs``: its wall-clock seconds; ``cpu``: its CPU seconds (this process's threads and waited-for children;
    a process-wide figure, so exact only when jobs do not run in parallel threads of one process)."""
    final = job_dir(cache, job.key)
    record = {
        "format": RECORD_FORMAT,
        "key": job.key,
        "kind": job.kind,
        "spec": job.spec.record(),
        "measurements": measurements,
        "info": info,
        "seconds": secs,
        **({"cpu_seconds": cpu} if cpu is not None else {}),
        "files": artifact_manifest(tmp),
        "upstream": {k: upstream[k].digest for k in job.deps if k in upstream},
    }
    record = json.loads(json.dumps(record, default=str))  # the values as a later load reads them
    record["record_sha256"] = record_hash(record)
    blob = json.dumps(record, indent=1).encode()
    atomic_write_bytes(tmp / "result.json", blob)
    try:
        tmp.rename(final)
    except OSError:  # a driver without claims (older version) committed it meanwhile: keep theirs
        shutil.rmtree(tmp, ignore_errors=True)
        res = load_cached(cache, job.key, upstream)
        if res is not None:
            res.cached, res.seconds = False, secs
            return res
        raise
    return JobResult(
        job.key,
        final,
        record["measurements"],
        record["info"],
        cached=False,
        seconds=secs,
        digest=hashlib.sha256(blob).hexdigest(),
        record_sha256=record["record_sha256"],
    )


def claim_to_run(
    job: Job,
    cache: Path,
    upstream: dict[str, JobResult],
    *,
    owner: dict[str, Any] | None = None,
    is_dead: DeadOwner | None = None,
) -> tuple[JobResult | None, Claim | None]:
    """The protocol up to running a job: verify → claim → re-verify (a damaged artifact discarded).
    ``(result, None)``: cached, or an error result (an upstream job failed); ``(None, None)``: another live
    driver holds the job's claim; ``(None, claim)``: this process runs it now and releases the claim after
    the commit."""
    res, problem = inspect_cached(cache, job.key, upstream)
    if res is not None:
        return res, None
    failed = [k for k in job.deps if upstream.get(k) is None or upstream[k].error]
    if failed:
        why = upstream[failed[0]].error if failed[0] in upstream else failed[0]
        return JobResult(job.key, job_dir(cache, job.key), error=f"upstream job failed: {why}"), None
    claim = claim_job(cache, job.key, owner, is_dead)
    if claim is None:
        return None, None
    try:
        res, problem = inspect_cached(cache, job.key, upstream)  # another driver may have committed it
        if res is not None:
            claim.release()
            return res, None
        if problem:
            log.warning(
                "cached job %s (%s) is not usable: %s — discarding and re-running it", job.describe(), job.key, problem
            )
            discard_job(cache, job.key)
    except BaseException:
        claim.release()
        raise
    return None, claim


def run_one(
    job: Job,
    cache: Path,
    fn: JobFn,
    upstream: dict[str, JobResult],
    *,
    owner: dict[str, Any] | None = None,
    is_dead: DeadOwner | None = None,
) -> JobResult | None:
    """Verify → claim → re-verify → run → commit → release, for one job whose upstream results are in
    ``upstream``. Returns the (cached or new) result, an error result (the job or an upstream
    failed), or None when another live driver holds the job's claim: call again later. ``owner`` and
    ``is_dead`` go to :func:`claim_job`."""
    res, claim = claim_to_run(job, cache, upstream, owner=owner, is_dead=is_dead)
    if claim is None:
        return res
    try:
        return execute_job(job, cache, fn, upstream)
    finally:
        claim.release()


def clean_stale_tmp(cache: Path) -> int:
    """Remove ``.tmp-*`` / ``.trash-*`` folders (and their locks' ``.break`` files) left by killed runs:
    only those whose owner is gone (this host: the pid is dead; another host: the job's lock is absent
    or stale). Returns how many were removed."""
    jobs = cache / "jobs"
    if not jobs.is_dir():
        return 0
    here = hashlib.sha256(_HOST.encode()).hexdigest()[:8]
    n = 0
    for d in jobs.iterdir():
        if not d.name.startswith((".tmp-", ".trash-")) or not d.is_dir():
            continue
        parts = d.name.split("-")
        key = parts[1] if len(parts) > 1 else ""
        gone = False
        if len(parts) == 5 and parts[3].isdigit():
            if parts[4] == here:
                gone = not _pid_alive(int(parts[3]))
            else:
                lock = jobs / f"{key}.lock"
                gone = lock_is_stale(lock, _read_lock(lock))
        else:  # written by an older version: no owner recorded
            lock = jobs / f"{key}.lock"
            try:
                old = time.time() - d.stat().st_mtime > LOCK_STALE_S
            except FileNotFoundError:
                continue
            gone = old and lock_is_stale(lock, _read_lock(lock))
        if gone:
            shutil.rmtree(d, ignore_errors=True)
            n += 1
    if n:
        log.info("removed %d temporary job folder(s) left by interrupted runs", n)
    return n


def prepare_cache(cache: Path, jobs: list[Job]) -> None:
    """Before any work: the cache is a folder with a ``jobs`` folder we can write, or — read-only — it
    holds every job of the plan (a run that needs no writes works on a read-only cache). Raises a
    one-line :class:`CacheError` otherwise."""
    jobs_dir = cache / "jobs"
    for p in (cache, jobs_dir):
        if p.exists() and not p.is_dir():
            raise CacheError(
                f"{p}: is a file, but the cache needs a folder here; move the file away or set "
                f"'cache_dir' to another folder"
            )
    try:
        jobs_dir.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocker = next((q for q in [cache, *cache.parents] if q.exists() and not q.is_dir()), cache)
        raise CacheError(
            f"{cache}: cannot create the cache folder: {blocker} is a file, not a folder; move it away "
            f"or set 'cache_dir' to another folder"
        ) from None
    except OSError as e:
        raise CacheError(
            f"{cache}: cannot create the cache folder ({e.strerror}); set 'cache_dir' to a writable folder"
        ) from None
    if os.access(jobs_dir, os.W_OK | os.X_OK):
        return
    missing = uncached(jobs, cache)
    if missing:
        raise CacheError(
            f"{cache}: the cache is read-only and {len(missing)} of {len(jobs)} jobs are not in it "
            f"(first: {missing[0].describe()}); make it writable or set 'cache_dir' to a writable folder"
        )

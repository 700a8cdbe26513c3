"""Fresh-process measurement worker, run as a *file*: ``python worker.py job.json out.json --parent PID``.

Run by :func:`compressbench.measure.fresh.run_worker` so that a new interpreter starts with nothing but
what the job needs. Mode ``torch`` loads the model (a checkpoint through ``checkpoint.load_model``, after
loading the plug-in set the job names — ``config.PluginSet``: the experiment's user modules and entry
points, so a plug-in method's rebuilder exists here as in the driver — or a factory) and times it; mode
``onnx`` imports only numpy + onnxruntime and times an ``.onnx`` file; mode ``artifact`` times an exported
file in its format's runtime (``compressbench.deploy``). The resident set is read before the model is loaded
(and after the plug-ins), so peak memory counts model + activations + workspace. ``--template`` runs
:func:`template`: the imports once, then one forked child per job (``fresh.forked_workers``).

Module-level imports are the standard library only: the same file also runs as the scratch folder's
*janitor* (``python -I worker.py --janitor DIR``), which waits until its parent closes the pipe on its
stdin — or dies — and then removes ``DIR``.

A worker dies with its parent: on Linux through ``prctl(PR_SET_PDEATHSIG, SIGKILL)``; everywhere
through a watchdog thread that exits when the parent's end of the stdin pipe closes.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import threading
from pathlib import Path
from typing import Any

PR_SET_PDEATHSIG = 1


def wait_for_eof() -> None:
    """Block until stdin reaches EOF: the parent closed its end of the pipe, or died. Raw ``os.read``, not
    ``sys.stdin``: a daemon thread blocked in a buffered read aborts the interpreter at shutdown."""
    try:
        while os.read(0, 4096):
            pass
    except OSError:
        pass


def die_with_parent(parent: int, watch_stdin: bool = True) -> None:
    """Exit when the parent process dies (see the module docstring). ``watch_stdin=False``: the caller reads
    stdin itself and exits at its EOF (the template)."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):  # pragma: no cover — no libc prctl: the watchdog still works
            pass
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(70)
    if not watch_stdin:
        return

    def watch() -> None:
        wait_for_eof()
        os._exit(70)

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


def janitor(folder: str) -> int:
    """Remove ``folder`` once stdin reaches EOF (parent done or dead); Ctrl-C does not stop it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    wait_for_eof()
    shutil.rmtree(folder, ignore_errors=True)
    return 0


def _torch_imports() -> None:
    """What timing a torch model imports (model zoo, torchvision, rebuilders, Timer): in each fresh worker,
    or once in a template (:func:`template`) that forks one child per job."""
    import importlib

    import torch.utils.benchmark  # noqa: F401

    import compressbench.checkpoint  # noqa: F401
    import compressbench.measure.protocol  # noqa: F401
    import compressbench.measure.targets  # noqa: F401
    import compressbench.measure.timing  # noqa: F401

    for mod in ("compressbench.models", "compressbench.compress"):
        try:
            importlib.import_module(mod)
        except Exception:  # noqa: BLE001 — only a warm-up; load_model reports real errors
            pass


def _time_torch_target(job: dict[str, Any]) -> dict[str, Any]:
    import torch

    torch.set_num_threads(int(job["threads"]))
    torch.set_num_interop_threads(1)
    if job.get("quantized_engine") in torch.backends.quantized.supported_engines:
        torch.backends.quantized.engine = job["quantized_engine"]
    # import what building / loading needs and initialise the kernel libraries on a throw-away op first,
    # so that peak - base = model + activations (+ workspace)
    _torch_imports()
    from compressbench.checkpoint import load_model_in_worker
    from compressbench.measure.protocol import rss_kb
    from compressbench.measure.targets import build_factory
    from compressbench.measure.timing import measure_torch_model

    t = job["target"]
    if t["kind"] == "checkpoint":  # the experiment's plug-ins (a method's rebuilder, a model factory), as the
        from compressbench.config.plugins import PluginSet  # driver loaded them: before the baseline memory

        PluginSet.from_json(t.get("plugins")).load()
    with torch.inference_mode():
        torch.nn.functional.conv2d(torch.rand(1, 3, 8, 8), torch.rand(4, 3, 3, 3)).sum()
        (torch.rand(4, 8) @ torch.rand(8, 4)).sum()
    base = rss_kb()
    if t["kind"] == "checkpoint":
        model, _ = load_model_in_worker(t)  # the driver's trust decisions, never the file's
    elif t["kind"] == "factory":
        model = build_factory(t)
    else:
        raise ValueError(f"unknown target kind '{t['kind']}'")
    res = measure_torch_model(
        model,
        tuple(job["input_shape"]),
        int(job["threads"]),
        int(job["throughput_batch"]),
        int(job["warmup"]),
        int(job["repeats"]),
        int(job["throughput_repeats"]),
        job.get("device", "cpu"),
        rss_base_kb=base,
    )
    res["torch_threads"] = torch.get_num_threads()
    return res


def main(job_path: str, out_path: str) -> int:
    """Run one job file, write its JSON result."""
    job = json.loads(Path(job_path).read_text())
    if job["mode"] == "onnx":
        from compressbench.measure.onnxrt import time_onnx

        res = time_onnx(
            job["path"],
            tuple(job["input_shape"]),
            int(job["threads"]),
            int(job["throughput_batch"]),
            int(job["warmup"]),
            int(job["repeats"]),
            int(job["throughput_repeats"]),
        )
        res["torch_imported"] = "torch" in sys.modules
    elif job["mode"] == "torch":
        res = _time_torch_target(job)
    elif job["mode"] == "artifact":  # an exported file in its own runtime (a registered compressbench.deploy format)
        from compressbench.deploy.timing import time_artifact

        res = time_artifact(job)
    else:
        raise ValueError(f"unknown worker mode '{job['mode']}'")
    Path(out_path).write_text(json.dumps(res))
    return 0


def _run_child(line: bytes) -> int:
    """In a forked child of the template: the job ``line`` names (JSON: job, out, log), output to its log."""
    req = json.loads(line)
    fd = os.open(req["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)  # the template's job pipe is not the child's to read
    os.close(null)
    try:
        return main(req["job"], req["out"])
    except BaseException:  # noqa: BLE001 — the traceback goes to the job's log, as in a fresh worker
        import traceback

        traceback.print_exc()
        return 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()


PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
MADV_POPULATE_READ = 22  # Linux >= 5.14


def resident_file_pages() -> list[tuple[int, int]]:
    """(address, length) runs of this process's file-backed, readable pages that are mapped now (Linux
    ``/proc/self/pagemap``'s present bit). A forked child starts with none of them mapped (the kernel maps
    file pages lazily after a fork), so the model's run would fault them in and count them as its memory;
    the child maps them back first (:func:`map_pages`) and starts where a fresh interpreter would."""
    runs: list[tuple[int, int]] = []
    try:
        maps = Path("/proc/self/maps").read_text().splitlines()
        with open("/proc/self/pagemap", "rb") as pm:
            for line in maps:
                f = line.split(None, 5)
                if len(f) < 6 or not f[5].startswith("/") or f[1][0] != "r":
                    continue
                lo, hi = (int(x, 16) for x in f[0].split("-"))
                pm.seek(lo // PAGE * 8)
                data = pm.read((hi - lo) // PAGE * 8)
                start = None
                for i in range(len(data) // 8):
                    present = data[i * 8 + 7] & 0x80
                    if present and start is None:
                        start = i
                    elif not present and start is not None:
                        runs.append((lo + start * PAGE, (i - start) * PAGE))
                        start = None
                if start is not None:
                    runs.append((lo + start * PAGE, (len(data) // 8 - start) * PAGE))
    except OSError:
        return []
    return runs


def map_pages(runs: list[tuple[int, int]]) -> None:
    """Map ``runs`` (see :func:`resident_file_pages`) into this process: ``madvise(MADV_POPULATE_READ)``,
    else a read of one byte per page."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for addr, length in runs:
        if libc.madvise(ctypes.c_void_p(addr), ctypes.c_size_t(length), MADV_POPULATE_READ) != 0:
            for a in range(addr, addr + length, PAGE):
                ctypes.string_at(a, 1)


def template() -> int:
    """Import torch and what timing needs once, then fork one child per job line read on stdin.

    A child is a new process that has run nothing but these imports: its own heap, thread pools and peak
    resident set, as in a fresh worker; it sets its threads, warms up, measures, exits. The template runs no
    kernel itself (an OpenMP pool must not exist before a fork) and answers each line with ``PID`` (at the
    fork) and ``PID STATUS CPU`` (when the child ended; CPU: its user + sys seconds). It exits at EOF on stdin
    (its parent closed the pipe or died; see :func:`die_with_parent`), and a child dies with it
    (``PR_SET_PDEATHSIG``)."""
    _torch_imports()
    runs = resident_file_pages()
    me = os.getpid()
    buf = b""
    while True:
        chunk = os.read(0, 65536)
        if not chunk:
            return 0
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            pid = os.fork()
            if pid == 0:
                die_with_parent(me, watch_stdin=False)
                map_pages(runs)
                os._exit(_run_child(line))
            os.write(1, f"{pid}\n".encode())
            _, status, usage = os.wait4(pid, 0)
            cpu = usage.ru_utime + usage.ru_stime  # the parent's RUSAGE_CHILDREN does not see a grandchild's
            os.write(1, f"{pid} {os.waitstatus_to_exitcode(status)} {cpu:.6f}\n".encode())


if __name__ == "__main__":
    if sys.argv[1] == "--janitor":
        sys.exit(janitor(sys.argv[2]))
    # run as a file, sys.path[0] is this folder: put the package root there instead (no sibling module can
    # shadow a standard one, and the worker imports the same compressbench as the parent that started it)
    _root = str(Path(__file__).resolve().parents[2])
    if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
        sys.path[0] = _root
    else:
        sys.path.insert(0, _root)
    if sys.argv[1] == "--template":  # worker.py --template --parent PID
        die_with_parent(int(sys.argv[3]), watch_stdin=False)
        sys.exit(template())
    if len(sys.argv) > 4 and sys.argv[3] == "--parent":
        die_with_parent(int(sys.argv[4]))
    sys.exit(main(sys.argv[1], sys.argv[2]))

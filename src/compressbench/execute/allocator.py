"""Keep freed memory in the process while jobs run, instead of handing it back to the kernel after every tensor.

glibc's ``malloc`` serves a block of 128 KiB or more with its own ``mmap`` and gives it back with ``munmap`` when it
is freed (the threshold adapts upwards as such blocks are freed, up to 32 MiB), and returns free memory at the
top of its heap to the kernel above 128 KiB. A training step or an evaluation batch allocates and frees the same
activation tensors again and again, so each of them is mapped, zero-filled page by page by the kernel, and unmapped
every time. Profiled on the quickstart (AMD EPYC, 1 torch thread, ``benchmarks/quickstart_floor.py``): 30–38 % of
the clean evaluator's CPU time at batch 512 was such system time, 5–10 % of a training step's.
:func:`keep_freed_memory` raises the mmap threshold to glibc's maximum (32 MiB) and the trim threshold to 1 GiB, so
freed blocks up to 32 MiB are reused from the heap (larger ones, such as cnn5's first activation at batch 512, 51 MB,
are still mapped each time); the arithmetic is the same kernels on the same numbers (trained weights and evaluation
outputs are bit for bit those of the default allocator: tested). Measured on real jobs (BENCHMARKS.md §1): a
training job 9 % less CPU time, a clean evaluation of 10,000 images 38 % less.

The settings are process-wide (``mallopt``), so they hold only inside the block — a whole ``compressbench run``
(``runner.execute``) or one Ray task —; on exit the kept memory is trimmed and the thresholds are left where glibc's
own adaptation takes them in a process that frees large tensors (:data:`AFTER`: a setting cannot hand the
adaptation back, and its 128 KiB starting values would map every tensor anew). The
processes that time or measure memory (``measure.fresh``: a new interpreter, or a fork of a template started as
one) start with glibc's defaults: latency and peak-memory rows are measured as before. Elsewhere than glibc
(macOS, musl) this does nothing; ``COMPRESSBENCH_MALLOC=default`` turns it off (for a side-by-side measurement).
No maintained Python package sets allocator options; preloading jemalloc or tcmalloc (PyTorch's CPU tuning
guide) needs them installed and set before the interpreter starts, so this calls glibc's own ``mallopt``.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import sys
from typing import Any, Iterator

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3  # glibc's malloc.h
KEEP = {M_MMAP_THRESHOLD: 32 << 20, M_TRIM_THRESHOLD: 1 << 30, M_TOP_PAD: 64 << 20}
# after the block: where glibc's adaptive thresholds end once a 32 MiB block has been freed (any setting turns the
# adaptation off for good, and its 128 KiB start values would map every tensor anew), top pad at its default
AFTER = {M_MMAP_THRESHOLD: 32 << 20, M_TRIM_THRESHOLD: 64 << 20, M_TOP_PAD: 128 << 10}
OFF_ENV = "COMPRESSBENCH_MALLOC"

_depth = 0  # nested blocks: the outermost one sets and restores


def _glibc() -> Any:
    """The process's C library when it is glibc (it has ``mallopt`` and ``malloc_trim``), else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
    except OSError:  # pragma: no cover — no symbols of the running process to look up
        return None
    if not all(hasattr(libc, f) for f in ("gnu_get_libc_version", "mallopt", "malloc_trim")):
        return None
    return libc


def _set(libc: Any, values: dict[int, int]) -> bool:
    return all(libc.mallopt(ctypes.c_int(k), ctypes.c_int(v)) == 1 for k, v in values.items())


@contextlib.contextmanager
def keep_freed_memory() -> Iterator[bool]:
    """Within this block glibc keeps freed memory for reuse (module docstring); yields whether it does."""
    global _depth
    libc = _glibc() if os.environ.get(OFF_ENV, "") != "default" else None
    if libc is None or _depth > 0:
        _depth += 1
        try:
            yield libc is not None
        finally:
            _depth -= 1
        return
    ok = _set(libc, KEEP)
    if not ok:
        log.debug("mallopt refused a setting: the default allocator stays")
    _depth += 1
    try:
        yield ok
    finally:
        _depth -= 1
        _set(libc, AFTER)
        libc.malloc_trim(ctypes.c_size_t(0))

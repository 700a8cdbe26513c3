"""Validate-time dry runs of a method's transform at its knob's smallest end — bounded, and done once.

``validate`` asks two questions a dry run answers: can the method's transform (e.g. Torch-Pruning's
dependency graph) handle the network at all, and is a shared budget reachable (the smallest model the knob
can make must not keep more than the target)? One dry run at the knob's smallest end answers both, so
:func:`smallest_end` is shared by a method's ``check_model`` and by :func:`unreachable`, and memoized per
(parent, method, params): a model validated with several budgets or variants costs one dry run per method.

Guard: the dry run runs in a forked child under ``RLIMIT_CPU`` (:data:`CPU_LIMIT_S` CPU seconds) and
``RLIMIT_AS`` (:data:`MEMORY_LIMIT` bytes above the address space the process already has), so a graph that
explodes (Torch-Pruning on efficientvit_m0 was measured at > 300 s and 8.5 GB resident) ends in one line
("gave up after ...") instead of hanging validate. Without ``fork`` (not POSIX) it runs in process, unguarded.
The fork shares the parent model copy-on-write; only a small result (error line, fractions) comes back.
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import os
import resource
import signal
import time
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from .common import ModelStats, fraction_of, input_shape, model_stats

log = logging.getLogger(__name__)

CPU_LIMIT_S = 10  # CPU seconds a dry run may use (MobileNetV3's structured dry run: ~0.7 s wall here)
MEMORY_LIMIT = 2 << 30  # bytes of address space a dry run may add
WALL_LIMIT_S = 120  # a backstop when the child is starved of CPU on a loaded machine
SIZE_KINDS = ("params", "bytes", "flops")


@dataclass
class DryRun:
    """What a dry run found: ``error`` (one line) or the fractions of the parent the smallest model keeps."""

    error: str | None = None
    fractions: dict[str, float] = field(default_factory=dict)
    knob: float | None = None


_MEMO: weakref.WeakKeyDictionary[nn.Module, dict[str, DryRun]] = weakref.WeakKeyDictionary()
_STATS: weakref.WeakKeyDictionary[nn.Module, ModelStats] = weakref.WeakKeyDictionary()


def one_line(e: BaseException) -> str:
    """``Type: first line`` of an error (of its cause, when it wraps one)."""
    e = e.__cause__ or e  # the root of a wrapped error (e.g. a factory's TypeError)
    lines = [ln for ln in str(e).splitlines() if ln.strip()]
    return f"{type(e).__name__}: {lines[0][:160] if lines else ''}"


def _work(
    model: nn.Module, meta: Any, ref: ModelStats, transform: Callable[[nn.Module], nn.Module], nonzero: bool
) -> DryRun:
    import copy

    try:
        m = transform(copy.deepcopy(model).cpu().eval()).eval()  # a new model (a student) comes in train mode
        with torch.inference_mode():
            m(torch.rand(*input_shape(meta)))
        return DryRun(None, {k: fraction_of(m, meta, ref, k, nonzero) for k in SIZE_KINDS})
    except Exception as e:  # MemoryError, or torch's allocator refusing past RLIMIT_AS
        if isinstance(e, MemoryError) or "can't allocate memory" in str(e):
            return DryRun(f"gave up: the dry run needed more than {MEMORY_LIMIT >> 30} GB (validate's limit)")
        return DryRun(one_line(e))


def _child(conn: Any, model: nn.Module, meta: Any, ref: ModelStats, transform: Callable, nonzero: bool) -> None:
    try:
        vm = int(open("/proc/self/statm").read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        vm = 0
    if vm:
        resource.setrlimit(resource.RLIMIT_AS, (vm + MEMORY_LIMIT, vm + MEMORY_LIMIT))
    resource.setrlimit(resource.RLIMIT_CPU, (CPU_LIMIT_S, CPU_LIMIT_S + 1))
    torch.set_num_threads(1)
    res = _work(model, meta, ref, transform, nonzero)
    conn.send((res.error, res.fractions))
    conn.close()


def parent_stats(model: nn.Module, meta: Any) -> ModelStats:
    """``model_stats`` of a parent, once per model object."""
    if model not in _STATS:
        _STATS[model] = model_stats(model, meta)
    return _STATS[model]


def guarded(
    model: nn.Module, meta: Any, transform: Callable[[nn.Module], nn.Module], what: str, nonzero: bool = False
) -> DryRun:
    """``transform`` on a copy of ``model`` and one forward pass, in a limited child (module docstring)."""
    ref = parent_stats(model, meta)
    if "fork" not in mp.get_all_start_methods():
        return _work(model, meta, ref, transform, nonzero)
    ctx = mp.get_context("fork")
    recv, send = ctx.Pipe(duplex=False)
    p = ctx.Process(target=_child, args=(send, model, meta, ref, transform, nonzero), daemon=True)
    p.start()
    send.close()
    out = None
    if recv.poll(WALL_LIMIT_S):
        try:
            out = recv.recv()
        except EOFError:  # the child died (a limit hit)
            pass
    if p.is_alive():
        p.kill()
    p.join()
    recv.close()
    if out is None:
        limit = (
            f"{CPU_LIMIT_S} CPU s and {MEMORY_LIMIT >> 30} GB" if p.exitcode != -signal.SIGKILL else f"{WALL_LIMIT_S} s"
        )
        return DryRun(
            f"gave up: the dry run of {what} did not finish within {limit} (validate's limit; the "
            f"transform's cost on this network is out of bounds)"
        )
    return DryRun(*out)


def smallest_end(
    name: str,
    model: nn.Module,
    meta: Any,
    params: Any,
    transform: Callable[[nn.Module], nn.Module],
    knob: float,
    nonzero: bool = False,
) -> DryRun:
    """The memoized, guarded dry run of method ``name`` at knob value ``knob`` (its smallest end)."""
    key = json.dumps(
        [name, knob, params.model_dump(mode="json") if params is not None else None], sort_keys=True, default=str
    )
    memo = _MEMO.setdefault(model, {})
    if key not in memo:
        t0 = time.perf_counter()
        memo[key] = guarded(model, meta, transform, f"{name} at {knob:g}", nonzero)
        memo[key].knob = knob
        log.debug(
            "dry run of %s at %g: %.2f s wall, %s",
            name,
            knob,
            time.perf_counter() - t0,
            memo[key].error or memo[key].fractions,
        )
    return memo[key]

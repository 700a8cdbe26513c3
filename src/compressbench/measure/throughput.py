"""This machine's CPU cost of a model's passes: a few seconds of training steps, inference and input gradients.

``compressbench plan`` turns FLOP counts and model calls into CPU-hours with these numbers. They are measured
on the experiment's own model at its input size, in *counted* FLOPs (``flops.count_flops``: convolutions and
matmuls), so what the counter does not see — batch norm, activations, the optimizer, data handling inside a
step — is inside the numbers, and CPU time measured by ``/usr/bin/time`` (user + sys) is what the estimate
predicts.

Per-call model: time per call = a + FLOPs of the call / b. At the tiny scales of a smoke run a pass costs its
per-layer dispatch (Python, operator launch, allocation), not its FLOPs, so a FLOP rate alone under-prices
small-batch work (attack steps, batch-1 latency loops, narrow models). Three kinds of pass are timed:
inference (forward under ``inference_mode``), training steps (forward, backward, SGD: 3 forward FLOPs per
image) and input gradients (forward and backward to the input with frozen weights: an attack step, 2). Each is
timed at the smallest batch (1; 2 for a training step: batch norm needs two) and at a large one (the largest
power of two, at most the run's batch, that the small call says fits in ``step_s``), and ``a`` (CPU seconds
per call) and ``b`` (the marginal rate, FLOP per CPU second) are solved from the two points.

Load-robust by construction (a plan made on a busy machine must price the same work as on a quiet one):

* **one thread, thread CPU time.** Every CPU timing runs with ``torch.set_num_threads(1)`` and reads
  ``time.thread_time`` of the calling thread. A call's work is the same whichever thread count runs it (a run
  at n threads splits it; CPU time sums the threads), but a multi-threaded timing on a loaded machine also
  counts the OpenMP workers spinning at every operator's barrier while a sibling thread waits for a core: on
  this project's 2-core machine (AMD EPYC), 2 threads at nice 19 beside a 2-thread process measured 3.6× the
  CPU time of one thread for the same batch-128 training step of the quickstart's CNN, and 278 ms instead of
  6.9 ms for a batch-2 step (BENCHMARKS.md §13). One thread has no barrier to spin at, and the thread clock
  does not run while the thread waits for a core.
* **the minimum over repeats.** Preemption, cache and memory-bandwidth contention only ever add time, so the
  fastest of several calls is the closest to the work itself; each probe is capped (``probe_s`` of CPU and
  ``max_calls`` calls) so that plan stays a few seconds.
* **wall-clock is separate.** Only the run's wall-clock per CPU second (for plan's "wall-clock here" line) is
  timed at the run's threads — one inference call at the large batch, load-dependent by nature.

What one thread does not see: the CPU a run at n threads spends in its own parallel overhead (small for large
batches: the quickstart's training at 2 threads ran at 65 GFLOP per CPU second, one thread measures 55–69 here;
large for millisecond calls: the Office-31 smoke cost 65 CPU s at 2 threads against 41 s at one), and the
spinning of its threads when it shares the cores — a busy machine makes a multi-threaded run cost more CPU than
planned (BENCHMARKS.md §13).
"""

from __future__ import annotations

import copy
import os
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..costs import INPUT_GRADIENT, TRAIN_STEP


@dataclass(frozen=True)
class Rates:
    """Counted FLOPs per CPU second at the large batch (``*_cpu``: one thread, see the module docstring) and per
    wall-clock second at the run's threads (``*_wall``), and the per-call split (``*_call``, ``*_marginal``)."""

    train_cpu: float
    infer_cpu: float
    train_wall: float
    infer_wall: float
    threads: int  # the run's threads (the wall-clock timing's); CPU timings run on one
    train_batch: int
    infer_batch: int
    seconds: float  # wall-clock time the measurement took
    load: float = 0.0  # the 1-minute load average when it started (busy: above the number of cores)
    cores: int = 1
    # time per call = *_call + FLOPs / *_marginal (CPU seconds; FLOP per CPU second): see the module docstring
    train_call: float = 0.0
    infer_call: float = 0.0
    grad_call: float = 0.0
    train_marginal: float = 0.0
    infer_marginal: float = 0.0
    grad_marginal: float = 0.0
    grad_batch: int = 0
    cpu_seconds: float = 0.0  # CPU time the measurement itself took (this process, all threads)

    @property
    def busy(self) -> bool:
        """Other work was running: the wall-clock figures are slow (the CPU ones are not: one thread, thread time)."""
        return self.load > self.cores - 0.5

    @property
    def wall_per_cpu(self) -> float:
        """Wall-clock seconds per CPU second while training (below 1 with several threads busy at once)."""
        return self.train_cpu / self.train_wall

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def min_call(
    step: Callable[[], None], probe_s: float, max_calls: int, min_calls: int = 3, warm_up: bool = True
) -> float:
    """The fastest of repeated calls of ``step`` (after one warm-up), in CPU seconds of the calling thread: at
    least ``min_calls`` calls, then more until ``probe_s`` seconds of CPU or ``max_calls`` calls."""
    if warm_up:
        step()  # kernels, allocator at this shape
    best, spent, n = float("inf"), 0.0, 0
    while n < min_calls or (spent < probe_s and n < max_calls):
        t0 = time.thread_time()
        step()
        dt = time.thread_time() - t0
        best, spent, n = min(best, dt), spent + dt, n + 1
    return best


def large_batch(small: float, b_small: int, cap: int, step_s: float) -> int:
    """The largest power of two ≤ ``cap`` above ``b_small`` whose call, at the small call's cost per image (an
    upper bound: the per-call overhead spread over ``b_small`` images), fits in ``step_s``; ``b_small`` itself
    (no second point) when even twice it would take over ``2 × step_s`` — a model that large spends its time in
    FLOPs, its per-call overhead is negligible, and a second point would cost seconds."""
    per_image = small / max(1, b_small)
    b = 2 * b_small
    if b > cap or b * per_image > 2 * step_s:
        return b_small
    while 2 * b <= cap and 2 * b * per_image <= step_s:
        b *= 2
    return b


def split_call(small: float, b_small: int, per_image: float, b_large: int) -> tuple[float, float]:
    """(a: CPU seconds per call, m: CPU seconds per image) from one call at ``b_small`` taking ``small`` and
    ``per_image`` seconds per image at ``b_large``: t(b) = a + m·b through both points (a ≥ 0, m > 0; when the
    two points contradict that, timing noise: all of the large batch's time is per image)."""
    large = per_image * b_large
    if b_large <= b_small:
        return 0.0, per_image
    m = (large - small) / (b_large - b_small)
    a = small - m * b_small
    if m <= 0 or a < 0:
        return 0.0, per_image
    return a, m


@dataclass(frozen=True)
class _Pass:
    """One kind of pass measured at two batches: (batch, CPU seconds per image) at the large one and the split."""

    batch: int
    per_image: float
    call: float
    marginal: float  # CPU seconds per image beyond the call's overhead


def _two_points(
    make_step: Callable[[int], Callable[[], None]],
    b_small: int,
    cap: int,
    step_s: float,
    probe_s: float,
    max_calls: int,
    repeats: int,
) -> _Pass:
    """Time ``make_step(b)`` at ``b_small`` and at :func:`large_batch` (one thread, thread CPU, fastest call)."""
    small = min_call(make_step(b_small), probe_s, max_calls)
    b = large_batch(small, b_small, cap, step_s)
    if b == b_small:
        return _Pass(b, small / b, 0.0, small / b)
    # no separate warm-up (the small shape warmed the kernels): the fastest of ``repeats`` calls (≥ 2)
    per_image = min_call(make_step(b), 0.0, repeats, min_calls=max(2, repeats), warm_up=False) / b
    a, m = split_call(small, b_small, per_image, b)
    return _Pass(b, per_image, a, m)


def sustained_rates(
    model: nn.Module,
    input_shape: tuple[int, ...],
    flops: float,
    *,
    batch_size: int = 128,
    num_classes: int = 10,
    threads: int | None = None,
    step_s: float = 0.25,
    steps: int = 3,
    probe_s: float = 0.1,
    max_calls: int = 30,
    autocast: torch.dtype | None = None,
) -> Rates:
    """Measure ``model`` (left unchanged: a copy trains) at ``input_shape`` (C, H, W) with ``flops`` forward
    FLOPs per image: per kind of pass, the fastest of up to ``max_calls`` small calls (``probe_s`` of CPU) and of
    ``steps`` calls at a large batch that the small call says takes about ``step_s``, on one thread; then
    one inference call at the run's ``threads`` for the wall clock. The global random state is kept. ``autocast``:
    the training steps' forward runs under CPU autocast to this dtype, as the training loop runs it for
    ``train.amp: bf16`` (inference and input gradients stay fp32, as evaluations do)."""
    prev = torch.get_num_threads()
    t0, c0, load = time.perf_counter(), time.process_time(), os.getloadavg()[0]
    try:
        with torch.random.fork_rng():
            torch.manual_seed(0)
            net = copy.deepcopy(model).cpu().float().train()
            opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)

            def train_step(b: int) -> Callable[[], None]:
                x, y = torch.rand(b, *input_shape), torch.randint(0, num_classes, (b,))

                def step() -> None:
                    opt.zero_grad(set_to_none=True)
                    with torch.autocast("cpu", dtype=autocast or torch.bfloat16, enabled=autocast is not None):
                        logits = net(x)
                    F.cross_entropy(logits.float(), y).backward()
                    opt.step()

                return step

            def infer_step(b: int) -> Callable[[], None]:
                x = torch.rand(b, *input_shape)

                def step() -> None:
                    with torch.inference_mode():
                        net(x)

                return step

            def grad_step(b: int) -> Callable[[], None]:
                x, y = torch.rand(b, *input_shape), torch.randint(0, num_classes, (b,))

                def step() -> None:
                    xr = x.clone().requires_grad_(True)
                    torch.autograd.grad(F.cross_entropy(net(xr), y), xr)

                return step

            torch.set_num_threads(1)
            args = (step_s, probe_s, max_calls, steps)
            tr = _two_points(train_step, 2, batch_size, *args)
            net.eval()
            inf = _two_points(infer_step, 1, max(batch_size, 512), *args)
            for q in net.parameters():
                q.requires_grad_(False)
            gr = _two_points(grad_step, 1, min(batch_size, 128), *args)
            for q in net.parameters():
                q.requires_grad_(True)
            # the wall clock at the run's threads: one inference call at the large batch (after a warm-up: the
            # first multi-threaded call starts the thread pool), against its one-thread CPU time
            torch.set_num_threads(threads or prev)
            step = infer_step(inf.batch)
            step()
            w0 = time.perf_counter()
            step()
            wall_ratio = (time.perf_counter() - w0) / (inf.per_image * inf.batch)  # wall seconds per CPU second
        return Rates(
            train_cpu=TRAIN_STEP * flops / tr.per_image,
            infer_cpu=flops / inf.per_image,
            train_wall=TRAIN_STEP * flops / tr.per_image / wall_ratio,
            infer_wall=flops / inf.per_image / wall_ratio,
            threads=torch.get_num_threads(),
            train_batch=tr.batch,
            infer_batch=inf.batch,
            seconds=time.perf_counter() - t0,
            load=load,
            cores=os.cpu_count() or 1,
            train_call=tr.call,
            infer_call=inf.call,
            grad_call=gr.call,
            train_marginal=TRAIN_STEP * flops / tr.marginal,
            infer_marginal=flops / inf.marginal,
            grad_marginal=INPUT_GRADIENT * flops / gr.marginal,
            grad_batch=gr.batch,
            cpu_seconds=time.process_time() - c0,
        )
    finally:
        torch.set_num_threads(prev)

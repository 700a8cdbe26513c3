"""This machine's sustained FLOP rate on a given model: a few seconds of training steps and inference.

``compressbench plan`` turns FLOP counts into CPU-hours with these rates. They are measured on the
experiment's own model at its input size, in *counted* FLOPs (``flops.count_flops``: convolutions
and matmuls) per second of process CPU time (all threads), so what the counter does not see —
batch norm, activations, the optimizer, data handling inside a step — is inside the rate, and CPU
time measured by ``/usr/bin/time`` (user + sys) is what the estimate predicts.

Training: forward + backward + an SGD step on random images (3 forward FLOPs per image); inference:
forward passes under ``inference_mode``. The batch is the largest that keeps one step near
``step_s`` (at most ``batch_size``, the run's), so a ResNet-18 at 224 px is measured with small batches — which
run at a lower rate than the batches of a real run (the estimate then leans high).
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

from ..costs import TRAIN_STEP


@dataclass(frozen=True)
class Rates:
    """Sustained counted FLOPs per second of process CPU time (``*_cpu``) and of wall-clock time (``*_wall``)."""

    train_cpu: float
    infer_cpu: float
    train_wall: float
    infer_wall: float
    threads: int
    train_batch: int
    infer_batch: int
    seconds: float  # wall-clock time the measurement took
    load: float = 0.0  # the 1-minute load average when it started (busy: above the number of cores)
    cores: int = 1

    @property
    def busy(self) -> bool:
        """Other work was running: multi-threaded torch then waits (and spins) at every operator."""
        return self.load > self.cores - 0.5

    @property
    def wall_per_cpu(self) -> float:
        """Wall-clock seconds per CPU second while training (below 1 with several threads busy at once)."""
        return self.train_cpu / self.train_wall

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _timed(fn: Callable[[], None], n: int) -> tuple[float, float]:
    """(process CPU seconds, wall seconds) of ``n`` calls."""
    c0, w0 = time.process_time(), time.perf_counter()
    for _ in range(n):
        fn()
    return time.process_time() - c0, time.perf_counter() - w0


def _measure(
    make_step: Callable[[int], Callable[[], None]], cap: int, step_s: float, steps: int
) -> tuple[int, float, float]:
    """(batch, CPU seconds per image, wall seconds per image): the batch doubles from 2 (each new shape warmed
    up once) until a step takes ``step_s / 2`` or the batch reaches ``cap``; then ``steps`` steps are timed."""
    b = min(2, cap)
    while True:
        step = make_step(b)
        step()  # warm-up at this shape: kernels, allocator
        _, w = _timed(step, 1)
        if w >= step_s / 2 or b >= cap:
            break
        b = min(cap, 2 * b)
    c, w = _timed(step, steps)
    return b, c / (b * steps), w / (b * steps)


def sustained_rates(
    model: nn.Module,
    input_shape: tuple[int, ...],
    flops: float,
    *,
    batch_size: int = 128,
    num_classes: int = 10,
    threads: int | None = None,
    step_s: float = 1.0,
    steps: int = 3,
) -> Rates:
    """Measure ``model`` (left unchanged: a copy trains) at ``input_shape`` (C, H, W) with ``flops`` forward
    FLOPs per image: a few seconds (about ``2 × steps × step_s`` plus the batch search, more when even two
    images take longer than a step); the global random state is kept."""
    prev = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    t0, load = time.perf_counter(), os.getloadavg()[0]
    try:
        with torch.random.fork_rng():
            torch.manual_seed(0)
            net = copy.deepcopy(model).cpu().float().train()
            opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)

            def train_step(b: int) -> Callable[[], None]:
                x, y = torch.rand(b, *input_shape), torch.randint(0, num_classes, (b,))

                def step() -> None:
                    opt.zero_grad(set_to_none=True)
                    F.cross_entropy(net(x), y).backward()
                    opt.step()

                return step

            tb, tc, tw = _measure(train_step, batch_size, step_s, steps)
            net.eval()

            def infer_step(b: int) -> Callable[[], None]:
                x = torch.rand(b, *input_shape)

                def step() -> None:
                    with torch.inference_mode():
                        net(x)

                return step

            ib, ic, iw = _measure(infer_step, max(batch_size, 512), step_s / 2, steps)
        return Rates(
            train_cpu=TRAIN_STEP * flops / tc,
            infer_cpu=flops / ic,
            train_wall=TRAIN_STEP * flops / tw,
            infer_wall=flops / iw,
            threads=torch.get_num_threads(),
            train_batch=tb,
            infer_batch=ib,
            seconds=time.perf_counter() - t0,
            load=load,
            cores=os.cpu_count() or 1,
        )
    finally:
        torch.set_num_threads(prev)

"""Evaluators for the Ray executor's tests (``tests/test_ray_executor.py``), named in configs as
``"cb_ray_plugin:<fn>"``: the driver imports this module when it resolves the config, and each Ray worker
imports it from the experiment's plug-in set before it resolves the config once — the path a user's
plug-in takes.

* ``crash_once``: on its first attempt for a variant, kills its own worker process (``os._exit``, no
  exception, no result); the retry measures top-1 and reports both attempts' pids.
* ``rendezvous``: waits until ``n`` of its jobs have started (files in ``dir``): it only completes when
  jobs really run at the same time.
* ``sleepy``: the first of its jobs writes ``started`` and sleeps (the test kills the driver meanwhile);
  every other measures top-1 at once.
* ``abort``: ``os.abort()`` in its worker (a native crash: SIGABRT, no Python exception) — a failed job, not
  a dead driver.
* ``fails``: raises — a failed job must become a row with its error.
* ``spy``: reports how often this worker process resolved the experiment's variants and evaluations and
  validated it (``check_parent``): counted by spies this module wraps around the real functions when it
  is imported in a process other than ``COMPRESSBENCH_TEST_SPY`` (the driver's pid) — a worker imports it
  before it resolves anything (the plug-in set is loaded first).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch
from pydantic import Field

import compressbench.config.resolve as _resolve
from compressbench.interfaces import Measurement, Params
from compressbench.registry import evaluators
from compressbench.specs import MetricSpec


class DirParams(Params):
    dir: str  # a folder shared by the test and its jobs
    n: int = Field(2, ge=1)
    variant: str = "baseline"  # crash_once: the variant whose first attempt dies
    sleep_s: float = Field(120.0, ge=0)


def _top1(model, ctx) -> float:
    images = ctx.eval_set()
    with torch.inference_mode():
        pred = torch.cat([model(x.to(ctx.device)).argmax(1).cpu() for x, _, _ in images.batches(256)])
    return float((pred == images.y).float().mean())


@evaluators.register(
    "raytest.crash_once",
    params=DirParams,
    version=1,
    metrics=(MetricSpec("top1"), MetricSpec("pid"), MetricSpec("first_pid")),
)
def crash_once(model, ctx, params: DirParams) -> list[Measurement]:
    marker = Path(params.dir) / f"crashed-{ctx.variant.name}"
    first = None
    if ctx.variant.name == params.variant:
        if not marker.exists():
            marker.write_text(str(os.getpid()))
            os._exit(3)  # the worker process dies mid-job
        first = float(marker.read_text())
    out = [Measurement("top1", _top1(model, ctx)), Measurement("pid", float(os.getpid()))]
    return out + ([Measurement("first_pid", first)] if first is not None else [])


@evaluators.register("raytest.abort", params=DirParams, version=1, metrics=(MetricSpec("top1"),))
def abort(model, ctx, params: DirParams) -> list[Measurement]:
    os.abort()


@evaluators.register("raytest.rendezvous", params=DirParams, version=1, metrics=(MetricSpec("met"),))
def rendezvous(model, ctx, params: DirParams) -> list[Measurement]:
    d = Path(params.dir)
    (d / f"here-{ctx.variant.name}").write_text(str(os.getpid()))
    t0 = time.monotonic()
    while len(list(d.glob("here-*"))) < params.n and time.monotonic() - t0 < 60:
        time.sleep(0.05)
    return [Measurement("met", float(len(list(d.glob("here-*"))) >= params.n))]


@evaluators.register("raytest.sleepy", params=DirParams, version=1, metrics=(MetricSpec("top1"),))
def sleepy(model, ctx, params: DirParams) -> list[Measurement]:
    started = Path(params.dir) / "started"
    if not started.exists():  # the first sleepy job of the test sleeps; later ones (the rerun's) do not
        started.write_text(str(os.getpid()))
        time.sleep(params.sleep_s)  # the driver is killed meanwhile
    return [Measurement("top1", _top1(model, ctx))]


@evaluators.register("raytest.fails", version=1, metrics=(MetricSpec("top1"),))
def fails(model, ctx, params) -> list[Measurement]:
    raise ValueError("this evaluator always fails")


# --------------------------------------------------------------------------- the spy
CALLS = {"resolve_variants": 0, "resolve_evaluations": 0, "check_parent": 0}


def _spy(owner, name: str, key: str) -> None:
    real = getattr(owner, name)

    def counted(*a, **k):
        CALLS[key] += 1
        return real(*a, **k)

    setattr(owner, name, counted)


if os.environ.get("COMPRESSBENCH_TEST_SPY", str(os.getpid())) != str(os.getpid()):
    import compressbench.validate as _validate
    import compressbench.validate.parent as _parent

    _spy(_resolve, "resolve_variants", "resolve_variants")
    _spy(_resolve, "resolve_evaluations", "resolve_evaluations")
    _spy(_validate, "check_parent", "check_parent")  # the name validate.check calls
    _spy(_parent, "check_parent", "check_parent")


@evaluators.register(
    "raytest.spy",
    version=1,
    metrics=(
        MetricSpec("resolve_variants"),
        MetricSpec("resolve_evaluations"),
        MetricSpec("check_parent"),
        MetricSpec("pid"),
    ),
)
def spy(model, ctx, params) -> list[Measurement]:
    return [Measurement(k, float(v)) for k, v in CALLS.items()] + [Measurement("pid", float(os.getpid()))]

"""Validate's guarded dry runs (compress/dryrun.py): a transform past the CPU or memory limit gives up in one
line instead of hanging validate; a result is memoized per (parent, method, params, knob)."""

from __future__ import annotations

import time

import torch

from compressbench.compress import dryrun
from compressbench.data.base import DataMeta
from compressbench.models import create_model

META = DataMeta(name="t", num_classes=3, channels=1, size=(8, 8), mean=(0.5,), std=(0.5,))


def _spin(m):
    while True:
        pass


def _hog(m):
    return [torch.ones(1 << 28) for _ in range(16)]  # 16 GiB of float32


def test_gives_up_past_the_cpu_limit(monkeypatch):
    monkeypatch.setattr(dryrun, "CPU_LIMIT_S", 1)
    t0 = time.perf_counter()
    dr = dryrun.guarded(create_model("tinycnn", META), META, _spin, "a spinning transform")
    assert dr.error.startswith("gave up: the dry run of a spinning transform did not finish within 1 CPU s")
    assert time.perf_counter() - t0 < 60


def test_gives_up_past_the_memory_limit():
    dr = dryrun.guarded(create_model("tinycnn", META), META, _hog, "a hungry transform")
    assert dr.error.startswith("gave up") and "GB" in dr.error


def test_a_dry_run_is_memoized_and_measures_fractions():
    model, calls = create_model("tinycnn", META), []

    def halve(m):
        calls.append(1)  # in the forked child: the parent's list stays empty
        return create_model("tinycnn", META, width=0.5)

    a = dryrun.smallest_end("m", model, META, None, halve, 0.5)
    b = dryrun.smallest_end("m", model, META, None, halve, 0.5)
    assert a is b and a.error is None and 0 < a.fractions["params"] < 0.5 and calls == []

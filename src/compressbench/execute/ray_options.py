"""The Ray executor's options (``executor: {name: ray, ...}``), validated when the experiment is resolved,
and the rules that need the whole resolved experiment (:func:`check_experiment`, run by ``validate``).
Importing this module does not import Ray."""

from __future__ import annotations

import importlib.util
import math
import re
import sys
from typing import Any

from ..catalog.executors import (  # noqa: F401 (torch-free: compressbench.catalog)
    _ADDRESS,
    JobResources,
    RayOptions,
    ResourceTable,
    _Strict,
)
from ..errors import UserError, did_you_mean
from ..measure.hardware import total_memory
from ..registry import evaluators


class ExecutorError(UserError):
    """The executor cannot run (Ray missing, a cluster that cannot be reached or cannot run a job)."""


def ray_missing() -> bool:
    mod = sys.modules.get("ray", False)
    if mod is not False:
        return mod is None
    try:
        return importlib.util.find_spec("ray") is None
    except (ImportError, ValueError):
        return True


def measures_time(evaluator: str) -> bool:
    """Whether an evaluator measures wall-clock time (``EvaluatorSpec.measures_time``; never its name)."""
    try:
        spec = evaluators.spec(evaluator)
    except Exception:
        return False
    return spec.measures_time


def check_experiment(exp: Any, opts: RayOptions) -> str | None:
    """Rules that need the whole experiment: one error line (``path: problem``), or None."""
    if ray_missing():
        return "executor: the ray executor needs Ray, which is not installed: pip install 'compressbench[ray]'"
    if re.fullmatch(r"cuda:\d+", exp.device):
        return (
            f"device: '{exp.device}' names one GPU, but the ray executor gives each job its own GPU share; use "
            f"device: cuda (or auto)"
        )
    used = {ev.evaluator for ev in exp.evaluations}
    for name in opts.resources.evaluators:
        try:
            resolved = evaluators.resolve(name)
        except Exception:
            resolved = name
        if resolved not in used:
            return (
                f"executor.resources.evaluators.{name}: no evaluation of this experiment uses evaluator '{name}'"
                f"{did_you_mean(name, used)}; its evaluators: {', '.join(sorted(used))}"
            )
    kinds: dict[str, JobResources] = {"train": opts.resources.train}
    if exp.variants:
        kinds["compress"] = opts.resources.compress
    for ev in sorted(used):
        kinds[f"evaluators.{ev}"] = resources_for(opts.resources, "evaluate", ev)
    mem = total_memory() if opts.address is None else None
    for where, r in kinds.items():
        label = where if "." not in where else where.split(".", 1)[1] + " evaluation"
        if mem is not None and r.memory is not None and r.memory > mem:  # a local instance never has more
            path = (
                where
                if where in ("train", "compress")
                else (where if where.split(".", 1)[1] in opts.resources.evaluators else "evaluate")
            )
            return (
                f"executor.resources.{path}.memory: {label} jobs ask for {r.memory / 2**30:.3g} GiB, but the "
                f"local Ray instance has at most this machine's {mem / 2**30:.3g} GiB: they would never be "
                f"scheduled; ask for less (or give executor.address of a cluster with such nodes)"
            )
        if exp.device == "cuda" and r.num_gpus == 0:
            path = (
                where
                if where in ("train", "compress")
                else (where if where.split(".", 1)[1] in opts.resources.evaluators else "evaluate")
            )
            return (
                f"executor.resources.{path}.num_gpus: device is 'cuda' but {label} jobs ask for no GPU; give them "
                f"a GPU share (e.g. 0.25) or use device: auto (jobs without a GPU share then run on the CPU)"
            )
        if exp.threads and r.num_cpus is not None and max(1, math.floor(r.num_cpus)) != exp.threads:
            return (
                f"threads: {exp.threads}, but {label} jobs ask for num_cpus {r.num_cpus:g} and run "
                f"{max(1, math.floor(r.num_cpus))} thread(s): with the ray executor a job's threads follow its "
                f"CPU share; drop 'threads' or make them agree"
            )
    return None


def resources_for(table: ResourceTable, kind: str, evaluator: str | None = None) -> JobResources:
    base = getattr(table, kind)
    over = table.evaluators.get(evaluator) if evaluator else None
    if over is None and evaluator:  # the table may name it as the user wrote it ("pkg.mod:obj")
        over = next((r for n, r in table.evaluators.items() if _same_evaluator(n, evaluator)), None)
    if over is None:
        return base
    merged = {**base.model_dump(exclude_unset=True), **over.model_dump(exclude_unset=True)}
    return JobResources(**merged)


def _same_evaluator(a: str, b: str) -> bool:
    try:
        return evaluators.resolve(a) == evaluators.resolve(b)
    except Exception:
        return False

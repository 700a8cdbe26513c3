"""``compressbench plan``: what an experiment will compute, before it runs — job counts, what is cached,
and compute in FLOPs, GPU-hours on a named reference GPU and CPU-hours on this machine.

Every job of ``plan.plan(exp)`` is priced from the specs alone (capabilities, not names: no component is
named here):

* **passes over images** — a method's ``cost`` (:class:`~.costs.TrainingCost`: training epochs, teacher,
  adaptation, calibration images), an evaluator's (:class:`~.costs.EvalCost`), an attack's; the
  defaults of :mod:`.costs` for components that declare nothing; a pipeline sums its stages;
* **images** — the dataset's declared sizes (``DatasetSpec.sizes``; else the local copy, loaded without
  downloading), with ``train_subset``, ``val_fraction``, the source's test split and ``eval_subset`` applied;
* **FLOPs per image** — the experiment's parent, built as ``validate`` builds it, counted by
  ``measure.flops.count_flops``. A variant with a params / FLOPs / bytes budget is taken as that fraction of
  the parent (approximate: structured pruning and students shrink FLOPs roughly with parameters); a
  sparsifying variant keeps the parent's dense FLOPs, and so does a variant without a shared budget.
  A training step counts 3 forward FLOPs, an attack step 2 (:mod:`.costs`).

Hours: FLOPs / (a reference GPU's peak × an assumed utilisation) and FLOPs / this machine's sustained rate
(``measure.throughput``: training and inference measured separately, per second of CPU time), plus the fixed
seconds components declare (fresh processes), plus fixed costs measured here (:class:`FixedCosts`: the run's process
start once, model builds and checkpoint round trips per job). Not counted: data decoding, the budget search,
the corruptions' own pixel work, cache hashing — fixed per-job costs that dominate tiny jobs. Nothing is
written: the cache is only read (``execute.cache.inspect_cached``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .compress.budget import capabilities
from .config import BASELINE, Budget, ResolvedExperiment
from .costs import (
    DEFAULT_GPU,
    DEFAULT_UTILISATION,
    GPUS,
    TRAIN_STEP,
    CostContext,
    EvalCost,
    ReferenceGPU,
    eval_cost,
    method_cost,
)
from .data.sizes import DataSizes, data_sizes  # noqa: F401 — re-exported (compressbench plan's counts)
from .errors import UserError
from .jobs import CompressSpec, EvaluateSpec, Job
from .plan import plan
from .registry import evaluators, methods
from .specs import SHARED_BUDGETS


@dataclass
class JobCost:
    """One job's work: FLOPs in forward-only and in gradient passes, fixed seconds, and whether it is cached."""

    job: Job
    group: str  # BASELINE, the method, or the evaluator
    forward: float = 0.0
    gradient: float = 0.0
    seconds: float = 0.0
    cached: bool = False

    @property
    def flops(self) -> float:
        return self.forward + self.gradient


# --------------------------------------------------------------------------- model sizes
def size_fraction(method: str, params: Any, budget: Budget | None) -> float:
    """The variant's forward FLOPs as a fraction of the parent's (see the module docstring)."""
    if budget is None or budget.kind not in SHARED_BUDGETS or capabilities(method, params)["sparsifies"]:
        return 1.0
    return float(budget.value)


def _stages(method: str, params: Any, budget: Budget | None, fp: float) -> list[tuple[Any, Any, float, float]]:
    """(spec, params, FLOPs of its input, FLOPs of its output) per stage: a lone method is one stage; in a
    pipeline the first stage that takes the budget's kind shrinks the model to the variant's size."""
    spec, child = methods.spec(method), fp * size_fraction(method, params, budget)
    if spec.stages is None:
        return [(spec, params, fp, child)]
    out, f_in, shrunk = [], fp, False
    for name, sp in spec.stages(params):
        st = methods.spec(name)
        takes = budget is not None and not shrunk and budget.kind in st.budgets
        f_out, shrunk = (child if takes else f_in), shrunk or takes
        out.append((st, sp, f_in, f_out))
        f_in = f_out
    return out


# --------------------------------------------------------------------------- jobs
def _train_cost(exp: ResolvedExperiment, n: DataSizes, fp: float) -> tuple[float, float]:
    """(forward, gradient) FLOPs of the baseline job: epochs (frozen-backbone epochs forward only), doubled with
    ``train.adapt``; a validation pass after every whole epoch and at the end."""
    if not exp.trains_baseline:
        return 0.0, 0.0
    t = exp.train
    mult = 2.0 if t.adapt is not None else 1.0
    val_passes = math.floor(t.epochs) + (t.epochs != math.floor(t.epochs)) if n.val else 0
    return (
        n.train * fp * t.freeze_epochs * mult + n.val * fp * val_passes,
        n.train * fp * TRAIN_STEP * (t.epochs - t.freeze_epochs) * mult,
    )


def _compress_cost(method: str, params: Any, budget: Any, n: DataSizes, fp: float) -> tuple[float, float]:
    fwd = grad = 0.0
    cap = n.train + n.val  # calibration / importance batches: at most one pass
    for spec, sp, f_in, f_out in _stages(method, params, budget, fp):
        c = method_cost(spec, sp)
        grad += n.train * TRAIN_STEP * (c.epochs * f_out * (2 if c.adapt else 1) + c.input_epochs * f_in)
        grad += min(c.gradient_images, cap) * TRAIN_STEP * f_in
        fwd += (n.train * c.epochs * f_in if c.teacher else 0.0) + min(c.forward_images, cap) * f_in
    return fwd, grad


def job_costs(
    exp: ResolvedExperiment, jobs: list[Job], fp: float, meta: Any, sizes: dict[str, DataSizes]
) -> list[JobCost]:
    """Every job's FLOPs (``fp``: the parent's forward FLOPs per image; ``sizes``: per experiment part)."""
    by_key = {j.key: j for j in jobs}
    out: list[JobCost] = []
    for job in jobs:
        s, n = job.spec, sizes[job.labels.experiment]
        if isinstance(s, CompressSpec):
            out.append(JobCost(job, s.method, *_compress_cost(s.method, s.params, s.budget, n, fp)))
        elif isinstance(s, EvaluateSpec):
            out.append(_evaluate_cost(job, s, by_key[s.model_job].spec, n, fp, meta))
        else:
            out.append(JobCost(job, BASELINE, *_train_cost(exp, n, fp)))
    return out


def _evaluate_cost(job: Job, s: EvaluateSpec, producer: Any, n: DataSizes, fp: float, meta: Any) -> JobCost:
    frac, quantizes = 1.0, False
    if isinstance(producer, CompressSpec):
        frac = size_fraction(producer.method, producer.params, producer.budget)
        quantizes = capabilities(producer.method, producer.params)["quantizes"]
    espec = evaluators.spec(s.evaluator)
    ctx = CostContext(
        test=n.test,
        eval_subset=s.eval_subset,
        targets=n.targets,
        meta=meta,
        quantizes=quantizes,
        baseline=not isinstance(producer, CompressSpec),
    )
    c: EvalCost = eval_cost(espec, s.params, ctx)
    return JobCost(
        job,
        s.evaluator,
        (c.forward * frac + c.parent_forward) * fp,
        (c.gradient * frac + c.parent_gradient) * fp,
        c.seconds,
    )


def mark_cached(costs: list[JobCost], cache: Path) -> int:
    """Set ``cached`` on every job whose verified artifact is in ``cache`` with its upstream jobs; returns how
    many artifacts are there but unusable (they will be re-run). Reads only: nothing is created."""
    from .execute.cache import JobResult, inspect_cached

    results: dict[str, JobResult] = {}
    damaged = 0
    if not (cache / "jobs").is_dir():
        return 0
    for c in costs:
        if any(d not in results for d in c.job.deps):
            continue  # an upstream job runs again: so does this one
        res, why = inspect_cached(cache, c.job.key, {d: results[d] for d in c.job.deps})
        damaged += why is not None
        if res is not None:
            results[c.job.key], c.cached = res, True
    return damaged


# --------------------------------------------------------------------------- the whole estimate
@dataclass
class Estimate:
    exp: ResolvedExperiment
    costs: list[JobCost]
    sizes: dict[str, DataSizes]
    parent_flops: float
    input_shape: tuple[int, ...]
    gpu: ReferenceGPU
    utilisation: float
    rates: Any  # measure.throughput.Rates, or None when given
    cpu_given: float | None = None  # --cpu-gflops: one rate for all work (FLOP/s of CPU time)
    damaged: int = 0
    fixed: FixedCosts | None = None  # the run's start-up and per-job fixed CPU seconds (already in each job's seconds)

    @property
    def gpu_flops_s(self) -> float:
        return self.gpu.peak_tflops * 1e12 * self.utilisation

    def gpu_hours(self, c: JobCost) -> float:
        return (c.flops / self.gpu_flops_s + c.seconds) / 3600

    def cpu_hours(self, c: JobCost) -> float:
        if self.cpu_given is not None:
            return (c.flops / self.cpu_given + c.seconds) / 3600
        return (c.forward / self.rates.infer_cpu + c.gradient / self.rates.train_cpu + c.seconds) / 3600

    def rows(self) -> list[tuple[str, int, int, float, float, float]]:
        """(label, jobs, cached, TFLOP to run, GPU-h to run, CPU-h to run) per kind, per method / evaluator
        under it (indented), and the total."""

        def row(label: str, cs: list[JobCost]) -> tuple[str, int, int, float, float, float]:
            todo = [c for c in cs if not c.cached]
            return (
                label,
                len(cs),
                len(cs) - len(todo),
                sum(c.flops for c in todo) / 1e12,
                sum(self.gpu_hours(c) for c in todo),
                sum(self.cpu_hours(c) for c in todo),
            )

        out = []
        for kind in ("train", "compress", "evaluate"):
            cs = [c for c in self.costs if c.job.kind == kind]
            out.append(row(kind, cs))
            groups = list(dict.fromkeys(c.group for c in cs))
            if kind != "train" and len(groups) > 1:
                out += [row(f"  {g}", [c for c in cs if c.group == g]) for g in groups]
        total = row("total", self.costs)
        if self.fixed is not None and any(not c.cached for c in self.costs):  # the run's own start-up
            total = (*total[:4], total[4] + self.fixed.startup / 3600, total[5] + self.fixed.startup / 3600)
        out.append(total)
        return out

    def expected_seconds(self) -> dict[str, float]:
        """Wall-clock seconds each job is expected to take here (its CPU time × the measured wall/CPU ratio;
        with ``--cpu-gflops``, its CPU time): the run's live ETA (``progress.board``)."""
        per = self.rates.wall_per_cpu if self.rates is not None else 1.0
        return {c.job.key: self.cpu_hours(c) * 3600 * per for c in self.costs}


@dataclass(frozen=True)
class FixedCosts:
    """CPU seconds no FLOP count sees, measured here: the run's process start (importing torch and the
    library), and per job its model builds and checkpoint round trips (``per_job``, by kind)."""

    startup: float
    per_job: dict[str, float]
    build: float  # one model build + checkpoint save and load


# a job's model builds + checkpoint round trips: train builds and saves one; compress loads the parent and saves
# a variant (2 + its method's own copies); evaluate loads its model (and a transfer attack's parent: counted by
# the evaluator's parent_forward work, not here)
BUILDS_PER_JOB = {"train": 1.0, "compress": 3.0, "evaluate": 1.0}


def measure_fixed(model: Any, startup: bool = True) -> FixedCosts:
    """Measure the fixed costs on this machine: a fresh ``python -c 'import compressbench.runner'`` (the run's
    start-up, CPU time of that child) and a deep copy + checkpoint save/load of the parent (best of 3)."""
    import copy
    import io
    import resource
    import subprocess
    import sys
    import time

    import torch

    def cpu() -> float:
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    start = 0.0
    if startup:
        k = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run([sys.executable, "-c", "import compressbench.runner"], check=False, capture_output=True)
        k2 = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = k2.ru_utime + k2.ru_stime - k.ru_utime - k.ru_stime
    best = float("inf")
    for _ in range(3):
        c0, t0 = cpu(), time.perf_counter()
        m = copy.deepcopy(model)
        buf = io.BytesIO()
        torch.save(m.state_dict(), buf)
        buf.seek(0)
        m.load_state_dict(torch.load(buf, weights_only=True))
        best = min(best, max(cpu() - c0, time.perf_counter() - t0))
    return FixedCosts(start, {k: n * best for k, n in BUILDS_PER_JOB.items()}, best)


def estimate(
    exp: ResolvedExperiment,
    *,
    gpu: str = DEFAULT_GPU,
    utilisation: float = DEFAULT_UTILISATION,
    cpu_gflops: float | None = None,
) -> Estimate:
    """Price every job of ``exp`` (validated). ``cpu_gflops``: this machine's sustained rate in GFLOP per CPU
    second instead of measuring it (a few seconds on the experiment's model)."""
    from .measure.flops import count_flops
    from .validate import parent_model

    if gpu not in GPUS:
        raise UserError(f"--gpu: unknown reference GPU '{gpu}' (known: {', '.join(GPUS)})")
    if not 0 < utilisation <= 1:
        raise UserError(f"--gpu-util: give a fraction in (0, 1], got {utilisation:g}")
    if cpu_gflops is not None and not cpu_gflops > 0:
        raise UserError(f"--cpu-gflops: give a positive rate, got {cpu_gflops:g}")
    jobs = plan(exp)
    sizes = {part.name: data_sizes(part.dataset, exp.cache_dir) for part in exp.parts}
    meta, base = parent_model(exp)
    shape = (meta.channels, *meta.size)
    fp = float(count_flops(base.model, (1, *shape)))
    costs = job_costs(exp, jobs, fp, meta, sizes)
    damaged = mark_cached(costs, Path(exp.cache_dir))
    fixed = measure_fixed(base.model)
    for c in costs:
        c.seconds += fixed.per_job.get(c.job.kind, 0.0)
    rates = None
    if cpu_gflops is None:
        from .measure.throughput import sustained_rates

        rates = sustained_rates(
            base.model, shape, fp, batch_size=exp.recipe.batch_size, num_classes=meta.num_classes, threads=exp.threads
        )
    return Estimate(
        exp,
        costs,
        sizes,
        fp,
        shape,
        GPUS[gpu],
        utilisation,
        rates,
        cpu_gflops * 1e9 if cpu_gflops is not None else None,
        damaged,
        fixed,
    )


# what the live ETA assumes before any job has run: the wall-clock FLOP rate of a quiet 2-core x86 machine on
# the presets' models (``benchmarks/plan_vs_run.py``: 45 GFLOP/s on the noise preset's smoke scale); the board
# rescales every expectation by measured / expected as jobs finish, so only the jobs' proportions must be right
NOMINAL_WALL_FLOPS = 40e9


def expected_seconds(exp: ResolvedExperiment, jobs: list[Job]) -> dict[str, float]:
    """Seconds each job of ``jobs`` (``plan.plan(exp)``) is expected to take, for the run's live ETA: its FLOPs
    at :data:`NOMINAL_WALL_FLOPS` plus its measured fixed costs (model builds and checkpoints), without the
    estimate's rate measurement or start-up probe (a run must not pay seconds for its ETA)."""
    from .measure.flops import count_flops
    from .validate import parent_model

    sizes = {part.name: data_sizes(part.dataset, exp.cache_dir) for part in exp.parts}
    meta, base = parent_model(exp)
    fp = float(count_flops(base.model, (1, meta.channels, *meta.size)))
    fixed = measure_fixed(base.model, startup=False)
    return {
        c.job.key: c.flops / NOMINAL_WALL_FLOPS + c.seconds + fixed.per_job.get(c.job.kind, 0.0)
        for c in job_costs(exp, jobs, fp, meta, sizes)
    }


# --------------------------------------------------------------------------- output
def _num(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:.3g}"


def _hours(h: float) -> str:
    """Hours, always (the columns say h): 3 significant digits, 2 below a thousandth of an hour."""
    return _num(h) if h >= 0.001 else f"{h:.2g}" if h > 0 else "0"


def render(est: Estimate, config: str) -> str:
    """The table ``compressbench plan`` prints, with the assumptions under it."""
    exp, n_jobs = est.exp, len(est.costs)
    cached = sum(c.cached for c in est.costs)
    lines = [
        f"{config}: experiment '{exp.name}', {len(exp.seeds)} seed(s) — {n_jobs} jobs, {cached} cached"
        + (f" ({est.damaged} damaged artifact(s) will be re-run)" if est.damaged else "")
    ]
    for name, n in est.sizes.items():
        tg = "".join(f", target {t} {v:,}" for t, v in n.targets.items())
        lines.append(
            f"  images ({name}, {n.how}): train {n.train:,}"
            + (f", validation {n.val:,}" if n.val else "")
            + f", test {n.test:,}{tg}; eval_subset {exp.dataset.eval_subset or 'none'}"
        )
    lines.append(
        f"  parent: {exp.model.name} at {'×'.join(map(str, est.input_shape))}: "
        f"{est.parent_flops / 1e6:,.2f} MFLOPs per image (forward, 2×MAC)"
    )
    head = ("", "jobs", "cached", "TFLOP", "GPU-h", "CPU-h")
    rows = [(label, f"{j}", f"{c}", _num(t), _hours(g), _hours(h)) for label, j, c, t, g, h in est.rows()]
    width = [max(len(r[i]) for r in [head, *rows]) for i in range(6)]
    for r in [head, *rows]:
        lines.append("  " + "  ".join(r[i].ljust(width[i]) if i == 0 else r[i].rjust(width[i]) for i in range(6)))
    lines.append("  (TFLOP and hours: the jobs not cached; estimated — FLOPs-based, see `compressbench plan --help`)")
    g = est.gpu
    lines.append(
        f"GPU-h: {g.name}, {g.peak_tflops:g} TFLOPS peak ({g.precision}) × {est.utilisation:.0%} assumed "
        f"utilisation = {est.gpu_flops_s / 1e12:.3g} TFLOP/s sustained (--gpu, --gpu-util)"
    )
    if est.cpu_given is not None:
        lines.append(f"CPU-h: {est.cpu_given / 1e9:g} GFLOP per CPU-second, as given (--cpu-gflops)")
    else:
        r = est.rates
        todo_cpu_h = sum(est.cpu_hours(c) for c in est.costs if not c.cached)
        lines.append(
            f"CPU-h (CPU time, user + sys): measured here on {exp.model.name} in {r.seconds:.1f} s with "
            f"{r.threads} thread(s): training {r.train_cpu / 1e9:.3g} GFLOP/s (batch {r.train_batch}), "
            f"inference {r.infer_cpu / 1e9:.3g} GFLOP/s (batch {r.infer_batch}) per CPU-second; "
            f"wall-clock here ≈ {todo_cpu_h * r.wall_per_cpu:.3g} h"
        )
        if r.busy:
            lines.append(
                f"  note: the machine was busy (load {r.load:.1f} on {r.cores} cores): the rate is low and "
                f"the CPU-h high; measure when it is quiet, or give --cpu-gflops"
            )
    return "\n".join(lines)


def to_json(est: Estimate) -> dict[str, Any]:
    """The estimate as data: assumptions, totals per kind, and every job."""
    return {
        "experiment": est.exp.name,
        "parent_flops_per_image": est.parent_flops,
        "input_shape": est.input_shape,
        "images": {k: vars(v) for k, v in est.sizes.items()},
        "gpu": {**vars(est.gpu), "utilisation": est.utilisation, "sustained_flops_s": est.gpu_flops_s},
        "cpu": est.rates.to_dict() if est.rates is not None else {"given_flops_per_cpu_s": est.cpu_given},
        "rows": [
            dict(zip(("label", "jobs", "cached", "tflop", "gpu_hours", "cpu_hours"), r, strict=True))
            for r in est.rows()
        ],
        "jobs": [
            {
                "key": c.job.key,
                "kind": c.job.kind,
                "what": c.job.describe(),
                "group": c.group,
                "cached": c.cached,
                "forward_flops": c.forward,
                "gradient_flops": c.gradient,
                "fixed_seconds": c.seconds,
                "gpu_hours": est.gpu_hours(c),
                "cpu_hours": est.cpu_hours(c),
            }
            for c in est.costs
        ],
    }

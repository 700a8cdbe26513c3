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
* **model calls** — the passes above cut into the batches the job really uses: the training batch (the
  baseline's; the recipe's for fine-tunes, distillation and its teacher), a method's declared batch
  (calibration, importance), an evaluator's (``EvalCost.calls``: its ``batch_size``; the adversarial
  evaluator's batch × every attack step, DeepFool's per-candidate gradients included; the efficiency
  evaluator's batch-1 latency loop). A call costs a + FLOPs / b: at small scales the per-call overhead ``a``
  (per-layer dispatch, ∝ the model's layers) dominates.

CPU hours, per job: for each kind of pass (inference, training step, input gradient), calls × ``a`` + FLOPs /
``b``, both measured here on the parent (``measure.throughput.sustained_rates``: each kind timed at the smallest
batch and at a large one, on one thread in thread CPU time, the fastest of a few calls — so a plan made on a
busy machine prices the same work as on a quiet one; the module says why), plus fixed seconds: those components declare
(``EvalCost.seconds``: fresh processes, ONNX exports; ``TrainingCost.seconds``), and those measured here
(:class:`FixedCosts`: the run's process start once, model builds and checkpoint round trips per job, the
runner's bookkeeping per job (:data:`JOB_BOOKKEEPING_S`, declared), and per
budget-searched compression its search's :data:`SEARCH_TRIALS` trial compressions, each priced as
:data:`SEARCH_TRIAL_CALLS` per-call inference overheads — a dependency-graph trace is per-layer Python work
like a call's dispatch — and a method's declared ``TrainingCost.overhead_calls``: static int8's fusion,
observers and conversion; none of these with ``--cpu-gflops``).
``a`` is the parent's for every variant: right for pruned ones (same layers), high for a shallower student.
GPU hours: FLOPs / (a reference GPU's peak × an assumed utilisation) plus the fixed seconds. Not counted: data
decoding, the corruptions' own pixel work, cache hashing. Nothing is written: the cache is only read
(``execute.cache.inspect_cached``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .compress.budget import capabilities
from .config import BASELINE, Budget, ResolvedExperiment
from .costs import (
    DEFAULT_EVAL_BATCH,
    DEFAULT_GPU,
    DEFAULT_UTILISATION,
    GPUS,
    TRAIN_STEP,
    CostContext,
    EvalCost,
    ReferenceGPU,
    batches,
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
    """One job's work: FLOPs in forward-only, training-step and input-gradient (attack) passes, the model calls
    of each (every call pays the model's per-call overhead), fixed seconds, and whether it is cached."""

    job: Job
    group: str  # BASELINE, the method, or the evaluator
    forward: float = 0.0
    gradient: float = 0.0  # training steps (weights updated)
    seconds: float = 0.0
    cached: bool = False
    input_gradient: float = 0.0  # attack steps: forward and backward to the input, weights frozen
    forward_calls: float = 0.0
    train_calls: float = 0.0
    gradient_calls: float = 0.0
    search_trials: int = 0  # trial compressions of a budget search (SEARCH_TRIAL_CALLS call overheads each)
    overhead_calls: float = 0.0  # a method's declared per-layer fixed work (TrainingCost.overhead_calls)

    @property
    def flops(self) -> float:
        return self.forward + self.gradient + self.input_gradient


# --------------------------------------------------------------------------- model sizes
def size_fraction(method: str, params: Any, budget: Budget | None) -> float:
    """The variant's forward FLOPs as a fraction of the parent's (see the module docstring)."""
    if budget is None or budget.kind not in SHARED_BUDGETS or capabilities(method, params)["sparsifies"]:
        return 1.0
    return float(budget.value)


def _stages(method: str, params: Any, budget: Budget | None, fp: float) -> list[tuple[Any, Any, float, float, bool]]:
    """(spec, params, FLOPs of its input, FLOPs of its output, whether it searches its knob) per stage: a lone
    method is one stage; in a pipeline the first stage that takes the budget's kind shrinks the model to the
    variant's size."""
    spec, child = methods.spec(method), fp * size_fraction(method, params, budget)
    if spec.stages is None:
        return [(spec, params, fp, child, searches(spec, params, budget))]
    out, f_in, shrunk = [], fp, False
    for name, sp in spec.stages(params):
        st = methods.spec(name)
        takes = budget is not None and not shrunk and budget.kind in st.budgets
        f_out, shrunk = (child if takes else f_in), shrunk or takes
        out.append((st, sp, f_in, f_out, takes and searches(st, sp, budget)))
        f_in = f_out
    return out


def searches(spec: Any, params: Any, budget: Budget | None) -> bool:
    """Whether the shared budget solver searches this method's knob (``compress.budget.solve``): a shared
    budget, a knob with a transform, no closed form, and the method not solving the budget itself."""
    return (
        budget is not None
        and budget.kind in SHARED_BUDGETS
        and spec.knob is not None
        and spec.apply is not None
        and spec.knob.exact is None
        and not (spec.own_budget is not None and spec.own_budget(params))
    )


# --------------------------------------------------------------------------- jobs
def _train_cost(job: Job, exp: ResolvedExperiment, n: DataSizes, fp: float) -> JobCost:
    """The baseline job: epochs (frozen-backbone epochs forward only) at the training batch, doubled with
    ``train.adapt``; a validation pass (batches of :data:`~.costs.DEFAULT_EVAL_BATCH`) after every whole epoch
    and at the end."""
    c = JobCost(job, BASELINE)
    if not exp.trains_baseline:
        return c
    t = exp.train
    mult = 2.0 if t.adapt is not None else 1.0
    val_passes = math.floor(t.epochs) + (t.epochs != math.floor(t.epochs)) if n.val else 0
    steps = batches(n.train, t.batch_size) * mult  # per epoch
    c.forward = n.train * fp * t.freeze_epochs * mult + n.val * fp * val_passes
    c.gradient = n.train * fp * TRAIN_STEP * (t.epochs - t.freeze_epochs) * mult
    c.forward_calls = steps * t.freeze_epochs + batches(n.val, None) * val_passes
    c.train_calls = steps * (t.epochs - t.freeze_epochs)
    return c


def _compress_cost(job: Job, method: str, params: Any, budget: Any, n: DataSizes, fp: float, batch: int) -> JobCost:
    """A compression job: its stages' training epochs at the run's batch (``batch``: the recipe's), teacher
    passes, calibration and importance batches (at most one pass, in batches of the method's ``batch``), and
    each stage's declared fixed seconds."""
    out = JobCost(job, method)
    cap = n.train + n.val  # calibration / importance batches: at most one pass
    steps = batches(n.train, batch)  # per epoch
    for spec, sp, f_in, f_out, searched in _stages(method, params, budget, fp):
        c = method_cost(spec, sp)
        out.search_trials += SEARCH_TRIALS if searched else 0
        out.gradient += n.train * TRAIN_STEP * (c.epochs * f_out * (2 if c.adapt else 1) + c.input_epochs * f_in)
        out.train_calls += steps * (c.epochs * (2 if c.adapt else 1) + c.input_epochs)
        g_img, f_img = min(c.gradient_images, cap), min(c.forward_images, cap)
        out.gradient += g_img * TRAIN_STEP * f_in
        out.train_calls += batches(g_img, c.batch or batch)
        out.forward += (n.train * c.epochs * f_in if c.teacher else 0.0) + f_img * f_in
        out.forward_calls += (steps * c.epochs if c.teacher else 0.0) + batches(f_img, c.batch or batch)
        out.seconds += c.seconds
        out.overhead_calls += c.overhead_calls
    return out


def job_costs(
    exp: ResolvedExperiment, jobs: list[Job], fp: float, meta: Any, sizes: dict[str, DataSizes]
) -> list[JobCost]:
    """Every job's FLOPs (``fp``: the parent's forward FLOPs per image; ``sizes``: per experiment part)."""
    by_key = {j.key: j for j in jobs}
    out: list[JobCost] = []
    for job in jobs:
        s, n = job.spec, sizes[job.labels.experiment]
        if isinstance(s, CompressSpec):
            out.append(_compress_cost(job, s.method, s.params, s.budget, n, fp, exp.recipe.batch_size))
        elif isinstance(s, EvaluateSpec):
            out.append(_evaluate_cost(job, s, by_key[s.model_job].spec, n, fp, meta))
        else:
            out.append(_train_cost(job, exp, n, fp))
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
    fwd = c.forward + c.parent_forward
    calls = c.calls if c.calls or not fwd else fwd / max(1, getattr(s.params, "batch_size", None) or DEFAULT_EVAL_BATCH)
    return JobCost(
        job,
        s.evaluator,
        forward=(c.forward * frac + c.parent_forward) * fp,
        seconds=c.seconds,
        input_gradient=(c.gradient * frac + c.parent_gradient) * fp,
        forward_calls=calls,
        gradient_calls=c.gradient_calls,
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
        return cpu_seconds(c, self.rates) / 3600

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


def cpu_seconds(c: JobCost, r: Any) -> float:
    """A job's CPU seconds at the rates ``r`` (``measure.throughput.Rates``): per kind of pass, its calls × the
    per-call overhead + its FLOPs / the marginal rate (rates measured without the split: FLOPs / the rate at
    the measured batch), plus the job's fixed seconds."""

    def part(flops: float, calls: float, call_s: float, marginal: float, rate: float) -> float:
        return calls * call_s + flops / marginal if marginal > 0 else flops / rate

    return (
        part(c.forward, c.forward_calls, r.infer_call, r.infer_marginal, r.infer_cpu)
        + part(c.gradient, c.train_calls, r.train_call, r.train_marginal, r.train_cpu)
        + part(c.input_gradient, c.gradient_calls, r.grad_call, r.grad_marginal, r.train_cpu)
        + c.seconds
    )


@dataclass(frozen=True)
class FixedCosts:
    """CPU seconds no FLOP count sees, measured here: the run's process start (importing torch and the
    library), and per job its model builds and checkpoint round trips (``per_job``, by kind)."""

    startup: float
    per_job: dict[str, float]
    build: float  # one model build + checkpoint save and load


# a budget search's trial compressions (``compress.budget.solve_knob``: both ends of the knob's range, then a
# safeguarded regula falsi; and the final apply): 3–9 trials, mean 6, in the search records of the Office-31 smoke
# and the goal-search benchmark's runs (result.json ``search``), + 1
SEARCH_TRIALS = 7
# one trial in the model's per-call inference overheads (``Rates.infer_call``: per-layer dispatch; a trial is
# per-layer Python work: a copy, a Torch-Pruning dependency graph traced and walked layer by layer, the step): the
# Office-31 smoke's 6 searched jobs took 0.92 CPU s each, ≈ 0.1 s per trial beyond the fine-tune, at 2.27 ms per
# call (``benchmarks/plan_vs_run.py``, AMD EPYC, 1 thread, loaded machine; the mean of small calls). Re-checked with
# the fastest-call measurement (1.4 ms per call on that model): those 6 jobs priced at 0.76 of their 5.4 CPU s
SEARCH_TRIAL_CALLS = 40.0

# the runner's own CPU seconds per job outside the job (its key and spec, scheduling, result.json, artifact hashes,
# the store's rows): (run's CPU − the jobs' CPU − start-up) / jobs = 0.075 on the Office-31 and noise smokes
# (``benchmarks/plan_vs_run.py``, AMD EPYC, 1 thread, loaded machine; 0.08 on all three smokes when re-run at one
# thread in round r27plan2); declared, not measured by ``plan``
JOB_BOOKKEEPING_S = 0.075

# a job's model builds + checkpoint round trips: train builds and saves one; compress loads the parent and saves
# a variant (2 + its method's own copies); evaluate loads its model (and a transfer attack's parent: counted by
# the evaluator's parent_forward work, not here)
BUILDS_PER_JOB = {"train": 1.0, "compress": 3.0, "evaluate": 1.0}


def measure_fixed(model: Any, startup: bool = True) -> FixedCosts:
    """Measure the fixed costs on this machine: a fresh ``python -c 'import compressbench.runner'`` (the run's
    start-up, CPU time of that child: single-threaded imports, so not inflated by load) and a deep copy +
    checkpoint save/load of the parent (best of 3, in CPU time of this thread: what the estimate predicts —
    wall-clock time on a busy machine is mostly waiting, and process time would count idle pool threads)."""
    import copy
    import io
    import resource
    import subprocess
    import sys
    import time

    import torch

    start = 0.0
    if startup:
        k = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run([sys.executable, "-c", "import compressbench.runner"], check=False, capture_output=True)
        k2 = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = k2.ru_utime + k2.ru_stime - k.ru_utime - k.ru_stime
    best = float("inf")
    for _ in range(3):
        c0 = time.thread_time()
        m = copy.deepcopy(model)
        buf = io.BytesIO()
        torch.save(m.state_dict(), buf)
        buf.seek(0)
        m.load_state_dict(torch.load(buf, weights_only=True))
        best = min(best, time.thread_time() - c0)
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
    rates = None
    if cpu_gflops is None:
        from .measure.throughput import sustained_rates
        from .train import AUTOCAST_DTYPES, train_precision

        rates = sustained_rates(
            base.model,
            shape,
            fp,
            batch_size=exp.recipe.batch_size,
            num_classes=meta.num_classes,
            threads=exp.threads,
            # training steps timed in the precision they run in on the CPU (train.amp: bf16; true / false: fp32)
            autocast=AUTOCAST_DTYPES.get(train_precision(exp.recipe.amp, "cpu")),
        )
    for c in costs:
        calls = c.search_trials * SEARCH_TRIAL_CALLS + c.overhead_calls
        c.seconds += (
            fixed.per_job.get(c.job.kind, 0.0)
            + JOB_BOOKKEEPING_S
            + calls * (rates.infer_call if rates is not None else 0.0)
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
        c.job.key: c.flops / NOMINAL_WALL_FLOPS + c.seconds + fixed.per_job.get(c.job.kind, 0.0) + JOB_BOOKKEEPING_S
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
        prec = ", bf16 autocast: train.amp" if exp.recipe.amp == "bf16" else ""
        lines.append(
            f"CPU-h (CPU time, user + sys): measured here on {exp.model.name} in {r.seconds:.1f} s on one "
            f"thread: training {r.train_cpu / 1e9:.3g} GFLOP/s (batch {r.train_batch}{prec}), inference "
            f"{r.infer_cpu / 1e9:.3g} GFLOP/s (batch {r.infer_batch}) per CPU-second, + per call "
            f"{r.train_call * 1e3:.2g} / {r.infer_call * 1e3:.2g} ms; wall-clock here at {r.threads} "
            f"thread(s) ≈ {todo_cpu_h * r.wall_per_cpu:.3g} h"
        )
        if r.busy:
            lines.append(
                f"  note: the machine was busy (load {r.load:.1f} on {r.cores} cores): the wall-clock figure "
                f"is slow; the CPU-h are not inflated (one thread, thread time), but a multi-threaded run "
                f"sharing the cores spends more CPU than planned (its threads spin while they wait)"
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

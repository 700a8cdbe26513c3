"""``compressbench.run``: plan a resolved experiment, execute its jobs with caching, store the results.

The CLI's ``run`` calls exactly this. Job functions here are plain functions of (typed job spec, upstream
results, :class:`JobEnv`) so that any executor can run them; :class:`JobRunner` is the picklable value an
executor calls, in this process or in a Ray worker (docs/architecture.md: the job contract).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import platform
import subprocess
import uuid
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

from .adapt import make_adaptation
from .baseline import build_baseline, prefetch_weights, train_baseline
from .checkpoint import load_model, save_model
from .compress import capabilities, compress
from .config import DatasetConfig, Experiment, PluginSet, ResolvedExperiment, resolve_config, resolve_experiment
from .data import DatasetBundle, load_dataset
from .data.base import ImageSet
from .data.prepare import prepare_bundle
from .declarations import record_run
from .execute import GPU_SHARE, JobResult, create_executor, prepare_cache
from .execute.allocator import keep_freed_memory
from .interfaces import CompressContext, EvalContext, VariantInfo
from .jobs import (
    PARENT_ACHIEVED,
    CompressSpec,
    EvaluateSpec,
    Job,
    ModelOutcome,
    SizeStats,
    TrainSpec,
    dataset_record,
    measurement_rows,
)
from .measure.counting import param_counts
from .measure.flops import count_flops
from .measure.fresh import forked_workers
from .measure.sizes import checkpoint_bytes
from .plan import plan
from .progress import progress_enabled
from .provenance import host_info, versions
from .registry import evaluators, import_object
from .store import ResultStore, condition_str
from .train import TrainRecipe, accuracy, resolve_device, seed_everything, train, train_precision
from .validate import check, load_config, with_executor

log = logging.getLogger("compressbench")


# --------------------------------------------------------------------------- data (decoded once per process)
@lru_cache(maxsize=4)
def _dataset(spec_json: str, cache_dir: str) -> DatasetBundle:
    spec = json.loads(spec_json)
    domains = {k: spec[k] for k in ("source", "targets") if spec.get(k) is not None}
    if spec.get("domain_split") is not None:
        domains["split"] = spec["domain_split"]
    bundle = load_dataset(
        spec["name"],
        root=spec.get("root"),
        cache_dir=cache_dir,
        download=spec.get("download", True),
        **domains,
        **spec.get("options", {}),
    )
    return prepare_bundle(
        bundle, train_subset=spec.get("train_subset"), val_fraction=spec.get("val_fraction"), resize=spec.get("resize")
    )


def get_dataset(ds: DatasetConfig, cache_dir: Path) -> DatasetBundle:
    """The prepared dataset a job uses (decoded once per process: the cache key is its JSON)."""
    return _dataset(json.dumps(dataset_record(ds), sort_keys=True), str(cache_dir))


# --------------------------------------------------------------------------- helpers
@dataclass(frozen=True)
class JobEnv:
    """Where and how a job runs: the artifact cache, the device, progress bars, the experiment's plug-ins."""

    cache: Path
    device: torch.device
    progress: bool
    plugins: PluginSet


def _flops(model: torch.nn.Module, input_shape: tuple[int, ...]) -> float:
    """Dense FLOPs, NaN where int8 kernels hide them from FlopCounterMode."""
    try:
        return float(count_flops(model, input_shape))
    except Exception as e:  # quantized kernels are invisible to FlopCounterMode
        log.debug("FLOP count failed: %s", e)
        return float("nan")


def measure_size(model: torch.nn.Module, ckpt: Path, input_shape: tuple[int, ...], stats: Any = None) -> SizeStats:
    """The job's model's size (:class:`~compressbench.jobs.SizeStats`): the checkpoint file's bytes
    (:func:`~compressbench.measure.sizes.checkpoint_bytes`) measured here, params and FLOPs taken from
    ``stats`` (``compress.common.ModelStats``: what ``compress`` measured on this very model) when given —
    FLOPs only if they were counted there, not carried over from the parent."""
    if stats is None:
        pc = param_counts(model)
        params, nonzero, flops = float(pc["params"]), float(pc["params_nonzero"]), _flops(model, input_shape)
    else:
        params, nonzero = float(stats.params), float(stats.params_nonzero)
        flops = float(stats.flops) if stats.flops_counted else _flops(model, input_shape)
    return SizeStats(params, nonzero, float(checkpoint_bytes(ckpt)), flops)


def _recipe(train_spec: dict[str, Any], **over: Any) -> TrainRecipe:
    """The training recipe of the config's ``train`` (its ``adapt`` is the baseline's alone: fine-tunes
    adapt only through their own method's parameters)."""
    r = TrainRecipe(**{k: v for k, v in train_spec.items() if k != "adapt"})
    for k, v in over.items():
        if v is not None:
            setattr(r, k, v)
    return r


# --------------------------------------------------------------------------- job functions
def job_train(job: Job, out: Path, upstream: dict[str, JobResult], env: JobEnv) -> tuple[list[dict], dict]:
    s: TrainSpec = job.spec  # type: ignore[assignment]
    data = get_dataset(s.dataset, env.cache)
    seed_everything(s.seed)  # weight init is part of the seeded run
    cfg = s.model_config()
    # the model, with model.weights loaded (as they are, or adapted for fine-tuning: baseline.py)
    # a weights file is read once and must have the sha256 the job's key was planned with: a file swapped
    # since fails the job (nothing cached) instead of filing another file's numbers under this key
    base = build_baseline(
        cfg, data.meta, transfer=s.train is not None and bool(s.weights), sha256=(s.weights_key or {}).get("sha256")
    )
    model, stats, fit = base.model, {}, {}
    adapt = s.train.adapt if s.train is not None else None
    if s.train is not None:  # train: null -> the given weights are the baseline
        stats, fit = train_baseline(
            model,
            data,
            _recipe(s.train.key_dump()),
            model_name=cfg["name"],
            seed=s.seed,
            device=env.device,
            show_progress=env.progress,
            adapt=make_adaptation(adapt, data) if adapt is not None else None,
        )
    model.cpu()
    spec = {"model": cfg["name"], "width": cfg["width"], "kwargs": cfg["kwargs"], "meta": data.meta.to_dict()}
    ckpt = save_model(model, out / "model.pt", spec)
    size = measure_size(model, ckpt, (1, data.meta.channels, *data.meta.size))
    record = {**base.record(), **fit} if s.weights or fit else {}
    if s.train is not None:  # what the training steps ran in (train.amp on this device): fp32, fp16 or bf16
        record["precision"] = train_precision(s.train.amp, env.device)
    if adapt is not None:
        record["composition"] = {"compression": "", "adapt": adapt.label()}
    made = ModelOutcome(size, dict(PARENT_ACHIEVED), [], record, None, spec)
    ms = size.rows() + [{"evaluator": "train", "metric": k, "value": float(v)} for k, v in stats.items()]
    return ms + made.rows(), made.to_info()


def job_compress(job: Job, out: Path, upstream: dict[str, JobResult], env: JobEnv) -> tuple[list[dict], dict]:
    s: CompressSpec = job.spec  # type: ignore[assignment]
    device = env.device
    data = get_dataset(s.dataset, env.cache)
    parent, ck = load_model(upstream[job.deps[0]].dir / "model.pt")
    parent.to(device)
    recipe = s.recipe.key_dump()
    precisions: set[str] = set()  # what the method's training steps ran in (fine-tunes, distillation, QAT, SFP)

    def ctx_train(
        model,
        epochs: float,
        lr: float | None = None,
        optimizer=None,
        schedule=None,
        teacher=None,
        kd_alpha: float = 0.9,
        kd_temperature: float = 4.0,
        kd_kind: str = "hinton",
        desc: str = "finetune",
        images=None,
        epoch_end=None,
        adapt=None,
        amp=None,
    ):
        r = _recipe(
            recipe,
            epochs=epochs,
            lr=lr if lr is not None else 0.1 * recipe["lr"],
            optimizer=optimizer,
            schedule=schedule,
            amp=amp,
        )
        dev = next((p.device for p in model.parameters()), device)
        precisions.add(train_precision(r.amp, dev))
        train(
            model,
            images if images is not None else data.train,
            r,
            seed=s.seed,
            device=dev,
            augment_default=data.meta.augment,
            teacher=teacher,
            kd_alpha=kd_alpha,
            kd_temperature=kd_temperature,
            kd_kind=kd_kind,
            desc=desc,
            show_progress=env.progress,
            epoch_end=epoch_end,
            adapt=make_adaptation(adapt, data),
        )
        return model

    def ctx_accuracy(model, images: ImageSet | None = None) -> float:
        # the validation split when there is one: the test split is for evaluators only
        imgs = (
            images
            if images is not None
            else (data.val if data.val is not None and len(data.val) else data.eval_subset(s.dataset.eval_subset))
        )
        dev = next((p.device for p in model.parameters()), torch.device("cpu"))
        return accuracy(model, imgs, device=dev)

    ctx = CompressContext(
        data=data,
        meta=data.meta,
        device=device,
        seed=s.seed,
        workdir=out,
        train=ctx_train,
        accuracy=ctx_accuracy,
        parent_spec=ck["spec"],
        progress=env.progress,
    )
    res = compress(s.method, parent, ctx, s.budget, s.params)
    caps = capabilities(s.method, s.params)
    model = res.model if caps["quantizes"] else res.model.cpu()  # int8 kernels run on CPU
    ckpt = save_model(model, out / "model.pt", ck["spec"], res.steps)
    size = measure_size(model, ckpt, (1, data.meta.channels, *data.meta.size), res.stats)
    record = {**res.record, "precision": "+".join(sorted(precisions))} if precisions else res.record
    (out / "record.json").write_text(json.dumps(record, indent=1, default=str))
    made = ModelOutcome(size, dict(res.achieved), res.steps, json.loads(json.dumps(record, default=str)), caps)
    return size.rows() + made.rows(), made.to_info()


def _eval_member(job: Job, out: Path, upstream: dict[str, JobResult], env: JobEnv) -> tuple[Any, EvalContext]:
    """The model an evaluate job measures, on its device, and the job's :class:`EvalContext`."""
    s: EvaluateSpec = job.spec  # type: ignore[assignment]
    data = get_dataset(s.dataset, env.cache)
    src, parent_res = upstream[s.model_job], upstream[s.parent_job]
    model, ck = load_model(src.dir / "model.pt")
    made = ModelOutcome.from_info(src.info)
    caps = made.capabilities or {}
    dev = torch.device("cpu") if caps.get("quantizes") else env.device
    model.to(dev)

    def load_parent():
        p, _ = load_model(parent_res.dir / "model.pt")
        return p.to(env.device)

    lab = job.labels
    variant = VariantInfo(lab.variant, lab.method, ck["steps"], made.record, caps, is_parent=lab.is_parent)
    ctx = EvalContext(
        data=data,
        meta=data.meta,
        device=dev,
        seed=s.seed,
        workdir=out,
        variant=variant,
        load_parent=load_parent,
        eval_size=s.eval_subset,
        progress=env.progress,
        extra={
            "checkpoint": str(src.dir / "model.pt"),
            "parent_checkpoint": str(parent_res.dir / "model.pt"),
            "parent_record": ModelOutcome.from_info(parent_res.info).record,
        },
        plugins=env.plugins,
    )
    return model, ctx


def _rows(ms: list[Any]) -> list[dict[str, Any]]:
    return [
        {"metric": m.metric, "value": float(m.value), "condition": m.condition, "tag": m.tag, "unit": m.unit}
        for m in ms
    ]


def job_evaluate(job: Job, out: Path, upstream: dict[str, JobResult], env: JobEnv) -> tuple[list[dict], dict]:
    s: EvaluateSpec = job.spec  # type: ignore[assignment]
    model, ctx = _eval_member(job, out, upstream, env)
    return _rows(evaluators.entry(s.evaluator).load()(model, ctx, s.params)), {}


def job_evaluate_group(
    jobs: list[Job], outs: dict[str, Path], upstreams: dict[str, dict[str, JobResult]], env: JobEnv
) -> dict[str, tuple[list[dict], dict] | BaseException]:
    """The evaluate jobs of one group (one evaluator, seed, parent and params) through the evaluator's
    ``group`` form: their shared inputs made once (``execute.group``). A member whose model cannot be loaded
    fails alone."""
    s: EvaluateSpec = jobs[0].spec  # type: ignore[assignment]
    group = evaluators.spec(s.evaluator).group
    fn = import_object(group) if isinstance(group, str) else group
    result: dict[str, tuple[list[dict], dict] | BaseException] = {}
    members, keys = [], []
    for job in jobs:
        try:
            members.append(_eval_member(job, outs[job.key], upstreams[job.key], env))
            keys.append(job.key)
        except Exception as e:  # this member fails; the others go on
            result[job.key] = e
    if members:
        for key, got in zip(keys, fn(members, s.params), strict=True):
            result[key] = got if isinstance(got, BaseException) else (_rows(got), {})
    return result


JOB_FNS = {"train": job_train, "compress": job_compress, "evaluate": job_evaluate}

_RESOLVED: dict[str, ResolvedExperiment] = {}  # per process: fingerprint -> the resolved experiment


class FingerprintError(RuntimeError):
    """A process resolved the experiment differently from the driver (other code or plug-ins)."""


@dataclass(frozen=True)
class JobRunner:
    """The job function an executor calls, ``(job, out dir, upstream) -> (measurements, info)``, as a
    picklable value: an executor may call it in another process (a Ray worker). The driver registers its
    resolved experiment here (:meth:`for_experiment`); a new process loads the plug-in set, resolves the
    config once, and checks that the fingerprint is the driver's — no validation, no model built. The device:
    the executor's GPU share decides (none: the CPU)."""

    config: str  # the experiment's config, as JSON
    plugins: dict[str, Any]  # its plug-in set, as JSON
    fingerprint: str  # of the driver's resolved experiment
    cache: Path
    progress: bool

    @classmethod
    def for_experiment(cls, exp: ResolvedExperiment, cache: Path, progress: bool) -> JobRunner:
        _RESOLVED[exp.fingerprint] = exp
        return cls(exp.config_json(), exp.plugins.to_json(), exp.fingerprint, cache, progress)

    def experiment(self) -> ResolvedExperiment:
        exp = _RESOLVED.get(self.fingerprint)
        if exp is None:
            PluginSet.from_json(self.plugins).load()
            exp = resolve_config(json.loads(self.config))
            if exp.fingerprint != self.fingerprint:
                raise FingerprintError(
                    f"this process ({platform.node()}, pid {os.getpid()}) resolves the experiment differently from "
                    f"the driver (fingerprint {exp.fingerprint[:12]}, the driver's {self.fingerprint[:12]}): install "
                    f"the same compressbench and plug-ins ({', '.join(exp.plugins.modules) or 'none'}) everywhere"
                )
            _RESOLVED[self.fingerprint] = exp
        return exp

    def prepare(self, jobs: list[Job]) -> None:
        """Once, in the driver, before ``jobs`` run: load each dataset they use, so that a missing one is
        downloaded by this process alone — not by every worker at once into the same folder — and one that is
        missing or malformed is one :class:`DatasetError` line before any work (the CLI's exit 2), not a failed
        row for every job. The local executor's jobs then reuse it (decoded once per process)."""
        seen: dict[str, DatasetConfig] = {}
        for j in jobs:
            seen.setdefault(json.dumps(dataset_record(j.spec.dataset), sort_keys=True), j.spec.dataset)
        for key in sorted(seen):
            get_dataset(seen[key], self.cache)

    def env(self) -> JobEnv:
        exp = self.experiment()
        share = GPU_SHARE.get()
        device = resolve_device("cpu" if share == 0 and exp.device == "auto" else exp.device)
        return JobEnv(self.cache, device, self.progress, exp.plugins)

    def __call__(self, job: Job, out: Path, upstream: dict[str, JobResult]) -> tuple[list[dict], dict]:
        return JOB_FNS[job.kind](job, out, upstream, self.env())

    def group(
        self, jobs: list[Job], outs: dict[str, Path], upstreams: dict[str, dict[str, JobResult]]
    ) -> dict[str, tuple[list[dict], dict] | BaseException]:
        """The jobs of one group together (``execute.group.GroupFn``)."""
        return job_evaluate_group(jobs, outs, upstreams, self.env())


# --------------------------------------------------------------------------- provenance
def _git_hash() -> str | None:
    try:
        here = Path(__file__).resolve().parent
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        h = out.stdout.strip()
        if h and subprocess.run(["git", "diff", "--quiet"], cwd=here, timeout=5).returncode:
            h += "-dirty"
        return h or None
    except Exception:
        return None


# --------------------------------------------------------------------------- the run
@dataclass
class RunSummary:
    experiment: str
    store: Path
    run_id: str
    jobs: int
    ran: int
    cached: int
    failed: int
    failures: list[tuple[str, str]]


def _resolved(experiment: ResolvedExperiment | Experiment | str | Path) -> ResolvedExperiment:
    """A resolved, checked experiment: as given, or resolved and checked now (an :class:`Experiment` schema
    object, a YAML path)."""
    if isinstance(experiment, ResolvedExperiment):
        return experiment
    if isinstance(experiment, Experiment):
        return check(resolve_experiment(experiment))
    return load_config(experiment)


@dataclass
class Session:
    """One run in progress: its store, run id, cache and the results of the jobs it has executed so far. The
    goal's search executes several plans in one session (:mod:`compressbench.goal.search`)."""

    exp: ResolvedExperiment
    store: ResultStore
    run_id: str
    cache: Path
    progress: bool
    results: dict[str, JobResult]
    planned: dict[str, Job]
    ran: set[str] = field(default_factory=set)  # jobs computed (not found in the cache) in this session

    def summary(self) -> RunSummary:
        """Distinct jobs: those that ran in this session, those only ever found cached, and those that failed."""
        failures = [(self.planned[k].describe(), r.error) for k, r in self.results.items() if r.error]
        cached = sum(1 for k, r in self.results.items() if r.cached and k not in self.ran)
        return RunSummary(
            self.exp.name,
            self.exp.store_path,
            self.run_id,
            len(self.planned),
            len(self.ran),
            cached,
            len(failures),
            failures,
        )  # type: ignore[arg-type]


def start_run(exp: ResolvedExperiment, progress: bool | None = None, evaluators: set[str] | None = None) -> Session:
    """Open the store (checked, writable) and record the run: its provenance and the declarations of
    ``evaluators`` (default: the experiment's). Nothing is executed."""
    show = progress_enabled() if progress is None else progress
    if exp.threads:
        torch.set_num_threads(exp.threads)
    device = resolve_device(exp.device)
    store = ResultStore(exp.store_path)
    store.check_writable()
    run_id = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]
    store.add_run(
        run_id,
        exp.name,
        dt.datetime.now(dt.timezone.utc).isoformat(),
        exp.config.model_dump(mode="json"),
        _git_hash(),
        versions(exp),
        str(device),
        host_info(),
        plugins=exp.plugins.to_json(),
    )
    record_run(store, run_id, evaluators if evaluators is not None else {e.evaluator for e in exp.evaluations})
    return Session(exp, store, run_id, Path(exp.cache_dir), show, {}, {})


def execute(session: Session, exp: ResolvedExperiment, jobs: list[Job] | None = None) -> dict[str, JobResult]:
    """Run ``jobs`` (default: ``plan(exp)``) with ``exp``'s executor and store their rows under the session's
    run. ``exp`` is the experiment the jobs were planned from (its fingerprint is what a worker checks): the
    session's own, or one the search derived from it (its probes as ordinary variants)."""
    jobs = plan(exp) if jobs is None else jobs
    cache = session.cache
    prefetch_weights(exp, jobs, cache)  # published weights the baseline needs (offline: one line, nothing written)
    _set_expected(exp, jobs)  # the live ETA's expectations
    prepare_cache(cache, jobs)  # a writable folder, or read-only but holding every job of the plan
    record_run(session.store, session.run_id, {j.labels.evaluator for j in jobs if j.kind == "evaluate"})
    fn = JobRunner.for_experiment(exp, cache.resolve(), session.progress)
    session.planned.update({j.key: j for j in jobs})
    done: dict[str, JobResult] = {}

    def on_done(job: Job, res: JobResult) -> None:
        session.results[job.key] = done[job.key] = res
        if not res.cached and not res.error:
            session.ran.add(job.key)
        _store_job(session.store, job, res, session.results, session.run_id)

    # the efficiency evaluator's timing processes fork from one template per run instead of each starting an
    # interpreter and importing torch (measure.fresh: each measurement still has a process of its own); the jobs
    # reuse freed memory instead of mapping and zero-filling each large tensor anew (execute.allocator)
    with forked_workers(), keep_freed_memory():
        create_executor(exp, cache, session.progress).run(jobs, fn, on_done)
    return done


def run(
    experiment: ResolvedExperiment | Experiment | str | Path,
    *,
    progress: bool | None = None,
    executor: str | None = None,
) -> RunSummary:
    """Run an experiment (resolved by :func:`compressbench.load_config` / ``validate_config``, or a YAML path).
    Same code path as the CLI. ``executor`` overrides the experiment's executor by name (with that executor's
    default options; checked against the experiment as if the config said so). An experiment with a ``goal``
    is searched instead: ``compressbench.run`` (:func:`compressbench.goal.search.run`) does that."""
    exp = _resolved(experiment)
    if executor is not None and executor != exp.executor.name:
        exp = with_executor(exp, executor)
    if exp.goal is not None:
        from .errors import ConfigError

        raise ConfigError(
            f"experiment '{exp.name}' declares a goal: its budgets lists are search ranges, not "
            f"variants to run; run it with compressbench.run / compressbench.goal.search (the CLI's "
            f"run and search do), or remove 'goal'"
        )
    jobs = plan(exp)
    prefetch_weights(exp, jobs, Path(exp.cache_dir))  # before the store is touched: offline, nothing is written
    session = start_run(exp, progress)
    execute(session, exp, jobs)
    _track(exp)
    return session.summary()


def _set_expected(exp: ResolvedExperiment, jobs: list[Job]) -> None:
    """Each job's expected seconds from the plan's cost model (the live ETA, ``progress.board``); an experiment
    the model cannot price (a plug-in it cannot build here) runs without (the ETA then waits for finished jobs)."""
    from .estimate import expected_seconds

    try:
        exp_s = expected_seconds(exp, jobs)
    except Exception as e:  # noqa: BLE001 — the ETA is a convenience, never a reason to fail a run
        log.debug("no cost model for the live ETA: %s", e)
        return
    for j in jobs:
        j.expected_s = exp_s.get(j.key)


def _track(exp: ResolvedExperiment) -> None:
    """``tracking: {mlflow: ...}``: copy this experiment's rows to MLflow (:mod:`.tracking`). A tracking server
    that fails is one logged line: the results are in the store, and ``compressbench export-mlflow`` retries."""
    t = exp.config.tracking
    if t is None or t.mlflow is None:
        return
    from .tracking import export_store

    for part in exp.parts:
        try:
            runs = export_store(exp.store_path, t.mlflow.uri, experiment=part.name)
        except Exception as e:  # the store holds everything; tracking is a copy
            log.error(
                "tracking.mlflow: export to %s failed (%s: %s); retry with `compressbench export-mlflow %s`",
                t.mlflow.uri or "MLflow's default URI",
                type(e).__name__,
                str(e).splitlines()[0][:200] if str(e) else "",
                exp.store_path,
            )
            return
        log.info("tracking.mlflow: %d run(s) of %s in %s", len(runs), part.name, t.mlflow.uri or "MLflow's default URI")


def _store_job(store: ResultStore, job: Job, res: JobResult, results: dict[str, JobResult], run_id: str) -> None:
    """The job's rows and artifacts (:func:`job_rows`), in one transaction."""
    rows, arts = job_rows(job, res, results, run_id)
    # one transaction per job; rows already stored (a cached job, another driver) are skipped by the unique key
    store.add_job(rows, arts)


def job_rows(
    job: Job, res: JobResult, results: dict[str, JobResult], run_id: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A finished job's store rows and artifact records: its labels and budget on every row, the budget achieved
    read from the outcome of the job that made the model (in ``results``); a failed job: one error row."""
    lab, b = job.labels, job.labels.budget
    now = dt.datetime.now(dt.timezone.utc).isoformat()
    producer = results.get(job.spec.model_job if isinstance(job.spec, EvaluateSpec) else job.key)
    achieved = ModelOutcome.from_info(producer.info).budget_achieved(b) if producer is not None else None
    base = {
        "experiment": lab.experiment,
        "variant": lab.variant,
        "method": lab.method,
        "budget_kind": b.kind if b else None,
        "budget_target": b.value if b else None,
        "budget_achieved": achieved,
        "seed": lab.seed,
        "job_key": job.key,
        "run_id": run_id,
        "created_at": now,
    }
    default_eval = lab.evaluator or job.kind
    if res.error:
        return [
            {
                **base,
                "evaluator": default_eval,
                "evaluator_version": lab.evaluator_version,
                "metric": "error",
                "value": None,
                "error": res.error,
            }
        ], []
    rows = measurement_rows(base, default_eval, lab.evaluator_version, res.measurements, res.record_sha256)
    keys = {
        (
            r["evaluator"],
            r["condition"] if isinstance(r["condition"], str) else condition_str(r["condition"]),
            r["metric"],
        )
        for r in rows
    }
    if len(keys) < len(rows):
        log.warning(
            "job %s gave %d measurements with the same (evaluator, condition, metric): only the first of each "
            "is stored",
            job.describe(),
            len(rows) - len(keys),
        )
    arts = [
        {
            "job_key": job.key,
            "experiment": lab.experiment,
            "variant": lab.variant,
            "method": lab.method,
            "seed": lab.seed,
            "evaluator": default_eval,
            "name": f.name,
            "path": f.resolve(),
            "created_at": now,
        }
        for f in (sorted(res.dir.iterdir()) if res.dir.is_dir() else [])
        if f.suffix.lower() in (".png", ".svg", ".jpg", ".json", ".csv", ".npz") and f.name != "result.json"
    ]
    return rows, arts

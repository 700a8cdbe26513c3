"""``compressbench.run``: plan an experiment, execute its jobs with caching, store the results.

The CLI's ``run`` calls exactly this. Job functions here are plain functions of (job spec,
upstream artifact dirs) so that any executor can run them.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import subprocess
import uuid
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

from .adapt import AdaptParams, make_adaptation
from .baseline import build_baseline, prefetch_weights, train_baseline
from .checkpoint import load_model, save_model
from .compress import capabilities, compress
from .config import Experiment, load_config, validate
from .data import DatasetBundle, load_dataset
from .data.base import ImageSet
from .data.prepare import prepare_bundle
from .declarations import record_run
from .execute import GPU_SHARE, JobResult, create_executor, prepare_cache
from .interfaces import Budget, CompressContext, EvalContext, VariantInfo
from .measure.counting import param_counts
from .measure.flops import count_flops
from .measure.sizes import checkpoint_bytes
from .plan import Job, plan
from .progress import progress_enabled
from .provenance import host_info, versions
from .registry import evaluators, methods
from .store import ResultStore, condition_str
from .train import TrainRecipe, accuracy, resolve_device, seed_everything, train

log = logging.getLogger("compressbench")


# --------------------------------------------------------------------------- data (decoded once per process)
@lru_cache(maxsize=4)
def _dataset(spec_json: str, cache_dir: str) -> DatasetBundle:
    spec = json.loads(spec_json)
    domains = {k: spec[k] for k in ("source", "targets") if spec.get(k) is not None}
    if spec.get("domain_split") is not None:
        domains["split"] = spec["domain_split"]
    bundle = load_dataset(spec["name"], root=spec.get("root"), cache_dir=cache_dir, download=spec.get("download", True),
                          **domains, **spec.get("options", {}))
    return prepare_bundle(bundle, train_subset=spec.get("train_subset"), val_fraction=spec.get("val_fraction"),
                          resize=spec.get("resize"))


def get_dataset(spec: dict[str, Any], cache_dir: Path) -> DatasetBundle:
    return _dataset(json.dumps(spec, sort_keys=True), str(cache_dir))


# --------------------------------------------------------------------------- helpers
def _device() -> torch.device:
    return resolve_device(os.environ.get("COMPRESSBENCH_DEVICE", "auto"))


def _size_measurements(model: torch.nn.Module, ckpt: Path, input_shape: tuple[int, ...]
                       ) -> tuple[list[dict], dict[str, float]]:
    """The compress job's own size rows: stored and nonzero parameters, the checkpoint file's bytes
    (:func:`~compressbench.measure.sizes.checkpoint_bytes`) and dense FLOPs (NaN where int8 kernels hide
    them). ``params_nonzero`` is ``theoretical`` here as in the efficiency evaluator: the count is exact,
    but the saving it implies needs a sparse format or sparse kernels (the file and the kernels are dense)."""
    pc = param_counts(model)
    try:
        flops = float(count_flops(model, input_shape))
    except Exception as e:  # quantized kernels are invisible to FlopCounterMode
        log.debug("FLOP count failed: %s", e)
        flops = float("nan")
    size = {"params": float(pc["params"]), "params_nonzero": float(pc["params_nonzero"]),
            "checkpoint_bytes": float(checkpoint_bytes(ckpt)), "flops": flops}
    ms = [{"metric": "params", "value": size["params"], "tag": "realised"},
          {"metric": "params_nonzero", "value": size["params_nonzero"], "tag": "theoretical"},
          {"metric": "checkpoint_bytes", "value": size["checkpoint_bytes"], "unit": "B", "tag": "realised"},
          {"metric": "flops", "value": flops, "unit": "FLOP (2×MAC)", "tag": "theoretical"}]
    return ms, size


def _recipe(train_spec: dict[str, Any], **over: Any) -> TrainRecipe:
    """The training recipe of the config's ``train`` (its ``adapt`` is the baseline's alone: fine-tunes
    adapt only through their own method's parameters)."""
    r = TrainRecipe(**{k: v for k, v in train_spec.items() if k != "adapt"})
    for k, v in over.items():
        if v is not None:
            setattr(r, k, v)
    return r


# --------------------------------------------------------------------------- job functions
def job_train(job: Job, out: Path, upstream: dict[str, JobResult], cache_dir: Path, device: torch.device,
              show_progress: bool) -> tuple[list[dict], dict]:
    s = job.spec
    data = get_dataset(s["dataset"], cache_dir)
    seed_everything(s["seed"])  # weight init is part of the seeded run
    # the model, with model.weights loaded (as they are, or adapted for fine-tuning: baseline.py)
    base = build_baseline(s["model"], data.meta, transfer=s["train"] is not None and bool(s["model"].get("weights")))
    model, stats, fit = base.model, {}, {}
    adapt = AdaptParams.model_validate(s["train"]["adapt"]) if s["train"] and s["train"].get("adapt") else None
    if s["train"] is not None:  # train: null -> the given weights are the baseline
        stats, fit = train_baseline(model, data, _recipe(s["train"]), model_name=s["model"]["name"], seed=s["seed"],
                                    device=device, show_progress=show_progress,
                                    adapt=make_adaptation(adapt, data) if adapt is not None else None)
    model.cpu()
    spec = {"model": s["model"]["name"], "width": s["model"]["width"], "kwargs": s["model"]["kwargs"],
            "meta": data.meta.to_dict()}
    ckpt = save_model(model, out / "model.pt", spec)
    ms, size = _size_measurements(model, ckpt, (1, data.meta.channels, *data.meta.size))
    ms += [{"metric": k, "value": float(v)} for k, v in stats.items()]
    for m in ms:
        m.setdefault("evaluator", "compress" if m["metric"] in size or m["metric"] == "checkpoint_bytes" else "train")
    ms += [{"evaluator": "compress", "metric": f"achieved_{k}", "value": 1.0} for k in ("params", "bytes", "flops")]
    record = {**base.record(), **fit} if s["model"].get("weights") or fit else {}
    if adapt is not None:
        record["composition"] = {"compression": "", "adapt": adapt.label()}
    return ms, {"size": size, "spec": spec, "steps": [], "record": record, "achieved": {"params": 1.0, "bytes": 1.0,
                                                                                        "flops": 1.0}}


def job_compress(job: Job, out: Path, upstream: dict[str, JobResult], cache_dir: Path, device: torch.device,
                 show_progress: bool) -> tuple[list[dict], dict]:
    s = job.spec
    parent_res = upstream[job.deps[0]]
    data = get_dataset(s["dataset"], cache_dir)
    parent, ck = load_model(parent_res.dir / "model.pt")
    parent.to(device)
    schema = methods.spec(s["method"]).params
    params = schema.model_validate(s["params"]) if schema is not None else None
    budget = Budget(s["budget"]["kind"], s["budget"]["value"]) if s["budget"] else None
    base_lr = s["train"]["lr"]

    def ctx_train(model, epochs: float, lr: float | None = None, optimizer=None, schedule=None, teacher=None,
                  kd_alpha: float = 0.9, kd_temperature: float = 4.0, kd_kind: str = "hinton", desc: str = "finetune",
                  images=None, epoch_end=None, adapt=None):
        recipe = _recipe(s["train"], epochs=epochs, lr=lr if lr is not None else 0.1 * base_lr,
                         optimizer=optimizer, schedule=schedule)
        dev = next((p.device for p in model.parameters()), device)
        train(model, images if images is not None else data.train, recipe, seed=s["seed"], device=dev,
              augment_default=data.meta.augment, teacher=teacher, kd_alpha=kd_alpha,
              kd_temperature=kd_temperature, kd_kind=kd_kind, desc=desc, show_progress=show_progress,
              epoch_end=epoch_end, adapt=make_adaptation(adapt, data))
        return model

    def ctx_accuracy(model, images: ImageSet | None = None) -> float:
        # the validation split when there is one: the test split is for evaluators only
        imgs = images if images is not None else (data.val if data.val is not None and len(data.val)
                                                  else data.eval_subset(s["dataset"].get("eval_subset")))
        dev = next((p.device for p in model.parameters()), torch.device("cpu"))
        return accuracy(model, imgs, device=dev)

    ctx = CompressContext(data=data, meta=data.meta, device=device, seed=s["seed"], workdir=out,
                          train=ctx_train, accuracy=ctx_accuracy, parent_spec=ck["spec"], progress=show_progress)
    res = compress(s["method"], parent, ctx, budget, params)
    caps = capabilities(s["method"], params)
    model = res.model if caps["quantizes"] else res.model.cpu()  # int8 kernels run on CPU
    ckpt = save_model(model, out / "model.pt", ck["spec"], res.steps)
    ms, size = _size_measurements(model, ckpt, (1, data.meta.channels, *data.meta.size))
    psize = parent_res.info["size"]
    achieved = dict(res.achieved)
    achieved.setdefault("params", size["params_nonzero"] / max(psize["params_nonzero"], 1))
    achieved.setdefault("bytes", size["checkpoint_bytes"] / max(psize["checkpoint_bytes"], 1))
    if size["flops"] == size["flops"]:
        achieved.setdefault("flops", size["flops"] / max(psize["flops"], 1))
    for m in ms:
        m["evaluator"] = "compress"
    ms += [{"evaluator": "compress", "metric": f"achieved_{k}", "value": float(v)} for k, v in achieved.items()
           if isinstance(v, (int, float))]
    if "within_tolerance" in res.record:  # a shared budget: matched within ±2 % or not (job_metrics)
        ms.append({"evaluator": "compress", "metric": "budget_matched", "value": float(res.record["within_tolerance"])})
    knob = res.record.get("knob")
    if isinstance(knob, (int, float)) and not isinstance(knob, bool):
        ms.append({"evaluator": "compress", "metric": "knob", "value": float(knob)})
    (out / "record.json").write_text(json.dumps(res.record, indent=1, default=str))
    return ms, {"size": size, "steps": res.steps, "record": json.loads(json.dumps(res.record, default=str)),
                "achieved": achieved, "capabilities": caps}


def job_evaluate(job: Job, out: Path, upstream: dict[str, JobResult], cache_dir: Path, device: torch.device,
                 show_progress: bool) -> tuple[list[dict], dict]:
    s = job.spec
    data = get_dataset(s["dataset"], cache_dir)
    src = upstream[s["model_job"]]
    parent_dir = upstream[s["parent_job"]].dir
    model, ck = load_model(src.dir / "model.pt")
    caps = src.info.get("capabilities", {})
    dev = torch.device("cpu") if caps.get("quantizes") else device
    model.to(dev)
    entry = evaluators.entry(s["evaluator"])
    schema = entry.spec.params
    params = schema.model_validate(s["params"]) if schema is not None else None

    def load_parent():
        p, _ = load_model(parent_dir / "model.pt")
        return p.to(device)

    variant = VariantInfo(job.labels["variant"], job.labels["method"], ck["steps"], src.info.get("record", {}), caps)
    ctx = EvalContext(data=data, meta=data.meta, device=dev, seed=s["seed"], workdir=out, variant=variant,
                      load_parent=load_parent, eval_size=s["eval_subset"], progress=show_progress,
                      extra={"checkpoint": str(src.dir / "model.pt"),
                             "parent_checkpoint": str(parent_dir / "model.pt"),
                             "parent_record": upstream[s["parent_job"]].info.get("record", {})})
    ms = entry.load()(model, ctx, params)
    return [{"metric": m.metric, "value": float(m.value), "condition": m.condition, "tag": m.tag, "unit": m.unit}
            for m in ms], {}


JOB_FNS = {"train": job_train, "compress": job_compress, "evaluate": job_evaluate}

_VALIDATED: dict[str, Experiment] = {}  # per process: config JSON -> the validated experiment


@dataclass(frozen=True)
class JobRunner:
    """The job function an executor calls, ``(job, out dir, upstream) -> (measurements, info)``, as a
    picklable value: an executor may call it in another process (a Ray worker). There it first
    re-validates the experiment's config — which imports exactly the ``"pkg.mod:obj"`` names the user
    wrote — and resolves the device: the executor's GPU share decides (none: the CPU)."""

    config: str  # the experiment, as JSON
    cache: Path
    progress: bool

    def experiment(self) -> Experiment:
        exp = _VALIDATED.get(self.config)
        if exp is None:
            exp = _VALIDATED[self.config] = validate(json.loads(self.config))
        return exp

    def prepare(self, jobs: list[Job]) -> None:
        """Once, in the driver, before ``jobs`` run in parallel: load each dataset they use, so that a missing
        one is downloaded by this process alone — not by every worker at once into the same folder."""
        for spec in sorted({json.dumps(j.spec["dataset"], sort_keys=True) for j in jobs if "dataset" in j.spec}):
            get_dataset(json.loads(spec), self.cache)

    def __call__(self, job: Job, out: Path, upstream: dict[str, JobResult]) -> tuple[list[dict], dict]:
        exp = self.experiment()
        share = GPU_SHARE.get()
        device = resolve_device("cpu" if share == 0 and exp.device == "auto" else exp.device)
        return JOB_FNS[job.kind](job, out, upstream, self.cache, device, self.progress)


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


def run(experiment: Experiment | str | Path, *, progress: bool | None = None, executor: str | None = None
        ) -> RunSummary:
    """Run an experiment (an :class:`Experiment` or a YAML path). Same code path as the CLI.
    ``executor`` overrides the experiment's executor by name (with that executor's default options)."""
    exp = experiment if isinstance(experiment, Experiment) else load_config(experiment)
    if executor is not None and executor != exp.executor.name:  # validated as if the config said so
        exp = validate({**exp.model_dump(mode="json"), "executor": executor})
    show = progress_enabled() if progress is None else progress
    if exp.threads:
        torch.set_num_threads(exp.threads)
    device = resolve_device(exp.device)
    cache = Path(exp.cache_dir)
    jobs = plan(exp)
    prefetch_weights(exp, jobs, cache)  # published weights the baseline needs (offline: one line, nothing written)
    # before any work: the store opens (header, integrity, schema) and is writable; the cache is a
    # writable folder, or read-only but holding every job of the plan
    store = ResultStore(exp.store_path)
    store.check_writable()
    prepare_cache(cache, jobs)
    run_id = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]
    store.add_run(run_id, exp.name, dt.datetime.now(dt.timezone.utc).isoformat(), exp.model_dump(mode="json"),
                  _git_hash(), versions(exp), str(device), host_info())
    record_run(store, run_id, {j.labels["evaluator"] for j in jobs if j.kind == "evaluate"})  # report: no code
    by_key = {j.key: j for j in jobs}
    results: dict[str, JobResult] = {}

    config = json.dumps(exp.model_dump(mode="json"), sort_keys=True)
    _VALIDATED[config] = exp
    fn = JobRunner(config, cache.resolve(), show)

    def on_done(job: Job, res: JobResult) -> None:
        results[job.key] = res
        _store_job(store, job, res, by_key, results, run_id)

    create_executor(exp, cache, show).run(jobs, fn, on_done)
    failures = [(by_key[k].describe(), r.error) for k, r in results.items() if r.error]
    return RunSummary(exp.name, exp.store_path, run_id, len(jobs), sum(1 for r in results.values() if not r.cached
                                                                       and not r.error),
                      sum(1 for r in results.values() if r.cached), len(failures), failures)  # type: ignore[arg-type]


def _store_job(store: ResultStore, job: Job, res: JobResult, by_key: dict[str, Job], results: dict[str, JobResult],
               run_id: str) -> None:
    lab = job.labels
    now = dt.datetime.now(dt.timezone.utc).isoformat()
    budget = lab.get("budget") or {}
    producer = job.key if job.kind != "evaluate" else job.spec["model_job"]
    achieved = results[producer].info.get("achieved", {}) if producer in results else {}
    kind = budget.get("kind")
    b_ach = achieved.get(kind) if kind and kind != "knob" else (
        results[producer].info.get("record", {}).get("knob") if producer in results and kind == "knob" else None)
    base = {"experiment": lab["experiment"], "variant": lab["variant"], "method": lab["method"],
            "budget_kind": kind, "budget_target": budget.get("value"),
            "budget_achieved": float(b_ach) if isinstance(b_ach, (int, float)) else None, "seed": lab["seed"],
            "job_key": job.key, "run_id": run_id, "created_at": now}
    default_eval = lab.get("evaluator", job.kind)
    if res.error:
        store.add_job([{**base, "evaluator": default_eval, "evaluator_version": lab.get("evaluator_version"),
                        "metric": "error", "value": None, "error": res.error}])
        return
    rows = [{**base, "evaluator": m.get("evaluator", default_eval), "evaluator_version": lab.get("evaluator_version"),
             "metric": m["metric"], "value": m["value"], "condition": m.get("condition") or {},
             "tag": m.get("tag", ""), "unit": m.get("unit", "")} for m in res.measurements]
    keys = {(r["evaluator"], r["condition"] if isinstance(r["condition"], str) else condition_str(r["condition"]),
             r["metric"]) for r in rows}
    if len(keys) < len(rows):
        log.warning("job %s gave %d measurements with the same (evaluator, condition, metric): only the first of each "
                    "is stored", job.describe(), len(rows) - len(keys))
    arts = [{"job_key": job.key, "experiment": lab["experiment"], "variant": lab["variant"], "method": lab["method"],
             "seed": lab["seed"], "evaluator": default_eval, "name": f.name, "path": f.resolve(), "created_at": now}
            for f in (sorted(res.dir.iterdir()) if res.dir.is_dir() else [])
            if f.suffix.lower() in (".png", ".svg", ".jpg", ".json", ".csv") and f.name != "result.json"]
    # one transaction per job; rows already stored (a cached job, another driver) are skipped by the unique key
    store.add_job(rows, arts)

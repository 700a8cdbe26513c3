"""Experiment -> a DAG of jobs with content keys.

train baseline (per seed) ─▶ compress variant (method × budget × seed) ─▶ evaluate (evaluator × variant × seed)

A job's key is ``sha256(kind, spec, upstream keys, component version)``: re-running an unchanged
experiment finds every artifact cached; changing one method re-keys only its own jobs and those
downstream. Names (experiment, variant) are *labels*, not part of a key, so renaming re-runs nothing.
Config fields added later enter keys only when set (``config._Strict.key_dump``). A weights file
(``model.weights``) enters the baseline's key by its sha256, not its path (moving the file re-runs
nothing, changing its bytes re-runs everything); the job itself gets the absolute path.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from .config import Experiment, ResolvedVariant, resolve_evaluations
from .domain_config import dataset_spec, experiment_parts
from .registry import evaluators, methods

TRAIN_VERSION = 1  # bump when the training loop's numbers could move
COMPRESS_RUNNER_VERSION = 2  # 2: capabilities in the job record; methods run through compress.budget
EVAL_RUNNER_VERSION = 1


def content_key(obj: Any) -> str:
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


@dataclass
class Job:
    kind: str  # "train" | "compress" | "evaluate"
    key: str
    spec: dict[str, Any]  # everything the job function needs (JSON-serialisable)
    deps: list[str] = field(default_factory=list)
    labels: dict[str, Any] = field(default_factory=dict)  # experiment, variant, method, seed, evaluator, budget

    def describe(self) -> str:
        lab = self.labels
        if self.kind == "train":
            what = "load baseline weights" if self.spec.get("train") is None else "train baseline"
            return f"{what} seed={lab['seed']}"
        if self.kind == "compress":
            return f"compress {lab['variant']} seed={lab['seed']}"
        return f"evaluate {lab['evaluator']} on {lab['variant']} seed={lab['seed']}"


def _dump(params: Any) -> Any:
    return params.model_dump(mode="json") if params is not None and hasattr(params, "model_dump") else params


def plan(exp: Experiment, variants: list[ResolvedVariant] | None = None) -> list[Job]:
    """The job DAG in topological order."""
    variants = variants if variants is not None else exp.variants_resolved()
    evals = resolve_evaluations(exp, [v.name for v in variants])
    model_spec = exp.model.key_dump()
    run_model = dict(model_spec)
    if exp.model.weights is not None:
        from .baseline import run_path, weights_identity

        model_spec["weights"] = weights_identity(exp.model.name, exp.model.weights)
        run_model["weights"] = run_path(exp.model.weights)
    train_spec = exp.train.key_dump() if exp.trains_baseline else None  # None: nothing is trained
    recipe = exp.recipe.key_dump()  # what compression fine-tunes build on
    jobs: list[Job] = []
    for name, dataset in experiment_parts(exp):  # one part, or one per source domain
        jobs += _plan_part(exp, name, dataset_spec(dataset), (model_spec, run_model), train_spec, recipe, variants,
                           evals)
    return jobs


def _plan_part(exp: Experiment, name: str, data_spec: dict[str, Any], models: tuple[dict[str, Any], dict[str, Any]],
               train_spec: dict[str, Any] | None, recipe: dict[str, Any], variants: list[ResolvedVariant],
               evals: list) -> list[Job]:
    """The jobs of one experiment (``name``) on one dataset. ``models``: the model's keyed spec and the
    spec its job gets (a weights file by its content hash in the key, by its path in the job)."""
    model_spec, run_model = models
    jobs: list[Job] = []
    # whether a missing dataset may be downloaded does not change results: out of the keys, but the
    # jobs get it (their spec is the keyed one plus "download")
    run_data = {**data_spec, "download": exp.dataset.download}
    for seed in exp.seeds:
        tspec = {"dataset": data_spec, "model": model_spec, "train": train_spec, "seed": seed}
        tkey = content_key({"kind": "train", "spec": tspec, "v": TRAIN_VERSION})
        base_labels = {"experiment": name, "seed": seed, "variant": "baseline", "method": "baseline",
                       "budget": None}
        jobs.append(Job("train", tkey, {**tspec, "dataset": run_data, "model": run_model}, [], dict(base_labels)))
        # (variant label, method, model-producing job key, budget)
        producers: list[tuple[str, str, str, Any]] = [("baseline", "baseline", tkey, None)]
        for v in variants:
            mspec = methods.spec(v.method)
            cspec = {"method": v.method, "params": _dump(v.params),
                     "budget": None if v.budget is None else {"kind": v.budget.kind, "value": v.budget.value},
                     "dataset": data_spec, "train": recipe, "seed": seed}
            ckey = content_key({"kind": "compress", "spec": cspec, "deps": [tkey],
                                "v": [COMPRESS_RUNNER_VERSION, mspec.version]})
            jobs.append(Job("compress", ckey, {**cspec, "dataset": run_data}, [tkey],
                            {"experiment": name, "seed": seed, "variant": v.name, "method": v.method,
                             "budget": cspec["budget"]}))
            producers.append((v.name, v.method, ckey, cspec["budget"]))
        for ev, params in evals:
            espec_ = evaluators.spec(ev.evaluator)
            for vname, method, pkey, budget in producers:
                if ev.variants is not None and vname not in ev.variants:
                    continue
                espec = {"evaluator": ev.evaluator, "params": _dump(params), "eval_subset": exp.dataset.eval_subset,
                         "dataset": data_spec, "seed": seed, "model_job": pkey, "parent_job": tkey}
                # an evaluator may add the versions of the components it uses (e.g. each corruption's):
                # a changed corruption re-runs its evaluations for every model of the study together
                kv = espec_.key_versions
                ev_v = [EVAL_RUNNER_VERSION, espec_.version] + ([kv(params)] if kv else [])
                ekey = content_key({"kind": "evaluate", "spec": espec, "deps": sorted({pkey, tkey}), "v": ev_v})
                jobs.append(Job("evaluate", ekey, {**espec, "dataset": run_data}, sorted({pkey, tkey}),
                                {"experiment": name, "seed": seed, "variant": vname, "method": method,
                                 "evaluator": ev.evaluator, "evaluator_version": espec_.version,
                                 "budget": budget}))
    return jobs

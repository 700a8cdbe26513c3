"""Resolved experiment -> a DAG of jobs with content keys.

train baseline (per seed) ─▶ compress variant (method × budget × seed) ─▶ evaluate (evaluator × variant × seed)

A job's key is ``sha256(kind, spec, upstream keys, component version)``: re-running an unchanged
experiment finds every artifact cached; changing one method re-keys only its own jobs and those
downstream. Names (experiment, variant) are *labels*, not part of a key, so renaming re-runs nothing.
Config fields added later enter keys only when set (``config.schema._Strict.key_dump``). A weights file
(``model.weights``) enters the baseline's key by its sha256, not its path (moving the file re-runs
nothing, changing its bytes re-runs everything); the job itself gets the absolute path. The specs and
the exact dicts their keys hash are in :mod:`compressbench.jobs`.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from .baseline import run_path, weights_identity
from .config import BASELINE, ExperimentPart, ResolvedExperiment
from .jobs import CompressSpec, EvaluateSpec, Job, JobLabels, TrainSpec
from .registry import evaluators, methods

TRAIN_VERSION = 1  # bump when the training loop's numbers could move
COMPRESS_RUNNER_VERSION = 2  # 2: capabilities in the job record; methods run through compress.budget
EVAL_RUNNER_VERSION = 1


def content_key(obj: Any) -> str:
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def plan(exp: ResolvedExperiment) -> list[Job]:
    """The job DAG in topological order."""
    weights = weights_key = None
    if exp.model.weights is not None:
        weights_key = weights_identity(exp.model.name, exp.model.weights)
        weights = run_path(exp.model.weights)
    jobs: list[Job] = []
    for part in exp.parts:  # one part, or one per source domain
        jobs += _plan_part(exp, part, weights, weights_key)
    return jobs


def _plan_part(
    exp: ResolvedExperiment, part: ExperimentPart, weights: str | None, weights_key: dict[str, Any] | None
) -> list[Job]:
    """The jobs of one experiment part (one name, one dataset)."""
    jobs: list[Job] = []
    train = exp.train if exp.trains_baseline else None  # None: nothing is trained
    for seed in exp.seeds:
        tspec = TrainSpec(part.dataset, exp.model, train, seed, weights, weights_key)
        tkey = content_key({"kind": "train", "spec": tspec.key_spec(), "v": TRAIN_VERSION})
        jobs.append(Job("train", tkey, tspec, [], JobLabels(part.name, seed, BASELINE, BASELINE, is_parent=True)))
        # (labels of the model, the job that makes it)
        producers: list[tuple[JobLabels, str]] = [(jobs[-1].labels, tkey)]
        for v in exp.variants:
            cspec = CompressSpec(v.method, v.params, v.budget, part.dataset, exp.recipe, seed)
            ckey = content_key(
                {
                    "kind": "compress",
                    "spec": cspec.key_spec(),
                    "deps": [tkey],
                    "v": [COMPRESS_RUNNER_VERSION, methods.spec(v.method).version],
                }
            )
            jobs.append(Job("compress", ckey, cspec, [tkey], JobLabels(part.name, seed, v.name, v.method, v.budget)))
            producers.append((jobs[-1].labels, ckey))
        for ev in exp.evaluations:
            spec = evaluators.spec(ev.evaluator)
            # an evaluator may add the versions of the components it uses (e.g. each corruption's):
            # a changed corruption re-runs its evaluations for every model of the study together
            kv = spec.key_versions
            version = [EVAL_RUNNER_VERSION, spec.version] + ([kv(ev.params)] if kv else [])
            for lab, pkey in producers:
                if not ev.runs_on(lab.variant):
                    continue
                espec = EvaluateSpec(ev.evaluator, ev.params, exp.dataset.eval_subset, part.dataset, seed, pkey, tkey)
                deps = sorted({pkey, tkey})
                ekey = content_key({"kind": "evaluate", "spec": espec.key_spec(), "deps": deps, "v": version})
                group = content_key({"shared": espec.shared_spec(), "v": version}) if spec.group else None
                jobs.append(
                    Job(
                        "evaluate",
                        ekey,
                        espec,
                        deps,
                        JobLabels(
                            part.name,
                            seed,
                            lab.variant,
                            lab.method,
                            lab.budget,
                            ev.evaluator,
                            spec.version,
                            lab.is_parent,
                        ),
                        group,
                    )
                )
    return jobs

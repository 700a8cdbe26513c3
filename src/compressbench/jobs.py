"""The job contract: what a job is told (a typed spec per kind), what it is called (its labels), and what a
model-making job leaves for the jobs after it (a typed :class:`ModelOutcome`).

* :class:`TrainSpec` — the baseline of one seed: trained here, fine-tuned from ``model.weights``, or those
  weights as they are (``train`` None).
* :class:`CompressSpec` — one variant: a method, its validated params, a budget, the recipe fine-tunes use.
* :class:`EvaluateSpec` — one evaluator on one model (``model_job``) beside its parent (``parent_job``).

Specs hold typed values (validated params, :class:`~compressbench.config.Budget`, the dataset's config);
JSON appears in exactly two places: :meth:`key_spec` — the dict a job's content key hashes
(:mod:`compressbench.plan`; its form is frozen: existing caches keep their keys) — and :meth:`record`, the
spec as written into the job's ``result.json``. Labels (experiment, variant, method names) are never part
of a key. docs/architecture.md describes the contract.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, Union

from .config import BASELINE, Budget, DatasetConfig, ModelConfig, TrainConfig


def dump_params(params: Any) -> Any:
    """A component's validated params as JSON data (``None``: it takes none); fields its schema added after keys
    existed are left out while at their defaults (``interfaces.Params.key_dump``)."""
    if params is not None and hasattr(params, "key_dump"):
        return params.key_dump()
    return params.model_dump(mode="json") if params is not None and hasattr(params, "model_dump") else params


def dataset_key(ds: DatasetConfig) -> dict[str, Any]:
    """The dataset's part of a job key: unset optional fields (domains, resize, ...) left out, so existing
    cache keys stay; ``download`` left out (it does not change results; the jobs get it separately)."""
    out = ds.key_dump()
    out.pop("download", None)
    return out


def dataset_record(ds: DatasetConfig) -> dict[str, Any]:
    """The dataset as a job loads it: its key part plus ``download``."""
    return {**dataset_key(ds), "download": ds.download}


@dataclass(frozen=True)
class TrainSpec:
    """The baseline job of one seed. ``weights``: where the job reads ``model.weights`` (an absolute path,
    or a published tag); ``weights_key``: how the key identifies them (a file by its sha256, never its path)."""

    KIND: ClassVar[str] = "train"
    dataset: DatasetConfig
    model: ModelConfig
    train: TrainConfig | None  # None: nothing is trained (the weights are the baseline)
    seed: int
    weights: str | None = None
    weights_key: dict[str, Any] | None = None

    def model_config(self) -> dict[str, Any]:
        """The model's config as the job builds it (``baseline.build_baseline``)."""
        out = self.model.key_dump()
        if self.weights is not None:
            out["weights"] = self.weights
        return out

    def key_spec(self) -> dict[str, Any]:
        model = self.model.key_dump()
        if self.weights is not None:
            model["weights"] = self.weights_key
        return {
            "dataset": dataset_key(self.dataset),
            "model": model,
            "train": self.train.key_dump() if self.train is not None else None,
            "seed": self.seed,
        }

    def record(self) -> dict[str, Any]:
        return {**self.key_spec(), "dataset": dataset_record(self.dataset), "model": self.model_config()}


@dataclass(frozen=True)
class CompressSpec:
    """One variant of one seed: ``method`` with its validated ``params`` at ``budget``; ``recipe`` is the
    training recipe fine-tunes build on."""

    KIND: ClassVar[str] = "compress"
    method: str
    params: Any
    budget: Budget | None
    dataset: DatasetConfig
    recipe: TrainConfig
    seed: int

    def key_spec(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "params": dump_params(self.params),
            "budget": self.budget.to_json() if self.budget is not None else None,
            "dataset": dataset_key(self.dataset),
            "train": self.recipe.key_dump(),
            "seed": self.seed,
        }

    def record(self) -> dict[str, Any]:
        return {**self.key_spec(), "dataset": dataset_record(self.dataset)}


@dataclass(frozen=True)
class EvaluateSpec:
    """One evaluator on the model of ``model_job`` (the parent's is ``parent_job``)."""

    KIND: ClassVar[str] = "evaluate"
    evaluator: str
    params: Any
    eval_subset: int | None
    dataset: DatasetConfig
    seed: int
    model_job: str
    parent_job: str

    def key_spec(self) -> dict[str, Any]:
        return {
            "evaluator": self.evaluator,
            "params": dump_params(self.params),
            "eval_subset": self.eval_subset,
            "dataset": dataset_key(self.dataset),
            "seed": self.seed,
            "model_job": self.model_job,
            "parent_job": self.parent_job,
        }

    def record(self) -> dict[str, Any]:
        return {**self.key_spec(), "dataset": dataset_record(self.dataset)}

    def shared_spec(self) -> dict[str, Any]:
        """What the evaluations of one evaluator share across the models of a seed: the key spec without the
        model (same evaluator, params, images, seed and parent)."""
        out = self.key_spec()
        del out["model_job"]
        return out


JobSpec = Union[TrainSpec, CompressSpec, EvaluateSpec]


@dataclass(frozen=True)
class JobLabels:
    """What a job's rows are called (labels, not keys: renaming re-runs nothing)."""

    experiment: str
    seed: int
    variant: str
    method: str
    budget: Budget | None = None
    evaluator: str | None = None
    evaluator_version: int | None = None
    is_parent: bool = False  # the model is the uncompressed parent (the baseline job's)


@dataclass
class Job:
    kind: str  # "train" | "compress" | "evaluate" (the spec's KIND)
    key: str
    spec: JobSpec
    deps: list[str] = field(default_factory=list)
    labels: JobLabels = None  # type: ignore[assignment]
    # jobs with the same group (an evaluator with a ``group`` form, one seed and parent, the same params) may
    # run together, sharing their model-independent work (:mod:`compressbench.execute.group`); not in the key
    group: str | None = None
    # seconds the plan's cost model expects this job to take here (``estimate.expected_seconds``; the live ETA)
    expected_s: float | None = None

    def describe(self) -> str:
        lab = self.labels
        if isinstance(self.spec, TrainSpec):
            what = "load baseline weights" if self.spec.train is None else "train baseline"
            return f"{what} seed={lab.seed}"
        if self.kind == "compress":
            return f"compress {lab.variant} seed={lab.seed}"
        return f"evaluate {lab.evaluator} on {lab.variant} seed={lab.seed}"


# --------------------------------------------------------------------------- what a model-making job leaves
@dataclass(frozen=True)
class SizeStats:
    """The model's own size, measured once by the job that made it: stored and nonzero parameters, the
    checkpoint file's bytes and dense FLOPs (NaN where int8 kernels hide them)."""

    params: float
    params_nonzero: float
    checkpoint_bytes: float
    flops: float

    def to_json(self) -> dict[str, float]:
        return {
            "params": self.params,
            "params_nonzero": self.params_nonzero,
            "checkpoint_bytes": self.checkpoint_bytes,
            "flops": self.flops,
        }

    def rows(self) -> list[dict[str, Any]]:
        """The size rows (evaluator ``compress``). ``params_nonzero`` is ``theoretical`` here as in the
        efficiency evaluator: the count is exact, but the saving it implies needs a sparse format or sparse
        kernels (the file and the kernels are dense)."""
        return [
            {"evaluator": "compress", "metric": "params", "value": self.params, "tag": "realised"},
            {"evaluator": "compress", "metric": "params_nonzero", "value": self.params_nonzero, "tag": "theoretical"},
            {
                "evaluator": "compress",
                "metric": "checkpoint_bytes",
                "value": self.checkpoint_bytes,
                "unit": "B",
                "tag": "realised",
            },
            {
                "evaluator": "compress",
                "metric": "flops",
                "value": self.flops,
                "unit": "FLOP (2×MAC)",
                "tag": "theoretical",
            },
        ]


PARENT_ACHIEVED = {"params": 1.0, "bytes": 1.0, "flops": 1.0}


@dataclass(frozen=True)
class ModelOutcome:
    """What a train or compress job made: its size, the fractions of the parent it achieved (computed once, by
    ``compress.budget.compress``; 1.0 for the parent), the rebuild steps, the record (knob, target, what the
    method did), the capabilities of its method (None: the parent) and, for the parent, its checkpoint spec.
    Stored in ``result.json`` as the job's ``info`` (:meth:`to_info`, the format caches hold)."""

    size: SizeStats
    achieved: dict[str, float]
    steps: list[dict[str, Any]] = field(default_factory=list)
    record: dict[str, Any] = field(default_factory=dict)
    capabilities: dict[str, bool] | None = None
    spec: dict[str, Any] | None = None

    @property
    def knob(self) -> float | None:
        """The knob the method was run at (a number), if it has one."""
        k = self.record.get("knob")
        return float(k) if isinstance(k, (int, float)) and not isinstance(k, bool) else None

    def budget_achieved(self, budget: Budget | None) -> float | None:
        """What was achieved on ``budget``'s own scale: the fraction of the parent, or the knob."""
        if budget is None:
            return None
        v = self.record.get("knob") if budget.kind == "knob" else self.achieved.get(budget.kind)
        return float(v) if isinstance(v, (int, float)) else None

    def rows(self) -> list[dict[str, Any]]:
        """The job's own rows after its size rows: the achieved fractions, whether a shared budget was matched,
        and the knob."""
        out = [
            {"evaluator": "compress", "metric": f"achieved_{k}", "value": float(v)}
            for k, v in self.achieved.items()
            if isinstance(v, (int, float))
        ]
        if "within_tolerance" in self.record:  # a shared budget: matched within ±2 % or not (job_metrics)
            out.append(
                {"evaluator": "compress", "metric": "budget_matched", "value": float(self.record["within_tolerance"])}
            )
        if self.knob is not None:
            out.append({"evaluator": "compress", "metric": "knob", "value": self.knob})
        return out

    def to_info(self) -> dict[str, Any]:
        if self.capabilities is None:  # the parent
            return {
                "size": self.size.to_json(),
                "spec": self.spec,
                "steps": self.steps,
                "record": self.record,
                "achieved": self.achieved,
            }
        return {
            "size": self.size.to_json(),
            "steps": self.steps,
            "record": self.record,
            "achieved": self.achieved,
            "capabilities": self.capabilities,
        }

    @classmethod
    def from_info(cls, info: dict[str, Any]) -> ModelOutcome:
        s = info.get("size") or {}
        size = SizeStats(
            *(float(s.get(k, math.nan)) for k in ("params", "params_nonzero", "checkpoint_bytes", "flops"))
        )
        return cls(
            size,
            dict(info.get("achieved") or {}),
            list(info.get("steps") or []),
            dict(info.get("record") or {}),
            info.get("capabilities"),
            info.get("spec"),
        )


def measurement_rows(
    base: dict[str, Any],
    default_evaluator: str,
    evaluator_version: int | None,
    measurements: list[dict[str, Any]],
    record_sha256: str | None,
) -> list[dict[str, Any]]:
    """A finished job's store rows: ``base`` (its labels, budget, seed, job key, run) on each of its record's
    measurements, with the record's content hash. The runner stores these; ``compressbench verify`` derives
    them again from the cached record and compares them with the store's."""
    return [
        {
            **base,
            "evaluator": m.get("evaluator", default_evaluator),
            "evaluator_version": evaluator_version,
            "metric": m["metric"],
            "value": m.get("value"),
            "condition": m.get("condition") or {},
            "tag": m.get("tag", ""),
            "unit": m.get("unit", ""),
            "record_sha256": record_sha256,
        }
        for m in measurements
    ]


__all__ = [
    "Job",
    "JobLabels",
    "JobSpec",
    "TrainSpec",
    "CompressSpec",
    "EvaluateSpec",
    "SizeStats",
    "ModelOutcome",
    "PARENT_ACHIEVED",
    "BASELINE",
    "dataset_key",
    "dataset_record",
    "dump_params",
    "measurement_rows",
]

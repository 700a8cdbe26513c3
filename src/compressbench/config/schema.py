"""The experiment schema: a YAML experiment as frozen, typed pydantic classes — data only.

This module is the bottom of the import graph: it imports nothing of compressbench but :mod:`..fields`
and :mod:`..errors`, so anything may read an experiment's fields. Names of components (methods,
evaluators, datasets, models, executors) are plain strings here; :mod:`.resolve` looks them up in the
registries and validates their params, and :mod:`compressbench.validate` runs the checks that need a
model built (docs/architecture.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..errors import did_you_mean
from ..fields import (
    MAX_BATCH_SIZE,
    Aggregate,
    Epochs,
    FileName,
    FinetuneEpochs,
    Format,
    Fraction,
    ImageSize,
    NormMean,
    NormStd,
    Seed,
)

BASELINE = "baseline"  # the label of the parent model (its variant and method); no variant may take it
BudgetKind = Literal["knob", "params", "bytes", "flops"]
BUDGET_KINDS: tuple[str, ...] = ("knob", "params", "bytes", "flops")


@dataclass(frozen=True)
class Budget:
    """A compression target. ``kind='knob'`` means the method's own knob (e.g. pruning ratio);
    ``params``/``bytes``/``flops`` are fractions of the parent's value, shared across families."""

    kind: BudgetKind
    value: float

    def label(self) -> str:
        return f"{self.kind}={self.value:g}"

    def to_json(self) -> dict[str, Any]:
        """``{"kind", "value"}``: the form job keys and rows hold."""
        return {"kind": self.kind, "value": self.value}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    # fields added after job keys existed: they enter a key only when set, so that adding them re-ran
    # nothing (an unchanged experiment keeps its keys)
    KEY_OPTIONAL: ClassVar[tuple[str, ...]] = ()

    def key_dump(self) -> dict[str, Any]:
        """``model_dump(mode="json")`` without the ``KEY_OPTIONAL`` fields that are at their defaults."""
        d = self.model_dump(mode="json")
        for f in self.KEY_OPTIONAL:
            if getattr(self, f) == type(self).model_fields[f].default:
                d.pop(f, None)
        return d


class DomainSplitConfig(_Strict):
    """How a dataset with domains is split (``data.domains``): the source's held-out test fraction
    (stratified, seeded) and, optionally, a held-out fraction of each target that adaptation never sees
    (None: the transductive protocol — adaptation sees every target image, unlabeled)."""

    test_fraction: float = Field(0.2, gt=0, lt=1)
    seed: int = Field(0, ge=0)
    target_holdout: float | None = Field(None, gt=0, lt=1)


class DatasetConfig(_Strict):
    name: str
    root: str | None = None  # the folder holding the data: the only place looked at (None: default places)
    eval_subset: int | None = Field(None, gt=0)  # fixed seeded test subset for costly evaluators
    train_subset: int | None = Field(None, gt=0)  # use only the first N (seeded) training images
    download: bool = True  # False: never download (a missing dataset is an error); not part of job keys
    options: dict[str, Any] = {}  # loader-specific options, checked against the loader's schema (spec.params)
    # datasets with named domains (data.domains): train on `source`, evaluate on `targets`; a list of
    # sources runs one sibling experiment `<name>.<source>` per source in the same store
    source: str | list[str] | None = None
    targets: list[str] | None = None
    domain_split: DomainSplitConfig | None = None
    resize: ImageSize | tuple[ImageSize, ImageSize] | None = None  # batches resized to S×S / H×W (every split)
    val_fraction: Fraction | None = None  # stratified held-out share of train: best epoch, int8 calibration

    # fields left out of job keys while at their defaults (configs without them keep their cache keys)
    KEY_OPTIONAL: ClassVar[tuple[str, ...]] = ("resize", "val_fraction", "source", "targets", "domain_split")


class ModelConfig(_Strict):
    name: str
    width: float = Field(1.0, gt=0, le=64)
    kwargs: dict[str, Any] = {}  # checked against the factory's signature at validate time
    # a file (.pt / .pth / .bin / .safetensors / our model.pt) or published weights (torchvision:<ENUM>,
    # timm:<tag>): the baseline (train: null) or the start of fine-tuning (train.init: weights)
    weights: str | None = Field(None, min_length=1, max_length=4096)
    # the input normalisation a foreign weights file was trained with (default: the dataset's statistics;
    # published weights and compressbench files carry their own)
    mean: tuple[NormMean, ...] | None = Field(None, min_length=1, max_length=4)
    std: tuple[NormStd, ...] | None = Field(None, min_length=1, max_length=4)

    KEY_OPTIONAL: ClassVar[tuple[str, ...]] = ("weights", "mean", "std")


class ColorJitterConfig(_Strict):
    """Per-image factors uniform in [1 − x, 1 + x] (hue: a shift in ±x of a turn), as torchvision's ColorJitter."""

    brightness: float = Field(0.0, ge=0, le=1)
    contrast: float = Field(0.0, ge=0, le=1)
    saturation: float = Field(0.0, ge=0, le=1)  # needs 3-channel images
    hue: float = Field(0.0, ge=0, le=0.5)  # needs 3-channel images


class AdaptConfig(BaseModel):
    """How a training run adapts to the target domain(s): ``{method: coral, weight: λ}``.

    ``method``: an adaptation loss (``registry.adapt_losses``; looked up when the experiment is resolved,
    and by ``adapt.AdaptParams`` in methods' params). ``targets``: the target domains whose unlabeled images
    are drawn (None: every target of the dataset, pooled — with one target, that one)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: str = "coral"
    weight: float = Field(1.0, ge=0, le=1e6)  # λ
    targets: list[str] | None = None
    # penultimate: the classifier head's input (d = feature width); logits: the head's output (d = classes),
    # where the paper applied it (AlexNet's fc8)
    features: Literal["penultimate", "logits"] = "penultimate"

    def label(self) -> str:
        """A short name for tables: ``coral(λ=1)`` (plus the layer and domains when not the defaults)."""
        tg = f"→{'+'.join(self.targets)}" if self.targets else ""
        return f"{self.method}({', '.join(self._label_parts())}){tg}"

    def _label_parts(self) -> list[str]:
        return [f"λ={self.weight:g}"] + (["logits"] if self.features == "logits" else [])


class TrainConfig(_Strict):
    epochs: FinetuneEpochs = 3  # 0 (with model.weights): nothing trained, the recipe is what fine-tunes use
    batch_size: int = Field(128, gt=0, le=MAX_BATCH_SIZE)
    optimizer: Literal["sgd", "adam", "adamw"] = "sgd"
    lr: float = Field(0.05, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(5e-4, ge=0)
    schedule: Literal["cosine", "onecycle", "step", "constant"] = "onecycle"
    step_size: Epochs = 1.0
    gamma: float = Field(0.1, gt=0, le=1)
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    augment: Literal["auto", "none", "crop", "flip", "flip_crop"] = "auto"
    warmup_epochs: FinetuneEpochs = 0.0
    # true: fp16 autocast + gradient scaler on CUDA, fp32 on CPU; false: fp32; "bf16": bf16 autocast on CPU and CUDA
    amp: bool | Literal["bf16"] = True
    adapt: AdaptConfig | None = None  # domain adaptation of the baseline, e.g. {method: coral, weight: 1}
    init: Literal["scratch", "weights"] | None = None  # None: "weights" when model.weights is given
    freeze_epochs: FinetuneEpochs = 0.0  # transfer: only the classifier head trains for the first N epochs
    rotation: float = Field(0.0, ge=0, le=180)  # random rotation in ±degrees (after crop / flip)
    color_jitter: ColorJitterConfig | None = None

    KEY_OPTIONAL: ClassVar[tuple[str, ...]] = ("init", "freeze_epochs", "rotation", "color_jitter", "adapt")
    AMP_VALUES: ClassVar[tuple[Any, ...]] = (True, False, "bf16")

    @field_validator("amp", mode="before")
    @classmethod
    def _amp(cls, v: Any) -> Any:
        """Exactly true, false or "bf16" (no "yes" / "fp16" / 1 read as a bool): one line naming the choices.
        The values keep their JSON form (true / false / "bf16"), so existing job keys stay as they were."""
        if not any(v is a or (isinstance(v, str) and v == a) for a in cls.AMP_VALUES):
            raise ValueError(
                "allowed: true (fp16 autocast with a gradient scaler on CUDA, fp32 on CPU), false (fp32), "
                f'"bf16" (bf16 autocast on CPU and CUDA); got {v!r}'
            )
        return v


class VariantConfig(_Strict):
    method: str
    name: str | None = None
    params: dict[str, Any] = {}
    budget: dict[str, float] | None = None  # {kind: value}
    budgets: dict[str, list[float]] | None = None  # {kind: [values]} -> one variant per value

    @field_validator("budget", "budgets")
    @classmethod
    def _one_kind(cls, v: dict | None) -> dict | None:
        if v is None:
            return v
        if len(v) != 1:
            raise ValueError(f"give exactly one budget kind out of {', '.join(BUDGET_KINDS)}, got {sorted(v)}")
        kind = next(iter(v))
        if kind not in BUDGET_KINDS:
            raise ValueError(
                f"unknown budget kind '{kind}'{did_you_mean(kind, BUDGET_KINDS)}; allowed: {', '.join(BUDGET_KINDS)}"
            )
        vals = v[kind] if isinstance(v[kind], list) else [v[kind]]
        if not vals:
            raise ValueError("the budget list is empty")
        for x in vals:
            if not (x > 0) or (kind != "knob" and x > 1):
                raise ValueError(f"budget {kind}={x} must be in (0, 1] (a fraction of the parent)")
        return v


class EvaluationConfig(_Strict):
    evaluator: str
    params: dict[str, Any] = {}
    variants: list[str] | None = None  # None -> every variant (and the baseline)


class ExecutorConfig(BaseModel):
    """``executor: NAME`` or ``executor: {name: NAME, <that executor's options>}`` (e.g. ``{name: ray,
    address: auto, resources: {train: {num_gpus: 1}}, max_retries: 2}``). The name must be registered in
    ``registry.executors``; the options are checked against that executor's ``params`` schema when the
    experiment is resolved (an option it does not take is an error)."""

    model_config = ConfigDict(extra="allow", frozen=True)
    name: str = "local"

    @model_validator(mode="before")
    @classmethod
    def _name_or_mapping(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = {"name": v}
        if not isinstance(v, dict) or not isinstance(v.get("name", "local"), str):
            raise ValueError("give an executor name (e.g. local, ray) or a mapping {name: ..., <options>}")
        return v

    @property
    def options(self) -> dict[str, Any]:
        """The options as written (everything but ``name``)."""
        return dict(self.model_extra or {})


# ------------------------------------------------------------------ tracking (tracking:)
_TRACKING_SCHEMES = ("file", "sqlite", "postgresql", "mysql", "mssql", "http", "https", "databricks")


class MlflowTracking(_Strict):
    """``tracking: {mlflow: {uri: ...}}``: at the end of a run, the store's rows of this experiment go to MLflow
    (:mod:`compressbench.tracking`). ``uri``: a tracking URI (``file:``, ``sqlite:``, ``http(s):``, a database
    URI, ``databricks``) or a folder; None: MLflow's default ($MLFLOW_TRACKING_URI, else ./mlruns)."""

    uri: str | None = None

    @field_validator("uri")
    @classmethod
    def _uri(cls, v: str | None) -> str | None:
        if v is None:
            return v
        scheme = v.split(":", 1)[0].split("+", 1)[0] if re.match(r"^[A-Za-z][\w+.-]*:", v) else ""
        if not v.strip() or (scheme and scheme not in _TRACKING_SCHEMES):
            raise ValueError(f"a tracking URI ({', '.join(s + ':' for s in _TRACKING_SCHEMES)}) or a folder")
        return v


class TrackingConfig(_Strict):
    mlflow: MlflowTracking | None = None


# ------------------------------------------------------------------ study tables (report:)
class _Layout(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StudyColumn(_Layout):
    """One column: the rows of ``metric`` from ``evaluator`` whose condition has the ``where`` items
    (``null``: the key must be absent; ``"*"``: present with any value), reduced per (variant, seed)
    with ``aggregate`` (over the matching conditions), multiplied by ``scale``, then mean ± 95 % CI
    over seeds."""

    label: str = Field(min_length=1, max_length=80)
    evaluator: str
    metric: str
    where: dict[str, str | int | float | bool | None] = {}
    exact: bool = False
    aggregate: Aggregate = "mean"
    tag: str | None = None
    fmt: Format = "g"
    scale: float = Field(1.0, gt=0, allow_inf_nan=False)


class StudyTable(_Layout):
    name: FileName(64)  # type: ignore[valid-type]
    title: str = Field(min_length=1, max_length=200)
    group_by: Literal["none", "family", "method", "name"] = "none"  # name: the variant name before "@"
    row_label: Literal["variant", "budget", "reduction"] = "variant"
    columns: list[StudyColumn] = Field(min_length=1, max_length=64)


class ReportLayout(_Layout):
    tables: list[StudyTable] = Field(default_factory=list, max_length=32)

    @field_validator("tables")
    @classmethod
    def _distinct(cls, v: list[StudyTable]) -> list[StudyTable]:
        names = [t.name for t in v]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"duplicate study table name(s) {dup}")
        return v


# ------------------------------------------------------------------ findings: claims declared before the run
# (the forms are described in compressbench.config.findings; the statistics in compressbench.findings)
FINDING_ORDER = ("a > b", "a < b", "a ~= b")
FINDING_TREND = ("decreases", "increases")
FINDING_ALL = "all"


class FindingPair(_Strict):
    a: str = Field(min_length=1, max_length=200)
    b: str = Field(min_length=1, max_length=200)


class MetricRef(_Strict):
    """The rows of ``metric`` from ``evaluator`` whose condition has the ``where`` items (``null``: the key is
    absent; ``"*"``: present with any value; ``exact``: no other key), reduced per (variant, seed) with
    ``aggregate`` — a selection as a study table's column makes."""

    evaluator: str = Field(min_length=1, max_length=100)
    metric: str = Field(min_length=1, max_length=100)
    where: dict[str, str | int | float | bool | None] = {}
    exact: bool = False
    aggregate: Aggregate = "mean"
    tag: str | None = None

    def label(self) -> str:
        cond = ",".join(f"{k}={v}" for k, v in self.where.items())
        return f"{self.evaluator}.{self.metric}" + (f"[{cond}]" if cond else "")


def _normalise_expect(v: Any) -> Any:
    """``a>b``, ``a ≈ b``, ``A > B`` -> the canonical spelling."""
    if not isinstance(v, str):
        return v
    s = re.sub(r"\s+", "", v.strip().lower()).replace("≈", "~=").replace("==", "~=")
    m = re.fullmatch(r"a(>|<|~=)b", s)
    return f"a {m.group(1)} b" if m else v.strip().lower()


class Finding(_Strict):
    """One declared claim (see the module docstring for the three forms)."""

    claim: str = Field(min_length=1, max_length=400)
    id: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")  # default F1, F2, ...
    metric: str | MetricRef
    compare: FindingPair | None = None
    trend: str | list[str] | None = None
    vs_parent: list[str] | Literal["all"] | None = None
    expect: str
    margin: float | None = Field(None, gt=0)
    parent: bool = False

    @field_validator("expect", mode="before")
    @classmethod
    def _expect(cls, v: Any) -> Any:
        return _normalise_expect(v)

    @field_validator("trend")
    @classmethod
    def _trend(cls, v: str | list[str] | None) -> str | list[str] | None:
        if isinstance(v, list) and len(v) < 2:
            raise ValueError("a trend over listed variants needs at least 2 of them (least compressed first)")
        return v

    @model_validator(mode="after")
    def _form(self) -> Finding:
        forms = [f for f in ("compare", "trend", "vs_parent") if getattr(self, f) is not None]
        if len(forms) != 1:
            raise ValueError(f"give exactly one of compare, trend, vs_parent (got {', '.join(forms) or 'none'})")
        allowed = FINDING_TREND if self.trend is not None else FINDING_ORDER
        if self.expect not in allowed:
            raise ValueError(f"expect '{self.expect}' is not allowed with {forms[0]}; allowed: {', '.join(allowed)}")
        if (self.expect == "a ~= b") != (self.margin is not None):
            raise ValueError(
                "'a ~= b' needs a margin (how close counts as equal, in the metric's units) and only 'a ~= b' takes one"
            )
        if self.parent and self.trend is None:
            raise ValueError("parent: true belongs to a trend (the parent as its first point)")
        return self

    @property
    def form(self) -> str:
        return "compare" if self.compare is not None else "trend" if self.trend is not None else "vs_parent"

    def metric_label(self) -> str:
        return self.metric if isinstance(self.metric, str) else self.metric.label()


# ------------------------------------------------------------------ goal: tolerances -> the variant to ship
# (the checks against the experiment's evaluators are in compressbench.config.goal; the search in compressbench.goal)
GOAL_OBJECTIVES = ("latency_b1_ms", "bytes", "flops", "params", "onnx_latency_b1_ms")  # + "latency_b1_ms@<format>"


@dataclass(frozen=True)
class Tolerance:
    """How much a constraint metric may get worse than the parent: ``value`` in points (a percentage metric:
    ``1.0`` = one point) or the metric's own units, or — ``relative`` — a fraction of the parent's value
    (written ``"2%"``)."""

    value: float
    relative: bool = False

    def label(self) -> str:
        return f"{100 * self.value:g}%" if self.relative else f"{self.value:g}"


def parse_tolerance(v: Any) -> Tolerance:
    """``1.0`` / ``0.02`` (points or units) or ``"2%"`` / ``"0.5 %"`` (relative to the parent)."""
    if isinstance(v, Tolerance):
        return v
    if isinstance(v, bool):
        raise ValueError("give a number (points, or the metric's units) or a percentage such as '2%'")
    if isinstance(v, (int, float)):
        x, rel = float(v), False
    elif isinstance(v, str) and re.fullmatch(r"\s*[0-9]*\.?[0-9]+(e-?[0-9]+)?\s*%\s*", v):
        x, rel = float(v.strip().rstrip("%").strip()) / 100, True
    else:
        raise ValueError(
            f"{v!r} is not a tolerance: give a number (points, or the metric's units) or a "
            f"percentage of the parent's value such as '2%'"
        )
    if not (x >= 0) or x != x or x == float("inf"):
        raise ValueError(f"a tolerance must be a finite number >= 0, got {v!r}")
    if rel and x > 1:
        raise ValueError(f"a relative tolerance above 100 % allows anything, got {v!r}")
    return Tolerance(x, rel)


class GoalObjective(_Strict):
    """``{minimize: <objective>}``: latency_b1_ms (eager PyTorch), onnx_latency_b1_ms, latency_b1_ms@<format>
    (a runtime of the ``runtimes`` evaluator), bytes, flops or params — whichever the experiment's
    evaluators measure (their metric declarations say which objective each metric measures)."""

    minimize: str = Field(min_length=1, max_length=100)


class GoalSearch(_Strict):
    """How the search walks each family's budget range: ``points`` budgets evenly spaced from the smallest
    to the largest listed budget, bisected (at most ceil(log2(points + 1)) probes per family); ``fallback``:
    int8 variants that break a constraint get the accuracy-aware fallback (the most sensitive layers kept in
    float); ``max_float_layers``: how many layers the fallback may keep in float (None: all but one)."""

    points: int = Field(10, ge=2, le=1000)
    fallback: bool = True
    max_float_layers: int | None = Field(None, ge=1, le=10_000)


class GoalConfig(_Strict):
    """``goal:``: what the user ships for — minimise ``objective`` subject to ``constraints`` on the drop of each
    named metric from the parent (a summary metric the experiment's evaluators declare, e.g. ``clean_top1``,
    ``corr_top1``, ``robust_top1``, ``target_top1``, ``ece``), at ``confidence`` (a constraint holds when the
    one-sided upper confidence bound of the drop is within its tolerance)."""

    objective: GoalObjective
    constraints: dict[str, Any] = Field(min_length=1, max_length=50)
    confidence: float = Field(0.95, ge=0.5, lt=1)
    accept_noisy: bool = False  # timing rows flagged noisy may decide (default: they are left out)
    search: GoalSearch = GoalSearch()

    @field_validator("constraints")
    @classmethod
    def _tolerances(cls, v: dict[str, Any]) -> dict[str, Any]:
        for k, x in v.items():
            try:
                parse_tolerance(x)
            except ValueError as e:
                raise ValueError(f"{k}: {e}") from None
        return v

    def tolerances(self) -> dict[str, Tolerance]:
        """The constraints, parsed: metric key -> :class:`Tolerance`."""
        return {k: parse_tolerance(x) for k, x in self.constraints.items()}


class Experiment(_Strict):
    name: FileName(100)  # type: ignore[valid-type]
    seeds: list[Seed] = Field([0], min_length=1, max_length=1000)
    dataset: DatasetConfig
    model: ModelConfig
    train: TrainConfig | None = TrainConfig()  # None: model.weights are the baseline, nothing is trained
    variants: list[VariantConfig] = []
    evaluations: list[EvaluationConfig] = [EvaluationConfig(evaluator="clean")]
    device: str = "auto"
    threads: int | None = Field(None, gt=0, le=4096)
    cache_dir: str = ".compressbench/cache"
    store: str | None = None  # default: results/<name>.sqlite
    executor: ExecutorConfig = ExecutorConfig.model_construct()  # "local", "ray", {name: ray, address: ..., ...}
    report: ReportLayout | None = None  # study tables drawn next to the standard report (layouts.py)
    findings: list[Finding] = Field([], max_length=200)  # declared claims, tested on the results (config/findings.py)
    tracking: TrackingConfig | None = None  # copy the results to MLflow at the end of a run (compressbench.tracking)
    goal: GoalConfig | None = None  # tolerances -> a search and a decision (config/goal.py, compressbench.goal)

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps", v):
            raise ValueError("allowed: auto, cpu, cuda, cuda:N, mps")
        return v

    @field_validator("seeds")
    @classmethod
    def _unique(cls, v: list[int]) -> list[int]:
        if len(set(v)) != len(v):
            raise ValueError("seeds must be distinct")
        return v

    @property
    def recipe(self) -> TrainConfig:
        """The training recipe compression fine-tunes build on (the defaults when ``train: null``)."""
        return self.train if self.train is not None else TrainConfig()

    @property
    def trains_baseline(self) -> bool:
        """The baseline job trains (``train: null`` and ``train.epochs: 0`` use ``model.weights`` as they are)."""
        return self.train is not None and self.train.epochs > 0

    @property
    def transfer(self) -> bool:
        """The baseline is fine-tuned from ``model.weights`` (head / first conv may be adapted)."""
        return self.trains_baseline and self.model.weights is not None and self.train.init != "scratch"

    @property
    def store_path(self) -> Path:
        return Path(self.store) if self.store else Path("results") / f"{self.name}.sqlite"

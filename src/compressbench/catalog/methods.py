"""The built-in compression methods, pruning criteria and adaptation losses, declared torch-free: their params
schemas and what ``compressbench list`` shows. The implementations register in :mod:`compressbench.compress` and
:mod:`compressbench.adapt` (imported on first use)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_serializer, model_validator

from ..config.schema import Budget
from ..registry import adapt_losses, channel_criteria, methods, weight_criteria
from .base import AdaptParams, FinetuneParams, Params
from .models import ModelName


def check_criterion(registry: Any, name: str) -> str:
    """A ``criterion`` field's validator: ``name`` as written when ``registry`` knows it (a ``"pkg.mod:obj"``
    the user wrote is imported here); else :class:`~compressbench.registry.UnknownNameError` — a
    ``ValueError``, so pydantic reports it at the field's path."""
    registry.resolve(name)
    return name


class StructuredParams(Params):
    criterion: str = "l1"  # a channel criterion (registry.channel_criteria): l1, l2, bn_scale, taylor, random
    scope: Literal["local", "global"] = "global"
    ratio: float = Field(0.5, ge=0, lt=1)  # the knob: Torch-Pruning's channel pruning ratio (used without a budget)
    iterative_steps: int = Field(1, ge=1, le=100)  # >1: prune in steps with fine-tuning in between
    step_finetune: FinetuneParams = FinetuneParams(epochs=0.25)  # between iterative steps
    finetune: FinetuneParams = FinetuneParams(epochs=0.5)  # after the last step
    max_layer_ratio: float = Field(0.9, gt=0, lt=1)  # never remove more than this fraction of one layer's channels
    round_to: int | None = Field(None, ge=1)  # keep channel counts multiples of this (e.g. 8 for SIMD)
    taylor_batches: int = Field(4, ge=1)  # training batches whose gradients a gradient criterion reads

    @field_validator("criterion")
    @classmethod
    def _criterion(cls, v: str) -> str:
        return check_criterion(channel_criteria, v)

    @property
    def needs_gradients(self) -> bool:
        return channel_criteria.spec(self.criterion).gradients


class UnstructuredParams(Params):
    criterion: str = "l1"  # a weight criterion (registry.weight_criteria): l1, random
    scope: Literal["local", "global"] = "global"
    sparsity: float = Field(0.5, ge=0, lt=1)  # the knob: fraction of prunable weights set to zero (no budget)
    include_head: bool = False  # prune the classifier head too
    finetune: FinetuneParams = FinetuneParams(epochs=0.5)

    @field_validator("criterion")
    @classmethod
    def _criterion(cls, v: str) -> str:
        return check_criterion(weight_criteria, v)


class LowRankParams(Params):
    conv: Literal["channel_svd", "tucker2", "none"] = "channel_svd"
    linear: bool = True  # factorise linear layers (SVD)
    ratio: float = Field(0.5, gt=0, le=1)  # the knob: rank ratio (used without a budget)
    include_head: bool = False
    finetune: FinetuneParams = FinetuneParams(epochs=0.5)


class SoftFilterParams(Params):
    rate: float = Field(0.3, ge=0, lt=1)  # the knob: fraction of each layer's filters pruned (no budget)
    train: FinetuneParams = FinetuneParams(epochs=1.0)  # the soft-pruning training run (zeroing after each epoch)
    finetune: FinetuneParams = FinetuneParams(epochs=0.0)  # optional fine-tuning after the removal
    max_layer_ratio: float = Field(0.9, gt=0, lt=1)
    round_to: int | None = Field(None, ge=1)


class Stage(Params):
    method: str
    params: dict[str, Any] = {}


class PipelineParams(Params):
    stages: list[Stage]
    budget_stage: int | None = None  # index of the stage that receives the budget

    @model_validator(mode="after")
    def _check_stages(self) -> PipelineParams:
        if not self.stages:
            raise ValueError("pipeline needs at least one stage")
        for i, st in enumerate(self.stages):
            name = methods.resolve(st.method)  # unknown name -> error with did-you-mean
            if methods.field(name, "stages") is not None:  # declared: no method code imported
                raise ValueError(f"pipeline stage {i}: pipelines cannot be nested")
            try:
                methods.field(name, "params").model_validate(st.params)
            except Exception as e:  # pydantic's message names the field
                raise ValueError(f"pipeline stage {i} ({st.method}): {e}") from e
        if self.budget_stage is not None and not 0 <= self.budget_stage < len(self.stages):
            raise ValueError(f"budget_stage {self.budget_stage} is out of range (0..{len(self.stages) - 1})")
        return self


def stage_list(params: PipelineParams) -> list[tuple[str, Any]]:
    """(method, validated params) of every stage."""
    return [(st.method, methods.field(st.method, "params").model_validate(st.params)) for st in params.stages]


def _budget_stage(budget: Budget | None, params: PipelineParams) -> int | None:
    if budget is None:
        return None
    if params.budget_stage is not None:
        return params.budget_stage
    for i, st in enumerate(params.stages):
        if budget.kind in methods.field(st.method, "budgets"):
            return i
    return None


def check_pipeline_budget(budget: Budget | None, params: PipelineParams) -> str | None:
    """The budget's stage must accept it; a bytes budget cannot precede a quantizing stage."""
    from ..config.resolve import check_budget  # the checks of a variant's budget, applied to the stage

    if budget is None:
        return None
    i = _budget_stage(budget, params)
    if i is None:
        return f"pipeline: no stage supports a '{budget.kind}' budget ({[s.method for s in params.stages]})"
    name, sp = stage_list(params)[i]
    sub = check_budget(name, budget, sp)
    if sub:
        return f"pipeline stage {i}: {sub}"
    if budget.kind == "bytes" and any(methods.field(s.method, "quantizes") for s in params.stages[i + 1 :]):
        return (
            "pipeline: a bytes budget cannot be matched before a quantization stage (it changes the bytes "
            "again); budget params or flops instead"
        )
    return None


class FinetuneOnly(FinetuneParams):
    pass


class StudentSpec(Params):
    model: ModelName  # a registered model or "pkg.mod:factory" (resolved = imported when validated)
    width: float = Field(1.0, gt=0, le=64)
    kwargs: dict[str, Any] = {}


class DistillParams(Params):
    student: StudentSpec | None = None  # None: the parent's family, scaled
    width: float = Field(0.5, gt=0, le=64)  # the knob: student width relative to the parent's / the spec's
    depth_scale: float | None = Field(None, gt=0, le=16)  # e.g. 0.5 halves the blocks per ResNet stage
    alpha: float = Field(0.9, ge=0, le=1)  # 0: the student learns from the labels alone ("raw student")
    temperature: float = Field(4.0, gt=0)
    loss: Literal["hinton", "hinton_2t2", "reverse_kl"] = "hinton"  # see train.KD_LOSSES
    epochs: float = Field(3.0, ge=0, le=10_000)  # the student trains from scratch: use the baseline's epochs
    lr: float = Field(0.05, gt=0)  # scratch-training learning rate (set to the baseline's)
    optimizer: Literal["sgd", "adam", "adamw"] | None = None
    schedule: Literal["cosine", "onecycle", "step", "constant"] | None = None
    adapt: AdaptParams | None = None  # e.g. {method: coral, weight: 1}: the student also minimises λ·CORAL

    @model_serializer(mode="wrap")
    def _omit_unset_adapt(self, handler: Any) -> dict[str, Any]:
        """Without ``adapt`` the dump (hence every distill variant's cache key) is what it was before
        the field existed: cached students are not retrained for nothing."""
        out = handler(self)
        if out.get("adapt") is None:
            out.pop("adapt", None)
        return out


class CoralStage(AdaptParams):
    """The adaptation an ``adapt.coral`` variant applies; ``init: scratch`` shows in its label."""

    init: Literal["parent", "scratch"] = "parent"

    def _label_parts(self) -> list[str]:
        return super()._label_parts() + (["from scratch"] if self.init == "scratch" else [])


class CoralParams(Params):
    weight: float = Field(1.0, ge=0, le=1e6)  # λ
    targets: list[str] | None = None  # target domains to align with (None: every target, pooled)
    features: Literal["penultimate", "logits"] = "penultimate"  # where the CORAL loss is taken
    # parent: fine-tune the input model; scratch: train the baseline's architecture from the baseline's own
    # initial weights (the job's seed) with CORAL — Deep CORAL's setting, what train.adapt does, as a variant
    init: Literal["parent", "scratch"] = "parent"
    epochs: float = Field(1.0, gt=0, le=10_000)
    lr: float | None = Field(None, gt=0)  # None: 0.1 × the baseline recipe's lr (init: scratch needs it given)
    optimizer: Literal["sgd", "adam", "adamw"] | None = None
    schedule: Literal["cosine", "onecycle", "step", "constant"] = "cosine"

    @model_validator(mode="after")
    def _scratch_lr(self) -> CoralParams:
        if self.init == "scratch" and self.lr is None:
            raise ValueError("init: scratch trains from scratch: give its lr (and epochs, schedule) — the baseline's")
        return self

    def adaptation(self) -> CoralStage:
        return CoralStage(
            method="coral", weight=self.weight, targets=self.targets, features=self.features, init=self.init
        )


# --------------------------------------------------------------------------- static int8
class StaticParams(Params):
    calibration_batches: int = Field(16, ge=1)
    batch_size: int = Field(128, ge=1)
    backend: Literal["auto", "x86", "fbgemm", "qnnpack"] = "auto"
    # mixed precision: conv / linear layers (module paths in the parent, e.g. net.features.0) kept in float32
    keep_float: list[str] = Field(default_factory=list, max_length=10_000)

    KEY_OPTIONAL: ClassVar[tuple[str, ...]] = ("keep_float",)


# --------------------------------------------------------------------------- QAT
class QATParams(Params):
    finetune: FinetuneParams = FinetuneParams(epochs=0.5)
    calibration_batches: int = Field(4, ge=1)  # observer warm-up before fake-quant training
    batch_size: int = Field(128, ge=1)
    backend: Literal["auto", "x86", "fbgemm", "qnnpack"] = "auto"


# --------------------------------------------------------------------------- dynamic int8
class DynamicParams(Params):
    backend: Literal["auto", "x86", "fbgemm", "qnnpack"] = "auto"


class CastParams(Params):
    pass


# --------------------------------------------------------------------------- declarations: registry.methods
methods.declare(
    "adapt.coral",
    description=(
        "Deep CORAL (Sun & Saenko 2016): source cross-entropy + λ·CORAL on the penultimate features "
        "of unlabeled target batches; fine-tuning (a stage before int8) or from scratch"
    ),
    params=CoralParams,
    quantizes=False,
    stages=None,
    check_budget=None,
)
methods.declare(
    "distill",
    description=(
        "Hinton knowledge distillation into a named student or the parent's family scaled in width "
        "(searched to a budget) and depth"
    ),
    version=2,
    params=DistillParams,
    budgets=("knob", "params", "bytes", "flops"),
    quantizes=False,
    stages=None,
    check_budget=None,
)
methods.declare(
    "finetune",
    description="fine-tune with the experiment's recipe (a pipeline stage between methods)",
    params=FinetuneOnly,
    quantizes=False,
    stages=None,
    check_budget=None,
)
methods.declare(
    "lowrank",
    description=(
        "low-rank factorisation: channel SVD or Tucker-2 for convs, SVD for linears, to a rank ratio, then fine-tuning"
    ),
    params=LowRankParams,
    budgets=("knob", "params", "bytes", "flops"),
    quantizes=False,
    stages=None,
    check_budget=None,
)
methods.declare(
    "pipeline",
    description=(
        "a sequence of methods, e.g. prune.structured -> finetune -> quantize.static; the budget goes to one stage"
    ),
    params=PipelineParams,
    budgets=("knob", "params", "bytes", "flops"),
    quantizes=False,
    stages=stage_list,
    check_budget=check_pipeline_budget,
)
methods.declare(
    "prune.soft_filter",
    description=(
        "Soft Filter Pruning (He et al. 2018): lowest-L2 filters zeroed after every epoch, still "
        "trained, removed at the end (Torch-Pruning groups)"
    ),
    version=2,
    params=SoftFilterParams,
    budgets=("knob", "params", "bytes", "flops"),
    quantizes=False,
    stages=None,
    check_budget=None,
)
methods.declare(
    "prune.structured",
    description=(
        "channel pruning that removes filters (Torch-Pruning dependency graph): a registered "
        "criterion (L1/L2/BN-scale/Taylor/random), local or global, one-shot or iterative"
    ),
    params=StructuredParams,
    budgets=("knob", "params", "bytes", "flops"),
    quantizes=False,
    stages=None,
    check_budget=None,
)
methods.declare(
    "prune.unstructured",
    description=(
        "unstructured weight pruning by a registered criterion (L1, random: torch.nn.utils.prune), "
        "local or global; params = nonzero parameters"
    ),
    version=2,
    params=UnstructuredParams,
    budgets=("knob", "params"),
    quantizes=False,
    stages=None,
    check_budget=None,
)
methods.declare(
    "quantize.bf16",
    description="cast weights and activations to bfloat16 (normalisation stays float32)",
    params=CastParams,
    quantizes=True,
    stages=None,
    check_budget=None,
)
methods.declare(
    "quantize.dynamic",
    description=(
        "int8 dynamic quantization of linear layers (weights int8, activations quantized on the fly; convs stay fp32)"
    ),
    params=DynamicParams,
    quantizes=True,
    stages=None,
    check_budget=None,
)
methods.declare(
    "quantize.fp16",
    description="cast weights and activations to float16 (normalisation stays float32)",
    params=CastParams,
    quantizes=True,
    stages=None,
    check_budget=None,
)
methods.declare(
    "quantize.qat",
    description="int8 quantization-aware training (fake-quant fine-tuning, then convert to int8)",
    params=QATParams,
    quantizes=True,
    stages=None,
    check_budget=None,
)
methods.declare(
    "quantize.static",
    description=(
        "int8 post-training static quantization (torch.ao eager, conv-bn-relu fusion, calibration on "
        "training batches, real int8 CPU kernels)"
    ),
    params=StaticParams,
    quantizes=True,
    stages=None,
    check_budget=None,
)


# --------------------------------------------------------------------------- declarations: registry.channel_criteria
channel_criteria.declare("bn_scale", description="|γ| of the BatchNorm after the channel (network slimming)")
channel_criteria.declare("l1", description="L1 norm of each channel group's weights (Torch-Pruning)")
channel_criteria.declare("l2", description="L2 norm of each channel group's weights (Torch-Pruning)")
channel_criteria.declare("random", description="random scores (a baseline; seeded by the job)")
channel_criteria.declare(
    "taylor",
    description="first-order Taylor |w · ∂L/∂w| per group, gradients from training batches",
)


# --------------------------------------------------------------------------- declarations: registry.weight_criteria
weight_criteria.declare("l1", description="smallest |w| first (torch.nn.utils.prune)")
weight_criteria.declare("random", description="random weights (torch.nn.utils.prune)")


# --------------------------------------------------------------------------- declarations: registry.adapt_losses
adapt_losses.declare(
    "coral",
    description="Deep CORAL (Sun & Saenko 2016): ‖C_S − C_T‖²_F / (4d²) of the feature covariances",
)

"""What a component costs to run, declared next to it (``compressbench plan`` adds it up; capabilities, not
names: docs/architecture.md, convention 13).

A cost is counted in *passes over images* of a model; ``estimate`` multiplies them by that model's
forward FLOPs per image. Two kinds of pass are kept apart because hardware runs them at different
rates: forward-only work (inference, calibration, a teacher's logits) and gradient work (training
steps, attack steps). Constants:

* a **training step** costs :data:`TRAIN_STEP` = 3 forward FLOPs per image (forward, gradients with
  respect to activations and to weights);
* an **attack step** costs :data:`INPUT_GRADIENT` = 2 (forward, gradients with respect to the input
  only: the weights are frozen).

Hooks (optional; the defaults below apply to components that declare nothing):

* ``MethodSpec.cost(params) -> TrainingCost``; default: every ``FinetuneParams``-typed field's
  ``epochs`` (and the params' own ``epochs`` when they are a ``FinetuneParams``) as training epochs
  of the compressed model. A pipeline is the sum of its stages (``MethodSpec.stages``).
* ``EvaluatorSpec.cost(params, ctx: CostContext) -> EvalCost``; default: one forward pass over
  ``params.subset`` images (the experiment's evaluation subset when the evaluator has none).
* ``AttackSpec.cost(params, meta) -> float``: forward-FLOP equivalents per image of one run (one ε
  of a fixed-budget attack, one minimum-norm run); default: ``params.steps`` (1 without) attack steps.
* ``DatasetSpec.sizes(root, **options) -> {split or domain: images}`` (see ``specs.DatasetSpec``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

TRAIN_STEP = 3.0  # forward FLOPs per image of one training step (forward + backward)
INPUT_GRADIENT = 2.0  # forward FLOPs per image of one gradient with respect to the input (weights frozen)


@dataclass(frozen=True)
class TrainingCost:
    """The work of one compression method, in passes over the training images (its ``cost`` hook).

    ``epochs``: training epochs of the model the method returns (a fine-tune after pruning, the
    student of a distillation); ``input_epochs``: training epochs of the model it was given, at its
    size (soft filter pruning trains the unpruned model, QAT the fake-quantized one); ``teacher``: every
    training step also runs the input model forward (distillation); ``adapt``: every training step
    also passes an unlabeled target batch of the same size (domain adaptation: twice the images);
    ``forward_images``: images passed forward through the input model without gradients
    (calibration); ``gradient_images``: images passed forward and backward through it (Taylor
    importance). Image passes are drawn from the training (or validation) images: at most one pass.
    ``batch``: the images per call of those passes (None: the run's training batch); ``seconds``: fixed CPU
    seconds of the method's own machinery that no pass count sees; ``overhead_calls``: per-layer Python work
    (module fusion, observer insertion, int8 conversion) in units of the model's per-call inference overhead
    (measured by ``plan`` on the parent: it is per-layer dispatch too, so it scales with the model's layers)."""

    epochs: float = 0.0
    input_epochs: float = 0.0
    teacher: bool = False
    adapt: bool = False
    forward_images: int = 0
    gradient_images: int = 0
    batch: int | None = None
    seconds: float = 0.0
    overhead_calls: float = 0.0


@dataclass(frozen=True)
class EvalCost:
    """The work of one evaluation job, in forward-FLOP equivalents per image of a model (its ``cost``
    hook): ``forward`` / ``gradient``: of the evaluated variant, forward-only and gradient work
    (attacks: ``INPUT_GRADIENT`` per step and image); ``parent_forward`` / ``parent_gradient``: the same
    on the float parent (transfer attacks, agreement); ``seconds``: fixed work no FLOP count sees (a
    fresh process, an ONNX export), in CPU seconds; ``calls`` / ``gradient_calls``: how many forward-only
    and input-gradient model calls that work takes, variant's and parent's together (each call pays the
    model's per-call overhead: :func:`batches`); a hook that leaves ``calls`` at 0 for forward work gets
    ``forward / params.batch_size`` (:data:`DEFAULT_EVAL_BATCH` without one)."""

    forward: float = 0.0
    gradient: float = 0.0
    parent_forward: float = 0.0
    parent_gradient: float = 0.0
    seconds: float = 0.0
    calls: float = 0.0
    gradient_calls: float = 0.0

    def __add__(self, other: EvalCost) -> EvalCost:
        return EvalCost(
            self.forward + other.forward,
            self.gradient + other.gradient,
            self.parent_forward + other.parent_forward,
            self.parent_gradient + other.parent_gradient,
            self.seconds + other.seconds,
            self.calls + other.calls,
            self.gradient_calls + other.gradient_calls,
        )


@dataclass(frozen=True)
class CostContext:
    """What an evaluator's cost hook may know about its job: the image counts (``test``: the source's
    test split; ``eval_subset``: the experiment's default evaluation subset; ``targets``: each target
    domain's evaluation images), the data's metadata (classes, channels, size), and the variant it
    evaluates (``quantizes``: int8 / low-precision, evaluated through the float parent or a simulation
    by attacks; ``baseline``: the uncompressed parent itself)."""

    test: int
    eval_subset: int | None = None
    targets: Mapping[str, int] = field(default_factory=dict)
    meta: Any = None
    quantizes: bool = False
    baseline: bool = False

    def images(self, subset: int | None = -1, domain: str | None = None) -> int:
        """Images an evaluator draws, as ``EvalContext.eval_set(subset, domain)`` does: ``-1`` the
        experiment's default subset, ``None`` every image, else ``subset`` (capped at what there is)."""
        n = self.test if domain is None else self.targets[domain]
        size = self.eval_subset if subset == -1 else subset
        return n if size is None else min(n, int(size))


DEFAULT_EVAL_BATCH = 512  # the evaluators' usual batch (``train.predict``)


def batches(images: float, batch: int | None) -> int:
    """Model calls of one pass over ``images`` in batches of ``batch`` (the last one partial)."""
    return math.ceil(images / max(1, int(batch or DEFAULT_EVAL_BATCH))) if images > 0 else 0


def default_method_cost(params: Any) -> TrainingCost:
    """Every ``FinetuneParams``-typed field's epochs (and the params' own, when they are one)."""
    from .interfaces import FinetuneParams

    if params is None:
        return TrainingCost()
    parts = [params] if isinstance(params, FinetuneParams) else []
    parts += [v for v in (getattr(params, f) for f in type(params).model_fields) if isinstance(v, FinetuneParams)]
    return TrainingCost(epochs=sum(float(p.epochs) for p in parts))


def default_eval_cost(params: Any, ctx: CostContext) -> EvalCost:
    """One forward pass over ``params.subset`` images (None or absent: the experiment's default subset)."""
    subset = getattr(params, "subset", None)
    n = ctx.images(-1 if subset is None else subset)
    return EvalCost(forward=n, calls=batches(n, getattr(params, "batch_size", None)))


def default_attack_cost(params: Any, meta: Any) -> float:
    """``params.steps`` attack steps (one without a ``steps`` parameter), :data:`INPUT_GRADIENT` each."""
    return INPUT_GRADIENT * float(getattr(params, "steps", None) or 1)


def method_cost(spec: Any, params: Any) -> TrainingCost:
    """A method's declared cost, or the default (``spec``: its ``MethodSpec``; not a pipeline)."""
    return spec.cost(params) if spec.cost is not None else default_method_cost(params)


def eval_cost(spec: Any, params: Any, ctx: CostContext) -> EvalCost:
    """An evaluator's declared cost, or the default."""
    return spec.cost(params, ctx) if spec.cost is not None else default_eval_cost(params, ctx)


def attack_cost(spec: Any, params: Any, meta: Any) -> float:
    """An attack's declared cost per image and run, or the default."""
    return spec.cost(params, meta) if spec.cost is not None else default_attack_cost(params, meta)


# --------------------------------------------------------------------------- reference GPUs (``plan --gpu``)
@dataclass(frozen=True)
class ReferenceGPU:
    """A named GPU and the dense peak its estimate assumes (``precision``: which number that is)."""

    name: str
    precision: str
    peak_tflops: float


GPUS: dict[str, ReferenceGPU] = {
    "a100": ReferenceGPU("NVIDIA A100-SXM4-80GB", "TF32 tensor cores, dense", 156.0),
    "h100": ReferenceGPU("NVIDIA H100 SXM5 80GB", "TF32 tensor cores, dense", 494.7),
    "v100": ReferenceGPU("NVIDIA V100-SXM2-32GB", "FP32", 15.7),
    "rtx4090": ReferenceGPU("NVIDIA GeForce RTX 4090", "TF32 tensor cores, dense", 82.6),
    "t4": ReferenceGPU("NVIDIA T4", "FP32", 8.1),
}
DEFAULT_GPU, DEFAULT_UTILISATION = "a100", 0.35


__all__ = [
    "ReferenceGPU",
    "GPUS",
    "DEFAULT_GPU",
    "DEFAULT_UTILISATION",
    "TRAIN_STEP",
    "INPUT_GRADIENT",
    "TrainingCost",
    "EvalCost",
    "DEFAULT_EVAL_BATCH",
    "batches",
    "CostContext",
    "default_method_cost",
    "default_eval_cost",
    "default_attack_cost",
    "method_cost",
    "eval_cost",
    "attack_cost",
]

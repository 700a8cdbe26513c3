"""The contracts between the runner and its plug-ins (compressors and evaluators).

Compressor (registered in ``registry.methods``; the spec fields are in ``specs.MethodSpec``)::

    @methods.register("my.sparsify", params=MyParams, budgets=("knob", "params"),
                      knob=Knob("sparsity", lo=0.0, hi=0.999, shrinks=True, default=lambda p: p.sparsity),
                      apply=my_masks, sparsifies=True, description="...", version=1)
    def my_sparsify(parent: nn.Module, ctx: CompressContext, solution: Solution,
                    params: MyParams) -> CompressResult: ...

``compress.budget.compress(name, parent, ctx, budget, params)`` checks the budget, solves the knob
(``solution.knob``; ``solution.model`` is ``apply`` at that knob on a copy of the parent), calls the
method, and measures and records what it achieved.

Evaluator (registered in ``registry.evaluators``)::

    @evaluators.register("my.metric", params=MyParams, description="...", version=1)
    def my_metric(model: nn.Module, ctx: EvalContext, params: MyParams) -> list[Measurement]: ...

(A plug-in gives every field at ``register``. A built-in declares its plain-data fields in
:mod:`compressbench.catalog` and registers only the code-side ones: :meth:`~compressbench.registry.Registry.register`.)

``params`` classes are pydantic models (``extra="forbid"``) so that configs are validated
before any work. Models always take float images in [0, 1] (N×C×H×W); normalisation is the
model's first layer.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from .catalog.base import FinetuneParams, Params  # noqa: F401 (torch-free: compressbench.catalog)
from .config.plugins import PluginSet
from .config.schema import BASELINE, Budget, BudgetKind  # noqa: F401 (re-exported: the plug-in contract)
from .data.base import DataMeta, DatasetBundle

log = logging.getLogger(__name__)


@dataclass
class Measurement:
    """One measured number. The runner adds experiment/variant/method/budget/seed/evaluator."""

    metric: str
    value: float
    condition: dict[str, Any] = field(default_factory=dict)  # e.g. {"corruption": "fog", "severity": 3}
    tag: str = ""  # e.g. "realised" | "theoretical" | "simulated" | "transfer" | "whitebox-ste"
    unit: str = ""


@dataclass
class CompressContext:
    """What a compressor may use besides the parent model."""

    data: DatasetBundle
    meta: DataMeta
    device: torch.device
    seed: int
    workdir: Path  # scratch / artifact dir for this job
    # train(model, epochs=..., lr=..., teacher=None, kd_alpha=..., kd_temperature=..., kd_kind=..., desc=...,
    #       epoch_end=None, adapt=None, amp=None) -> model; the experiment's recipe with these overrides (None: the
    #       recipe's own value; amp=False: fp32 whatever train.amp says, for models autocast cannot run)
    train: Callable[..., nn.Module]
    # accuracy(model, images: ImageSet | None = None) -> float in [0, 1]
    accuracy: Callable[..., float]
    parent_spec: dict[str, Any] = field(default_factory=dict)  # how to rebuild the parent (checkpoint recipe)
    progress: bool = True


@dataclass
class CompressResult:
    model: nn.Module
    # What was done: per-layer sparsity or ranks, knobs chosen, ... (the runner adds target, achieved, tolerance)
    record: dict[str, Any] = field(default_factory=dict)
    # Steps needed to rebuild the architecture before loading the state dict (see checkpoint.py)
    steps: list[dict[str, Any]] = field(default_factory=list)
    # achieved fractions of the parent, e.g. {"params": 0.251}: filled by ``compress.budget.compress``
    # (a composite method that measures itself may fill it)
    achieved: dict[str, float] = field(default_factory=dict)
    # dense FLOPs of the result when they cannot be counted on it (None: count them)
    flops: int | None = None
    # the result's measured stats (``compress.common.ModelStats``), filled by ``compress.budget.compress``
    # (a composite method that measured itself may fill it): the job reuses them, it does not measure again
    stats: Any = None
    # the model as trained and evaluated inside the method when ``model`` is a restructured copy of it
    # (Soft Filter Pruning: the zeroed model before its channels are removed); None: ``model`` is it
    trained: nn.Module | None = None


@dataclass
class VariantInfo:
    """The model an evaluator measures: its labels, how it was made, and what it is (never test its name:
    ``is_parent`` tells the uncompressed parent from a compressed variant, ``capabilities`` what a method did)."""

    name: str
    method: str  # :data:`BASELINE` for the uncompressed parent (a label)
    steps: list[dict[str, Any]] = field(default_factory=list)
    record: dict[str, Any] = field(default_factory=dict)
    # the method's capability flags (``compress.budget.capabilities``): sparsifies, quantizes, ...
    capabilities: dict[str, bool] = field(default_factory=dict)
    is_parent: bool = False  # the uncompressed parent (the baseline job's model)

    @property
    def is_quantized(self) -> bool:
        return bool(self.capabilities.get("quantizes"))


@dataclass
class EvalContext:
    """What an evaluator may use besides the model."""

    data: DatasetBundle
    meta: DataMeta
    device: torch.device
    seed: int
    workdir: Path  # files written here (images, JSON) are kept with the job's artifact
    variant: VariantInfo
    load_parent: Callable[[], nn.Module]  # the uncompressed float parent for the same seed
    eval_size: int | None = None  # default evaluation subset size (None = whole test set)
    progress: bool = True
    extra: dict[str, Any] = field(default_factory=dict)
    # the experiment's plug-ins: a process the evaluator starts loads them first (``PluginSet.load``)
    plugins: PluginSet = field(default_factory=PluginSet)

    def eval_set(self, size: int | None = -1, domain: str | None = None):
        """The fixed, seeded evaluation subset (``size=-1`` -> experiment default); ``domain``: of that
        target domain's evaluation images (datasets with domains; None: the source's test split)."""
        return self.data.eval_subset(self.eval_size if size == -1 else size, seed=0, domain=domain)

"""The typed spec of every extension point: what a component *is* and what it *does*.

Each registry (``registry.methods``, ``registry.evaluators``, ...) holds one spec class; the keyword
arguments of ``registry.register(name, ...)`` build that spec (for a built-in, together with the fields its
declaration in :mod:`compressbench.catalog` holds), so an unknown or mistyped field fails at registration,
not in the middle of a run. Code outside a component's own module reads only these
specs — capabilities (``sparsifies``, ``quantizes``, ``minimum_norm``, declared metrics ...) — and
never tests a component's name (docs/architecture.md, conventions 13 and 14)::

    @methods.register("my.sparsify", params=MyParams, family="pruning", budgets=("knob", "params"),
                      knob=Knob("sparsity", lo=0.0, hi=0.99, shrinks=True, default=lambda p: p.sparsity),
                      apply=my_apply, sparsifies=True, version=1, description="...")
    def my_sparsify(parent, ctx, solution, params) -> CompressResult: ...

Why frozen dataclasses rather than pydantic models: specs hold callables and classes, are built once
at import time and are never read from user data.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Callable, Literal, Mapping, Sequence

from .metric_specs import (
    ANY,
    CLEAN_ACCURACY,
    CORRUPTION_ACCURACY,
    Aggregate,
    Console,
    Format,
    MetricSpec,
    Presentation,
    ReportOption,
    Selection,
)

# --------------------------------------------------------------------------- common


@dataclass(frozen=True)
class ComponentSpec:
    """Fields every component has. ``params``: a pydantic schema (``extra="forbid"``) validated with the
    experiment config; ``version``: bumped whenever the component's numbers could move (part of the
    cache keys, so cached results of the old version are never mixed with new ones)."""

    description: str = ""
    version: int = 1
    params: type | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.version, int) or isinstance(self.version, bool) or self.version < 1:
            raise TypeError(f"version must be a positive int, got {self.version!r}")

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]


# --------------------------------------------------------------------------- methods

BudgetKind = Literal["knob", "params", "bytes", "flops"]
SHARED_BUDGETS: tuple[str, ...] = ("params", "bytes", "flops")


def _const(v: float) -> Callable[[Any], float]:
    return lambda _params: v


@dataclass(frozen=True)
class Knob:
    """The one number a method turns to reach a shared budget (Torch-Pruning's split: a method is a
    transform ``apply(model, knob)``; the shared solver in ``compress.budget`` chooses the knob).

    ``lo`` / ``hi``: the search range (numbers, or functions of the method's params); ``shrinks``:
    the model gets smaller as the knob grows (a pruning ratio) rather than larger (a width, a rank);
    ``grow_hi``: the range's upper end may be doubled up to this value while the target is not yet
    bracketed (a student width may exceed 1); ``default``: the knob used without a budget (a function
    of the params); ``exact``: an optional closed-form solver ``exact(parent_stats, parent, kind,
    target, params) -> knob | None`` tried before searching; ``hint``: appended to the
    "unreachable" error."""

    name: str
    lo: float | Callable[[Any], float]
    hi: float | Callable[[Any], float]
    shrinks: bool
    default: Callable[[Any], float] | None = None
    grow_hi: float | None = None
    exact: Callable[..., float | None] | None = None
    hint: str = ""
    valid: Callable[[float], str | None] | None = None  # a knob budget's value check: message or None

    def bounds(self, params: Any) -> tuple[float, float]:
        lo = self.lo(params) if callable(self.lo) else float(self.lo)
        hi = self.hi(params) if callable(self.hi) else float(self.hi)
        return lo, hi


@dataclass(frozen=True)
class MethodSpec(ComponentSpec):
    """A compression method. Capabilities are what the runner, pipeline, efficiency and report read:

    * ``sparsifies``: leaves zeros in dense tensors (a params budget counts *nonzero* parameters);
    * ``quantizes``: leaves int8 / fp16 modules (evaluated on CPU kernels; FLOPs are those of the
      float graph it came from; gradients need a simulation);
    * ``changes_architecture``: the saved state dict needs a rebuild step (see ``checkpoint``);
    * ``needs_training_data``: reads training images (fine-tunes, calibration, distillation).

    ``budgets``: the budget kinds it accepts (``knob`` = its own knob); shared kinds need a ``knob``
    and an ``apply(model, knob, ctx, params) -> model`` transform (cheap, no training) that
    ``compress.budget`` searches (on a copy of the parent, or on the parent itself when
    ``apply_on_copy`` is False — a transform that builds a new model, e.g. a student, and must not
    modify its input); ``wants_model``: False when the method only needs the solved knob, not the
    transformed model (e.g. soft pruning, which trains the unpruned model).
    ``own_budget(params) -> bool``: for these params the method applies its knob itself and solves a
    shared budget itself (e.g. iterative pruning, which re-solves after every fine-tune); the solver
    then hands it the knob (or none, for a shared budget) and no model.
    ``stages(params) -> [(method, params), ...]``: a composite method (a pipeline); its capabilities
    are the union of its stages'. ``check_budget(budget, params) -> message | None`` adds
    method-specific reachability checks. ``check_model(model, ctx, params) -> message | None`` says,
    at ``validate`` (before any work), why the method cannot handle this architecture (None: it can):
    ``model`` is the experiment's parent (built for the dataset, random or given weights), ``ctx`` a
    :class:`~compressbench.interfaces.CompressContext` with ``meta`` and ``parent_spec`` but no data
    and no training; the check must be cheap (a dry run on a copy at most) and leave ``model`` as it
    was. A pipeline is checked stage by stage (``compress.budget.check_model``).
    ``adapts(params) -> AdaptParams | None``: the domain adaptation the method applies for these params
    (``compressbench.adapt``; it then trains on unlabeled target-domain images — capability ``adapts``).
    ``compresses``: False for a method that only adapts or fine-tunes (tables that pair variants file it
    under the stages around it, not as a compression of its own). ``cost(params) -> costs.TrainingCost``:
    the training it does, for ``compressbench plan`` (None: every ``FinetuneParams`` field's epochs; see
    :mod:`compressbench.costs`). ``float_layers``: the name of its params field listing layers it keeps in
    float (mixed precision: the module paths of the parent's conv / linear layers) — the goal's accuracy-aware
    int8 fallback fills it (:mod:`compressbench.goal.fallback`)."""

    family: str = "other"
    budgets: tuple[str, ...] = ()
    sparsifies: bool = False
    quantizes: bool = False
    changes_architecture: bool = False
    needs_training_data: bool = False
    knob: Knob | None = None
    apply: Callable[..., Any] | None = None
    apply_on_copy: bool = True
    wants_model: bool = True
    own_budget: Callable[[Any], bool] | None = None
    stages: Callable[[Any], list[tuple[str, Any]]] | None = None
    check_budget: Callable[[Any, Any], str | None] | None = None
    check_model: Callable[[Any], str | None] | None = None
    adapts: Callable[[Any], Any] | None = None
    cost: Callable[[Any], Any] | None = None
    compresses: bool = True
    float_layers: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        bad = [b for b in self.budgets if b not in ("knob", *SHARED_BUDGETS)]
        if bad:
            raise TypeError(f"unknown budget kind(s) {bad}; allowed: knob, {', '.join(SHARED_BUDGETS)}")
        if self.budgets and self.stages is None and (self.knob is None or self.apply is None):
            raise TypeError(
                "a method that takes budgets needs a 'knob' and an 'apply' transform "
                "(or 'stages', for a composite method)"
            )


# --------------------------------------------------------------------------- evaluators

# metric declarations and report options: :mod:`compressbench.metric_specs` (re-exported here)


@dataclass(frozen=True)
class EvaluatorSpec(ComponentSpec):
    """An evaluator ``fn(model, ctx, params) -> list[Measurement]``.

    ``metrics``: what it measures (see :class:`MetricSpec`); ``key_versions(params)``: versions of the
    components it uses (e.g. each corruption's), part of its jobs' cache keys; ``report``:
    ``fn(ctx) -> list[Table]`` and ``figures``: ``fn(ctx, plot) -> None`` draw detail tables and figures
    beyond the generic ones (callables, or ``"pkg.mod:fn"`` strings imported by the report only, so
    registering an evaluator never imports pandas or matplotlib); ``captions``: ``{file name: caption}``
    of the images it writes, shown under them in the HTML. ``target_domains(params) -> list | None``: the
    evaluator needs a dataset with named domains (``data.domains``) and measures these targets (None:
    every target) — checked against the experiment's targets by ``validate``. ``gathers``: with several
    source domains (sibling experiments ``<name>.<source>`` of one run), the report also draws its hooks
    once over the rows of all the siblings (a study section; its conditions must tell them apart).
    ``cost(params, ctx: costs.CostContext) -> costs.EvalCost``: the passes over images one job makes, for
    ``compressbench plan`` (None: one forward pass over its evaluation images; :mod:`compressbench.costs`).
    ``report_options``: options of ``compressbench report`` its hooks read (:class:`ReportOption`, a flag
    each). ``measures_time``: it measures wall-clock time (latency, throughput), so an executor gives its
    jobs a machine of their own (other jobs beside it would be noise in its numbers). ``group``:
    ``fn(members, params) -> [rows | exception per member]``, the evaluator run on several models at once
    (``members``: ``(model, ctx)`` pairs of one seed, one parent and the same params), sharing the work that
    does not depend on the model — each corrupted batch generated once, a transfer attack crafted once on the
    parent; each member's rows must be exactly what ``fn(model, ctx, params)`` gives it alone. The scheduler
    runs the evaluator's jobs of one seed together through it (each job still cached, stored and resumed on
    its own: :mod:`compressbench.execute.group`); None: one model at a time.

    What the report needs of a spec — ``metrics``, ``captions``, ``gathers``, the names of its hooks and its
    report options — is stored with every run (:mod:`compressbench.declarations`)."""

    metrics: tuple[MetricSpec, ...] = ()
    # check_data(params, meta) -> message | None: what the evaluator cannot do on this dataset's images,
    # said at validate (before any work), e.g. an attack that needs small inputs
    check_data: Callable[[Any, Any], str | None] | None = None
    target_domains: Callable[[Any], Any] | None = None
    gathers: bool = False
    key_versions: Callable[[Any], Any] | None = None
    report: Callable[..., Any] | str | None = None
    figures: Callable[..., Any] | str | None = None
    captions: Mapping[str, str] = field(default_factory=dict)
    cost: Callable[[Any, Any], Any] | None = None
    report_options: tuple[ReportOption, ...] = ()
    measures_time: bool = False
    group: Callable[[Any, Any], Any] | str | None = None
    # extras(params) -> the pip extras (compressbench.extras.EXTRAS) these params need; validate refuses the
    # evaluation with one line naming a missing one
    extras: Callable[[Any], Any] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        bad = [m for m in self.metrics if not isinstance(m, MetricSpec)]
        if bad:
            raise TypeError(f"metrics must be MetricSpec instances, got {bad[:3]}")
        bad = [o for o in self.report_options if not isinstance(o, ReportOption)]
        if bad:
            raise TypeError(f"report_options must be ReportOption instances, got {bad[:3]}")

    def metric(self, name: str) -> MetricSpec | None:
        return next((m for m in self.metrics if m.name == name), None)


# --------------------------------------------------------------------------- corruptions


@dataclass(frozen=True)
class CorruptionSpec(ComponentSpec):
    """A corruption ``fn(x, rng, constant, param_set) -> x'`` on float [0, 1] N×C×H×W images.

    ``constants``: severity 1→5 constants per parameter set (``{"cifar": [...5], "imagenet": [...5]}``,
    or ``{"any": [...5]}`` when one table serves every image size); ``suites``: suites it belongs to;
    ``uint8``: the function also takes the caller's uint8 batch as is (it works in uint8 units);
    ``deterministic``: no randomness. ``params`` + ``from_params(params) -> constant``: the corruption
    also takes its parameters directly (a protocol's exact setting, e.g. albumentations'
    ``GaussNoise(var_limit=(0, 2))``) instead of a severity."""

    constants: Mapping[str, Sequence[Any]] = field(default_factory=dict)
    suites: tuple[str, ...] = ()
    deterministic: bool = False
    uint8: bool = False
    from_params: Callable[[Any], Any] | None = None
    caveat: str = ""  # how its numbers differ from the published ones (a model card lists it)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.constants:
            raise TypeError("a corruption needs 'constants' (severity 1..5 per parameter set, or 'any')")
        for k, v in self.constants.items():
            if len(v) != 5:
                raise TypeError(f"constants['{k}'] must list 5 severities, got {len(v)}")
        if (self.params is None) != (self.from_params is None):
            raise TypeError("direct parameters need both 'params' (a schema) and 'from_params' (-> the constant)")

    def constant(self, severity: int, param_set: str) -> Any:
        if not 1 <= int(severity) <= 5:
            raise ValueError(f"severity must be in 1..5, got {severity}")
        table = self.constants.get(param_set, self.constants.get("any"))
        if table is None:
            raise ValueError(f"no constants for parameter set '{param_set}' (has: {', '.join(self.constants)})")
        return table[int(severity) - 1]


# --------------------------------------------------------------------------- attacks


@dataclass(frozen=True)
class AttackSpec(ComponentSpec):
    """An attack class (``compressbench.evaluate.attacks.Attack``). ``norms``: supported norms, the first
    is the default; ``minimum_norm``: finds the smallest perturbation (no ε budget); ``iterative``: has
    a step count (stronger with more steps); ``single_step``: one gradient step (the gradient-masking
    check compares it with the iterative attacks); ``params``: the attack's own options schema.
    ``cost(params, meta) -> float``: forward-FLOP equivalents per image of one run (one ε, or one
    minimum-norm run), for ``compressbench plan`` (None: ``params.steps`` input gradients;
    :mod:`compressbench.costs`). ``masking_probe``: the attack can be the adversarial evaluator's
    gradient-masking probe (a strong fixed-budget L∞ attack at a large ε): its parameters for that."""

    norms: tuple[str, ...] = ("linf",)
    minimum_norm: bool = False
    iterative: bool = False
    single_step: bool = False
    backend: str = ""
    max_features: int | None = None  # the largest input (channels × height × width) it can attack
    default_steps: int | None = None
    cost: Callable[[Any, Any], float] | None = None
    masking_probe: Mapping[str, Any] | None = None


# --------------------------------------------------------------------------- datasets and models


@dataclass(frozen=True)
class DatasetSpec(ComponentSpec):
    """A dataset loader ``fn(root, cache, download, **options) -> DatasetBundle``; ``params`` is the
    schema of ``dataset.options`` (unknown options are an error, not silently ignored).

    ``domains``: the named domains of a dataset that has them (Office-31: amazon, dslr, webcam), or
    ``fn(options: dict) -> tuple`` when the options name them (imagefolder's ``domains:`` mapping).
    A loader with domains is called as ``fn(root, cache, download, requested=(...), **options)`` and
    returns a ``data.domains.DomainImages``; ``data.domains`` splits the source domain into train /
    test and keeps the targets for evaluation (``dataset.source`` / ``dataset.targets``).

    ``probe(root, **options) -> DataMeta``: the metadata without decoding the images (for ``validate``,
    which builds the model to check weights files and methods against it): ``num_classes``,
    ``channels`` and ``size`` must be exact, ``mean`` / ``std`` may be placeholders. Without a probe,
    ``validate`` loads the dataset to learn them.

    ``sizes(root, **options) -> {name: images}``: how many labelled images it has without decoding them,
    for ``compressbench plan``: ``{"train": n, "test": n}``, or for a dataset with domains each domain's
    images (``{"amazon": 2817, ...}``). Without it, ``plan`` loads the dataset (never downloading).

    ``fingerprint(root, cache, **options) -> {field: value}``: for a dataset generated on this machine, what
    its images depend on (the generator's input files and their sha256, the libraries that draw them) and a
    digest of the images — stored with every run (:mod:`compressbench.provenance`) so ``compressbench
    compare`` can tell that two machines drew different images."""

    domains: tuple[str, ...] | Callable[[Mapping[str, Any]], tuple[str, ...]] = ()
    probe: Callable[..., Any] | None = None
    sizes: Callable[..., Mapping[str, int]] | None = None
    fingerprint: Callable[..., Mapping[str, Any]] | None = None

    def domain_names(self, options: Mapping[str, Any] | None = None) -> tuple[str, ...]:
        """The declared domains (for these options); () for a dataset without domains."""
        return tuple(self.domains(dict(options or {}))) if callable(self.domains) else tuple(self.domains)


@dataclass(frozen=True)
class ModelSpec(ComponentSpec):
    """A model factory ``fn(meta, width=1.0, **kwargs) -> nn.Module`` (the bare network).

    ``family``: architecture family (``resnet``, ``mobilenetv3``, ``vit`` ...; shown in tables).
    Where the network's input and output are, as timm's ``PretrainedCfg`` names them, so that loading
    foreign weights is generic (docs/architecture.md, convention 4): ``classifier`` — the module path of the
    classifier head inside the network (its weights are replaced when the dataset has another number of classes);
    ``first_conv`` — the module path of the first convolution (its weights are adapted when the
    dataset has another number of channels). None: found by position (the last / first conv or linear
    module). ``published(tag) -> models.weights.Published``: published weights by tag
    (``torchvision:IMAGENET1K_V1``, ``timm:a1_in1k``; None: the model has none); ``filter_weights(
    state_dict, net) -> state_dict``: the architecture's own converter for foreign checkpoints (timm's
    ``checkpoint_filter_fn``: resampled position embeddings, renamed keys)."""

    family: str = "other"
    classifier: str | None = None
    first_conv: str | None = None
    published: Callable[[str], Any] | None = None
    filter_weights: Callable[[dict, Any], dict] | None = None


@dataclass(frozen=True)
class RebuildSpec(ComponentSpec):
    """A checkpoint rebuild step ``fn(model, step, state_dict) -> model`` (``checkpoint``).
    ``quantizes``: the step turns float modules into quantized / low-precision ones (replaying only the
    other steps gives the variant's float architecture)."""

    quantizes: bool = False


@dataclass(frozen=True)
class ExecutorSpec(ComponentSpec):
    """An executor (``execute``): a factory ``(cache, show_progress=..., options=..., experiment=...)`` of an
    object with ``run(jobs, fn, on_done)``. ``params``: its options' schema (``executor: {name: ..., <options>}``,
    validated when the experiment is resolved; None: it takes none). ``check(experiment, options) -> message |
    None``: its rules about the whole resolved experiment, run by ``validate`` before any work."""

    check: Callable[[Any, Any], str | None] | None = None


# --------------------------------------------------------------------------- pruning criteria


@dataclass(frozen=True)
class CriterionSpec(ComponentSpec):
    """A pruning importance criterion (Torch-Pruning's split: the criterion scores, the method's pruner decides
    how much to remove and when). Registered in ``registry.channel_criteria`` as ``fn() -> importance`` (a
    Torch-Pruning importance scoring channel groups: structured pruning) or in ``registry.weight_criteria``
    as a ``torch.nn.utils.prune`` method class (scoring single weights: unstructured pruning).
    ``gradients``: it reads loss gradients, which the method accumulates on a few training batches first."""

    gradients: bool = False


SPEC_TYPES: dict[str, type[ComponentSpec]] = {
    "method": MethodSpec,
    "evaluator": EvaluatorSpec,
    "corruption": CorruptionSpec,
    "attack": AttackSpec,
    "dataset": DatasetSpec,
    "model": ModelSpec,
    "executor": ExecutorSpec,
}

__all__ = [
    "ComponentSpec",
    "Knob",
    "MethodSpec",
    "MetricSpec",
    "Console",
    "ANY",
    "EvaluatorSpec",
    "CorruptionSpec",
    "AttackSpec",
    "DatasetSpec",
    "ModelSpec",
    "RebuildSpec",
    "CriterionSpec",
    "ExecutorSpec",
    "SPEC_TYPES",
    "SHARED_BUDGETS",
    "BudgetKind",
    "Selection",
    "Presentation",
    "ReportOption",
    "CLEAN_ACCURACY",
    "CORRUPTION_ACCURACY",
    "Aggregate",
    "Format",
]

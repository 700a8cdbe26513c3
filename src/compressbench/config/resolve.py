"""The experiment schema -> one frozen :class:`ResolvedExperiment`, built once per process.

Resolving looks every name up in the registries (a ``"pkg.mod:obj"`` the user wrote is imported here, and
nowhere else), validates each component's params against its schema, expands budget lists into variants
and checks that each budget is reachable for its method, validates the executor's options, splits a
multi-source experiment into its parts, and records the plug-in set. Everything downstream — the checks of
:mod:`compressbench.validate`, the plan, the executors, the job functions, Ray workers — reads the resolved
experiment and never resolves again (docs/architecture.md). Each mistake is one :class:`ConfigError` line
naming the field path.

Nothing here builds a model or imports compress / models / evaluate code directly: the registries load
their built-ins on first use. :mod:`compressbench.validate` runs the checks that need models.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any, Mapping

from pydantic import ValidationError

from ..errors import ConfigError, did_you_mean
from ..extras import needs
from ..layouts import check_layout
from ..registry import (
    ALL,
    UnknownNameError,
    adapt_losses,
    datasets,
    evaluators,
    executors,
    is_object_path,
    methods,
    models,
)
from ..specs import SHARED_BUDGETS
from .findings import experiment_check
from .goal import check_goal
from .params import one_line_error, validate_params
from .plugins import PluginSet, object_names
from .schema import BASELINE, Budget, DatasetConfig, EvaluationConfig, ExecutorConfig, Experiment
from .text import check_data, read_config


@dataclass(frozen=True)
class ResolvedVariant:
    name: str
    method: str  # the registered name
    params: Any  # the method's validated pydantic params (None: it takes none)
    budget: Budget | None
    index: int  # position in the config's variants list


@dataclass(frozen=True)
class ResolvedEvaluation:
    evaluator: str  # the registered name
    params: Any  # the evaluator's validated params
    variants: tuple[str, ...] | None  # the variants it measures (None: all, the parent included)
    index: int  # position in the config's evaluations list
    written: str  # the evaluator's name as the config wrote it (a resources table may use it)

    def runs_on(self, variant: str) -> bool:
        return self.variants is None or variant in self.variants


@dataclass(frozen=True)
class ResolvedExecutor:
    name: str  # the registered name
    options: Any  # the executor's validated options (None: it takes none)


@dataclass(frozen=True)
class ExperimentPart:
    """One experiment a config runs: itself, or — with a list of source domains — one sibling
    ``<name>.<source>`` per source, its targets the listed (or all other declared) domains but itself."""

    name: str
    dataset: DatasetConfig


def _from_config(field: str) -> Any:
    """A read-only property reading ``field`` of the experiment's schema object."""
    return property(lambda self: getattr(self.config, field), doc=f"``config.{field}``")


def _dump(params: Any) -> Any:
    return params.model_dump(mode="json") if params is not None and hasattr(params, "model_dump") else params


@dataclass(frozen=True)
class ResolvedExperiment:
    """An experiment with every name looked up and every params mapping validated (see the module
    docstring). ``config`` is the schema object as written; the fields a reader needs most are properties."""

    config: Experiment
    variants: tuple[ResolvedVariant, ...]
    evaluations: tuple[ResolvedEvaluation, ...]
    executor: ResolvedExecutor
    parts: tuple[ExperimentPart, ...]
    plugins: PluginSet

    # the config's fields a reader needs most, read-only (the rest: ``config``)
    name = _from_config("name")
    seeds = _from_config("seeds")
    dataset = _from_config("dataset")
    model = _from_config("model")
    train = _from_config("train")
    recipe = _from_config("recipe")  # the training recipe fine-tunes build on
    trains_baseline = _from_config("trains_baseline")
    transfer = _from_config("transfer")
    device = _from_config("device")
    threads = _from_config("threads")
    cache_dir = _from_config("cache_dir")
    store_path = _from_config("store_path")
    report = _from_config("report")
    findings = _from_config("findings")
    goal = _from_config("goal")

    def config_json(self) -> str:
        """The config as canonical JSON (what a Ray worker resolves again)."""
        return json.dumps(self.config.model_dump(mode="json"), sort_keys=True)

    @cached_property
    def fingerprint(self) -> str:
        """sha256 of everything resolved: the config, each variant's and evaluation's validated params and
        component version, the executor's options, the plug-in set (not its folders). A process that resolves
        the same config with the same code and plug-ins gets the same fingerprint."""
        payload = {
            "config": self.config.model_dump(mode="json"),
            "variants": [
                [
                    v.name,
                    v.method,
                    methods.field(v.method, "version"),
                    _dump(v.params),
                    v.budget.to_json() if v.budget else None,
                ]
                for v in self.variants
            ],
            "evaluations": [
                [e.evaluator, evaluators.field(e.evaluator, "version"), _dump(e.params), e.variants]
                for e in self.evaluations
            ],
            "executor": [self.executor.name, _dump(self.executor.options)],
            "plugins": self.plugins.identity(),
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()

    def with_executor(self, name: str) -> ResolvedExperiment:
        """The same experiment run by executor ``name`` with its default options (nothing else re-resolved);
        ``validate.check_executor`` must then check it against the experiment."""
        cfg = self.config.model_copy(update={"executor": ExecutorConfig(name=name)})
        return replace(self, config=cfg, executor=resolve_executor(cfg))


# ------------------------------------------------------------------ budgets
def check_budget(name: str, budget: Budget | None, params: Any) -> str | None:
    """Why ``budget`` cannot be met by method ``name`` with ``params`` (None: it can, as far as a check
    without a model can tell). Run when variants are resolved, and again by ``compress.budget.compress``."""
    if budget is None:
        return None
    budgets = methods.field(name, "budgets")  # declared: no method code imported for these checks
    if not budgets:
        return (
            f"{name} has a fixed size and cannot be steered to {budget.label()}; give no budget, or put a "
            f"size-steerable method (pruning, distillation, lowrank) before it in a 'pipeline' and budget "
            f"that stage"
        )
    if budget.kind not in budgets:
        return f"{name} does not support '{budget.kind}' budgets (supported: {', '.join(budgets)})"
    if budget.kind in SHARED_BUDGETS and not 0 < budget.value <= 1:
        return f"{name}: a {budget.kind} budget is a fraction of the parent in (0, 1], got {budget.value:g}"
    if budget.kind == "knob":  # the knob is the method's code (imported here)
        spec = methods.spec(name)
        if spec.knob is not None and spec.knob.valid is not None:
            msg = spec.knob.valid(budget.value)
            if msg:
                return f"{name}: knob ({spec.knob.name}) {msg}, got {budget.value:g}"
    check = methods.field(name, "check_budget")  # declared with the method (torch-free)
    return check(budget, params) if check else None


# ------------------------------------------------------------------ names and parts
def _check_name(reg: Any, name: str, where: str) -> str:
    """The registered name for ``name``: a registered name, or a ``"pkg.mod:obj"`` the user wrote
    (imported here: the config is the user's)."""
    try:
        return reg.resolve(name)
    except UnknownNameError as e:
        raise ConfigError(f"{where}: {e}") from None


def _check_dataset(exp: Experiment) -> None:
    ds = exp.dataset
    _check_name(datasets, ds.name, "dataset.name")
    if ds.root is not None:
        root = Path(ds.root).expanduser()
        if not root.exists():
            raise ConfigError(
                f"dataset.root: folder '{ds.root}' does not exist (give the folder that holds the "
                f"dataset, or leave root out to use the default places)"
            )
        if not root.is_dir():
            raise ConfigError(f"dataset.root: '{ds.root}' is not a folder")
    validate_params(
        datasets.field(ds.name, "params"), ds.options, "dataset.options", kind="option", owner=f"dataset '{ds.name}'"
    )


def experiment_parts(exp: Experiment) -> tuple[ExperimentPart, ...]:
    """(experiment name, dataset) of each experiment a config runs (see :class:`ExperimentPart`)."""
    ds = exp.dataset
    if not isinstance(ds.source, list):
        return (ExperimentPart(exp.name, ds),)
    out = []
    for src in ds.source:
        tg = [t for t in ds.targets if t != src] if ds.targets is not None else None
        out.append(ExperimentPart(f"{exp.name}.{src}", ds.model_copy(update={"source": src, "targets": tg})))
    return tuple(out)


# ------------------------------------------------------------------ variants, evaluations, executor
def _budgets(v: Any, where: str) -> list[Budget | None]:
    if v.budget is not None and v.budgets is not None:
        raise ConfigError(f"{where}: give either 'budget' or 'budgets', not both")
    if v.budget is not None:
        k, val = next(iter(v.budget.items()))
        return [Budget(k, float(val))]
    if v.budgets is not None:
        k, vals = next(iter(v.budgets.items()))
        return [Budget(k, float(x)) for x in vals]
    return [None]


def _variant_name(given: str | None, method: str, budget: Budget | None, n_budgets: int) -> str:
    """The name given to one budget's variant; with several budgets (or none given) ``<name>@<budget>``."""
    if given and n_budgets == 1:
        return given
    return f"{given or method}@{budget.label()}" if budget is not None else method


def resolve_variants(exp: Experiment) -> list[ResolvedVariant]:
    """Expand budgets lists, validate each method's params and budgets (reachability included)."""
    out: list[ResolvedVariant] = []
    for i, v in enumerate(exp.variants):
        where = f"variants[{i}]"
        method = _check_name(methods, v.method, f"{where}.method")
        schema = methods.field(method, "params")
        params = validate_params(schema, v.params, f"{where}.params", owner=f"method '{method}'")
        budgets = _budgets(v, where)
        for b in budgets:
            msg = check_budget(method, b, params)
            if msg:
                raise ConfigError(f"{where}.budget: {b.label()} is unreachable for '{method}': {msg}")
            out.append(ResolvedVariant(_variant_name(v.name, method, b, len(budgets)), method, params, b, i))
    seen: dict[str, int] = {}
    for rv in out:
        if rv.name == BASELINE:
            raise ConfigError(f"variants[{rv.index}].name: '{BASELINE}' is reserved for the parent model")
        if rv.name in seen:
            raise ConfigError(
                f"variants[{rv.index}].name: duplicate variant name '{rv.name}' "
                f"(also variants[{seen[rv.name]}]); give each a distinct 'name'"
            )
        seen[rv.name] = rv.index
    return out


def resolve_evaluations(exp: Experiment, variant_names: list[str]) -> list[ResolvedEvaluation]:
    """Look each evaluator up, validate its params and the variants it names."""
    out = []
    for i, ev in enumerate(exp.evaluations):
        where = f"evaluations[{i}]"
        name = _check_name(evaluators, ev.evaluator, f"{where}.evaluator")
        params = validate_params(
            evaluators.field(name, "params"), ev.params, f"{where}.params", owner=f"evaluator '{name}'"
        )
        for extra in (evaluators.field(name, "extras") or (lambda _: ()))(params):
            needs(f"{where}: the {name} evaluator", extra)
        for j, vn in enumerate(ev.variants or []):
            if vn not in variant_names and vn != BASELINE:
                raise ConfigError(
                    f"{where}.variants[{j}]: unknown variant '{vn}'{did_you_mean(vn, variant_names)}; "
                    f"known: {BASELINE}, {', '.join(variant_names)}"
                )
        out.append(
            ResolvedEvaluation(name, params, tuple(ev.variants) if ev.variants is not None else None, i, ev.evaluator)
        )
    return out


def resolve_executor(exp: Experiment) -> ResolvedExecutor:
    """The executor's registered name and validated options (``executor: {name: ..., <options>}``)."""
    name = exp.executor.name
    try:
        name = executors.resolve(name)
    except UnknownNameError as e:
        if is_object_path(name):
            raise ConfigError(f"executor: {e}") from None
        known = executors.names()
        raise ConfigError(
            f"executor: unknown executor {name!r}{did_you_mean(name, known)}; known: {', '.join(known)}"
        ) from None
    opts = validate_params(
        executors.field(name, "params"), exp.executor.options, "executor", kind="option", owner=f"executor '{name}'"
    )
    return ResolvedExecutor(name, opts)


def with_executor(raw: dict[str, Any], name: str | None = None, address: str | None = None) -> None:
    """Apply ``--executor NAME`` / ``--address ADDR`` to a raw config: a new name drops the options of the
    executor the file named (they were that executor's); an address is set on the executor's mapping."""
    cur = raw.get("executor")
    cur = {"name": cur} if isinstance(cur, str) else dict(cur) if isinstance(cur, dict) else {}
    if name is not None and name != cur.get("name", "local"):
        cur = {"name": name}
    if address is not None:
        ename = cur.get("name", "local")
        schema = executors.field(ename, "params") if ename in executors else None
        if schema is None or "address" not in schema.model_fields:
            raise ConfigError(f"--address: the {ename} executor joins no cluster; add --executor ray")
        cur["address"] = address
    raw["executor"] = cur


# ------------------------------------------------------------------ the whole experiment
def parse_experiment(raw: Any) -> Experiment:
    """The schema object of a raw config (one ConfigError line for the first mistake); no registry read."""
    if not isinstance(raw, dict):
        raise ConfigError(f"the config must be a mapping of fields, got {type(raw).__name__}")
    try:
        exp = Experiment.model_validate(raw)
    except ValidationError as e:
        raise one_line_error(e, root=Experiment) from None
    check_data(raw)  # what the typed fields did not see: params, kwargs, options
    return exp


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a module set to None in sys.modules: hidden, as if not installed
        return False


def resolve_experiment(exp: Experiment) -> ResolvedExperiment:
    """Resolve a parsed experiment (see the module docstring). Raises :class:`ConfigError` (one line)."""
    if exp.model.weights is not None and "train" not in exp.model_fields_set:
        # the default recipe would silently fine-tune the user's model: they choose
        raise ConfigError(
            "train: model.weights is given but 'train' is not: write 'train: null' to use the weights "
            "as they are (nothing is trained), or 'train: {init: weights, epochs: ..., lr: ...}' to "
            "fine-tune them first"
        )
    if exp.train is not None and exp.train.adapt is not None:  # methods' params check theirs (adapt.AdaptParams)
        _check_name(adapt_losses, exp.train.adapt.method, "train.adapt.method")
    _check_dataset(exp)
    _check_name(models, exp.model.name, "model.name")
    variants = resolve_variants(exp)
    evals = resolve_evaluations(exp, [v.name for v in variants])
    if exp.report is not None:
        msg = check_layout(
            exp.report,
            [e.evaluator for e in evals],
            {e.evaluator: [m.name for m in evaluators.spec(e.evaluator).metrics] for e in evals},
        )
        if msg:
            raise ConfigError(msg)
    msg = experiment_check(list(exp.findings), variants, [e.evaluator for e in evals])
    if msg:
        raise ConfigError(msg)
    if exp.goal is not None:
        msg = check_goal(exp.goal, evals, len(exp.variants), len(experiment_parts(exp)))
        if msg:
            raise ConfigError(msg)
    if exp.tracking is not None and exp.tracking.mlflow is not None and not _installed("mlflow"):
        raise ConfigError(
            "tracking.mlflow: MLflow is not installed; pip install 'compressbench[mlflow]' "
            "(or mlflow-skinny), or drop tracking:"
        )
    executor = resolve_executor(exp)
    # the user's code: "pkg.mod:obj" names, but not the name families a library serves ("timm:<arch>")
    names = [n for n in object_names(exp.model_dump(mode="json")) if not any(r.serves(n) for r in ALL.values())]
    factories = set(models.names())
    plugins = PluginSet.collect(names, [n for n in names if n in factories])
    return ResolvedExperiment(exp, tuple(variants), tuple(evals), executor, experiment_parts(exp), plugins)


def resolve_config(raw: Any) -> ResolvedExperiment:
    """:func:`parse_experiment` then :func:`resolve_experiment`."""
    return resolve_experiment(parse_experiment(raw))


def read_experiment(
    path: str | Path,
    overrides: Mapping[str, Any] | None = None,
    scale: str | None = None,
    *,
    executor: str | None = None,
    address: str | None = None,
) -> dict[str, Any]:
    """The raw config of a YAML file with ``scale``, ``overrides`` and ``executor`` / ``address`` applied
    (:func:`~.text.read_config`, :func:`with_executor`)."""
    raw = read_config(path, overrides, scale)
    if executor is not None or address is not None:
        with_executor(raw, executor, address)
    return raw


__all__ = [
    "ResolvedExperiment",
    "ResolvedVariant",
    "ResolvedEvaluation",
    "ResolvedExecutor",
    "ExperimentPart",
    "resolve_config",
    "resolve_experiment",
    "parse_experiment",
    "resolve_variants",
    "resolve_evaluations",
    "resolve_executor",
    "experiment_parts",
    "check_budget",
    "with_executor",
    "read_experiment",
    "EvaluationConfig",
]

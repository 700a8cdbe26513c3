"""The experiment schema: YAML -> a frozen, typed :class:`Experiment`, validated before any work.

Every mistake becomes a :class:`ConfigError` whose message is one line naming the field path,
the bad value and what is allowed (with "did you mean" for registry names).

The file is read as untrusted text by :mod:`compressbench.configfile` (a bounded YAML loader, ``--set``
overrides, the values no schema accepts); this module is the schema and the checks against the registries.
(One module of ≈ 550 lines on purpose: the schema classes and the code that turns a validation error into
a one-line path with the fields allowed *at that depth* walk the same classes and must agree field by field.)
"""

from __future__ import annotations

import re
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .adapt import AdaptParams
from .compress.budget import check_budget
from .configfile import (  # noqa: F401  (re-exported: the config API)
    MAX_ALIASES,
    MAX_CONFIG_BYTES,
    MAX_DEPTH,
    MAX_NODES,
    MAX_OVERRIDE_CHARS,
    ConfigError,
    ConfigLoader,
    _dym,
    _fmt_loc,
    _join,
    _kind,
    _short,
    apply_override,
    check_data,
    parse_override,
    parse_yaml,
    read_config_text,
)
from .errors import UserError
from .fields import MAX_BATCH_SIZE, Epochs, FileName, FinetuneEpochs, Fraction, ImageSize, PositiveFloat, Seed
from .findings_schema import Finding, experiment_check
from .interfaces import Budget
from .layouts import ReportLayout, check_layout
from .registry import UnknownNameError, datasets, evaluators, methods, models


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
    mean: tuple[float, ...] | None = Field(None, min_length=1, max_length=4)
    std: tuple[PositiveFloat, ...] | None = Field(None, min_length=1, max_length=4)

    KEY_OPTIONAL: ClassVar[tuple[str, ...]] = ("weights", "mean", "std")


class ColorJitterConfig(_Strict):
    """Per-image factors uniform in [1 − x, 1 + x] (hue: a shift in ±x of a turn), as torchvision's ColorJitter."""

    brightness: float = Field(0.0, ge=0, le=1)
    contrast: float = Field(0.0, ge=0, le=1)
    saturation: float = Field(0.0, ge=0, le=1)  # needs 3-channel images
    hue: float = Field(0.0, ge=0, le=0.5)  # needs 3-channel images


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
    amp: bool = True
    adapt: AdaptParams | None = None  # domain adaptation of the baseline, e.g. {method: coral, weight: 1}
    init: Literal["scratch", "weights"] | None = None  # None: "weights" when model.weights is given
    freeze_epochs: FinetuneEpochs = 0.0  # transfer: only the classifier head trains for the first N epochs
    rotation: float = Field(0.0, ge=0, le=180)  # random rotation in ±degrees (after crop / flip)
    color_jitter: ColorJitterConfig | None = None

    KEY_OPTIONAL: ClassVar[tuple[str, ...]] = ("init", "freeze_epochs", "rotation", "color_jitter", "adapt")


BUDGET_KINDS = ("knob", "params", "bytes", "flops")


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
            raise ValueError(f"unknown budget kind '{kind}'{_dym(kind, BUDGET_KINDS)}; "
                             f"allowed: {', '.join(BUDGET_KINDS)}")
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
    ``compressbench.execute.EXECUTORS``; the options are checked against that executor's ``Options``
    schema by :func:`validate` (an option it does not take is an error)."""

    model_config = ConfigDict(extra="allow", frozen=True)
    name: str = "local"

    @model_validator(mode="before")
    @classmethod
    def _name_or_mapping(cls, v: Any) -> Any:
        from .execute import EXECUTORS  # imported here: execute -> plan -> config

        if isinstance(v, str):
            v = {"name": v}
        if not isinstance(v, dict):
            raise ValueError(f"give an executor name ({', '.join(sorted(EXECUTORS))}) or a mapping "
                             f"{{name: ..., <options>}}")
        name = v.get("name", "local")
        if not isinstance(name, str) or name not in EXECUTORS:
            raise ValueError(f"unknown executor {name!r}{_dym(name, EXECUTORS)}; known: {', '.join(sorted(EXECUTORS))}")
        return v

    @property
    def options(self) -> dict[str, Any]:
        """The options as written (everything but ``name``)."""
        return dict(self.model_extra or {})


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
    findings: list[Finding] = Field([], max_length=200)  # declared claims, tested on the results (findings_schema.py)

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

    def variants_resolved(self) -> list["ResolvedVariant"]:
        return resolve_variants(self)


@dataclass(frozen=True)
class ResolvedVariant:
    name: str
    method: str
    params: Any  # the method's validated pydantic params
    budget: Budget | None
    index: int  # position in the config's variants list


# ------------------------------------------------------------------ pydantic errors -> one line
def _members(ann: Any) -> list[Any]:
    """The alternatives of a (possibly Annotated / Optional / union) annotation."""
    origin = typing.get_origin(ann)
    if origin is typing.Annotated:
        return _members(typing.get_args(ann)[0])
    if origin is typing.Union or type(ann).__name__ == "UnionType":
        return [m for a in typing.get_args(ann) for m in _members(a)]
    return [ann]


def _tag(ann: Any) -> str:
    """How pydantic names a union member in an error location (``FinetuneParams``, ``list[str]``)."""
    return ann.__name__ if isinstance(ann, type) else str(ann).replace("typing.", "")


def _resolve_loc(root: Any, loc: tuple) -> tuple[list[Any], list[Any]]:
    """Follow a pydantic error location through nested schemas: (the location without union-member
    tags, the candidate annotations at its end). Used to name the fields allowed where an unknown key
    sits, however deep (``variants[0].params.finetune.epoch`` lists the fine-tune fields)."""
    shown: list[Any] = []
    anns = [root] if root is not None else []
    for part in loc:
        members = [m for a in anns for m in _members(a)]
        tagged = [m for m in members if isinstance(part, str) and _tag(m) == part]
        if tagged and len(members) > 1:  # a union member's tag: choose it, do not show it
            anns = tagged
            continue
        shown.append(part)
        nxt: list[Any] = []
        for m in members:
            if isinstance(m, type) and issubclass(m, BaseModel):
                f = m.model_fields.get(part) if isinstance(part, str) else None
                if f is not None:
                    nxt.append(f.annotation)
                continue
            origin, args = typing.get_origin(m), typing.get_args(m)
            if origin in (list, tuple, set, frozenset) and args and isinstance(part, int):
                nxt.append(args[0])
            elif origin is dict and len(args) == 2:
                nxt.append(args[1])
        anns = nxt
    return shown, anns


def _fields_at(root: Any, loc: tuple) -> list[str]:
    """Field names of the schema a location points into ([] when unknown)."""
    _, anns = _resolve_loc(root, loc)
    for m in (m for a in anns for m in _members(a)):
        if isinstance(m, type) and issubclass(m, BaseModel):
            return list(m.model_fields)
    return []


def _from_validation_error(e: ValidationError, prefix: str = "", root: Any = None,
                           kind: str = "field") -> ConfigError:
    """The first error of ``e`` as one line: path (union tags dropped), what is wrong, the bad value."""
    errs = e.errors()
    err = errs[0]
    loc = tuple(err["loc"])
    shown, _ = _resolve_loc(root, loc) if root is not None else (list(loc), [])
    where = _join(prefix, _fmt_loc(shown)) or "config"
    if err["type"] == "missing":
        return ConfigError(f"{where}: required {kind} is missing")
    if err["type"] == "extra_forbidden":
        allowed = _fields_at(root, loc[:-1]) if root is not None else []
        tail = f"; allowed: {', '.join(allowed)}" if allowed else ""
        return ConfigError(f"{where}: unknown {kind}{_dym(loc[-1], allowed)}{tail}")
    msg = err["msg"].removeprefix("Value error, ")
    extra = f" ({len(errs) - 1} more error(s))" if len(errs) > 1 else ""
    got = _short(err.get("input"))
    return ConfigError(f"{where}: {msg}" + ("" if got in msg else f"; got {got}") + extra)


# ------------------------------------------------------------------ names, params, datasets, models
def _check_name(reg, name: str, where: str) -> str:
    """The registered name for ``name``: a registered name, or a ``"pkg.mod:obj"`` the user wrote
    (imported here: the config is the user's)."""
    try:
        return reg.resolve(name)
    except UnknownNameError as e:
        raise ConfigError(f"{where}: {e}") from None


def validate_params(schema: type[BaseModel] | None, raw: Mapping[str, Any], where: str,
                    kind: str = "parameter", owner: str = "this") -> Any:
    """Validate a component's params dict against its schema (``None``: it takes none). Errors name the
    path under ``where`` and, for an unknown key at any depth, the keys allowed there."""
    if schema is None:
        if raw:
            raise ConfigError(f"{where}: {owner} takes no {kind}s; got {_short(dict(raw))}")
        return None
    try:
        params = schema.model_validate(raw)
    except ValidationError as e:
        raise _from_validation_error(e, where, schema, kind) from None
    except UserError as e:  # a schema validator that raised one of ours directly
        raise ConfigError(f"{where}: {e}") from None
    check_data(params.model_dump(), where)  # e.g. "inf" given as a string to a float field
    return params


def _validate_params(spec: Any, raw: dict, where: str, owner: str) -> Any:
    return validate_params(spec.params, raw, where, owner=owner)


def _check_dataset(exp: Experiment) -> None:
    ds = exp.dataset
    if ds.root is not None:
        root = Path(ds.root).expanduser()
        if not root.exists():
            raise ConfigError(f"dataset.root: folder '{ds.root}' does not exist (give the folder that holds the "
                              f"dataset, or leave root out to use the default places)")
        if not root.is_dir():
            raise ConfigError(f"dataset.root: '{ds.root}' is not a folder")
    validate_params(datasets.spec(ds.name).params, ds.options, "dataset.options", kind="option",
                    owner=f"dataset '{ds.name}'")


def _check_model(exp: Experiment) -> None:
    from .models import check_factory_kwargs

    bad = check_factory_kwargs(exp.model.name, exp.model.kwargs)
    if bad:
        raise ConfigError(f"{bad[0]}: {bad[1]}")
    from .preflight import check_model_fields

    check_model_fields(exp)  # model.weights / mean / std and train: null / init / epochs / freeze_epochs


def resolve_variants(exp: Experiment) -> list[ResolvedVariant]:
    """Expand budgets lists, validate each method's params and budgets (reachability included)."""
    out: list[ResolvedVariant] = []
    for i, v in enumerate(exp.variants):
        where = f"variants[{i}]"
        method = _check_name(methods, v.method, f"{where}.method")
        spec = methods.spec(method)
        params = _validate_params(spec, v.params, f"{where}.params", f"method '{method}'")
        if v.budget is not None and v.budgets is not None:
            raise ConfigError(f"{where}: give either 'budget' or 'budgets', not both")
        budgets: list[Budget | None] = [None]
        if v.budget is not None:
            k, val = next(iter(v.budget.items()))
            budgets = [Budget(k, float(val))]  # type: ignore[arg-type]
        elif v.budgets is not None:
            k, vals = next(iter(v.budgets.items()))
            budgets = [Budget(k, float(x)) for x in vals]  # type: ignore[arg-type]
        for b in budgets:
            if b is None:
                continue
            msg = check_budget(method, b, params)
            if msg:
                raise ConfigError(f"{where}.budget: {b.label()} is unreachable for '{method}': {msg}")
            name = v.name if v.name and len(budgets) == 1 else f"{v.name or method}@{b.label()}"
            out.append(ResolvedVariant(name, method, params, b, i))
        if budgets == [None]:
            out.append(ResolvedVariant(v.name or method, method, params, None, i))
    seen: dict[str, int] = {}
    for rv in out:
        if rv.name == "baseline":
            raise ConfigError(f"variants[{rv.index}].name: 'baseline' is reserved for the parent model")
        if rv.name in seen:
            raise ConfigError(f"variants[{rv.index}].name: duplicate variant name '{rv.name}' "
                              f"(also variants[{seen[rv.name]}]); give each a distinct 'name'")
        seen[rv.name] = rv.index
    return out


def resolve_evaluations(exp: Experiment, variant_names: list[str]) -> list[tuple[EvaluationConfig, Any]]:
    out = []
    for i, ev in enumerate(exp.evaluations):
        where = f"evaluations[{i}]"
        ev = ev.model_copy(update={"evaluator": _check_name(evaluators, ev.evaluator, f"{where}.evaluator")})
        params = _validate_params(evaluators.spec(ev.evaluator), ev.params, f"{where}.params",
                                  f"evaluator '{ev.evaluator}'")
        for j, vn in enumerate(ev.variants or []):
            if vn not in variant_names and vn != "baseline":
                raise ConfigError(f"{where}.variants[{j}]: unknown variant '{vn}'{_dym(vn, variant_names)}; "
                                  f"known: baseline, {', '.join(variant_names)}")
        out.append((ev, params))
    return out


def validate(raw: dict[str, Any]) -> Experiment:
    """Validate a config dict completely (schema, registry names, params, budgets, dataset options,
    model kwargs). Raises :class:`ConfigError` (one line); does no work and writes nothing."""
    if not isinstance(raw, dict):
        raise ConfigError(f"the config must be a mapping of fields, got {type(raw).__name__}")
    try:
        exp = Experiment.model_validate(raw)
    except ValidationError as e:
        raise _from_validation_error(e, root=Experiment) from None
    check_data(raw)  # what the typed fields did not see: params, kwargs, options
    _check_name(datasets, exp.dataset.name, "dataset.name")
    _check_dataset(exp)
    _check_name(models, exp.model.name, "model.name")
    _check_model(exp)
    variants = resolve_variants(exp)
    evals = resolve_evaluations(exp, [v.name for v in variants])
    if exp.report is not None:
        msg = check_layout(exp.report, [ev.evaluator for ev, _ in evals])
        if msg:
            raise ConfigError(msg)
    msg = experiment_check(exp.findings, variants, [ev.evaluator for ev, _ in evals])
    if msg:
        raise ConfigError(msg)
    from .domain_config import check_domains  # datasets with domains, adaptation (imports this module)

    check_domains(exp, variants)
    _check_executor(exp)
    from .preflight import check_parent  # last: builds the model (the checks above are cheaper)

    check_parent(exp, variants)
    return exp


def _check_executor(exp: Experiment) -> None:
    """The executor's options against its schema, then its own rules about the whole experiment."""
    from .execute import EXECUTORS

    factory = EXECUTORS[exp.executor.name]
    opts = validate_params(getattr(factory, "Options", None), exp.executor.options, "executor", kind="option",
                           owner=f"executor '{exp.executor.name}'")
    check = getattr(factory, "check", None)
    bad = check(exp, opts) if check is not None and opts is not None else None
    if bad:
        raise ConfigError(bad)


def with_executor(raw: dict[str, Any], name: str | None = None, address: str | None = None) -> None:
    """Apply ``--executor NAME`` / ``--address ADDR`` to a raw config: a new name drops the options of the
    executor the file named (they were that executor's); an address is set on the executor's mapping."""
    cur = raw.get("executor")
    cur = {"name": cur} if isinstance(cur, str) else dict(cur) if isinstance(cur, dict) else {}
    if name is not None and name != cur.get("name", "local"):
        cur = {"name": name}
    if address is not None:
        from .execute import EXECUTORS

        schema = getattr(EXECUTORS.get(cur.get("name", "local")), "Options", None)
        if schema is None or "address" not in schema.model_fields:
            raise ConfigError(f"--address: the {cur.get('name', 'local')} executor joins no cluster; "
                              f"add --executor ray")
        cur["address"] = address
    raw["executor"] = cur


SCALES = "scales"


def load_config(path: str | Path, overrides: Mapping[str, Any] | None = None, scale: str | None = None, *,
                executor: str | None = None, address: str | None = None) -> Experiment:
    """Read a YAML experiment file, apply the named ``scale`` (an override profile the file declares under
    ``scales:``, e.g. ``smoke``), then ``overrides`` (``{"train.epochs": 1, "variants.0.method": ...}``)
    and ``executor`` / ``address`` (:func:`with_executor`), and validate it. Raises ConfigError (one line)."""
    p = Path(path)
    raw, scales = read_raw(p)
    if scale is not None:
        if scale not in scales:
            raise ConfigError(f"{p}: no scale '{scale}'{_dym(scale, scales)}; the file declares: "
                              f"{', '.join(scales) or 'none'}")
        for k, v in scales[scale].items():
            apply_override(raw, k, v)
    for k, v in (overrides or {}).items():
        apply_override(raw, k, v)
    if executor is not None or address is not None:
        with_executor(raw, executor, address)
    return validate(raw)


def read_raw(path: Path) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The config mapping of a file, and its ``scales`` (name -> {dotted key: value}), taken out of it."""
    raw = parse_yaml(read_config_text(path), str(path))
    if raw is None:
        raise ConfigError(f"{path}: the config file is empty")
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the config must be a mapping of fields, got {_kind(raw)}")
    scales = raw.pop(SCALES, None) or {}
    if not isinstance(scales, dict) or not all(isinstance(k, str) and isinstance(v, dict) and
                                               all(isinstance(kk, str) for kk in v) for k, v in scales.items()):
        raise ConfigError(f"{SCALES}: give a mapping of scale names to mappings of overrides "
                          f"({{smoke: {{train.epochs: 0.1, ...}}}})")
    return raw, scales


def scale_names(path: str | Path) -> list[str]:
    """The override profiles (``scales:``) a config file declares."""
    return list(read_raw(Path(path))[1])


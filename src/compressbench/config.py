"""The experiment schema: YAML -> a frozen, typed :class:`Experiment`, validated before any work.

Every mistake becomes a :class:`ConfigError` whose message is one line naming the field path,
the bad value and what is allowed (with "did you mean" for registry names).

A config file is untrusted text: it is read by a YAML loader that builds plain data only (no
``!!python`` tags), refuses duplicate keys, and bounds the work a file can cause — its size, its
nesting depth, its number of aliases and of values after expanding them (an "alias bomb" fails in
milliseconds instead of growing to gigabytes). See the ``MAX_*`` constants.
"""

from __future__ import annotations

import difflib
import math
import re
import stat
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Iterable, Literal, Mapping

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from .adapt import AdaptParams
from .compress.budget import check_budget
from .errors import UserError
from .fields import MAX_BATCH_SIZE, Epochs, FinetuneEpochs, Fraction, ImageSize, PositiveFloat, Seed
from .interfaces import Budget
from .layouts import ReportLayout, check_layout
from .registry import UnknownNameError, datasets, evaluators, methods, models

# Limits on what a config may cost to read, far above any real experiment file (the shipped ones
# are 2-4 KB with at most 240 values and 9 levels) and low enough that the pure-Python YAML parser
# (~15,000 values/s on a busy 2-core machine) rejects the worst file allowed in well under a second.
MAX_CONFIG_BYTES = 64 * 1024
MAX_OVERRIDE_CHARS = 4096  # one --set value
MAX_DEPTH = 64  # nesting levels (YAML and the Python API)
MAX_NODES = 5_000  # values in a document, counted after expanding aliases
MAX_ALIASES = 1_000  # alias uses (*name) in a document
_MERGE_TAG = "tag:yaml.org,2002:merge"


class ConfigError(UserError, ValueError):
    """A bad experiment config. ``str()`` is a single line (line breaks in a message are folded)."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split("\n")))


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
    name: str = Field(max_length=100)
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

    @field_validator("name")
    @classmethod
    def _slug(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", v):
            raise ValueError("use letters, digits, '-', '_' or '.' (it names files)")
        return v

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


def _dym(name: Any, known: Iterable[Any]) -> str:
    close = difflib.get_close_matches(str(name), [str(k) for k in known], n=1, cutoff=0.5)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _fmt_loc(loc: Iterable[Any]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _join(prefix: str, loc: str) -> str:
    if not prefix or not loc:
        return prefix or loc
    return prefix + loc if loc.startswith("[") else f"{prefix}.{loc}"


def _short(v: Any) -> str:
    s = repr(v)
    return s if len(s) <= 60 else s[:57] + "..."


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


# ------------------------------------------------------------------ values no schema accepts
def check_data(obj: Any, where: str = "") -> None:
    """Reject, with the path, what no field of any schema accepts: non-finite floats (``.inf``,
    ``.nan`` overflow a training loop or store NaN rows), integers beyond 64 bits, nesting deeper
    than ``MAX_DEPTH`` and more than ``MAX_NODES`` values (also bounds self-referencing data)."""
    stack: list[tuple[Any, str, int]] = [(obj, where, 0)]
    count = 0
    while stack:
        v, path, depth = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise ConfigError(f"{where or 'config'}: more than {MAX_NODES:,} values; a config is not a data file")
        if isinstance(v, bool) or v is None or isinstance(v, str):
            continue
        if isinstance(v, float):
            if not math.isfinite(v):
                raise ConfigError(f"{path or 'config'}: {v} is not a finite number (.inf and .nan are not allowed)")
        elif isinstance(v, int):
            if not -(2**63) <= v < 2**63:
                raise ConfigError(f"{path or 'config'}: {v} is out of range (integers must fit in 64 bits)")
        elif isinstance(v, (dict, list, tuple)):
            if depth >= MAX_DEPTH:
                raise ConfigError(f"{path or 'config'}: nested deeper than {MAX_DEPTH} levels")
            if count + len(v) > MAX_NODES:
                raise ConfigError(f"{where or 'config'}: more than {MAX_NODES:,} values; a config is not a data file")
            items = list(v.items() if isinstance(v, dict) else enumerate(v))
            for k, child in reversed(items):  # reversed: the first bad value in file order is reported
                sub = _join(path, f"[{k}]") if not isinstance(v, dict) else _join(path, str(k))
                stack.append((child, sub, depth + 1))


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


# ------------------------------------------------------------------ reading YAML safely
def read_config_text(path: str | Path) -> str:
    """The text of a config file: at most ``MAX_CONFIG_BYTES``, UTF-8 (a BOM is allowed), no NUL bytes."""
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise ConfigError(f"{p}: no such config file") from None
    except OSError as e:
        raise ConfigError(f"{p}: cannot read the config file ({e.strerror or type(e).__name__})") from None
    if stat.S_ISDIR(st.st_mode):
        raise ConfigError(f"{p}: is a directory, not a config file")
    too_big = f"{p}: a config file may be at most {MAX_CONFIG_BYTES:,} bytes"
    if st.st_size > MAX_CONFIG_BYTES:
        raise ConfigError(f"{too_big}; this one has {st.st_size:,}")
    try:
        with open(p, "rb") as f:  # bounded read: also safe on pipes and devices
            data = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as e:
        raise ConfigError(f"{p}: cannot read the config file ({e.strerror or type(e).__name__})") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(too_big)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{p}: not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start}); "
                          f"a config is a YAML text file") from None
    if "\x00" in text:
        raise ConfigError(f"{p}: a binary file (NUL byte at offset {data.index(0)}), not a YAML config")
    return text


class _LimitError(yaml.MarkedYAMLError):
    """A document beyond the loader's limits (not a syntax error)."""


class ConfigLoader(yaml.SafeLoader):
    """PyYAML's SafeLoader (plain data only) that also refuses duplicate keys, recursive aliases, tags
    it does not know, and documents beyond ``MAX_DEPTH`` / ``MAX_ALIASES`` / ``MAX_NODES``. The node
    count is checked as nodes are composed, and each node's size *after* alias expansion is known
    when it completes, so an alias bomb fails at its first oversized level, before any construction."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._aliases = 0
        self._composed = 0
        self._weight: dict[int, int] = {}  # id(node) -> values under it, aliases expanded

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(AliasEvent):
            event = self.peek_event()
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise _LimitError(None, None, f"more than {MAX_ALIASES:,} aliases", event.start_mark)
            node = super().compose_node(parent, index)
            if id(node) not in self._weight:
                raise _LimitError(None, None, f"alias '*{event.anchor}' refers to a value that contains it",
                                  event.start_mark)
            return node
        self._composed += 1
        self._depth += 1
        try:
            if self._composed > MAX_NODES:
                raise _LimitError(None, None, f"more than {MAX_NODES:,} values", self.peek_event().start_mark)
            if self._depth > MAX_DEPTH:
                raise _LimitError(None, None, f"nested deeper than {MAX_DEPTH} levels", self.peek_event().start_mark)
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        w = 1
        if isinstance(node, SequenceNode):
            w += sum(self._weight.get(id(c), 1) for c in node.value)
        elif isinstance(node, MappingNode):
            w += sum(self._weight.get(id(k), 1) + self._weight.get(id(v), 1) for k, v in node.value)
        if w > MAX_NODES:
            raise _LimitError(None, None, f"more than {MAX_NODES:,} values once aliases are expanded",
                              node.start_mark)
        self._weight[id(node)] = w
        return node

    def fetch_flow_collection_start(self, TokenClass: Any) -> None:  # noqa: N803 (PyYAML's name)
        # the scanner looks ahead over every open '[' / '{' for a possible key: bound the nesting
        # here, before that lookahead becomes quadratic (5,000 levels took seconds to reject)
        if self.flow_level >= MAX_DEPTH:
            raise _LimitError(None, None, f"nested deeper than {MAX_DEPTH} levels", self.get_mark())
        super().fetch_flow_collection_start(TokenClass)

    def compose_mapping_node(self, anchor: Any) -> Any:
        node = super().compose_mapping_node(anchor)
        first: dict[tuple[str, str], Any] = {}
        for key, _ in node.value:
            if isinstance(key, ScalarNode) and key.tag != _MERGE_TAG:
                ident = (key.tag, key.value)
                if ident in first:
                    raise _LimitError(None, None, f"duplicate key '{key.value}' (first at line "
                                      f"{first[ident].line + 1}); each key may appear once", key.start_mark)
                first[ident] = key.start_mark
        return node

    def construct_undefined(self, node: Any) -> Any:
        tag = str(node.tag).replace("tag:yaml.org,2002:", "!!")
        raise _LimitError(None, None, f"the tag '{tag}' is not allowed: a config is plain data "
                          f"(mappings, lists, strings, numbers, booleans)", node.start_mark)


ConfigLoader.add_constructor(None, ConfigLoader.construct_undefined)


def parse_yaml(text: str, source: str) -> Any:
    """Parse YAML text with :class:`ConfigLoader`; every failure is one :class:`ConfigError` line."""
    loader = None
    try:
        loader = ConfigLoader(text)  # the reader checks the characters here already
        return loader.get_single_data()
    except _LimitError as e:
        mark = e.problem_mark
        raise ConfigError(f"{source}: line {mark.line + 1}, column {mark.column + 1}: {e.problem}") from None
    except yaml.reader.ReaderError as e:
        raise ConfigError(f"{source}: not YAML text: character #x{e.character:04x} at offset {e.position} is not "
                          f"allowed") from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{source}: not valid YAML{where}: {e.problem or e.context}") from None
    except yaml.YAMLError as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ConfigError(f"{source}: not valid YAML: {first}") from None
    except RecursionError:  # a safety net: the depth limit fails first
        raise ConfigError(f"{source}: nested too deeply") from None
    finally:
        if loader is not None:
            loader.dispose()


# ------------------------------------------------------------------ --set overrides
def parse_override(item: str) -> tuple[str, Any]:
    """``"train.epochs=1"`` -> ``("train.epochs", 1)``: the value is YAML (``[0, 1]``, ``null``, ``0.5``)."""
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--set expects KEY=VALUE (e.g. train.epochs=1), got {_short(item)}")
    if any(not part.strip() for part in key.split(".")):
        raise ConfigError(f"--set {key}: empty part in the key; use dots between field names "
                          f"(train.epochs) and numbers for list items (variants.0.method)")
    if len(text) > MAX_OVERRIDE_CHARS:
        raise ConfigError(f"--set {key}: the value has {len(text):,} characters; at most {MAX_OVERRIDE_CHARS:,}")
    return key, parse_yaml(text, f"--set {key}")


def _kind(v: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "a number",
            float: "a number", type(None): "null"}.get(type(v), type(v).__name__)


def apply_override(raw: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``dotted`` (``train.epochs``, ``variants.0.params.finetune.epochs``) in ``raw``: missing or
    null mappings on the way are created, list items are addressed by index (0-based, within range)."""
    parts = [p.strip() for p in dotted.split(".")]
    cur: Any = raw
    path: list[Any] = []
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        here = _fmt_loc(path) or "the config"
        if isinstance(cur, dict):
            if last:
                cur[part] = value
                return
            if cur.get(part) is None:
                cur[part] = {}
            nxt = cur[part]
            path.append(part)
        elif isinstance(cur, list):
            if not part.isdigit():
                raise ConfigError(f"--set {dotted}: {here} is a list; address its items by index "
                                  f"(0..{len(cur) - 1}), not '{part}'")
            idx = int(part)
            if idx >= len(cur):
                raise ConfigError(f"--set {dotted}: {here} has {len(cur)} item(s); index {idx} is out of range")
            if last:
                cur[idx] = value
                return
            nxt = cur[idx]
            path.append(idx)
        else:
            raise ConfigError(f"--set {dotted}: {here} is {_kind(cur)} ({_short(cur)}), not a mapping; "
                              f"cannot set '{part}' inside it")
        cur = nxt

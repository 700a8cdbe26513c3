"""The experiment schema: YAML -> a frozen, typed :class:`Experiment`, validated before any work.

Every mistake becomes a :class:`ConfigError` whose message is one line naming the field path,
the bad value and what is allowed (with "did you mean" for registry names).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .adapt import AdaptParams
from .compress.budget import check_budget
from .errors import UserError
from .interfaces import Budget
from .registry import UnknownNameError, datasets, evaluators, methods, models


class ConfigError(UserError, ValueError):
    """A bad experiment config. ``str()`` is a single line."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DomainSplitConfig(_Strict):
    """How a dataset with domains is split (``data.domains``): the source's held-out test fraction
    (stratified, seeded) and, optionally, a held-out fraction of each target that adaptation never sees
    (None: the transductive protocol — adaptation sees every target image, unlabeled)."""

    test_fraction: float = Field(0.2, gt=0, lt=1)
    seed: int = Field(0, ge=0)
    target_holdout: float | None = Field(None, gt=0, lt=1)


class DatasetConfig(_Strict):
    name: str
    root: str | None = None  # folder to look in first
    eval_subset: int | None = Field(None, gt=0)  # fixed seeded test subset for costly evaluators
    train_subset: int | None = Field(None, gt=0)  # use only the first N (seeded) training images
    download: bool = True
    options: dict[str, Any] = {}  # loader-specific options (e.g. size for imagefolder)
    # datasets with named domains (data.domains): train on `source`, evaluate on `targets`; a list of
    # sources runs one sibling experiment `<name>.<source>` per source in the same store
    source: str | list[str] | None = None
    targets: list[str] | None = None
    domain_split: DomainSplitConfig | None = None


class ModelConfig(_Strict):
    name: str
    width: float = Field(1.0, gt=0)
    kwargs: dict[str, Any] = {}


class TrainConfig(_Strict):
    epochs: float = Field(3, gt=0)
    batch_size: int = Field(128, gt=0)
    optimizer: Literal["sgd", "adam", "adamw"] = "sgd"
    lr: float = Field(0.05, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(5e-4, ge=0)
    schedule: Literal["cosine", "onecycle", "step", "constant"] = "onecycle"
    step_size: float = Field(1.0, gt=0)
    gamma: float = Field(0.1, gt=0, le=1)
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    augment: Literal["auto", "none", "crop", "flip_crop"] = "auto"
    warmup_epochs: float = Field(0.0, ge=0)
    amp: bool = True
    adapt: AdaptParams | None = None  # domain adaptation of the baseline, e.g. {method: coral, weight: 1}


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


class Experiment(_Strict):
    name: str
    seeds: list[int] = Field([0], min_length=1)
    dataset: DatasetConfig
    model: ModelConfig
    train: TrainConfig = TrainConfig()
    variants: list[VariantConfig] = []
    evaluations: list[EvaluationConfig] = [EvaluationConfig(evaluator="clean")]
    device: str = "auto"
    threads: int | None = Field(None, gt=0)
    cache_dir: str = ".compressbench/cache"
    store: str | None = None  # default: results/<name>.sqlite
    executor: Literal["local", "ray"] = "local"

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


def _dym(name: str, known) -> str:
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.5)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _fmt_loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _short(v: Any) -> str:
    s = repr(v)
    return s if len(s) <= 60 else s[:57] + "..."


def _from_validation_error(e: ValidationError, prefix: str = "") -> ConfigError:
    err = e.errors()[0]
    loc = _fmt_loc(tuple(err["loc"]))
    where = ".".join(p for p in (prefix, loc) if p)
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "missing":
        return ConfigError(f"{where}: required field is missing")
    if err["type"] == "extra_forbidden":
        field = str(err["loc"][-1])
        return ConfigError(f"{where}: unknown field{_dym(field, _allowed_fields(e, err))}")
    extra = f" ({len(e.errors()) - 1} more error(s))" if len(e.errors()) > 1 else ""
    return ConfigError(f"{where}: {msg}; got {_short(err.get('input'))}{extra}")


def _allowed_fields(e: ValidationError, err: dict) -> list[str]:
    """Best effort: field names of the model the extra field sits in (for did-you-mean)."""
    cls = _SCHEMA_BY_TITLE.get(e.title)
    if cls is None:
        return []
    for part in err["loc"][:-1]:
        if isinstance(part, int) or cls is None:
            continue
        f = cls.model_fields.get(part)
        ann = getattr(f, "annotation", None) if f else None
        args = getattr(ann, "__args__", ()) or ()
        nxt = next((a for a in (ann, *args) if isinstance(a, type) and issubclass(a, BaseModel)), None)
        cls = nxt
    return list(cls.model_fields) if cls else []


_SCHEMA_BY_TITLE: dict[str, type[BaseModel]] = {"Experiment": Experiment}


def _check_name(reg, name: str, where: str) -> str:
    """The registered name for ``name``: a registered name, or a ``"pkg.mod:obj"`` the user wrote
    (imported here: the config is the user's)."""
    try:
        return reg.resolve(name)
    except UnknownNameError as e:
        raise ConfigError(f"{where}: {e}") from None


def _validate_params(spec: Any, raw: dict, where: str) -> Any:
    schema = spec.params
    if schema is None:
        if raw:
            raise ConfigError(f"{where}: this takes no parameters; got {_short(raw)}")
        return None
    try:
        return schema.model_validate(raw)
    except ValidationError as e:
        err = e.errors()[0]
        if err["type"] == "extra_forbidden":
            field = str(err["loc"][-1])
            loc = _fmt_loc(tuple(err["loc"]))
            return _raise(f"{where}.{loc}: unknown parameter{_dym(field, schema.model_fields)}; "
                          f"allowed: {', '.join(schema.model_fields)}")
        raise _from_validation_error(e, where) from None


def _raise(msg: str):
    raise ConfigError(msg)


def resolve_variants(exp: Experiment) -> list[ResolvedVariant]:
    """Expand budgets lists, validate each method's params and budgets (reachability included)."""
    out: list[ResolvedVariant] = []
    for i, v in enumerate(exp.variants):
        where = f"variants[{i}]"
        method = _check_name(methods, v.method, f"{where}.method")
        spec = methods.spec(method)
        params = _validate_params(spec, v.params, f"{where}.params")
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
                raise ConfigError(f"{where}.budget: {b.label()} is unreachable for '{v.method}': {msg}")
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
        params = _validate_params(evaluators.spec(ev.evaluator), ev.params, f"{where}.params")
        for j, vn in enumerate(ev.variants or []):
            if vn not in variant_names and vn != "baseline":
                raise ConfigError(f"{where}.variants[{j}]: unknown variant '{vn}'{_dym(vn, variant_names)}; "
                                  f"known: baseline, {', '.join(variant_names)}")
        out.append((ev, params))
    return out


def validate(raw: dict[str, Any]) -> Experiment:
    """Validate a config dict completely (schema, registry names, params, budgets)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"the config must be a mapping of fields, got {type(raw).__name__}")
    try:
        exp = Experiment.model_validate(raw)
    except ValidationError as e:
        raise _from_validation_error(e) from None
    _check_name(datasets, exp.dataset.name, "dataset.name")
    _check_name(models, exp.model.name, "model.name")
    variants = resolve_variants(exp)
    resolve_evaluations(exp, [v.name for v in variants])
    from .domain_config import check_domains  # datasets with domains, adaptation (imports this module)

    check_domains(exp, variants)
    return exp


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> Experiment:
    """Read a YAML experiment file and validate it. Raises ConfigError (one line)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: no such config file")
    try:
        raw = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{p}: not valid YAML{where}: {getattr(e, 'problem', e)}") from None
    raw = raw or {}
    for k, v in (overrides or {}).items():
        _set_path(raw, k, v)
    return validate(raw)


def _set_path(d: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    for k in keys[:-1]:
        d = d.setdefault(k, {})
    d[keys[-1]] = value

"""Validating a mapping against a pydantic schema, with every mistake as one line: the field path (union
member tags dropped), what is wrong, the bad value, and for an unknown key the keys allowed *at that
depth* (``variants[0].params.finetune.epoch`` lists the fine-tune fields). Used for the experiment
schema itself and for every component's params / options (methods, evaluators, datasets, executors).
"""

from __future__ import annotations

import typing
from typing import Any, Mapping

from pydantic import BaseModel, ValidationError

from ..errors import ConfigError, UserError, did_you_mean
from .text import _fmt_loc, _join, _short, check_data


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


def _step(members: list[Any], part: Any) -> list[Any]:
    """The annotations one location part leads to from ``members``."""
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
    return nxt


def _resolve_loc(root: Any, loc: tuple) -> tuple[list[Any], list[Any]]:
    """Follow a pydantic error location through nested schemas: (the location without union-member
    tags, the candidate annotations at its end)."""
    shown: list[Any] = []
    anns = [root] if root is not None else []
    for part in loc:
        members = [m for a in anns for m in _members(a)]
        tagged = [m for m in members if isinstance(part, str) and _tag(m) == part]
        if tagged and len(members) > 1:  # a union member's tag: choose it, do not show it
            anns = tagged
            continue
        shown.append(part)
        anns = _step(members, part)
    return shown, anns


def _fields_at(root: Any, loc: tuple) -> list[str]:
    """Field names of the schema a location points into ([] when unknown)."""
    _, anns = _resolve_loc(root, loc)
    for m in (m for a in anns for m in _members(a)):
        if isinstance(m, type) and issubclass(m, BaseModel):
            return list(m.model_fields)
    return []


def one_line_error(e: ValidationError, prefix: str = "", root: Any = None, kind: str = "field") -> ConfigError:
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
        return ConfigError(f"{where}: unknown {kind}{did_you_mean(loc[-1], allowed)}{tail}")
    msg = err["msg"].removeprefix("Value error, ")
    extra = f" ({len(errs) - 1} more error(s))" if len(errs) > 1 else ""
    got = _short(err.get("input"))
    return ConfigError(f"{where}: {msg}" + ("" if got in msg else f"; got {got}") + extra)


def validate_params(
    schema: type[BaseModel] | None, raw: Mapping[str, Any], where: str, kind: str = "parameter", owner: str = "this"
) -> Any:
    """Validate a component's params dict against its schema (``None``: it takes none). Errors name the
    path under ``where`` and, for an unknown key at any depth, the keys allowed there."""
    if schema is None:
        if raw:
            raise ConfigError(f"{where}: {owner} takes no {kind}s; got {_short(dict(raw))}")
        return None
    try:
        params = schema.model_validate(raw)
    except ValidationError as e:
        raise one_line_error(e, where, schema, kind) from None
    except UserError as e:  # a schema validator that raised one of ours directly
        raise ConfigError(f"{where}: {e}") from None
    check_data(params.model_dump(), where)  # e.g. "inf" given as a string to a float field
    return params

"""The variants entries a goal's search runs: one budget (or none) each, named as a budgets list names them."""

from __future__ import annotations

from typing import Any


def single(
    entry: dict[str, Any],
    name: str,
    kind: str | None = None,
    value: float | None = None,
    params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A single-variant entry (``name``, one budget or none) from a variants entry."""
    out = {"method": entry["method"], "name": name, "params": params if params is not None else entry.get("params", {})}
    if kind is not None:
        out["budget"] = {kind: value}
    return out


__all__ = ["single"]

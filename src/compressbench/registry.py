"""One generic, typed registry for every extension point.

A decorator registers an object under a name; unknown names fail with the list of known
names and a "did you mean". Heavy optional backends can be registered lazily as a
``"pkg.mod:obj"`` string that is imported on first use.
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Iterator, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError, ValueError):
    """An unknown registry name. ``str()`` is one readable line."""

    def __init__(self, kind: str, name: str, known: list[str]):
        self.kind, self.name, self.known = kind, name, known
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        self.message = f"unknown {kind} '{name}'{hint} (known: {', '.join(known) or 'none'})"
        super().__init__(self.message)

    def __str__(self) -> str:  # KeyError would repr() the message otherwise
        return self.message


def import_object(path: str) -> Any:
    """Import ``"package.module:attr"`` (attr may be dotted)."""
    if ":" not in path:
        raise ValueError(f"'{path}' is not of the form 'package.module:object'")
    mod_name, attr = path.split(":", 1)
    obj: Any = importlib.import_module(mod_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


@dataclass
class Entry(Generic[T]):
    name: str
    target: T | str  # the object, or a lazy "pkg.mod:obj" string
    meta: dict[str, Any] = field(default_factory=dict)

    def load(self) -> T:
        if isinstance(self.target, str):
            self.target = import_object(self.target)
        return self.target  # type: ignore[return-value]


class Registry(Generic[T]):
    """Name -> object, with metadata (description, params schema, version, ...)."""

    def __init__(self, kind: str, loader: str | None = None):
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}
        # module imported on first lookup so that built-ins self-register lazily
        self._loader = loader
        self._loaded = loader is None

    def _ensure_loaded(self) -> None:
        if not self._loaded:
            self._loaded = True
            importlib.import_module(self._loader)  # type: ignore[arg-type]

    def register(self, name: str, target: T | str | None = None, **meta: Any) -> Callable[[T], T] | T:
        """``@reg.register("name", version=1)`` or ``reg.register("name", "pkg.mod:obj")``."""
        if target is not None:
            self._add(name, target, meta)
            return target  # type: ignore[return-value]

        def deco(obj: T) -> T:
            self._add(name, obj, meta)
            return obj

        return deco

    def _add(self, name: str, target: T | str, meta: dict[str, Any]) -> None:
        if name in self._entries and self._entries[name].target is not target:
            raise ValueError(f"{self.kind} '{name}' is already registered")
        meta.setdefault("version", 1)
        self._entries[name] = Entry(name, target, meta)

    def unregister(self, name: str) -> None:
        """Remove an entry (for tests and plugins that register temporarily)."""
        self.entry(name)  # unknown name -> the usual one-line error
        del self._entries[name]

    def entry(self, name: str) -> Entry[T]:
        self._ensure_loaded()
        if name not in self._entries:
            raise UnknownNameError(self.kind, name, self.names())
        return self._entries[name]

    def get(self, name: str) -> T:
        return self.entry(name).load()

    def meta(self, name: str) -> dict[str, Any]:
        return self.entry(name).meta

    def names(self) -> list[str]:
        self._ensure_loaded()
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        self._ensure_loaded()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())


# The project's extension points. Each loader module registers the built-ins.
datasets: Registry[Any] = Registry("dataset", "compressbench.data")
models: Registry[Any] = Registry("model", "compressbench.models")
methods: Registry[Any] = Registry("method", "compressbench.compress")
evaluators: Registry[Any] = Registry("evaluator", "compressbench.evaluate")
corruptions: Registry[Any] = Registry("corruption", "compressbench.evaluate.corruptions")
attacks: Registry[Any] = Registry("attack", "compressbench.evaluate.attacks")

ALL = {
    "datasets": datasets,
    "models": models,
    "methods": methods,
    "evaluators": evaluators,
    "corruptions": corruptions,
    "attacks": attacks,
}

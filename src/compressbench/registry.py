"""One generic, typed registry per extension point.

A decorator registers an object under a name together with its *spec* (``specs.py``): the keyword
arguments of ``register`` build the registry's spec class, so a mistyped field fails at import time.
Unknown names fail with the list of known names and a "did you mean".

Plugins (docs/architecture.md, convention 14: data never chooses code):

* ``"pkg.mod:obj"`` written by the user in a config or a flag is imported by :meth:`Registry.resolve`
  (importing the module registers ``obj``; a model factory needs no registration). Nothing else
  imports: a name read from a checkpoint, a cache record or a job spec only looks up what is
  registered already.
* installed packages register through the ``compressbench.plugins`` entry-point group (each entry
  point is a module that registers on import, or a callable taking no arguments), loaded once, the
  first time any registry is used.
* *declarations*: a registry may know its built-ins before their code is imported. Its ``catalog`` module
  (torch-free, :mod:`compressbench.catalog`) :meth:`~Registry.declare`-s each built-in's name and what
  ``compressbench list`` shows (description, version, params schema, budgets, suites); the implementation
  (the ``loader`` module, torch code) is imported the first time an object or a full spec is asked for.
  :meth:`Registry.names`, :meth:`Registry.resolve` of a declared name, :meth:`Registry.declared` and
  :meth:`Registry.sources` import no implementation. The declaration is the one source of a built-in's
  declared fields: its implementation's :meth:`~Registry.register` gives only the fields it does not hold
  (code: apply functions, cost hooks, kernels, checks) and the spec is built from both; a field given at both
  places is a ``TypeError``. A name with no declaration (a plug-in) registers every field at the call site.
* *name families* of an installed library (``"timm:<architecture>"``, ``"torchvision:<model>"``) are
  served by a source (:meth:`Registry.add_source`): the first lookup of such a name asks the library
  whether it knows it and registers it. Nothing is imported but the library itself, so a checkpoint
  may name these (docs/architecture.md, convention 14).
"""

from __future__ import annotations

import difflib
import importlib
import logging
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Iterable, Iterator, Mapping, TypeVar

from .errors import UserError
from .specs import (
    AttackSpec,
    ComponentSpec,
    CorruptionSpec,
    CriterionSpec,
    DatasetSpec,
    EvaluatorSpec,
    ExecutorSpec,
    MethodSpec,
    ModelSpec,
)

T = TypeVar("T")
S = TypeVar("S", bound=ComponentSpec)

log = logging.getLogger(__name__)

PLUGIN_GROUP = "compressbench.plugins"
_OBJECT_PATH = re.compile(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*")


class UnknownNameError(UserError, KeyError, ValueError):
    """An unknown registry name. ``str()`` is one readable line."""

    def __init__(
        self, kind: str, name: str, known: list[str], message: str | None = None, families: Iterable[str] = ()
    ):
        self.kind, self.name, self.known = kind, name, known
        # a library's bare name ("resnet18"): the registered names ending in it ("tv_resnet18") and the name
        # families that serve libraries' names ("torchvision:resnet18"), before mere spelling neighbours
        same = sorted((k for k in known if k.lower().endswith(("_" + name.lower(), ":" + name.lower()))), key=len)
        if same and ":" not in name:
            same += [f"{p}{name}" for p in families]
        close = list(dict.fromkeys(same))[:3] or difflib.get_close_matches(name, known, n=1, cutoff=0.5)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        self.message = message or f"unknown {kind} '{name}'{hint} (known: {', '.join(known) or 'none'})"
        super().__init__(self.message)

    def __str__(self) -> str:  # KeyError would repr() the message otherwise
        return self.message


def is_object_path(name: str) -> bool:
    """``"package.module:object"`` (what a user writes to name code outside the registries)."""
    return bool(_OBJECT_PATH.fullmatch(name))


def import_object(path: str) -> Any:
    """Import ``"package.module:attr"`` (attr may be dotted). Only call this on a name the user wrote."""
    if ":" not in path:
        raise ValueError(f"'{path}' is not of the form 'package.module:object'")
    mod_name, attr = path.split(":", 1)
    obj: Any = importlib.import_module(mod_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


@dataclass
class Entry(Generic[T, S]):
    name: str
    target: T | str  # the object, or a lazy "pkg.mod:obj" string (built-in backends only)
    spec: S

    def load(self) -> T:
        if isinstance(self.target, str):
            self.target = import_object(self.target)
        return self.target  # type: ignore[return-value]


@dataclass(frozen=True)
class Declaration:
    """What a registry knows of a component without importing its code: what ``compressbench list`` shows
    and the params schema. For a built-in, its catalog module declares it (``Registry.declare``) and its
    implementation registers only the other fields: :meth:`Registry.register` builds the spec from both."""

    name: str
    description: str = ""
    version: int = 1
    params: type | None = None
    budgets: tuple[str, ...] = ()
    suites: tuple[str, ...] = ()
    # more spec fields, declared where torch-free code needs them before the implementation is loaded (an
    # attack's norms for validating an ``attacks:`` entry): {field: value}
    fields: Mapping[str, Any] = field(default_factory=dict)

    def spec_fields(self, allowed: Iterable[str]) -> dict[str, Any]:
        """The spec fields this declaration holds, of those in ``allowed`` (the registry's spec class):
        the listed ones (``description``, ``version``, ``params``, ``budgets``, ``suites``; each held, at
        its default where not given) and the extra ``fields``."""
        allowed = set(allowed)
        listed = {k: getattr(self, k) for k in ("description", "version", "params", "budgets", "suites")}
        return {k: v for k, v in listed.items() if k in allowed} | dict(self.fields)

    @classmethod
    def of(cls, name: str, spec: ComponentSpec) -> Declaration:
        """The declaration a registered spec amounts to."""
        return cls(
            name,
            spec.description,
            spec.version,
            spec.params,
            tuple(getattr(spec, "budgets", ())),
            tuple(getattr(spec, "suites", ())),
        )


_plugins_loaded = False
_plugins: list[str] = []  # "name = value" of each entry point loaded


def load_plugins() -> None:
    """Load the ``compressbench.plugins`` entry points of installed packages (once)."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    from importlib.metadata import entry_points

    for ep in entry_points(group=PLUGIN_GROUP):
        try:
            obj = ep.load()
            if callable(obj) and not isinstance(obj, type(importlib)):
                obj()
            _plugins.append(f"{ep.name} = {ep.value}")
        except Exception as e:  # a broken plugin must not break the tool: say which one
            log.warning("plugin %s (%s) failed to load: %s: %s", ep.name, ep.value, type(e).__name__, e)


def loaded_plugins() -> list[str]:
    """The entry points :func:`load_plugins` loaded in this process (``name = value``)."""
    return list(_plugins)


class Registry(Generic[T, S]):
    """Name -> (object, spec). ``spec``: the registry's spec class (``specs.py``)."""

    def __init__(
        self,
        kind: str,
        loader: str | None = None,
        spec: type[S] = ComponentSpec,  # type: ignore[assignment]
        adopt: Callable[[Any], bool] | None = None,
        catalog: str | None = None,
    ):
        self.kind = kind
        self.spec_cls = spec
        self._entries: dict[str, Entry[T, S]] = {}
        self._aliases: dict[str, str] = {}
        # module imported on first lookup so that built-ins self-register lazily
        self._loader = loader
        self._loaded = loader is None
        # torch-free module that declares the built-ins (their code stays unimported until needed)
        self._catalog = catalog
        self._catalog_loaded = False
        self._declared: dict[str, Declaration] = {}
        self._declared_sources: dict[str, str] = {}
        # for "pkg.mod:obj" names: may an unregistered object be registered on the fly (model factories)?
        self._adopt = adopt
        # name families served by an installed library: prefix -> fn(name) -> (object, spec)
        self._sources: dict[str, Callable[[str], tuple[Any, S]]] = {}
        self._source_help: dict[str, str] = {}

    def add_source(self, prefix: str, fn: Callable[[str], tuple[Any, S]], description: str = "") -> None:
        """Serve every name starting with ``prefix`` (e.g. ``"timm:"``) from ``fn(name) -> (object, spec)``,
        which raises :class:`UnknownNameError` (one line) for a name its library does not know."""
        self._sources[prefix] = fn
        self._source_help[prefix] = description

    def sources(self) -> dict[str, str]:
        """{prefix: description} of the name families served by libraries (for ``compressbench list``)."""
        self._ensure_declared()
        return {**self._declared_sources, **self._source_help}

    def serves(self, name: str) -> bool:
        """Whether ``name`` belongs to a name family a library serves here (never loads anything)."""
        return any(name.startswith(p) for p in self._sources)

    def source_of(self, name: str) -> str | None:
        """The prefix of the name family ``name`` belongs to (None: an ordinary name)."""
        self._ensure_loaded()
        return next((p for p in self._sources if name.startswith(p)), None)

    def _from_source(self, name: str) -> bool:
        prefix = self.source_of(name)
        if prefix is None:
            return False
        if name not in self._entries:
            target, spec = self._sources[prefix](name)
            self._add(name, target, spec)
        return True

    def _ensure_loaded(self) -> None:
        if not self._loaded:
            self._loaded = True
            importlib.import_module(self._loader)  # type: ignore[arg-type]
            load_plugins()

    def _ensure_declared(self) -> None:
        """The catalog's declarations and the plug-ins, without the built-ins' code (a registry without a
        catalog loads its code)."""
        if self._catalog is None:
            self._ensure_loaded()
        elif not self._catalog_loaded:
            self._catalog_loaded = True
            importlib.import_module(self._catalog)
            load_plugins()

    def _declaration(self, name: str) -> Declaration | None:
        """``name``'s declaration, importing the catalog module (only: no plug-ins, no implementation) when
        an implementation registers before anything else used the registry."""
        if self._catalog is not None and name not in self._declared:
            importlib.import_module(self._catalog)
        return self._declared.get(name)

    def declare(
        self,
        name: str,
        *,
        description: str,
        version: int = 1,
        params: type | None = None,
        budgets: tuple[str, ...] = (),
        suites: tuple[str, ...] = (),
        **fields: Any,
    ) -> None:
        """Declare a built-in without importing its code (in the registry's ``catalog`` module); its
        implementation registers under the same name with only the fields not declared here (:meth:`register`
        takes these from the declaration). ``fields``: more of its spec's fields (plain data, or hooks that
        live in the catalog) that torch-free code reads through :meth:`field`."""
        bad = [k for k in fields if k not in self.spec_cls.field_names()]
        if bad:
            allowed = ", ".join(self.spec_cls.field_names())
            raise TypeError(f"unknown {self.kind} spec field(s) {bad}; allowed: {allowed}")
        self._declared[name] = Declaration(
            name, description, version, params, tuple(budgets), tuple(suites), dict(fields)
        )

    def declarations(self) -> tuple[dict[str, Declaration], dict[str, str]]:
        """The catalog's declarations and declared name families (:meth:`declare`, :meth:`declare_source`),
        for the test that checks them against the registered specs."""
        self._ensure_declared()
        return dict(self._declared), dict(self._declared_sources)

    def field(self, name: str, key: str) -> Any:
        """One field of ``name``'s spec: from its declaration while its code is not loaded and the field is
        declared (nothing imported), else from the registered spec."""
        self._ensure_declared()
        name = self._aliases.get(name, name)
        d = self._declared.get(name)
        if name not in self._entries and d is not None:
            if key in d.fields:
                return d.fields[key]
            if key in ("description", "version", "params", "budgets", "suites"):
                return getattr(d, key)
        return getattr(self.entry(name).spec, key)

    def declare_source(self, prefix: str, description: str) -> None:
        """Declare a name family (:meth:`add_source`) for the listing; its module adds the source itself."""
        self._declared_sources[prefix] = description

    def declared(self, name: str) -> Declaration:
        """What ``compressbench list`` shows of ``name``: its spec's, when its code is loaded (or it has no
        declaration), else its declaration (nothing imported)."""
        self._ensure_declared()
        name = self._aliases.get(name, name)
        if name not in self._entries and name in self._declared:
            return self._declared[name]
        return Declaration.of(self.entry(name).name, self.entry(name).spec)

    def make_spec(self, fields: dict[str, Any]) -> S:
        allowed = self.spec_cls.field_names()
        bad = [k for k in fields if k not in allowed]
        if bad:
            raise TypeError(f"unknown {self.kind} spec field(s) {bad}; allowed: {', '.join(allowed)}")
        return self.spec_cls(**fields)

    def register(
        self, name: str, target: T | str | None = None, *, spec: S | None = None, **fields: Any
    ) -> Callable[[T], T] | T:
        """``@reg.register("name", version=1, ...)`` or ``reg.register("name", obj_or_"pkg.mod:obj", ...)``.
        ``fields`` build the registry's spec (or pass a ready ``spec``).

        A declared name (a built-in, :meth:`declare`) takes its declared fields from the declaration: pass only
        the others (code-side fields). Giving a declared field here too, or a ready ``spec``, raises
        ``TypeError``: the declaration is the one source of truth. An undeclared name (a plug-in) passes all."""
        if spec is not None and fields:
            raise TypeError("give either spec= or spec fields, not both")
        decl = self._declaration(name)
        if decl is not None:
            held = decl.spec_fields(self.spec_cls.field_names())
            both = [k for k in fields if k in held]
            if spec is not None or both:
                what = "a ready spec" if spec is not None else f"field(s) {', '.join(both)}"
                raise TypeError(
                    f"{self.kind} '{name}' is declared in {self._catalog}: register it with only the fields its "
                    f"declaration does not hold, not {what} (declared: {', '.join(held)})"
                )
            fields = {**held, **fields}
        s = spec if spec is not None else self.make_spec(fields)
        if not isinstance(s, self.spec_cls):
            raise TypeError(f"a {self.kind} needs a {self.spec_cls.__name__}, got {type(s).__name__}")
        if target is not None:
            self._add(name, target, s)
            return target  # type: ignore[return-value]

        def deco(obj: T) -> T:
            self._add(name, obj, s)
            return obj

        return deco

    def _add(self, name: str, target: T | str, spec: S) -> None:
        if name in self._entries and self._entries[name].target is not target:
            raise ValueError(f"{self.kind} '{name}' is already registered")
        self._entries[name] = Entry(name, target, spec)

    def unregister(self, name: str) -> None:
        """Remove an entry (for tests and plugins that register temporarily)."""
        e = self.entry(name)  # unknown name -> the usual one-line error
        del self._entries[e.name]
        self._declared.pop(e.name, None)
        self._aliases = {k: v for k, v in self._aliases.items() if v != e.name and k != name}

    def entry(self, name: str) -> Entry[T, S]:
        self._ensure_declared()
        name = self._aliases.get(name, name)
        if name not in self._entries:  # a declared built-in (its code), or any other name: load the built-ins
            self._ensure_loaded()
        if name not in self._entries and not self._from_source(name):
            raise UnknownNameError(self.kind, name, self.names(), families=self._sources)
        return self._entries[name]

    def resolve(self, name: str) -> str:
        """The registered name for ``name``. A ``"pkg.mod:obj"`` the user wrote is imported here (its
        module registers ``obj``); afterwards :meth:`entry` finds it under that string too. Raises
        :class:`UnknownNameError` (one line) for anything else. A declared name is resolved without
        importing its code."""
        self._ensure_declared()
        name = self._aliases.get(name, name)
        if name in self._declared:
            return name
        self._ensure_loaded()
        if name in self._entries or not is_object_path(name) or self.source_of(name):
            return self.entry(name).name
        try:
            obj = import_object(name)
        except Exception as e:  # ImportError, AttributeError, or the module's own error
            raise UnknownNameError(
                self.kind,
                name,
                self.names(),
                f"cannot import {self.kind} '{name}': {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}",
            ) from None
        for e in self._entries.values():
            if e.target is obj:
                self._aliases[name] = e.name
                return e.name
        if self._adopt is not None and self._adopt(obj):
            self._add(name, obj, self.spec_cls(description=(obj.__doc__ or "").strip().split("\n")[0]))
            return name
        raise UnknownNameError(
            self.kind,
            name,
            self.names(),
            f"'{name}' is not a registered {self.kind}: register it in its module with "
            f"@compressbench.registry.{_REGISTRY_NAMES.get(self.kind, self.kind)}.register(...)",
        )

    def get(self, name: str) -> T:
        return self.entry(name).load()

    def spec(self, name: str) -> S:
        return self.entry(name).spec

    def names(self) -> list[str]:
        """Every registered or declared name (declared built-ins are not imported)."""
        self._ensure_declared()
        return sorted({*self._entries, *self._declared})

    def items(self) -> list[tuple[str, S]]:
        """(name, full spec) of every entry (imports the built-ins' code)."""
        return [(n, self.entry(n).spec) for n in self.names()]

    def __contains__(self, name: object) -> bool:
        self._ensure_declared()
        if name in self._entries or name in self._aliases or name in self._declared:
            return True
        self._ensure_loaded()
        if name in self._entries or name in self._aliases:
            return True
        try:
            return isinstance(name, str) and self._from_source(name)
        except UnknownNameError:
            return False

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())


# The project's extension points. Each loader module registers the built-ins; each catalog module (torch-free)
# declares them.
_C = "compressbench.catalog."
datasets: Registry[Any, DatasetSpec] = Registry("dataset", "compressbench.data", DatasetSpec, catalog=_C + "data")
models: Registry[Any, ModelSpec] = Registry(
    "model", "compressbench.models", ModelSpec, adopt=callable, catalog=_C + "models"
)
methods: Registry[Any, MethodSpec] = Registry("method", "compressbench.compress", MethodSpec, catalog=_C + "methods")
evaluators: Registry[Any, EvaluatorSpec] = Registry(
    "evaluator", "compressbench.evaluate", EvaluatorSpec, catalog=_C + "evaluators"
)
corruptions: Registry[Any, CorruptionSpec] = Registry(
    "corruption", "compressbench.evaluate.corruptions", CorruptionSpec, catalog=_C + "corruptions"
)
attacks: Registry[Any, AttackSpec] = Registry(
    "attack", "compressbench.evaluate.attacks", AttackSpec, catalog=_C + "attacks"
)
# pruning importance criteria: channel groups (Torch-Pruning importances) and single weights (torch.nn.utils.prune)
channel_criteria: Registry[Any, CriterionSpec] = Registry(
    "channel criterion", "compressbench.compress.criteria", CriterionSpec, catalog=_C + "methods"
)
weight_criteria: Registry[Any, CriterionSpec] = Registry(
    "weight criterion", "compressbench.compress.criteria", CriterionSpec, catalog=_C + "methods"
)
# domain adaptation losses fn(source_features, target_features) -> loss (compressbench.adapt)
adapt_losses: Registry[Any, ComponentSpec] = Registry(
    "adaptation loss", "compressbench.adapt", ComponentSpec, catalog=_C + "methods"
)
executors: Registry[Any, ExecutorSpec] = Registry(
    "executor", "compressbench.execute", ExecutorSpec, catalog=_C + "executors"
)

ALL = {
    "datasets": datasets,
    "models": models,
    "methods": methods,
    "evaluators": evaluators,
    "corruptions": corruptions,
    "attacks": attacks,
    "channel_criteria": channel_criteria,
    "weight_criteria": weight_criteria,
    "adapt_losses": adapt_losses,
    "executors": executors,
}
_REGISTRY_NAMES = {r.kind: n for n, r in ALL.items()}

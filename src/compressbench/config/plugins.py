"""The plug-in set of an experiment: the code beyond compressbench that its components come from.

Two kinds, and only these (the trust boundary, docs/architecture.md): the ``"pkg.mod:obj"`` names the user
wrote in the config (their modules are imported when the config is resolved, from the folders Python found
them in), and the installed packages of the ``compressbench.plugins`` entry-point group. The set is
resolved with the experiment, recorded with each run (``runs.plugins_json``) and handed to every process
that runs project code for it — Ray workers and the efficiency evaluator's fresh timing process — which
call :meth:`PluginSet.load` before anything else, so a plug-in method's rebuilder or a plug-in evaluator
is registered there exactly as in the driver. Nothing read from a checkpoint, a cache record or a store
is ever added to a set.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from ..registry import is_object_path, load_plugins, loaded_plugins


def module_root(module: str) -> str | None:
    """The folder ``module`` (imported in this process) was imported from: the entry of ``sys.path`` that
    another process needs to import it the same way (None: not imported, or no file)."""
    f = getattr(sys.modules.get(module), "__file__", None)
    if not f:
        return None
    depth = module.count(".") + (1 if Path(f).name == "__init__.py" else 0)
    return str(Path(f).resolve().parents[depth])


def object_names(data: Any) -> list[str]:
    """Every ``"pkg.mod:obj"`` string in a nested config (mappings, lists), in order, without repeats."""
    out: list[str] = []
    stack = [data]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            stack.extend(reversed(list(v.values())))
        elif isinstance(v, (list, tuple)):
            stack.extend(reversed(v))
        elif isinstance(v, str) and is_object_path(v) and v not in out:
            out.append(v)
    return out


@dataclass(frozen=True)
class PluginSet:
    """``objects``: the ``"pkg.mod:obj"`` names the user wrote; ``models``: those that are model factories
    (registered on resolution, so a rebuilt checkpoint finds them); ``paths``: the folders their modules
    were imported from; ``entry_points``: the ``compressbench.plugins`` entry points loaded (``name = value``)."""

    objects: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()
    entry_points: tuple[str, ...] = ()

    @property
    def modules(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(n.split(":", 1)[0] for n in self.objects))

    @classmethod
    def collect(cls, names: Iterable[str], models: Iterable[str] = ()) -> PluginSet:
        """The set behind ``names`` (``"pkg.mod:obj"``, already resolved — so imported — in this process)."""
        objects = tuple(dict.fromkeys(names))
        mods = tuple(dict.fromkeys(n.split(":", 1)[0] for n in objects))
        paths = tuple(dict.fromkeys(p for p in map(module_root, mods) if p is not None))
        load_plugins()
        return cls(objects, tuple(m for m in dict.fromkeys(models) if m in objects), paths, tuple(loaded_plugins()))

    def identity(self) -> dict[str, Any]:
        """What the set is, independent of where it was found (a worker's folders may differ)."""
        return {"objects": list(self.objects), "entry_points": list(self.entry_points)}

    def to_json(self) -> dict[str, Any]:
        return {
            "objects": list(self.objects),
            "models": list(self.models),
            "paths": list(self.paths),
            "entry_points": list(self.entry_points),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> PluginSet:
        d = data or {}
        return cls(*(tuple(str(x) for x in d.get(k) or ()) for k in ("objects", "models", "paths", "entry_points")))

    def load(self) -> None:
        """In another process: the folders on ``sys.path``, the modules imported (they register their
        components), the model factories registered, the entry points loaded. Idempotent."""
        from ..registry import models

        for p in reversed(self.paths):
            if p not in sys.path:
                sys.path.insert(0, p)
        for m in self.modules:
            importlib.import_module(m)
        for n in self.models:
            models.resolve(n)
        load_plugins()

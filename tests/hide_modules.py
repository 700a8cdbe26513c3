"""Make top-level packages look uninstalled to this process, the way the import system itself says so.

:func:`hide` wraps every finder on ``sys.meta_path``: a hidden name is found by none of them, exactly as when
it is not installed (``importlib.util.find_spec`` answers None, ``import`` raises ``ModuleNotFoundError``), and
its distribution is not listed by ``importlib.metadata``. Everything else imports as before. Used by
``tests/test_extras.py`` (one CLI process without an extra) and by ``tests/conftest.py`` for
``COMPRESSBENCH_TEST_HIDE`` (the whole suite as in a core-only install). Plain stdlib: it also runs as a
child process's ``sitecustomize``, before anything else is imported.
"""

from __future__ import annotations

import importlib.abc
import sys
from typing import Iterable


class _Hide(importlib.abc.MetaPathFinder):
    """One real finder, blind to the hidden top-level names."""

    def __init__(self, finder, hidden: frozenset[str]) -> None:
        self.finder, self.hidden = finder, hidden

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.hidden or not hasattr(self.finder, "find_spec"):
            return None
        return self.finder.find_spec(name, path, target)

    def find_distributions(self, *args, **kwargs):  # importlib.metadata (entry points, versions)
        for dist in getattr(self.finder, "find_distributions", lambda *a, **k: ())(*args, **kwargs):
            name = (dist.metadata["Name"] or "").lower().replace("-", "_")
            if name not in self.hidden and name.split("_")[0] not in self.hidden:  # mlflow_skinny: mlflow
                yield dist

    def invalidate_caches(self) -> None:
        getattr(self.finder, "invalidate_caches", lambda: None)()


def hide(modules: Iterable[str]) -> None:
    """Make the top-level packages ``modules`` uninstalled for the rest of this process. Refused for one that
    is imported already: a module in ``sys.modules`` stays importable whatever the finders say."""
    hidden = frozenset(m.split(".")[0] for m in modules)
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in hidden)
    if loaded:
        raise RuntimeError(f"cannot hide modules that are imported already: {', '.join(loaded[:5])}")
    hidden |= next((f.hidden for f in sys.meta_path if isinstance(f, _Hide)), frozenset())  # a second call adds
    sys.meta_path[:] = [_Hide(f.finder if isinstance(f, _Hide) else f, hidden) for f in sys.meta_path]

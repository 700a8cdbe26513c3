"""Torch-free declarations of the built-in components (docs/architecture.md, "How built-ins are declared").

Each module here declares one area's built-ins in its registry (:meth:`compressbench.registry.Registry.declare`):
the name and what ``compressbench list`` shows (description, version, budgets, suites) and the params schema
class, which lives here too. Importing a module of this package never imports torch, so ``compressbench list``
and the params checks of ``validate`` start at once; the implementation (torch code) registers the full spec
when a registry is first asked for an object or a spec (``tests/test_catalog.py`` checks that every
declaration equals the spec its implementation registers). The old import paths of the schemas still work:
the implementation modules re-export them.
"""

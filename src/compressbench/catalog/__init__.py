"""Torch-free declarations of the built-in components (docs/architecture.md, "How built-ins are declared").

Each module here declares one area's built-ins in its registry (:meth:`compressbench.registry.Registry.declare`):
the name and what ``compressbench list`` shows (description, version, budgets, suites) and the params schema
class, which lives here too. Importing a module of this package never imports torch, so ``compressbench list``
and the params checks of ``validate`` start at once; the implementation (torch code) registers when a registry
is first asked for an object or a spec, giving only the fields not declared here (its code side): the registry
builds the full spec from both, and refuses a field given at both places. The old import paths of the schemas
still work: the implementation modules re-export them.
"""

"""Compression methods. Importing this package registers every built-in method and rebuilder.

Run a method with :func:`compress` (``compress.budget.compress``): it checks the budget, solves the
method's knob, runs the method and records what it achieved.
"""

from . import adaptation, distill, lowrank, pipeline, quantize, soft_filter, structured, unstructured  # noqa: F401
from .budget import BudgetError, capabilities, check_budget, compress

__all__ = ["compress", "capabilities", "check_budget", "BudgetError"]

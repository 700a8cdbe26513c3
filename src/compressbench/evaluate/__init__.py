"""Evaluators. Importing this package registers every built-in evaluator."""

from . import (
    analysis,  # noqa: F401
    attacks,  # noqa: F401
    clean,  # noqa: F401
    corruptions,  # noqa: F401
    domain_shift,  # noqa: F401
    efficiency,  # noqa: F401
    runtimes,  # noqa: F401
    sensitivity,  # noqa: F401
)

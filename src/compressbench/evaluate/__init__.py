"""Evaluators. Importing this package registers every built-in evaluator."""

from .. import efficiency  # noqa: F401
from . import (
    analysis,  # noqa: F401
    attacks,  # noqa: F401
    clean,  # noqa: F401
    corruptions,  # noqa: F401
)

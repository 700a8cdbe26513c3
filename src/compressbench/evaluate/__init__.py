"""Evaluators. Importing this package registers every built-in evaluator."""

from . import clean  # noqa: F401
from . import corruptions  # noqa: F401
from . import attacks  # noqa: F401
from . import analysis  # noqa: F401
from .. import efficiency  # noqa: F401

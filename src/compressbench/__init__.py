"""compressbench: compress image classifiers at matched budgets; measure what is lost and gained.

Public API::

    import compressbench as cb
    exp = cb.load_config("configs/quickstart.yaml")   # resolved and checked once (a ResolvedExperiment)
    summary = cb.run(exp)                 # same code path as `compressbench run`
    df = cb.load_results(summary.store)   # one flat row per measurement
    cb.export(summary.store, "structured+int8", format="onnx", out="ship/")   # verified, with a model card
"""

from __future__ import annotations

__version__ = "0.1.0"

from typing import Any

__all__ = [
    "run",
    "load_config",
    "validate_config",
    "load_results",
    "create_model",
    "load_dataset",
    "load_model",
    "save_model",
    "export",
    "registry",
    "Experiment",
    "ResolvedExperiment",
    "__version__",
]


def __getattr__(name: str) -> Any:  # lazy: keep `import compressbench` light
    if name == "run":  # an experiment with a goal is searched (compressbench.goal.search.run)
        from .goal.search import run

        return run
    if name == "load_config":
        from .validate import load_config

        return load_config
    if name == "validate_config":
        from .validate import validate

        return validate
    if name in ("Experiment", "ResolvedExperiment"):
        from . import config

        return getattr(config, name)
    if name == "load_results":
        from .store import load_results

        return load_results
    if name == "create_model":
        from .models import create_model

        return create_model
    if name == "load_dataset":
        from .data import load_dataset

        return load_dataset
    if name in ("load_model", "save_model"):
        from . import checkpoint

        return getattr(checkpoint, name)
    if name == "export":
        from .deploy.api import export

        return export
    if name == "registry":
        import importlib

        return importlib.import_module(f"{__name__}.registry")  # `from . import` would recurse into here
    raise AttributeError(name)

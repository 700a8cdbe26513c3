"""The pip extras of compressbench and the one line that names a missing one.

The core install (``pip install compressbench``) trains, compresses with every family, runs the clean /
corruption / calibration / agreement / domain-shift evaluators, torch-side efficiency and the report.
Optional features live in extras by concern (pyproject.toml); their packages are imported lazily, inside
the modules that use them, and a config that asks for a feature whose extra is not installed is refused at
``validate`` with :func:`needs` — one line naming the extra — never an ``ImportError`` mid-run.
"""

from __future__ import annotations

import importlib.util

from .errors import ConfigError

# extra -> the top-level modules it installs (the ones compressbench imports)
EXTRAS: dict[str, tuple[str, ...]] = {
    "attacks": ("foolbox", "torchattacks"),
    "onnx": ("onnx", "onnxruntime", "onnxscript"),
    "timm": ("timm",),
    "ray": ("ray",),
    "mlflow": ("mlflow",),
    "executorch": ("executorch",),
    "openvino": ("openvino",),
}


def installed(module: str) -> bool:
    """Whether ``module`` can be imported here (without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or a broken __spec__
        return False


def missing(extra: str, modules: tuple[str, ...] | None = None) -> list[str]:
    """The modules of ``extra`` (or the given subset of them) that are not installed."""
    return [m for m in (modules if modules is not None else EXTRAS[extra]) if not installed(m)]


def extra_of(module: str) -> str | None:
    """The extra that installs top-level module ``module`` (``foolbox`` -> ``attacks``), or None."""
    root = module.split(".", 1)[0]
    return next((e for e, mods in EXTRAS.items() if root in mods), None)


def install_hint(extra: str) -> str:
    """``pip install 'compressbench[X]'``."""
    return f"pip install 'compressbench[{extra}]'"


def needs_message(what: str, extra: str) -> str:
    """``<what> needs the 'X' extra: pip install 'compressbench[X]'`` (the one line of every refusal)."""
    return f"{what} needs the '{extra}' extra: {install_hint(extra)}"


def needs(what: str, extra: str, modules: tuple[str, ...] | None = None) -> None:
    """Raise the one-line :class:`ConfigError` when ``extra`` (or the given modules of it) is not installed.

    ``what`` names the feature as the user asked for it (``the adversarial evaluator``)."""
    absent = missing(extra, modules)
    if absent:
        raise ConfigError(needs_message(what, extra))

"""The checks of an experiment that need more than its schema and the registries — the model built, the
datasets' metadata, the whole experiment — run once, before any work, on the resolved experiment.

This layer sits above ``compress`` / ``models`` / ``data`` (it builds the parent exactly as the baseline
job will) and below ``plan`` / ``execute``; :mod:`compressbench.config` below it never imports it. Every
refusal is one :class:`~compressbench.errors.ConfigError` line naming the field. A Ray worker never runs
these checks: it resolves the config once and compares the fingerprint (docs/architecture.md).

* :func:`load_config` (``compressbench.load_config``): read a YAML file, resolve it, check it.
* :func:`validate` (``compressbench.validate_config``): the same for a config mapping.
* :func:`check`: the checks alone, in order: the model's fields and factory kwargs, the recipe, domains, the
  executor's own rules, the parent built and every method and evaluator asked about it, and last the
  dataset split and resize against the dataset and this machine (:mod:`.inputs`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from ..config import ConfigError, ResolvedExperiment, read_experiment, resolve_config
from ..registry import executors
from .domains import check_domains
from .inputs import check_recipe, check_resize, check_split
from .parent import check_model, check_model_fields, check_parent, check_weights_source, parent_model


def check_executor(exp: ResolvedExperiment) -> None:
    """The executor's own rules about the whole experiment (``ExecutorSpec.check``)."""
    check = executors.spec(exp.executor.name).check
    bad = check(exp, exp.executor.options) if check is not None else None
    if bad:
        raise ConfigError(bad)


def check(exp: ResolvedExperiment) -> ResolvedExperiment:
    """Every check of the module docstring, in order; returns ``exp`` (does no work, writes nothing)."""
    check_model(exp)
    check_recipe(exp)
    check_domains(exp)
    check_executor(exp)
    check_parent(exp)  # builds the model (the checks above are cheaper)
    meta, base = parent_model(exp)  # built above: cached
    check_split(exp, meta.num_classes)
    check_resize(exp, meta, base.model)
    return exp


def validate(raw: dict[str, Any]) -> ResolvedExperiment:
    """Validate a config mapping completely: schema, registry names, params, budgets, dataset options, model
    kwargs and weights, domains, executor, every method against the parent. Raises :class:`ConfigError`
    (one line); does no work and writes nothing."""
    return check(resolve_config(raw))


def load_config(
    path: str | Path,
    overrides: Mapping[str, Any] | None = None,
    scale: str | None = None,
    *,
    executor: str | None = None,
    address: str | None = None,
) -> ResolvedExperiment:
    """Read a YAML experiment file, apply the named ``scale`` (an override profile the file declares under
    ``scales:``, e.g. ``smoke``), then ``overrides`` (``{"train.epochs": 1, "variants.0.method": ...}``) and
    ``executor`` / ``address``, and validate it (:func:`validate`). Raises ConfigError (one line)."""
    return validate(read_experiment(path, overrides, scale, executor=executor, address=address))


def with_executor(exp: ResolvedExperiment, name: str) -> ResolvedExperiment:
    """``exp`` run by executor ``name`` (its default options), checked against the experiment."""
    out = exp.with_executor(name)
    check_executor(out)
    return out


__all__ = [
    "load_config",
    "validate",
    "check",
    "check_executor",
    "check_domains",
    "check_model",
    "check_model_fields",
    "check_parent",
    "check_weights_source",
    "parent_model",
    "with_executor",
]

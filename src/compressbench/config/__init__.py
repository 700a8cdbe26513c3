"""The experiment config, at the bottom of the import graph: the schema (:mod:`.schema`, pure pydantic),
reading a YAML file safely with scales and ``--set`` overrides (:mod:`.text`), one-line errors
(:mod:`.params`), the plug-in set (:mod:`.plugins`) and the one resolution of an experiment into a frozen
:class:`ResolvedExperiment` (:mod:`.resolve`). Nothing here builds a model: the checks that need one are
:mod:`compressbench.validate`, whose :func:`~compressbench.validate.load_config` and
:func:`~compressbench.validate.validate` are what a user calls (``compressbench.load_config``).
"""

from __future__ import annotations

from ..errors import ConfigError, did_you_mean
from .params import one_line_error, validate_params
from .plugins import PluginSet
from .resolve import (
    ExperimentPart,
    ResolvedEvaluation,
    ResolvedExecutor,
    ResolvedExperiment,
    ResolvedVariant,
    check_budget,
    experiment_parts,
    parse_experiment,
    read_experiment,
    resolve_config,
    resolve_evaluations,
    resolve_executor,
    resolve_experiment,
    resolve_variants,
    with_executor,
)
from .schema import (
    BASELINE,
    AdaptConfig,
    Budget,
    DatasetConfig,
    DomainSplitConfig,
    EvaluationConfig,
    ExecutorConfig,
    Experiment,
    ModelConfig,
    ReportLayout,
    TrainConfig,
    VariantConfig,
)
from .text import (
    MAX_ALIASES,
    MAX_CONFIG_BYTES,
    MAX_DEPTH,
    MAX_NODES,
    MAX_OVERRIDE_CHARS,
    ConfigLoader,
    apply_override,
    check_data,
    parse_override,
    parse_yaml,
    read_config,
    read_config_text,
    read_raw,
    scale_names,
)

__all__ = [
    "ConfigError",
    "did_you_mean",
    "one_line_error",
    "validate_params",
    "PluginSet",
    "ExperimentPart",
    "ResolvedEvaluation",
    "ResolvedExecutor",
    "ResolvedExperiment",
    "ResolvedVariant",
    "check_budget",
    "experiment_parts",
    "parse_experiment",
    "read_experiment",
    "resolve_config",
    "resolve_evaluations",
    "resolve_executor",
    "resolve_experiment",
    "resolve_variants",
    "with_executor",
    "BASELINE",
    "AdaptConfig",
    "Budget",
    "DatasetConfig",
    "DomainSplitConfig",
    "EvaluationConfig",
    "ExecutorConfig",
    "Experiment",
    "ModelConfig",
    "ReportLayout",
    "TrainConfig",
    "VariantConfig",
    "MAX_ALIASES",
    "MAX_CONFIG_BYTES",
    "MAX_DEPTH",
    "MAX_NODES",
    "MAX_OVERRIDE_CHARS",
    "ConfigLoader",
    "apply_override",
    "check_data",
    "parse_override",
    "parse_yaml",
    "read_config",
    "read_config_text",
    "read_raw",
    "scale_names",
]

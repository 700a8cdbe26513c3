"""The experiment config's part for datasets with named domains (``data.domains``) and domain adaptation:
which experiments a config runs (one, or one sibling ``<name>.<source>`` per source domain), the
dataset's part of a job spec, and the validation of ``dataset.source`` / ``targets`` / ``domain_split``,
``train.adapt``, adapting methods and domain evaluators against the declared domains (one-line
:class:`~compressbench.config.ConfigError` messages, before any work)."""

from __future__ import annotations

from typing import Any

from .adapt import AdaptParams
from .compress.budget import adaptations
from .config import ConfigError, DatasetConfig, Experiment, ResolvedVariant, resolve_evaluations
from .registry import datasets, evaluators

_DOMAIN_FIELDS = ("source", "targets", "domain_split")


def dataset_spec(ds: DatasetConfig) -> dict[str, Any]:
    """The dataset's part of a job key: unset optional fields (domains, resize, ...) left out, so existing
    cache keys stay; ``download`` left out (it does not change results; the jobs get it separately)."""
    out = ds.key_dump()
    out.pop("download", None)
    return out


def experiment_parts(exp: Experiment) -> list[tuple[str, DatasetConfig]]:
    """(experiment name, dataset) of each experiment a config runs: itself, or — with a list of source
    domains — one sibling ``<name>.<source>`` per source, its targets the listed (or all other
    declared) domains but itself."""
    ds = exp.dataset
    if not isinstance(ds.source, list):
        return [(exp.name, ds)]
    out = []
    for src in ds.source:
        tg = [t for t in ds.targets if t != src] if ds.targets is not None else None
        out.append((f"{exp.name}.{src}", ds.model_copy(update={"source": src, "targets": tg})))
    return out


def check_domains(exp: Experiment, variants: list[ResolvedVariant]) -> None:
    """``source`` / ``targets`` against the dataset's declared domains; adaptation (``train.adapt``, a
    method that adapts) needs target domains, and names only targets the experiment has."""
    from .data.domains import check_domains as check

    ds = exp.dataset
    declared = datasets.spec(ds.name).domain_names(ds.options)
    given = [k for k in _DOMAIN_FIELDS if getattr(ds, k) is not None]
    if not declared:
        if given:
            raise ConfigError(f"dataset.{given[0]}: dataset '{ds.name}' has no named domains (datasets with "
                              f"domains: {', '.join(n for n, sp in datasets.items() if sp.domains)})")
    else:
        bad = check(declared, ds.source, ds.targets)
        if bad:
            raise ConfigError(f"dataset.{bad[0]}: {bad[1]}")
    for i, (ev, params) in enumerate(resolve_evaluations(exp, [v.name for v in variants])):
        domains_of = evaluators.spec(ev.evaluator).target_domains
        if domains_of is None:
            continue
        if not declared:
            raise ConfigError(f"evaluations[{i}]: {ev.evaluator} needs a dataset with named domains and "
                              f"dataset.source / dataset.targets; '{ds.name}' has none")
        _check_targets(exp, declared, domains_of(params) or [], f"evaluations[{i}].params.targets")
    wanted: list[tuple[str, AdaptParams]] = []
    if exp.train is not None and exp.train.adapt is not None:
        wanted.append(("train.adapt", exp.train.adapt))
    wanted += [(f"variants[{v.index}]", a) for v in variants for a in adaptations(v.method, v.params)]
    for where, a in wanted:
        if not declared:
            raise ConfigError(f"{where}: domain adaptation ({a.method}) needs a dataset with named domains and "
                              f"dataset.source / dataset.targets; '{ds.name}' has none")
        _check_targets(exp, declared, a.targets or [], f"{where}: adaptation")


def _check_targets(exp: Experiment, declared: tuple[str, ...], named: list[str], where: str) -> None:
    """Every domain in ``named`` must be a target of every experiment the config runs."""
    for name, part in experiment_parts(exp):
        src = part.source or declared[0]
        targets = part.targets if part.targets is not None else [d for d in declared if d != src]
        bad = [t for t in named if t not in targets]
        if bad:
            raise ConfigError(f"{where} target(s) {bad} are not targets of experiment '{name}' "
                              f"(source {src}; targets: {', '.join(targets)})")

"""The checks for datasets with named domains (``data.domains``) and domain adaptation: ``dataset.source``
/ ``targets`` / ``domain_split`` against the dataset's declared domains, and ``train.adapt``, adapting
methods and domain evaluators against the targets of every experiment the config runs (one-line
:class:`~compressbench.errors.ConfigError` messages, before any work). Which experiments a config runs is
resolved with it (:func:`compressbench.config.experiment_parts`)."""

from __future__ import annotations

from ..compress.budget import adaptations
from ..config import AdaptConfig, ResolvedExperiment
from ..data.domains import check_domains as check_declared
from ..errors import ConfigError
from ..registry import datasets, evaluators

_DOMAIN_FIELDS = ("source", "targets", "domain_split")


def check_domains(exp: ResolvedExperiment) -> None:
    """``source`` / ``targets`` against the dataset's declared domains; adaptation (``train.adapt``, a
    method that adapts) needs target domains, and names only targets the experiment has."""
    ds = exp.dataset
    declared = datasets.spec(ds.name).domain_names(ds.options)
    given = [k for k in _DOMAIN_FIELDS if getattr(ds, k) is not None]
    if not declared:
        if given:
            raise ConfigError(
                f"dataset.{given[0]}: dataset '{ds.name}' has no named domains (datasets with "
                f"domains: {', '.join(n for n, sp in datasets.items() if sp.domains)})"
            )
    else:
        bad = check_declared(declared, ds.source, ds.targets)
        if bad:
            raise ConfigError(f"dataset.{bad[0]}: {bad[1]}")
    for ev in exp.evaluations:
        domains_of = evaluators.spec(ev.evaluator).target_domains
        if domains_of is None:
            continue
        if not declared:
            raise ConfigError(
                f"evaluations[{ev.index}]: {ev.evaluator} needs a dataset with named domains and "
                f"dataset.source / dataset.targets; '{ds.name}' has none"
            )
        _check_targets(exp, declared, domains_of(ev.params) or [], f"evaluations[{ev.index}].params.targets")
    wanted: list[tuple[str, AdaptConfig]] = []
    if exp.train is not None and exp.train.adapt is not None:
        wanted.append(("train.adapt", exp.train.adapt))
    wanted += [(f"variants[{v.index}]", a) for v in exp.variants for a in adaptations(v.method, v.params)]
    for where, a in wanted:
        if not declared:
            raise ConfigError(
                f"{where}: domain adaptation ({a.method}) needs a dataset with named domains and "
                f"dataset.source / dataset.targets; '{ds.name}' has none"
            )
        _check_targets(exp, declared, a.targets or [], f"{where}: adaptation")


def _check_targets(exp: ResolvedExperiment, declared: tuple[str, ...], named: list[str], where: str) -> None:
    """Every domain in ``named`` must be a target of every experiment the config runs."""
    for part in exp.parts:
        src = part.dataset.source or declared[0]
        targets = part.dataset.targets if part.dataset.targets is not None else [d for d in declared if d != src]
        bad = [t for t in named if t not in targets]
        if bad:
            raise ConfigError(
                f"{where} target(s) {bad} are not targets of experiment '{part.name}' "
                f"(source {src}; targets: {', '.join(targets)})"
            )

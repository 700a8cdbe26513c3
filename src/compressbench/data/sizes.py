"""How many images an experiment part trains, validates and evaluates on (``compressbench plan`` counts them;
``validate`` checks that ``dataset.val_fraction`` leaves every class an image on both sides): from the dataset's
declared sizes when it has them (no image decoded), else from its local copy, loaded and prepared."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..registry import datasets


@dataclass(frozen=True)
class DataSizes:
    """Images per epoch and per evaluation set of one experiment (part), and where the counts came from."""

    train: int
    val: int
    test: int
    targets: dict[str, int] = field(default_factory=dict)
    how: str = "declared"


def data_sizes(ds: Any, cache_dir: str) -> DataSizes:
    """The image counts of one experiment part's dataset (``DatasetConfig``). One-line UserError if unknown."""
    from . import dataset_options
    from .domains import resolve_domains

    spec = datasets.spec(ds.name)
    opts = dataset_options(ds.name, ds.options)
    if spec.sizes is None:
        return _loaded_sizes(ds, cache_dir)
    raw = dict(spec.sizes(Path(ds.root).expanduser() if ds.root else None, **opts))
    targets: dict[str, int] = {}
    if spec.domain_names(opts):
        src, tg = resolve_domains(ds.name, opts, ds.source, ds.targets)
        split = ds.domain_split
        test = max(1, round((split.test_fraction if split else 0.2) * raw[src]))
        train = raw[src] - test
        hold = split.target_holdout if split else None
        targets = {t: raw[t] if hold is None else max(1, round(hold * raw[t])) for t in tg}
    else:
        train, test = raw["train"], raw["test"]
    if ds.train_subset:
        train = min(train, ds.train_subset)
    val = round(ds.val_fraction * train) if ds.val_fraction else 0
    return DataSizes(train - val, val, test, targets)


def _loaded_sizes(ds: Any, cache_dir: str) -> DataSizes:
    """A dataset without a size declaration: its local copy, loaded (never downloaded) and prepared."""
    from . import load_dataset
    from .prepare import prepare_bundle

    domains = {k: getattr(ds, k) for k in ("source", "targets") if getattr(ds, k) is not None}
    if ds.domain_split is not None:
        domains["split"] = ds.domain_split.model_dump()
    try:
        b = load_dataset(ds.name, root=ds.root, cache_dir=cache_dir, download=False, **domains, **ds.options)
    except UserError as e:
        raise UserError(
            f"dataset: cannot count the images of '{ds.name}': it declares no sizes and has no local copy ({e})"
        ) from None
    b = prepare_bundle(b, train_subset=ds.train_subset, val_fraction=ds.val_fraction)
    return DataSizes(
        len(b.train),
        len(b.val) if b.val is not None else 0,
        len(b.test),
        {k: len(v) for k, v in b.targets.items()},
        how="loaded",
    )


__all__ = ["DataSizes", "data_sizes"]

"""What an experiment does to a loaded dataset: ``train_subset``, ``val_fraction`` and ``resize``.

* ``train_subset: N`` — a seeded N-image subset of the training split (as before).
* ``val_fraction: f`` — a seeded, **stratified** validation split: f of each class's training images
  (rounded, at least one per class that has two or more) move to ``bundle.val``; they are never trained
  on. The baseline's best epoch is picked on it and int8 calibration uses it, so the test split is
  touched only by evaluators. The split is fixed (seed 20,011), the same for every seed of a study, so
  seeds differ in training randomness only. Taken after ``train_subset``.
* ``resize: S`` / ``[H, W]`` — every split's batches are resized to that size when drawn
  (:func:`.transforms.fit_size`); ``meta.size`` says so, so models are built for it.

:func:`dataset_meta` gives the metadata without loading the images when the loader has a probe
(``DatasetSpec.probe``), for ``validate``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from ..registry import datasets
from .base import DataMeta, DatasetBundle, ImageSet

SPLIT_SEED = 20_011
SUBSET_SEED = 1234


def stratified_split(y: torch.Tensor, fraction: float, seed: int = SPLIT_SEED) -> tuple[torch.Tensor, torch.Tensor]:
    """(train indices, validation indices), sorted: ``fraction`` of each class, seeded."""
    g = torch.Generator().manual_seed(seed)
    val: list[torch.Tensor] = []
    for c in torch.unique(y).tolist():
        idx = torch.nonzero(y == c).flatten()
        k = int(round(fraction * len(idx)))
        if len(idx) >= 2:
            k = min(max(k, 1), len(idx) - 1)
        else:
            k = 0
        val.append(idx[torch.randperm(len(idx), generator=g)[:k]])
    v = torch.cat(val).sort().values if val else torch.empty(0, dtype=torch.long)
    keep = torch.ones(len(y), dtype=torch.bool)
    keep[v] = False
    return torch.nonzero(keep).flatten(), v


def resized_meta(meta: DataMeta, resize: Any) -> DataMeta:
    if resize is None:
        return meta
    size = (int(resize), int(resize)) if isinstance(resize, int) else (int(resize[0]), int(resize[1]))
    return dataclasses.replace(meta, size=size)


def _sized(s: ImageSet | None, size: tuple[int, int] | None) -> ImageSet | None:
    return None if s is None else ImageSet(s.x, s.y, s.index, size)


def prepare_bundle(
    bundle: DatasetBundle, *, train_subset: int | None = None, val_fraction: float | None = None, resize: Any = None
) -> DatasetBundle:
    """``bundle`` with the experiment's subset, validation split and resizing applied (see above)."""
    train, val = bundle.train, bundle.val
    if train_subset and train_subset < len(train):
        idx = torch.randperm(len(train), generator=torch.Generator().manual_seed(SUBSET_SEED))[:train_subset]
        train = train.subset(idx.sort().values)
    if val_fraction:
        tr_idx, val_idx = stratified_split(train.y, val_fraction)
        train, val = train.subset(tr_idx), train.subset(val_idx)
    meta = resized_meta(bundle.meta, resize)
    if resize is None:
        return dataclasses.replace(bundle, train=train, val=val)
    return dataclasses.replace(
        bundle,
        meta=meta,
        train=_sized(train, meta.size),
        test=_sized(bundle.test, meta.size),
        val=_sized(val, meta.size),
        targets={k: _sized(v, meta.size) for k, v in bundle.targets.items()},
        unlabeled={k: _sized(v, meta.size) for k, v in bundle.unlabeled.items()},
    )


def dataset_meta(
    name: str,
    root: str | None,
    options: dict[str, Any],
    *,
    resize: Any = None,
    cache_dir: str | Path | None = None,
    download: bool = True,
) -> DataMeta:
    """The dataset's metadata: from its probe (no image decoded), else by loading it."""
    spec = datasets.spec(name)
    if spec.probe is not None:
        from . import dataset_options

        meta = spec.probe(Path(root).expanduser() if root else None, **dataset_options(name, options))
    else:
        from . import load_dataset

        meta = load_dataset(name, root=root, cache_dir=cache_dir, download=download, **options).meta
    return resized_meta(meta, resize)

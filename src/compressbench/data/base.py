"""Dataset containers: decoded once into uint8 tensors, batched without per-image PIL work.

Images are kept as ``uint8`` N×C×H×W tensors and converted to float in [0, 1] per batch.
Normalisation (mean/std) is *not* applied here: it lives inside the model wrapper
(:class:`compressbench.models.Normalize`) so that corruptions and attacks work in pixel space.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Iterator

import numpy as np
import torch

from ..catalog.base import DatasetOptions  # noqa: F401 (torch-free: compressbench.catalog)
from ..errors import UserError


class DatasetError(UserError, RuntimeError):
    """A dataset is missing or malformed. The message says how to fix it (one line)."""


@dataclass(frozen=True)
class DataMeta:
    """Preprocessing that travels with the data (timm's PretrainedCfg idea)."""

    name: str
    num_classes: int
    channels: int
    size: tuple[int, int]  # (H, W)
    mean: tuple[float, ...]
    std: tuple[float, ...]
    class_names: tuple[str, ...] = ()
    augment: str = "crop"  # default train augmentation: "none" | "crop" | "flip_crop"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "DataMeta":
        d = dict(d)
        d["size"] = tuple(d["size"])
        d["mean"], d["std"] = tuple(d["mean"]), tuple(d["std"])
        d["class_names"] = tuple(d.get("class_names", ()))
        return cls(**d)


@dataclass
class ImageSet:
    """``x``: uint8 N×C×H×W; ``y``: int64 N. ``index``: original dataset indices. ``size``: (H, W) the
    batches are resized to (``dataset.resize``; the stored images keep their size, so CIFAR-10 at 224 px
    costs no more memory than at 32 px)."""

    x: torch.Tensor
    y: torch.Tensor
    index: torch.Tensor = field(default=None)  # type: ignore[assignment]
    size: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.x.dtype != torch.uint8 or self.x.dim() != 4:
            raise DatasetError(f"ImageSet.x must be uint8 N×C×H×W, got {self.x.dtype} {tuple(self.x.shape)}")
        if len(self.x) != len(self.y):
            raise DatasetError(f"{len(self.x)} images but {len(self.y)} labels")
        if self.index is None:
            self.index = torch.arange(len(self.y))

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, idx: torch.Tensor | np.ndarray | list[int]) -> "ImageSet":
        idx = torch.as_tensor(idx, dtype=torch.long)
        return ImageSet(self.x[idx], self.y[idx], self.index[idx], self.size)

    def batches(
        self,
        batch_size: int,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
        uint8: bool = False,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Yield (float images in [0,1] — or the stored uint8 images with ``uint8`` —, labels,
        dataset indices)."""
        n = len(self)
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        for s in range(0, n, batch_size):
            b = order[s : s + batch_size]
            x = self.x[b].to(device, non_blocking=True)
            if self.size is not None:
                from .transforms import fit_size

                x = fit_size(x, self.size)
            yield (x if uint8 else x.float().div_(255.0)), self.y[b].to(device), self.index[b]


@dataclass
class DatasetBundle:
    """``train`` / ``test``: the (source domain's) labelled splits. A dataset with named domains also
    carries ``source`` (its name), ``targets`` (each target domain's labelled *evaluation* images) and
    ``unlabeled`` (each target domain's images that adaptation may train on, labels replaced by -1;
    see :mod:`compressbench.data.domains`). ``val``: a held-out part of the training set
    (``dataset.val_fraction``) that picks the best epoch and calibrates quantization, so that ``test`` is
    touched only by evaluators (None: no split)."""

    meta: DataMeta
    train: ImageSet
    test: ImageSet
    val: ImageSet | None = None
    source: str | None = None
    targets: dict[str, ImageSet] = field(default_factory=dict)
    unlabeled: dict[str, ImageSet] = field(default_factory=dict)

    def eval_subset(self, size: int | None, seed: int = 0, domain: str | None = None) -> ImageSet:
        """A fixed, seeded subset of the test split (same indices for every model); ``domain``: of that
        target domain's evaluation images instead (the source's name or None: the test split)."""
        images = self.domain_set(domain)
        return images.subset(eval_indices(len(images), size, seed))

    def domain_set(self, domain: str | None) -> ImageSet:
        """The labelled evaluation images of ``domain`` (None or the source: the test split)."""
        if domain is None or domain == self.source:
            return self.test
        if domain not in self.targets:
            known = ", ".join(self.targets) or "none (the dataset has no target domains)"
            raise DatasetError(f"no target domain '{domain}' in this dataset (targets: {known})")
        return self.targets[domain]


def eval_indices(n: int, size: int | None, seed: int = 0) -> torch.Tensor:
    """Fixed evaluation index list: the first ``size`` of a seeded permutation, sorted."""
    if size is None or size >= n:
        return torch.arange(n)
    g = torch.Generator().manual_seed(10_007 + seed)
    return torch.randperm(n, generator=g)[:size].sort().values


def to_uint8_nchw(arr: np.ndarray) -> torch.Tensor:
    """N×H×W or N×H×W×C uint8 array -> uint8 N×C×H×W tensor."""
    arr = np.asarray(arr)
    if arr.ndim == 3:
        arr = arr[:, None]
    elif arr.ndim == 4 and arr.shape[-1] in (1, 3, 4) and arr.shape[1] not in (1, 3):
        arr = arr.transpose(0, 3, 1, 2)
    arr = np.ascontiguousarray(arr.astype(np.uint8, copy=False))
    if not arr.flags.writeable:
        arr = arr.copy()
    return torch.from_numpy(arr)

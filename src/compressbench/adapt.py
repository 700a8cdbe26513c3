"""Unsupervised domain adaptation in the training loop: Deep CORAL (Sun & Saenko, ECCV-W 2016).

``ℓ_CORAL = ‖C_S − C_T‖²_F / (4d²)``: C_S, C_T are the covariance matrices (d × d, unbiased) of the
source and target batches' *penultimate features* — the input of the classifier head, found
generically as the last ``nn.Linear`` of the model (:class:`FeatureTap`, a forward hook), d its width.
The training loss becomes ``task loss + λ · ℓ_CORAL`` (task loss: cross-entropy on the labelled source
batch, or the distillation loss for a student).

Every step draws an *unlabeled* target batch alongside the source batch (same size, from a seeded
permutation of the target images that restarts when exhausted; the same augmentation as the source).
Both go through the network in one forward pass of the concatenated batch — as the Transfer-Learning
Library does — so BatchNorm's batch statistics (and running averages) see both domains; the task loss
reads the source half only, and the target labels are never read (they are -1, see ``data.domains``).

Where it is used: ``train.adapt`` (the baseline), the ``adapt.coral`` compression stage, and the
``adapt`` parameter of ``distill`` (each builds an :class:`Adaptation`).

The loss is looked up in ``registry.adapt_losses`` (``fn(source_features, target_features) -> loss``):
another alignment loss is one registration, and ``adapt.method`` is validated against that registry with
the config (an unknown name fails in one line, with a "did you mean").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import torch
from torch import nn

from .catalog.base import AdaptParams  # noqa: F401 (torch-free: compressbench.catalog)
from .config.schema import AdaptConfig
from .data.base import DatasetBundle, ImageSet
from .registry import adapt_losses


def covariance(f: torch.Tensor) -> torch.Tensor:
    """Unbiased covariance (d × d) of features ``f`` (n × d): ``(Dᵀ D − (1ᵀD)ᵀ(1ᵀD) / n) / (n − 1)``."""
    n = f.shape[0]
    centred = f - f.mean(0, keepdim=True)
    return centred.T @ centred / max(n - 1, 1)


def coral_loss(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Deep CORAL: ``‖C_S − C_T‖²_F / (4 d²)`` for source / target features (n_s × d, n_t × d)."""
    if source.dim() != 2 or target.dim() != 2 or source.shape[1] != target.shape[1]:
        raise ValueError(
            f"CORAL needs n × d features of one width, got {tuple(source.shape)} and {tuple(target.shape)}"
        )
    d = source.shape[1]
    diff = covariance(source.float()) - covariance(target.float())
    return (diff * diff).sum() / (4 * d * d)


adapt_losses.register("coral", coral_loss)


class FeatureTap:
    """Captures the input of a model's classifier head (its last ``nn.Linear``) on every forward pass."""

    def __init__(self, model: nn.Module):
        head = None
        for m in model.modules():
            if isinstance(m, nn.Linear):
                head = m
        if head is None:
            raise ValueError(
                "domain adaptation needs the penultimate features: the model has no nn.Linear classifier head to hook"
            )
        self.features: torch.Tensor | None = None
        self._handle = head.register_forward_hook(self._hook)

    def _hook(self, module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        self.features = inputs[0].flatten(1)

    def close(self) -> None:
        self._handle.remove()


@dataclass
class Adaptation:
    """An adaptation for one training run: the loss, its weight and the unlabeled target images."""

    method: str
    weight: float
    target: ImageSet
    features: str = "penultimate"

    def loss(self, source_features: torch.Tensor, target_features: torch.Tensor) -> torch.Tensor:
        return adapt_losses.get(self.method)(source_features, target_features)

    def batches(self, batch_size: int, seed: int, device: torch.device) -> Iterator[torch.Tensor]:
        """Unlabeled target batches forever: seeded permutations (epoch after epoch) of the images."""
        g = torch.Generator().manual_seed(seed + 7_919)
        while True:
            for x, _, _ in self.target.batches(batch_size, shuffle=True, generator=g, device=device):
                yield x


def target_images(data: DatasetBundle, targets: list[str] | None) -> ImageSet:
    """The unlabeled images of ``targets`` (None: every target of the bundle), pooled."""
    if not data.unlabeled:
        raise ValueError(
            "domain adaptation needs target domains: give dataset.source / dataset.targets of a "
            "dataset with named domains"
        )
    names = list(targets) if targets else list(data.unlabeled)
    bad = [t for t in names if t not in data.unlabeled]
    if bad:
        raise ValueError(f"adaptation target(s) {bad} are not targets of this experiment ({', '.join(data.unlabeled)})")
    sets = [data.unlabeled[t] for t in names]
    if len(sets) == 1:
        return sets[0]
    return ImageSet(
        torch.cat([s.x for s in sets]), torch.cat([s.y for s in sets]), torch.arange(sum(len(s) for s in sets))
    )


def make_adaptation(params: AdaptConfig | dict | None, data: DatasetBundle) -> Adaptation | None:
    """An :class:`Adaptation` for ``params`` on ``data`` (None: no adaptation)."""
    if params is None:
        return None
    p = params if isinstance(params, AdaptConfig) else AdaptParams.model_validate(params)
    return Adaptation(p.method, p.weight, target_images(data, p.targets), p.features)

"""The corruption suites and :func:`corrupt`, the one function that applies a registered corruption to a
batch (deterministic per image index). Kept apart from the package's ``__init__`` so that the evaluator,
the gallery and the export command import it without importing their own package back."""

from __future__ import annotations

import logging
from typing import Any, Sequence

import numpy as np
import torch

from ...catalog.corruptions import (  # noqa: F401 (torch-free: compressbench.catalog)
    CIFAR_C,
    EXTRA,
    NOISE_STUDY,
    SUITES,
    resolve_names,
    suite_names,
    suites,
)
from ...registry import corruptions
from . import hendrycks, noise, ops  # noqa: F401  (hendrycks, noise: register the corruptions)
from .ops import BatchRNG, image_keys
from .params import resolve_set

log = logging.getLogger(__name__)

SEVERITIES = (1, 2, 3, 4, 5)


def corrupt(
    images: torch.Tensor,
    indices: torch.Tensor | Sequence[int] | None,
    name: str,
    severity: int,
    seed: int = 0,
    params: str = "auto",
    quantize: bool = False,
    constant: Any = None,
) -> torch.Tensor:
    """Corrupt a batch deterministically.

    ``images``: float N×C×H×W in [0, 1], or uint8 (0..255), C ∈ {1, 3}, on any device. ``indices``:
    the images' dataset indices (N ints; ``None`` = 0..N−1) — with ``name``, ``severity`` and
    ``seed`` they are the only inputs of the randomness. ``constant``: the corruption's setting given
    directly (``spec.from_params`` of its parameters) instead of a severity's (then ``severity`` is 0, a
    stream of its own). ``params``: ``auto`` (``cifar`` for ≤ 64 px,
    else ``imagenet``), ``cifar`` or ``imagenet``. ``quantize``: truncate to uint8 steps as the
    published CIFAR-10-C files were (``np.uint8(x)``).

    Returns float images in [0, 1] for float input; for **uint8 input, uint8 images** (always
    truncated as the published files — the layout of CIFAR-10-C and of ``imagecorruptions``).
    """
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] not in (1, 3):
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"corrupt() needs an N×C×H×W tensor with C in (1, 3), got {shape}")
    u8_in = images.dtype == torch.uint8
    entry = corruptions.entry(name)
    fn, spec = entry.load(), entry.spec
    # corruptions registered with uint8=True take uint8 input as is (they work in uint8 units)
    x = images if u8_in and spec.uint8 else images.float()
    if u8_in and x is not images:
        x = x.div_(255)
    N, _, H, W = x.shape
    if indices is None:
        idx = np.arange(N, dtype=np.int64)
    else:
        idx = (
            (indices.detach().cpu().numpy() if isinstance(indices, torch.Tensor) else np.asarray(indices))
            .astype(np.int64)
            .reshape(-1)
        )
    if len(idx) != N:
        raise ValueError(f"corrupt(): {len(idx)} indices for {N} images")
    if not (1 <= int(severity) <= 5 or (constant is not None and int(severity) == 0)):
        raise ValueError(f"corruption severity must be in 1..5 (0 with a constant given), got {severity}")
    pset = resolve_set(params, H, W)
    c = spec.constant(int(severity), pset) if constant is None else constant
    sev = int(severity)
    rng = BatchRNG(lambda: image_keys(seed, name, sev, idx), x.device, n=N)
    with torch.no_grad():
        y = fn(x, rng, c, pset)
        if y.data_ptr() == images.data_ptr():  # never modify (or return) the caller's tensor
            y = y.clone()
        if y.dtype == torch.uint8:  # a corruption computed exactly in uint8 units (pixelate, JPEG)
            return y if u8_in else y.to(images.dtype).div_(255)
        if u8_in:  # np.uint8(clip(x, 0, 1) · 255); the margin absorbs float rounding below k/255
            return ops.as_uint8(y.mul_(255).add_(1e-4).clamp_(0, 255))
        if quantize:
            y.mul_(255).clamp_(0, 255).add_(1e-4).floor_().div_(255)
        else:
            y.clamp_(0, 1)
    return y.to(images.dtype)

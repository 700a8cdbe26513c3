"""Values the schema accepts one by one but that make no sense together, or not on this dataset or machine
(issue 22: each was accepted silently before): a warm-up longer than the training, a validation split that
leaves a class without a training or validation image, and a ``dataset.resize`` whose batches cannot fit in
this machine's memory. One :class:`~compressbench.errors.ConfigError` line each, naming the field and the
number."""

from __future__ import annotations

import logging
from typing import Any

import torch

from ..config import ConfigError, ResolvedExperiment
from ..measure.hardware import total_memory

log = logging.getLogger(__name__)
FLOAT_BYTES = 4


def check_recipe(exp: ResolvedExperiment) -> None:
    """``train.warmup_epochs`` within ``train.epochs``; ``train.amp: bf16`` on a device with bf16 (a GPU before
    Ampere that cannot even emulate it is refused; the training loop warns where it is emulated)."""
    t = exp.train
    if t is not None and t.amp == "bf16" and exp.device != "cpu" and torch.cuda.is_available():
        from ..train import bf16_problem, resolve_device

        bad = bf16_problem(resolve_device(exp.device))
        if bad:
            raise ConfigError(bad)
    if t is not None and t.warmup_epochs > 0 and t.warmup_epochs > t.epochs:
        raise ConfigError(
            f"train.warmup_epochs: {t.warmup_epochs:g} > train.epochs ({t.epochs:g}): the learning "
            f"rate would never leave its warm-up; give warmup_epochs <= epochs"
        )


def check_split(exp: ResolvedExperiment, num_classes: int) -> None:
    """``dataset.val_fraction`` leaves at least one image per class on both sides (sizes as ``compressbench
    plan`` counts them; a dataset whose size cannot be known without downloading it is not checked)."""
    ds = exp.dataset
    if not ds.val_fraction:
        return
    from ..data.sizes import data_sizes

    try:
        n = data_sizes(ds, str(exp.cache_dir))
    except Exception as e:  # e.g. not downloaded yet: the loader's own checks run with the job
        log.debug("val_fraction not checked: %s", e)
        return
    if n.train < num_classes or n.val < num_classes:
        raise ConfigError(
            f"dataset.val_fraction: {ds.val_fraction:g} of {n.train + n.val} training image(s) leaves "
            f"{n.train} for training and {n.val} for validation, fewer than one per class "
            f"({num_classes} classes); use a fraction that leaves both sides one image per class"
        )


def activations_per_pixel(model: torch.nn.Module, channels: int, side: int = 32) -> float | None:
    """Elements of every module's output for one image, per input pixel, measured at ``side`` × ``side``
    (a convolutional network's activations grow with the pixels); None if the model cannot run at that size."""
    total = 0

    def hook(_m: Any, _i: Any, out: Any) -> None:
        nonlocal total
        if isinstance(out, torch.Tensor):
            total += out.numel()

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    try:
        with torch.inference_mode():
            model.eval()(torch.zeros(1, channels, side, side))
    except Exception:
        return None
    finally:
        for h in handles:
            h.remove()
    return total / (side * side)


def check_resize(exp: ResolvedExperiment, meta: Any, model: torch.nn.Module) -> None:
    """A batch at ``dataset.resize`` must fit in this machine's memory: its activations (every layer's output,
    which training keeps for the backward pass) estimated from the model at 32 px, scaled by the pixels."""
    size = exp.dataset.resize
    if size is None:
        return
    h, w = (size, size) if isinstance(size, int) else size
    mem = total_memory()
    per_px = activations_per_pixel(model, meta.channels)
    if mem is None or per_px is None:
        return
    batch = exp.train.batch_size if exp.train is not None else 128
    need = batch * (per_px + meta.channels) * h * w * FLOAT_BYTES
    if need > mem:
        raise ConfigError(
            f"dataset.resize: {h}×{w} px needs about {need / 2**30:.0f} GiB for one batch of {batch} "
            f"({exp.model.name}'s activations, float32), more than this machine's "
            f"{mem / 2**30:.0f} GiB; use a smaller resize or batch_size"
        )


__all__ = ["check_recipe", "check_split", "check_resize", "activations_per_pixel"]

"""One training loop for baseline training, fine-tuning and knowledge distillation.

SGD/Adam(W), cosine/one-cycle/step/constant schedules, label smoothing, flips/crops where they
suit the data, seeding of python/numpy/torch, CUDA + AMP when a GPU is present, and bf16 mixed precision
on the CPU or a GPU on request (``amp: "bf16"``, :func:`train_precision`). Distillation
uses Hinton et al.'s loss ``α·T²·KL(softmax(z_t/T) ‖ softmax(z_s/T)) + (1−α)·CE(z_s, y)`` or one of
the variants the reference studies used (:data:`KD_LOSSES`).
"""

from __future__ import annotations

import functools
import logging
import math
import random
import time
from dataclasses import dataclass
from typing import Callable, Iterator, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .adapt import Adaptation, FeatureTap
from .data.base import ImageSet
from .data.transforms import photometric
from .progress import log_interval, progress_bar
from .progress.board import fmt_seconds

log = logging.getLogger(__name__)


@dataclass
class TrainRecipe:
    epochs: float = 3
    batch_size: int = 128
    optimizer: Literal["sgd", "adam", "adamw"] = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: Literal["cosine", "onecycle", "step", "constant"] = "onecycle"
    step_size: float = 1.0  # epochs between decays for "step"
    gamma: float = 0.1
    label_smoothing: float = 0.0
    augment: Literal["auto", "none", "crop", "flip", "flip_crop"] = "auto"
    warmup_epochs: float = 0.0
    amp: bool | Literal["bf16"] = True  # what it runs: train_precision()
    init: str | None = None  # where the baseline starts (read by the baseline job, not by this loop)
    freeze_epochs: float = 0.0  # with ``train(trainable=...)``: only those parameters train at first
    rotation: float = 0.0  # degrees (``data.transforms.rotate``)
    color_jitter: dict | None = None  # brightness / contrast / saturation / hue (``data.transforms.color_jitter``)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


Precision = Literal["fp32", "fp16", "bf16"]
AUTOCAST_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}  # fp32: no autocast
NATIVE_BF16_CPU = ("avx512_bf16", "amx_bf16", "bf16", "sve_bf16")
"""``torch.cpu.get_capabilities()`` flags of a CPU that computes bf16 in hardware: x86 AVX512_BF16 / AMX-BF16,
Arm BF16 / SVE-BF16. Without one, oneDNN and ATen convert bf16 to fp32 and back around fp32 arithmetic."""


def train_precision(amp: bool | str, device: torch.device | str) -> Precision:
    """The precision a training step runs in for ``train.amp`` on ``device``: ``True`` is fp16 autocast with a
    GradScaler on CUDA and fp32 elsewhere (no native fp16 training on CPUs); ``False`` fp32; ``"bf16"`` bf16
    autocast on any device (no scaler: bf16 has fp32's exponent range). The weights, the optimizer's state and
    the loss stay fp32 in every case (autocast casts only the inputs of the ops it lists)."""
    kind = torch.device(device).type
    if amp == "bf16":
        return "bf16"
    return "fp16" if amp is True and kind == "cuda" else "fp32"


def native_bf16_cpu() -> bool:
    """Whether this CPU has bf16 arithmetic in hardware (:data:`NATIVE_BF16_CPU`)."""
    caps = torch.cpu.get_capabilities()
    return any(bool(caps.get(f, False)) for f in NATIVE_BF16_CPU)


def bf16_problem(device: torch.device | str) -> str | None:
    """Why bf16 training cannot run on ``device`` (a CUDA GPU that cannot even emulate bf16), or None."""
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_bf16_supported():
        return (
            f"train.amp: bf16 needs a GPU with bf16, and {torch.cuda.get_device_name(dev)} has none "
            "(torch.cuda.is_bf16_supported() is false); use amp: true (fp16 with a gradient scaler) or false (fp32)"
        )
    return None


def bf16_emulated(device: torch.device | str) -> bool:
    """Whether bf16 on ``device`` runs without bf16 arithmetic in hardware: a CPU without :data:`NATIVE_BF16_CPU`,
    a GPU before Ampere (``torch.cuda.is_bf16_supported(including_emulation=False)`` false)."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return not torch.cuda.is_bf16_supported(including_emulation=False)
    return dev.type == "cpu" and not native_bf16_cpu()


@functools.cache
def _warn_emulated_bf16(device_type: str) -> None:
    what = (
        f"a CPU without bf16 instructions (none of {' / '.join(NATIVE_BF16_CPU)})"
        if device_type == "cpu"
        else "a GPU without bf16 arithmetic (before Ampere)"
    )
    log.warning(
        "train.amp: bf16 on %s runs emulated and may be slower than amp: false (fp32); the results are still valid",
        what,
    )


def check_precision(amp: bool | str, device: torch.device | str) -> Precision:
    """:func:`train_precision`, after refusing bf16 on a GPU without it (ValueError, :func:`bf16_problem`) and
    warning once per process and device type where it is emulated (:func:`bf16_emulated`)."""
    prec = train_precision(amp, device)
    if prec == "bf16":
        bad = bf16_problem(device)
        if bad:
            raise ValueError(bad)
        if bf16_emulated(device):
            _warn_emulated_bf16(torch.device(device).type)
    return prec


def augment_batch(x: torch.Tensor, mode: str, g: torch.Generator) -> torch.Tensor:
    """Random crop with 4-px (size/8) zero padding, and horizontal flips for ``flip_crop``; ``flip``:
    horizontal flips only; batched."""
    if mode == "none":
        return x
    n, _, h, w = x.shape
    if mode == "flip":
        flip = (torch.rand(n, generator=g) < 0.5).to(x.device)
        return torch.where(flip[:, None, None, None], x.flip(3), x).contiguous()
    pad = max(1, h // 8)
    xp = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=g)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=g)
    rows = (dy[:, None] + torch.arange(h)[None]).to(x.device)  # n×h
    cols = (dx[:, None] + torch.arange(w)[None]).to(x.device)  # n×w
    idx_n = torch.arange(n, device=x.device)[:, None, None]
    out = xp.permute(0, 2, 3, 1)[idx_n, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
    if mode == "flip_crop":
        flip = (torch.rand(n, generator=g) < 0.5).to(x.device)
        out = torch.where(flip[:, None, None, None], out.flip(3), out)
    return out.contiguous()


def _optimizer(model: nn.Module, r: TrainRecipe) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    groups = [{"params": decay, "weight_decay": r.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if r.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=r.lr, momentum=r.momentum, nesterov=r.momentum > 0)
    if r.optimizer == "adam":
        return torch.optim.Adam(groups, lr=r.lr)
    return torch.optim.AdamW(groups, lr=r.lr)


def _lr_factor(r: TrainRecipe, progress: float) -> float:
    """LR multiplier at ``progress`` (in epochs)."""
    if r.warmup_epochs and progress < r.warmup_epochs:
        return (progress + 1e-3) / r.warmup_epochs
    t = min(1.0, progress / max(r.epochs, 1e-9))
    if r.schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * t))
    if r.schedule == "onecycle":  # linear warm-up over 15 % then cosine anneal (Smith's one-cycle shape)
        return t / 0.15 if t < 0.15 else 0.5 * (1 + math.cos(math.pi * (t - 0.15) / 0.85))
    if r.schedule == "step":
        return r.gamma ** int(progress // max(r.step_size, 1e-9))
    return 1.0


KD_LOSSES = ("hinton", "hinton_2t2", "reverse_kl")
"""``hinton``: α·T²·KL(p_t ‖ p_s) + (1−α)·CE (Hinton et al. 2015); ``hinton_2t2``: 2T²α·KL(p_t ‖ p_s) +
(1−α)·CE, as one reference study wrote it; ``reverse_kl``: α·T²·KL(p_s ‖ p_t) + (1−α)·CE, the direction
another study used (KL(student ‖ teacher)). p = softmax(z / T); KL and CE are batch means."""


def kd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    targets: torch.Tensor,
    alpha: float,
    temperature: float,
    label_smoothing: float = 0.0,
    kind: str = "hinton",
) -> torch.Tensor:
    """The distillation loss ``kind`` (:data:`KD_LOSSES`)."""
    t = temperature
    log_s, log_t = F.log_softmax(student_logits / t, 1), F.log_softmax(teacher_logits / t, 1)
    if kind == "reverse_kl":  # KL(p_s ‖ p_t) = Σ p_s (log p_s − log p_t)
        kl = F.kl_div(log_t, log_s, reduction="batchmean", log_target=True)
    elif kind in ("hinton", "hinton_2t2"):  # KL(p_t ‖ p_s)
        kl = F.kl_div(log_s, log_t, reduction="batchmean", log_target=True)
    else:
        raise ValueError(f"unknown distillation loss '{kind}' (known: {', '.join(KD_LOSSES)})")
    ce = F.cross_entropy(student_logits, targets, label_smoothing=label_smoothing)
    scale = 2.0 if kind == "hinton_2t2" else 1.0
    return scale * alpha * t * t * kl + (1 - alpha) * ce


def _freeze_all_but(model: nn.Module, trainable: set[str] | None, recipe: TrainRecipe) -> list[nn.Parameter]:
    """Freeze every trainable parameter not named in ``trainable`` (transfer learning's first
    ``recipe.freeze_epochs``) and return them; none without ``trainable`` or a freeze period. They stay in the
    optimizer, so they train once :func:`_thaw_when_due` unfreezes them."""
    if trainable is None or recipe.freeze_epochs <= 0:
        return []
    frozen = [p for n, p in model.named_parameters() if n not in trainable and p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    return frozen


def _thaw_when_due(
    model: nn.Module, frozen: list[nn.Parameter], epoch: float, recipe: TrainRecipe
) -> list[nn.Parameter]:
    """The parameters still frozen at ``epoch``: past ``recipe.freeze_epochs`` all train again (and the model
    returns to train mode); before it the model stays in eval mode, so BatchNorm statistics stay frozen too."""
    if frozen and epoch >= recipe.freeze_epochs:
        for p in frozen:
            p.requires_grad_(True)
        model.train()
        return []
    if frozen:
        model.eval()
    return frozen


def _set_lr(opt: torch.optim.Optimizer, base_lrs: list[float], recipe: TrainRecipe, epoch: float) -> None:
    """Scale every parameter group's initial learning rate by the schedule's factor at ``epoch``."""
    f = _lr_factor(recipe, epoch)
    for pg, lr0 in zip(opt.param_groups, base_lrs):
        pg["lr"] = lr0 * f


@dataclass
class _Teacher:
    """The teacher of a distillation run and its loss (:func:`kd_loss`)."""

    model: nn.Module
    alpha: float
    temperature: float
    kind: str


@dataclass
class _TargetStream:
    """Domain adaptation's side of a step: the unlabeled target batches (augmented with their own generator, so
    the source batches are the same as without adaptation) and the tap reading the penultimate features."""

    adapt: Adaptation
    tap: FeatureTap
    batches: Iterator[torch.Tensor]
    generator: torch.Generator


def _forward_loss(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    recipe: TrainRecipe,
    aug: str,
    teacher: _Teacher | None,
    target: _TargetStream | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """One forward pass: the logits, the training loss (cross-entropy, or the distillation loss against the
    teacher's logits of the same batch, plus the weighted adaptation loss) and the adaptation loss alone."""
    adapt_loss = None
    if target is not None:  # one pass over [source; target]: BatchNorm sees both domains
        xt = augment_batch(next(target.batches), aug, target.generator)
        both = model(torch.cat([x, xt]))
        logits = both[: len(x)]
        feats = both if target.adapt.features == "logits" else target.tap.features
        adapt_loss = target.adapt.loss(feats[: len(x)].float(), feats[len(x) :].float())
    else:
        logits = model(x)
    if teacher is not None:
        with torch.no_grad():
            t_logits = teacher.model(x)
        loss = kd_loss(
            logits.float(),
            t_logits.float(),
            y,
            teacher.alpha,
            teacher.temperature,
            recipe.label_smoothing,
            teacher.kind,
        )
    else:
        loss = F.cross_entropy(logits.float(), y, label_smoothing=recipe.label_smoothing)
    if target is not None:
        loss = loss + target.adapt.weight * adapt_loss
    return logits, loss, adapt_loss


def _ema(running: float, value: float, first: bool) -> float:
    """The running average shown in the bar and the log: the first step's value, then 0.95 · old + 0.05 · new."""
    return value if first else 0.95 * running + 0.05 * value


def train(
    model: nn.Module,
    data: ImageSet,
    recipe: TrainRecipe,
    *,
    seed: int = 0,
    device: torch.device | str = "cpu",
    augment_default: str = "crop",
    teacher: nn.Module | None = None,
    kd_alpha: float = 0.9,
    kd_temperature: float = 4.0,
    kd_kind: str = "hinton",
    desc: str = "train",
    show_progress: bool = True,
    epoch_end: Callable[[nn.Module, int], None] | None = None,
    adapt: Adaptation | None = None,
    trainable: set[str] | None = None,
) -> dict[str, float]:
    """Train ``model`` in place on ``data``. Returns summary stats (final loss/acc, seconds, images/s).

    Fractional ``epochs`` are allowed (e.g. 0.5 for a short fine-tune). ``epoch_end(model, epoch)`` is
    called after every completed epoch (e.g. soft filter pruning's re-zeroing). ``adapt``: add a domain
    adaptation loss on the penultimate features of unlabeled target batches (:mod:`.adapt`, Deep CORAL);
    the source batches, their order and augmentation are the same as without it. ``trainable`` with
    ``recipe.freeze_epochs``: for that many epochs only these parameters train and the rest of the model
    stays in eval mode (BatchNorm statistics frozen too), then everything trains (transfer learning)."""
    device = torch.device(device)
    seed_everything(seed)
    g = torch.Generator().manual_seed(seed)
    model.to(device).train()
    kd = None
    if teacher is not None:
        teacher.to(device).eval()
        kd = _Teacher(teacher, kd_alpha, kd_temperature, kd_kind)
    opt = _optimizer(model, recipe)
    frozen = _freeze_all_but(model, trainable, recipe)
    aug = augment_default if recipe.augment == "auto" else recipe.augment
    precision = check_precision(recipe.amp, device)
    # fp32: autocast off; fp16 (CUDA only) with loss scaling; bf16 needs none (fp32's exponent range)
    autocast = {"dtype": AUTOCAST_DTYPES[precision]} if precision in AUTOCAST_DTYPES else {"enabled": False}
    scaler = torch.amp.GradScaler("cuda", enabled=precision == "fp16")
    steps_per_epoch = max(1, math.ceil(len(data) / recipe.batch_size))
    total_steps = max(1, int(round(recipe.epochs * steps_per_epoch)))
    base_lrs = [pg["lr"] for pg in opt.param_groups]
    step, t0, seen = 0, time.perf_counter(), 0
    run_loss = run_acc = run_adapt = 0.0
    bar = progress_bar(total=total_steps, desc=desc, unit="step", disable=not show_progress)
    target = None
    if adapt is not None:  # the target batches' own augmentation stream
        target = _TargetStream(
            adapt,
            FeatureTap(model),
            adapt.batches(recipe.batch_size, seed, device),
            torch.Generator().manual_seed(seed + 104_729),
        )
    # not on a terminal (a log, CI): a line at least every log_interval() seconds instead of the bar
    every, last_line = (log_interval() if bar.disable else 0.0), t0
    while step < total_steps:
        for x, y, _ in data.batches(recipe.batch_size, shuffle=True, generator=g, device=device):
            if step >= total_steps:
                break
            frozen = _thaw_when_due(model, frozen, step / steps_per_epoch, recipe)
            _set_lr(opt, base_lrs, recipe, step / steps_per_epoch)
            x = photometric(augment_batch(x, aug, g), recipe, g)
            with torch.autocast(device.type, **autocast):
                logits, loss, adapt_loss = _forward_loss(model, x, y, recipe, aug, kd, target)
            if adapt_loss is not None:
                run_adapt = _ema(run_adapt, adapt_loss.item(), step == 0)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            run_loss = _ema(run_loss, loss.item(), step == 0)
            run_acc = _ema(run_acc, (logits.argmax(1) == y).float().mean().item(), step == 0)
            seen += len(y)
            step += 1
            if epoch_end is not None and step % steps_per_epoch == 0:
                epoch_end(model, step // steps_per_epoch)
            bar.update(1)
            bar.set_postfix(
                loss=f"{run_loss:.3f}",
                acc=f"{run_acc:.3f}",
                img_s=f"{seen / (time.perf_counter() - t0):.0f}",
                refresh=False,
            )
            now = time.perf_counter()
            if every > 0 and (now - last_line >= every or step == total_steps):  # and the last step, always
                last_line = now
                log.info(
                    "%s: epoch %d/%g (step %d/%d), loss %.4f, acc %.3f, %.0f images/s, %s",
                    desc,
                    min(math.ceil(step / steps_per_epoch), math.ceil(recipe.epochs)),
                    recipe.epochs,
                    step,
                    total_steps,
                    run_loss,
                    run_acc,
                    seen / (now - t0),
                    fmt_seconds(now - t0),
                )
    bar.close()
    if target is not None:
        target.tap.close()
    for p in frozen:  # freeze_epochs == epochs
        p.requires_grad_(True)
    model.eval()
    secs = time.perf_counter() - t0
    stats = {
        "train_loss": run_loss,
        "train_acc": run_acc,
        "train_seconds": secs,
        "train_images_per_s": seen / secs,
        "train_steps": step,
        "train_bf16": float(precision == "bf16"),
    }
    if adapt is not None:
        stats["train_adapt_loss"] = run_adapt
    return stats


@torch.inference_mode()
def predict(
    model: nn.Module, data: ImageSet, batch_size: int = 512, device: torch.device | str = "cpu", desc: str | None = None
) -> torch.Tensor:
    """Logits (float32, CPU) for every image of ``data``, in order."""
    model.eval()
    out = []
    bar = progress_bar(total=len(data), desc=desc or "predict", unit="img", disable=desc is None)
    for x, _, _ in data.batches(batch_size, device=device):
        out.append(model(x).float().cpu())
        bar.update(len(x))
    bar.close()
    return torch.cat(out) if out else torch.empty(0)


def accuracy(model: nn.Module, data: ImageSet, device: torch.device | str = "cpu", batch_size: int = 512) -> float:
    logits = predict(model, data, batch_size, device)
    return float((logits.argmax(1) == data.y).float().mean())

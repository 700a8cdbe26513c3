"""The parent model of an experiment: built from ``model:``, with the user's weights when given.

``model.weights`` (a file or a published tag) makes the given model the baseline — with ``train: null``
as it is, with ``train: {init: weights, ...}`` as the start of fine-tuning (transfer learning: the
classifier head is replaced when the dataset has another number of classes, the first convolution
adapted when it has another number of channels; :func:`~compressbench.models.weights.fit_state_dict`).
Compression methods then start from it exactly as from a baseline trained here.

The input normalisation travels with the weights (docs/architecture.md, convention 4): a compressbench
model carries its own (``normalize.*`` in the file); published weights bring theirs (ImageNet's mean / std
for torchvision and most timm weights; averaged over RGB for a one-channel dataset); ``model.mean`` /
``model.std`` state it for any other file; otherwise the dataset's statistics are used, as for a model
trained here.

The same code runs at ``validate`` (every check before any work: the file exists, is readable and fits
the architecture built for the dataset) and in the baseline job.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .data.base import DataMeta
from .errors import CheckpointError
from .models import create_model
from .models.published import Published
from .models.weights import fit_state_dict, is_published, load_fitted, module_path, read_weights
from .registry import models

log = logging.getLogger(__name__)


def published_for(model_name: str, source: str) -> Published:
    """The published weights ``source`` names for the model (one-line error if it has none / no such tag)."""
    spec = models.spec(model_name)
    if spec.published is None:
        raise CheckpointError(
            f"model.weights: '{source}': model '{model_name}' has no published weights; pass a "
            f"file, or use a model that has them (tv_resnet18, timm:<arch>, torchvision:<model>)"
        )
    return spec.published(source)


@lru_cache(maxsize=32)
def _sha256(path: str, stamp: tuple[int, ...]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_sha256(path: str | Path) -> str:
    """sha256 of a weights file, cached per process while its inode, size, mtime and ctime stay the same (a
    ctime cannot be set back: a file rewritten or swapped in is hashed again)."""
    st = Path(path).stat()
    return _sha256(str(Path(path).resolve()), (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))


def weights_identity(model_name: str, source: str) -> dict[str, Any]:
    """What identifies the weights in the baseline job's key: a file by its sha256 (never its path),
    published weights by their tag and source."""
    if is_published(source):
        return published_for(model_name, source).identity()
    p = Path(source).expanduser()
    if not p.is_file():
        raise CheckpointError(f"model.weights: no such file '{source}'")
    return {"sha256": file_sha256(p)}


def run_path(source: str) -> str:
    """The weights source as a job gets it: a file as an absolute path, a tag as it is."""
    return source if is_published(source) else str(Path(source).expanduser().resolve())


def norm_mismatch(values: tuple[float, ...], channels: int) -> str | None:
    """Why ``model.mean`` / ``std`` with these values cannot normalise ``channels`` channels (one value for
    all channels, or one per channel), or None."""
    if len(values) in (1, channels):
        return None
    return f"{len(values)} values for {channels} input channel(s); give one value per channel, or one for all"


def _stats(values: tuple[float, ...], channels: int) -> tuple[float, ...]:
    """Published statistics for ``channels`` channels: as they are, averaged for one channel (RGB weights on a
    grey dataset), else tiled; ``model.mean`` / ``std`` are checked first (:func:`norm_mismatch`)."""
    if len(values) == channels:
        return tuple(values)
    if channels == 1:
        return (sum(values) / len(values),)
    return tuple(values[i % len(values)] for i in range(channels))


def _set_normalize(model: nn.Module, mean: Any, std: Any) -> None:
    c = model.normalize.mean.shape[1]
    model.normalize.mean.copy_(torch.tensor(_stats(tuple(mean), c)).view(1, -1, 1, 1))
    model.normalize.std.copy_(torch.tensor(_stats(tuple(std), c)).view(1, -1, 1, 1))


@dataclass
class Baseline:
    """The parent model and what loading did (for logs and the job record)."""

    model: nn.Module
    source: str | None = None
    where: str = ""
    notes: list[str] = field(default_factory=list)
    normalize: str = "dataset statistics"
    checked: bool = True  # False: published weights not cached at validate (checked when fetched)

    def record(self) -> dict[str, Any]:
        return {"weights": self.source, "read_from": self.where, "adapted": self.notes, "normalize": self.normalize}


def _check_own(wf: Any, cfg: dict[str, Any]) -> None:
    if wf.steps:
        kinds = ", ".join(str(s.get("kind")) for s in wf.steps if isinstance(s, dict))
        raise CheckpointError(
            f"{wf.path}: a compressed variant (steps: {kinds}), not a baseline; give the baseline's "
            f"checkpoint, or its parent's"
        )
    got = (wf.spec.get("model"), float(wf.spec.get("width", 1.0)), dict(wf.spec.get("kwargs") or {}))
    want = (cfg["name"], float(cfg.get("width", 1.0)), dict(cfg.get("kwargs") or {}))
    if got != want:
        raise CheckpointError(
            f"{wf.path}: a compressbench checkpoint of model '{got[0]}' (width {got[1]:g}, kwargs "
            f"{got[2]}), but the config names '{want[0]}' (width {want[1]:g}, kwargs {want[2]}); "
            f"set model: to match it"
        )


def build_baseline(
    cfg: dict[str, Any], meta: DataMeta, *, transfer: bool, fetch: bool = True, sha256: str | None = None
) -> Baseline:
    """The parent for model config ``cfg`` (``name, width, kwargs, weights, mean, std``) on a dataset
    with ``meta``. ``transfer``: the weights start fine-tuning (head / first conv may be adapted);
    ``fetch``: download missing published weights (``validate`` passes False and skips the fit
    check of weights not yet cached); ``sha256``: the hash a weights file was planned with (the baseline
    job: the bytes it reads must be those — a file swapped since is refused). Raises one-line
    :class:`CheckpointError`s."""
    model = create_model(cfg["name"], meta, width=cfg.get("width", 1.0), **(cfg.get("kwargs") or {}))
    source = cfg.get("weights")
    user_norm = cfg.get("mean") is not None
    out = Baseline(model, source)
    if user_norm:
        c = model.normalize.mean.shape[1]
        bad = norm_mismatch(tuple(cfg["mean"]), c) or norm_mismatch(tuple(cfg["std"]), c)
        if bad:
            raise CheckpointError(f"model.mean / model.std: {bad}")
        _set_normalize(model, cfg["mean"], cfg["std"])
        out.normalize = "model.mean / model.std"
    if not source:
        return out
    spec = models.spec(cfg["name"])
    pub = published_for(cfg["name"], source) if is_published(source) else None
    if pub is not None and pub.input_size and tuple(pub.input_size) != tuple(meta.size):
        log.warning(
            "%s were trained on %d×%d images; %s gives %d×%d (dataset.resize: %d resizes them)",
            pub.label,
            *pub.input_size,
            meta.name,
            *meta.size,
            pub.input_size[0],
        )
    if pub is not None:
        path = pub.fetch() if fetch else pub.locate()
        if path is None:
            out.checked, out.where = False, f"{pub.label} (not cached yet: fetched by `compressbench run`)"
            return out
    else:
        path = Path(source)
    wf = read_weights(path, sha256 if pub is None else None)
    if wf.spec is not None:
        _check_own(wf, cfg)
    what = f"{cfg['name']} built for {meta.name} ({meta.channels} channel(s), {meta.num_classes} classes)"
    fitted = fit_state_dict(
        wf.state_dict,
        model,
        classifier=spec.classifier,
        first_conv=spec.first_conv,
        filter_fn=spec.filter_weights,
        transfer=transfer,
        label=f"weights {pub.label if pub else path}",
        what=what,
    )
    if fitted.has_normalize and user_norm:
        raise CheckpointError(
            f"model.mean / model.std: {path} carries its own input normalisation "
            f"(normalize.mean / normalize.std); leave model.mean and model.std out"
        )
    with torch.no_grad():
        load_fitted(model, fitted)
        if pub is not None and not user_norm:
            _set_normalize(model, pub.mean, pub.std)
            out.normalize = f"{pub.label}'s mean / std"
        elif fitted.has_normalize:
            out.normalize = "the file's own (normalize.*)"
    out.where, out.notes = f"{pub.label + ': ' if pub else ''}{wf.path} ({wf.where})", fitted.notes
    for n in fitted.notes:
        log.info("%s", n)
    return out


def head_parameters(model: nn.Module, model_name: str) -> set[str]:
    """Names of the classifier head's parameters (what trains while the backbone is frozen)."""
    head = module_path(model.net, models.spec(model_name).classifier, last=True)
    return {f"net.{head}.{n}" for n, _ in model.net.get_submodule(head).named_parameters()} if head else set()


def train_baseline(
    model: nn.Module,
    data: Any,
    recipe: Any,
    *,
    model_name: str,
    seed: int,
    device: torch.device,
    show_progress: bool = False,
    adapt: Any = None,
) -> tuple[dict[str, float], dict[str, Any]]:
    """Train (or fine-tune) the baseline; with a validation split (``dataset.val_fraction``) keep the
    weights of the epoch with the best validation accuracy (checked after every whole epoch and at the
    end). ``adapt``: a domain adaptation (``adapt.make_adaptation``, Deep CORAL) trained alongside.
    Returns (stats: floats stored as measurements, record: the validation history)."""
    from .train import accuracy, train

    trainable = head_parameters(model, model_name) if recipe.freeze_epochs > 0 else None
    val = data.val if data.val is not None and len(data.val) else None
    history: list[dict[str, float]] = []
    best: dict[str, Any] = {"top1": -1.0}

    def evaluate(m: nn.Module, epoch: float) -> None:
        was_training = m.training
        acc = accuracy(m, val, device=next(m.parameters()).device)
        history.append({"epoch": float(epoch), "val_top1": acc})
        if acc > best["top1"]:
            best.update(top1=acc, epoch=float(epoch), state={k: v.detach().clone() for k, v in m.state_dict().items()})
        m.train(was_training)

    stats = train(
        model,
        data.train,
        recipe,
        seed=seed,
        device=device,
        augment_default=data.meta.augment,
        desc=f"train seed={seed}",
        show_progress=show_progress,
        epoch_end=evaluate if val is not None else None,
        trainable=trainable,
        adapt=adapt,
    )
    if val is None:
        return stats, {}
    if not history or history[-1]["epoch"] < recipe.epochs:
        evaluate(model, recipe.epochs)
    if best["epoch"] < history[-1]["epoch"]:
        model.load_state_dict(best["state"])
    model.eval()
    stats = {**stats, "val_top1": best["top1"], "best_epoch": best["epoch"], "val_images": float(len(val))}
    return stats, {"validation": history, "best_epoch": best["epoch"]}


def prefetch_weights(exp: Any, jobs: list[Any], cache: Path) -> None:
    """Before any work: download published weights the plan's uncached baseline jobs need (one
    :class:`CheckpointError` line when offline)."""
    src = exp.model.weights
    if not src or not is_published(src):
        return
    if any(j.kind == "train" and not (cache / "jobs" / j.key / "result.json").is_file() for j in jobs):
        published_for(exp.model.name, src).fetch()

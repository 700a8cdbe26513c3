"""Export one variant to one format and verify it — the step ``compressbench export`` and the ``runtimes``
evaluator share. Whatever fails (a library missing, the writer, the runtime) becomes a ``verified = 0``
row with the reason; the other formats still run."""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..data.base import DatasetBundle, ImageSet
from ..interfaces import Measurement
from ..measure.fresh import ScratchDir
from .formats import ExportInput, Written, formats, missing_reason
from .prepare import deployable
from .verify import VerifySettings, failure, verify

log = logging.getLogger(__name__)

BATCH = 64  # images per verification / calibration batch


@dataclass
class Evidence:
    """The images an export is verified on and calibrated with, and the variant's own logits on them."""

    images: list[torch.Tensor]
    labels: torch.Tensor
    reference: torch.Tensor
    calib: list[torch.Tensor] = field(default_factory=list)


def evidence(model: nn.Module, images: ImageSet, data: DatasetBundle, calib_batches: int, seed: int = 0) -> Evidence:
    """Evaluation batches with labels, the variant's logits on them (CPU: int8 kernels run there), and
    calibration batches drawn like the int8 methods draw theirs (the validation split when there is one,
    else training images; seeded) for runtimes that quantize themselves."""
    xs, ys = [], []
    for x, y, _ in images.batches(BATCH):
        xs.append(x)
        ys.append(y)
    model = model.cpu().eval()
    with torch.inference_mode():
        ref = torch.cat([model(x).float() for x in xs])
    pool = data.val if data.val is not None and len(data.val) else data.train
    g = torch.Generator().manual_seed(seed)
    calib = [x for x, _, _ in itertools.islice(pool.batches(BATCH, shuffle=True, generator=g), calib_batches)]
    return Evidence(xs, torch.cat(ys), ref, calib)


def export_one(
    name: str,
    model: nn.Module,
    checkpoint: dict[str, Any] | None,
    out: Path,
    input_shape: tuple[int, ...],
    ev: Evidence,
    settings: VerifySettings,
    *,
    target: dict[str, Any] | None = None,
    scratch: ScratchDir | None = None,
) -> tuple[Written | None, list[Measurement]]:
    """Write ``model`` as format ``name`` into ``out`` and verify it: ``(written or None, rows)``."""
    why = missing_reason(name)
    if why:
        return None, [failure(name, why)]
    out.mkdir(parents=True, exist_ok=True)
    inp = ExportInput(deployable(model), (1, *input_shape[1:]), ev.calib, checkpoint, settings.max_batch)
    try:
        written = formats.get(name)(inp, out)
    except Exception as e:  # noqa: BLE001 — a format that cannot take this model: a row, not a crash
        log.warning("export %s failed: %s: %s", name, type(e).__name__, e)
        return None, [failure(name, e)]
    try:
        rows = verify(
            name, written, inp.input_shape, ev.images, ev.labels, ev.reference, settings, target=target, scratch=scratch
        )
    except Exception as e:  # noqa: BLE001 — the runtime could not run it
        log.warning("export %s: the runtime failed: %s: %s", name, type(e).__name__, e)
        return written, [failure(name, e)]
    return written, rows

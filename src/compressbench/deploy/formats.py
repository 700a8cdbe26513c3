"""The export-format registry: what a format writes, which runtime runs it, and whether it is installed.

A format is a writer ``write(inp: ExportInput, out: Path) -> Written`` registered with its
:class:`FormatSpec`: the runtime that loads the artifact (``open(path, threads) -> predict``, numpy
batches in, logits out), that runtime's version, whether it is installed here (``missing() -> reason |
None``, checked at ``validate`` and before an export), and what it does with a model's numerics (the
model card's caveats come from these fields, not from format names). The built-in formats register in
:mod:`.builtin` (lazy: their heavy libraries load only when a format is used).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from ..registry import Registry
from ..specs import ComponentSpec

Predict = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class FormatSpec(ComponentSpec):
    """An export format. ``label``: the runtime's name in tables (``ONNX Runtime``); ``suffix``: the file
    the runtime opens; ``open(path, threads) -> predict``: load it in its runtime with that many intra-op
    threads (called in a fresh process for timing); ``runtime_version() -> str``: e.g.
    ``onnxruntime-1.32.0``; ``missing() -> reason | None``: why it cannot be used here (a library not
    installed), with ``extra`` the pip extra that installs it; ``exploits_sparsity``: its kernels skip
    zero weights (none of the built-ins does); ``graph``: what it stores — ``"graph"`` (a standalone
    program) or ``"weights"`` (tensors plus a recipe); ``worker``: how a fresh process times it —
    ``"artifact"`` (``open`` in the worker) or ``"torch"`` (the efficiency protocol's PyTorch worker, which
    rebuilds the file with ``checkpoint.load_model``); ``usage``: Python lines that run the file (``{shape}``:
    the input shape), quoted in the model card."""

    label: str = ""
    suffix: str = ""
    open: Callable[[Path, int], Predict] | None = None
    runtime_version: Callable[[], str] | None = None
    missing: Callable[[], str | None] | None = None
    extra: str = ""
    exploits_sparsity: bool = False
    graph: str = "graph"
    worker: str = "artifact"
    usage: str = ""


@dataclass
class ExportInput:
    """What a writer gets: the in-framework variant (eval mode, CPU, pruning masks folded), its input
    shape at batch 1, calibration batches for a runtime's own int8 quantizer, the checkpoint the variant
    was loaded from (``spec`` / ``steps`` / ``state_dict``: the recipe a weights format stores) and the
    largest batch the artifact must take (dynamic-batch exports are bounded by it)."""

    model: nn.Module
    input_shape: tuple[int, ...]
    calib: list[torch.Tensor] = field(default_factory=list)
    checkpoint: dict[str, Any] | None = None
    max_batch: int = 64


@dataclass
class Written:
    """What a writer produced. ``path``: the file the runtime opens; ``files``: every file of the artifact
    (their bytes are the ``file_bytes`` row); ``dtype``: the numerics the runtime runs (``fp32``,
    ``int8``, ``int8-dynamic``, ``float16`` ...); ``tag``: ``realised``, or ``simulated`` when the runtime
    runs float kernels around quantize/dequantize ops; ``notes``: how the artifact differs from the
    variant (the model card lists them); ``max_batch``: the largest batch it takes (1: a static shape);
    ``info``: details for the card (e.g. the standalone loader's availability)."""

    path: Path
    files: list[Path]
    dtype: str
    tag: str = "realised"
    notes: list[str] = field(default_factory=list)
    max_batch: int = 64
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def bytes(self) -> int:
        return sum(f.stat().st_size for f in self.files)


formats: Registry[Callable[[ExportInput, Path], Written], FormatSpec] = Registry(
    "export format", "compressbench.deploy.builtin", FormatSpec
)


def missing_reason(name: str) -> str | None:
    """Why format ``name`` cannot be used here (a one-line reason naming the pip extra), or None."""
    spec = formats.spec(name)
    why = spec.missing() if spec.missing else None
    if why and spec.extra:
        why += f" (pip install 'compressbench[{spec.extra}]')"
    return why


def runtime_name(name: str) -> str:
    """``<runtime>-<version>`` of format ``name`` (the ``runtime`` condition of its rows)."""
    spec = formats.spec(name)
    try:
        return spec.runtime_version() if spec.runtime_version else name
    except Exception:  # noqa: BLE001 — e.g. its package is not installed: the format's name says enough
        return name

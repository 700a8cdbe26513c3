"""Saving and reloading models without pickled code (``torch.load(weights_only=True)``).

A checkpoint is ``{"format": 1, "spec": {...}, "steps": [...], "state_dict": {...}}``:

* ``spec`` rebuilds the parent architecture: ``{"model": name, "width": w, "kwargs": {...},
  "meta": DataMeta.to_dict()}``;
* ``steps`` is the list of transformations a compressor applied that change the architecture
  or module types (structured pruning, quantization, factorisation, ...). Each step is a dict
  with a ``"kind"``; a *rebuilder* registered for that kind re-applies it to a freshly built
  model (shapes only, no data), after which the saved state dict loads exactly.

Compressors register rebuilders with :func:`register_rebuilder`.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from .data.base import DataMeta
from .registry import Registry
from .specs import RebuildSpec

CHECKPOINT_FORMAT = 1
rebuilders: Registry[Callable[[nn.Module, dict[str, Any], dict[str, torch.Tensor]], nn.Module], RebuildSpec] = \
    Registry("rebuild step", "compressbench.compress", RebuildSpec)


def register_rebuilder(kind: str, quantizes: bool = False):
    """``@register_rebuilder("prune.structured")`` on ``fn(model, step, state_dict) -> model``;
    ``quantizes=True`` for steps that make float modules quantized / low-precision."""
    return rebuilders.register(kind, quantizes=quantizes)


def step_quantizes(step: dict[str, Any]) -> bool:
    """Whether a saved compression step quantizes (its rebuilder's spec says so)."""
    return rebuilders.spec(step["kind"]).quantizes


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_model(model: nn.Module, path: str | Path, spec: dict[str, Any], steps: list[dict[str, Any]] | None = None,
               extra: dict[str, Any] | None = None) -> Path:
    """Atomically write a checkpoint that :func:`load_model` can rebuild."""
    sd = model.state_dict()
    state = OrderedDict((k, v.detach().cpu() if isinstance(v, torch.Tensor) else v) for k, v in sd.items())
    # module versions (e.g. quantized Linear's packed-params layout) are read from _metadata on load
    state._metadata = getattr(sd, "_metadata", OrderedDict())  # type: ignore[attr-defined]
    payload = {"format": CHECKPOINT_FORMAT, "spec": spec, "steps": list(steps or []),
               "state_dict": state, "extra": extra or {}}
    buf = io.BytesIO()
    torch.save(payload, buf)
    atomic_write_bytes(Path(path), buf.getvalue())
    return Path(path)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    return torch.load(Path(path), map_location="cpu", weights_only=True)


def build_from_spec(spec: dict[str, Any]) -> nn.Module:
    from .models import create_model

    meta = DataMeta.from_dict(spec["meta"])
    return create_model(spec["model"], meta, width=spec.get("width", 1.0), **spec.get("kwargs", {}))


def load_model(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the architecture from spec + steps, load the weights. Returns (model in eval mode, checkpoint)."""
    ck = read_checkpoint(path)
    model = build_from_spec(ck["spec"])
    sd = ck["state_dict"]
    for step in ck["steps"]:
        model = rebuilders.get(step["kind"])(model, step, sd)
    missing, unexpected = model.load_state_dict(sd, strict=False)
    # quantized modules keep packed params under private keys; anything else must match
    bad = [k for k in list(missing) + list(unexpected) if not k.endswith("_packed_params.dtype")]
    if bad:
        raise RuntimeError(f"checkpoint {path} does not fit its rebuilt model: {bad[:5]}")
    model.eval()
    return model, ck

"""A checkpoint's state dict as safetensors tensors plus a JSON layout, and back — no pickle either way.

safetensors stores plain tensors only; a compressbench state dict also holds int8 tensors (their
integer values, scales, zero points, axis), tuples (an int8 ``Linear``'s packed weight and bias),
dtypes, ``None`` and module versions (``_metadata``). :func:`encode` writes each plain tensor under its
key and describes everything else in the layout (``{"t": "qtensor", "qscheme": ..., "scale": ...}``,
``{"t": "tuple", "items": [...]}`` with the items' tensors under ``key::0``, ``key::1`` ...);
:func:`decode` rebuilds exactly the state dict ``checkpoint.load_model`` loads. A dtype named in the
layout is looked up as an attribute of ``torch`` and must be a ``torch.dtype``: the JSON cannot name code.

:func:`read_export` is what ``compressbench.load_model("x.safetensors")`` reads (``checkpoint.read_checkpoint``
dispatches here): ``x.safetensors`` + ``x.json``.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError

LAYOUT_VERSION = 1


def _dtype(name: str) -> torch.dtype:
    dt = getattr(torch, name, None)
    if not isinstance(dt, torch.dtype):
        raise ValueError(f"'{name}' is not a torch dtype")
    return dt


def _enc(key: str, v: Any, out: dict[str, torch.Tensor]) -> dict[str, Any]:
    if isinstance(v, torch.Tensor):
        if v.is_quantized:
            qs = str(v.qscheme()).replace("torch.", "")
            d: dict[str, Any] = {"t": "qtensor", "dtype": str(v.dtype).replace("torch.", ""), "qscheme": qs}
            out[key] = v.int_repr().contiguous().clone()
            if qs.startswith("per_channel"):
                d["axis"] = int(v.q_per_channel_axis())
                out[key + "::scales"] = v.q_per_channel_scales().contiguous().clone()
                out[key + "::zero_points"] = v.q_per_channel_zero_points().contiguous().clone()
            else:
                d.update(scale=float(v.q_scale()), zero_point=int(v.q_zero_point()))
            return d
        out[key] = v.detach().cpu().contiguous().clone()
        return {"t": "tensor"}
    if isinstance(v, torch.dtype):
        return {"t": "dtype", "value": str(v).replace("torch.", "")}
    if v is None or isinstance(v, (bool, int, float, str)):
        return {"t": "value", "value": v}
    if isinstance(v, (tuple, list)):
        return {"t": type(v).__name__, "items": [_enc(f"{key}::{i}", x, out) for i, x in enumerate(v)]}
    if isinstance(v, dict):
        return {"t": "dict", "items": {str(k): _enc(f"{key}::{k}", x, out) for k, x in v.items()}}
    raise TypeError(f"state entry '{key}': cannot store a {type(v).__name__} in safetensors")


def _dec(key: str, d: dict[str, Any], tensors: dict[str, torch.Tensor]) -> Any:
    t = d["t"]
    if t == "tensor":
        return tensors[key]
    if t == "qtensor":  # the integer tensor's dtype (int8 / uint8 / int32) gives qint8 / quint8 / qint32
        ints = tensors[key]
        if d["qscheme"].startswith("per_channel"):
            q = torch._make_per_channel_quantized_tensor(
                ints, tensors[key + "::scales"], tensors[key + "::zero_points"], int(d["axis"])
            )
        else:
            q = torch._make_per_tensor_quantized_tensor(ints, float(d["scale"]), int(d["zero_point"]))
        if q.dtype != _dtype(d["dtype"]):
            raise ValueError(f"state entry '{key}': integer values of {ints.dtype} do not make {d['dtype']}")
        return q
    if t == "dtype":
        return _dtype(d["value"])
    if t == "value":
        return d["value"]
    if t in ("tuple", "list"):
        items = [_dec(f"{key}::{i}", x, tensors) for i, x in enumerate(d["items"])]
        return tuple(items) if t == "tuple" else items
    if t == "dict":
        return {k: _dec(f"{key}::{k}", x, tensors) for k, x in d["items"].items()}
    raise ValueError(f"state entry '{key}': unknown kind '{t}'")


def encode(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``(tensors, layout)`` of a (portable) state dict; the layout carries ``_metadata`` (module versions)."""
    tensors: dict[str, torch.Tensor] = {}
    entries = {k: _enc(k, v, tensors) for k, v in state.items()}
    meta = {k: dict(v) for k, v in getattr(state, "_metadata", {}).items()}
    return tensors, {"version": LAYOUT_VERSION, "entries": entries, "metadata": meta}


def decode(tensors: dict[str, torch.Tensor], layout: dict[str, Any]) -> OrderedDict:
    """The state dict :func:`encode` described (with its ``_metadata``)."""
    sd: OrderedDict = OrderedDict((k, _dec(k, d, tensors)) for k, d in layout["entries"].items())
    sd._metadata = OrderedDict((k, dict(v)) for k, v in layout.get("metadata", {}).items())  # type: ignore[attr-defined]
    return sd


def read_export(path: str | Path) -> dict[str, Any]:
    """A safetensors export as a checkpoint dict (``spec``, ``steps``, ``state_dict``); one-line
    :class:`CheckpointError` for anything missing or malformed."""
    from safetensors.torch import load_file

    p = Path(path)
    jp = p.with_suffix(".json")
    if not jp.is_file():
        raise CheckpointError(f"{p}: its architecture spec {jp.name} is missing (an export writes both files)")
    try:
        spec = json.loads(jp.read_text())
        cb = spec["compressbench"]
        ok = (
            isinstance(cb.get("spec"), dict)
            and isinstance(cb["spec"].get("model"), str)
            and isinstance(cb["spec"].get("meta"), dict)
            and isinstance(cb.get("steps", []), list)
        )
        if not ok:
            raise ValueError("'compressbench' needs 'spec' {model, meta, ...} and 'steps'")
        state = decode(load_file(str(p)), spec["state"])
    except CheckpointError:
        raise
    except Exception as e:  # noqa: BLE001 — a damaged or foreign file: one line
        raise CheckpointError(
            f"{p}: not a readable compressbench safetensors export ({type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else ''})"
        ) from None
    return {
        "format": 1,
        "spec": cb["spec"],
        "steps": list(cb.get("steps", [])),
        "state_dict": state,
        "extra": cb.get("extra", {}),
    }

"""Saving and reloading models without pickled code (``torch.load(weights_only=True)``).

A checkpoint is ``{"format": 1, "spec": {...}, "steps": [...], "state_dict": {...}}``:

* ``spec`` rebuilds the parent architecture: ``{"model": name, "width": w, "kwargs": {...},
  "meta": DataMeta.to_dict()}``;
* ``steps`` is the list of transformations a compressor applied that change the architecture
  or module types (structured pruning, quantization, factorisation, ...). Each step is a dict
  with a ``"kind"``; a *rebuilder* registered for that kind re-applies it to a freshly built
  model (shapes only, no data), after which the saved state dict loads exactly.

Compressors register rebuilders with :func:`register_rebuilder`.

Loading trusts nothing in the file (docs/architecture.md, convention 14): ``torch.load(weights_only=True)``
unpickles no code, and the model names in ``spec`` / ``steps`` are only *looked up* in the model registry. A
``"pkg.mod:factory"`` name is imported only if this process resolved it already (the user wrote it
in a config or a flag) or the caller passes ``trust=True`` (CLI: ``--trust-code``). Every failure is
a one-line :class:`~compressbench.errors.CheckpointError` naming the file.
"""

from __future__ import annotations

import io
import os
import secrets
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from .data.base import DataMeta
from .errors import CheckpointError
from .registry import Registry, UnknownNameError
from .specs import RebuildSpec

CHECKPOINT_FORMAT = 1
rebuilders: Registry[Callable[[nn.Module, dict[str, Any], dict[str, torch.Tensor]], nn.Module], RebuildSpec] = Registry(
    "rebuild step", "compressbench.compress", RebuildSpec
)


def register_rebuilder(kind: str, quantizes: bool = False):
    """``@register_rebuilder("prune.structured")`` on ``fn(model, step, state_dict) -> model``;
    ``quantizes=True`` for steps that make float modules quantized / low-precision."""
    return rebuilders.register(kind, quantizes=quantizes)


def step_quantizes(step: dict[str, Any]) -> bool:
    """Whether a saved compression step quantizes (its rebuilder's spec says so)."""
    return rebuilders.spec(step["kind"]).quantizes


def atomic_write_bytes(path: Path, data: bytes, *, fsync: bool = False) -> None:
    """Write ``data`` to a temporary file next to ``path``, then rename it into place: a reader sees
    the old file or the new one, never a partial one. The file gets the usual ``0o666 & ~umask``
    permissions (``mkstemp``'s 0600 would make a shared cache unreadable to the rest of a team)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the kernel applies the umask
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# FX graph-mode int8 keeps the weights of functional quantized ops as packed C++ objects, which
# weights-only loading refuses: they are saved as their tensors and packed again on load
_PACKED = {"LinearPackedParamsBase": "linear", "Conv2dPackedParamsBase": "conv2d"}


def _portable(v: Any) -> Any:
    if not isinstance(v, torch.ScriptObject):
        return v.detach().cpu() if isinstance(v, torch.Tensor) else v
    kind = _PACKED.get(v._type().name())
    if kind is None:
        raise ValueError(f"cannot save a {v._type().name()} object in a checkpoint")
    w, b = getattr(torch.ops.quantized, f"{kind}_unpack")(v)
    return {"packed": kind, "weight": w, "bias": b}


def _repack(model: nn.Module, sd: dict[str, Any]) -> dict[str, Any]:
    """Put saved packed int8 params (see ``_portable``) back on ``model``; returns the rest of ``sd`` (with
    its ``_metadata``: module versions)."""
    if not any(isinstance(v, dict) for v in sd.values()):
        return sd
    rest: dict[str, Any] = OrderedDict()
    rest._metadata = getattr(sd, "_metadata", OrderedDict())  # type: ignore[attr-defined]
    for k, v in sd.items():
        if not (isinstance(v, dict) and v.get("packed") in _PACKED.values()):
            rest[k] = v
            continue
        owner, _, attr = k.rpartition(".")
        mod = model.get_submodule(owner) if owner else model
        cur = getattr(mod, attr)
        if v["packed"] == "linear":
            new = torch.ops.quantized.linear_prepack(v["weight"], v["bias"])
        else:
            new = torch.ops.quantized.conv2d_prepack(
                v["weight"], v["bias"], cur.stride(), cur.padding(), cur.dilation(), cur.groups()
            )
        setattr(mod, attr, new)
    return rest


def save_model(
    model: nn.Module,
    path: str | Path,
    spec: dict[str, Any],
    steps: list[dict[str, Any]] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Atomically write a checkpoint that :func:`load_model` can rebuild."""
    sd = model.state_dict()
    state = OrderedDict((k, _portable(v)) for k, v in sd.items())
    # module versions (e.g. quantized Linear's packed-params layout) are read from _metadata on load
    state._metadata = getattr(sd, "_metadata", OrderedDict())  # type: ignore[attr-defined]
    payload = {
        "format": CHECKPOINT_FORMAT,
        "spec": spec,
        "steps": list(steps or []),
        "state_dict": state,
        "extra": extra or {},
    }
    buf = io.BytesIO()
    torch.save(payload, buf)
    atomic_write_bytes(Path(path), buf.getvalue())
    return Path(path)


def _first_line(e: BaseException) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    if not lines:
        return type(e).__name__
    first = lines[0].split(". ")[0].rstrip(".")  # torch appends paragraphs of advice to the one fact
    return f"{type(e).__name__}: {first[:200]}"


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """``torch.load(weights_only=True)`` of a compressbench checkpoint: no code is unpickled. Raises a
    one-line :class:`CheckpointError` for a missing, damaged, foreign or unsafe file."""
    import pickle

    from .models.weights import unpickle_reason

    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{p}: no such checkpoint file")
    if p.suffix == ".safetensors":  # an export (compressbench.deploy): tensors + a JSON recipe, nothing unpickled
        from .deploy.tensors import read_export

        return read_export(p)
    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": noise on top of the real error
            warnings.simplefilter("ignore")
            ck = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"{p}: not a compressbench checkpoint, or an unsafe pickle — refused by weights-only "
            f"loading, which never runs code from a file ({unpickle_reason(e)})"
        ) from None
    except Exception as e:  # truncated / garbled zip, empty file, I/O error
        raise CheckpointError(f"{p}: not a readable checkpoint (damaged or truncated?): {_first_line(e)}") from None
    ok = (
        isinstance(ck, dict)
        and isinstance(ck.get("spec"), dict)
        and isinstance(ck.get("state_dict"), dict)
        and isinstance(ck.get("steps", []), list)
        and isinstance(ck["spec"].get("model"), str)
        and isinstance(ck["spec"].get("meta"), dict)
    )
    if not ok:
        raise CheckpointError(
            f"{p}: not a compressbench checkpoint (expected a dict with 'spec' {{model, meta, ...}}, "
            f"'steps' and 'state_dict'; save one with compressbench.save_model)"
        )
    ck.setdefault("steps", [])
    return ck


def build_from_spec(spec: dict[str, Any], *, trust: bool = False) -> nn.Module:
    """The parent architecture a checkpoint's spec names (random weights). ``trust``: see :func:`load_model`."""
    from .models import create_model, trusting_code

    meta = DataMeta.from_dict(spec["meta"])
    with trusting_code(trust):
        return create_model(spec["model"], meta, width=spec.get("width", 1.0), **spec.get("kwargs", {}))


def load_model(path: str | Path, *, trust: bool = False) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the architecture from spec + steps, load the weights. Returns (model in eval mode, checkpoint).

    Only registered models are built. A ``"pkg.mod:factory"`` named by the file is imported (and run)
    only with ``trust=True`` — or when this process resolved that name already because the user wrote
    it (a config's ``model.name``, a ``--model`` flag). Every failure is one :class:`CheckpointError` line."""
    from .models import UntrustedModelError, trusting_code

    ck = read_checkpoint(path)
    sd = ck["state_dict"]
    try:
        with trusting_code(trust):
            model = build_from_spec(ck["spec"], trust=trust)
            for step in ck["steps"]:
                model = rebuilders.get(step["kind"])(model, step, sd)
    except UntrustedModelError as e:
        raise CheckpointError(
            f"{path}: the checkpoint names the model factory '{e.name}', which is not registered "
            f"here, and loading it would import and run that code; if you trust this file pass "
            f"trust=True (CLI: --trust-code), or name the factory in your config / --model"
        ) from None
    except UnknownNameError as e:
        raise CheckpointError(f"{path}: {e}") from None
    except Exception as e:  # kwargs a factory does not take, a malformed step ...
        raise CheckpointError(f"{path}: cannot rebuild the model it describes: {_first_line(e)}") from None
    try:
        sd = _repack(model, sd)
        missing, unexpected = model.load_state_dict(sd, strict=False)
    except Exception as e:  # shape mismatch
        raise CheckpointError(f"{path}: weights do not fit the rebuilt model: {_first_line(e)}") from None
    # quantized modules keep packed params under private keys; anything else must match
    bad = [k for k in list(missing) + list(unexpected) if not k.endswith("_packed_params.dtype")]
    if bad:
        raise CheckpointError(f"{path}: weights do not fit the rebuilt model (missing/unexpected keys {bad[:5]})")
    model.eval()
    return model, ck


def worker_trust(trust: bool = False, plugins: Any = None) -> dict[str, Any]:
    """What a fresh worker process needs to load a checkpoint with this process's trust decisions:
    ``trust`` (the caller's ``--trust-code``) and the plug-in set (``config.PluginSet``: the user's modules
    with their folders, the model factories the user named, the entry points) — of the experiment when
    ``plugins`` is given, else the ``"pkg.mod:factory"`` names the user resolved here (a ``--model`` flag) —
    never names read from the file."""
    from .config.plugins import PluginSet
    from .models import user_model_names

    if plugins is None:
        names = user_model_names()
        plugins = PluginSet.collect(names, names)
    return {"trust": bool(trust), "plugins": plugins.to_json()}


def load_model_in_worker(target: dict[str, Any]) -> tuple[nn.Module, dict[str, Any]]:
    """:func:`load_model` in a fresh process, given a target made with :func:`worker_trust` (its plug-in
    set loaded first: a plug-in's rebuilder is then registered here too)."""
    from .config.plugins import PluginSet

    PluginSet.from_json(target.get("plugins")).load()
    return load_model(target["path"], trust=bool(target.get("trust", False)))

"""Weights from a file or a published tag, loaded into a compressbench model without running code.

``model.weights`` names either a **file** — a bare state dict (``.pt`` / ``.pth`` / ``.bin``), a training
script's wrapper (``{"state_dict": ...}`` from Lightning or timm's ``train.py``, ``{"model": ...}`` from
torchvision's reference scripts, ``{"model_state_dict": ...}``, a whole pickled ``nn.Module``),
``.safetensors``, or one of our own ``model.pt`` checkpoints — or **published weights**
(``torchvision:IMAGENET1K_V1``, ``timm:a1_in1k``: :mod:`.published`).

Reading trusts nothing in the file (docs/architecture.md, convention 14). Safetensors hold tensors only.
Pickles are read with ``torch.load(weights_only=True)``; the classes a training script pickled next to the weights
(``argparse.Namespace`` of its arguments, a LightningModule's hyper-parameters, a whole model) are
*not* imported or called: each becomes an inert placeholder (:class:`Inert`) that only keeps the plain
data it was given, from which a pickled module's tensors are read. Globals of modules torch blocks
outright (``os``, ``subprocess``, ``builtins.eval`` ...) refuse the file.

Fitting (:func:`fit_state_dict`) maps the file's keys onto the model's: ``module.`` (DataParallel),
``model.`` (Lightning) and ``_orig_mod.`` (``torch.compile``) prefixes are stripped, a bare network's
keys and a whole compressbench model's (``normalize.*`` + ``net.*``) both load, and the architecture's
own converter (timm's ``checkpoint_filter_fn``, e.g. resampled position embeddings) runs. For
transfer learning (``train.init: weights``) the classifier head is left freshly initialised when the
dataset has another number of classes, and the first convolution's weights are adapted when it has
another number of channels (timm's ``adapt_input_conv``: summed over RGB for one channel, tiled and
rescaled for more). Anything else that does not match — a missing or unexpected key, a shape — is one
:class:`~compressbench.errors.CheckpointError` line naming the first offending keys.
"""

from __future__ import annotations

import hashlib
import io
import logging
import pickle
import stat
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from ..errors import CheckpointError
from ..fields import NORM_MEAN_RANGE, NORM_STD_RANGE
from .filecheck import check_bytes, check_finite, is_safetensors

log = logging.getLogger(__name__)

PUBLISHED_PREFIXES = ("torchvision", "timm")
# keys under which training scripts store the weights, in the order they are looked for
WRAPPER_KEYS = (
    "state_dict",
    "model_state_dict",
    "model",
    "module",
    "net",
    "network",
    "weights",
    "params",
    "state_dict_ema",
    "model_ema",
)
# leading key components a wrapper adds: DataParallel / DDP, Lightning's self.model, torch.compile
WRAPPER_PREFIXES = ("module", "model", "_orig_mod")
_SHOW = 3  # offending keys named in an error


def is_published(source: str) -> bool:
    """``torchvision:...`` / ``timm:...`` (or the bare family: its default weights), not a file path."""
    return source.split(":", 1)[0] in PUBLISHED_PREFIXES


# --------------------------------------------------------------------------- reading files
class Inert:
    """Stands in for any class a weights file names: never imported, never called. It keeps the
    arguments and state the pickle gives it (plain data and tensors), so that a pickled ``nn.Module``'s
    parameters can still be read."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        object.__setattr__(self, "_cb_args", args)

    def __setstate__(self, state: Any) -> None:
        object.__setattr__(self, "_cb_state", state)


def _inert(name: str) -> tuple[type, str]:
    return type(name.rsplit(".", 1)[-1], (Inert,), {"_cb_name": name}), name


def _torch_load(path: Path, data: bytes) -> Any:
    """``torch.load(weights_only=True)`` of the file's bytes ``data`` with every non-allow-listed global replaced
    by an inert class."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            names = torch.serialization.get_unsafe_globals_in_checkpoint(io.BytesIO(data))
        except Exception as e:  # not a zip / pickle at all
            raise CheckpointError(
                f"{path}: not a readable weights file (a PyTorch pickle or .safetensors): {_first_line(e)}"
            ) from None
        try:
            with torch.serialization.safe_globals([_inert(n) for n in names]):
                return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as e:  # e.g. a global of a blocked module (os, subprocess ...)
            raise CheckpointError(
                f"{path}: refused by weights-only loading, which never runs code from a file ({unpickle_reason(e)})"
            ) from None
        except Exception as e:
            raise CheckpointError(
                f"{path}: not a readable weights file (damaged or truncated?): {_first_line(e)}"
            ) from None


def unpickle_reason(e: BaseException) -> str:
    """The one informative line of torch's multi-line ``weights_only`` refusal."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    for ln in lines:
        if "GLOBAL" in ln or ln.startswith(("Unsupported", "Trying to load")):
            return ln[:200]
    return lines[-1][:200] if lines else type(e).__name__


def _first_line(e: BaseException) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return f"{type(e).__name__}: {lines[0][:200]}" if lines else type(e).__name__


def _is_state_dict(obj: Any) -> bool:
    return (
        isinstance(obj, Mapping)
        and len(obj) > 0
        and all(isinstance(k, str) for k in obj)
        and all(isinstance(v, torch.Tensor) for v in obj.values())
    )


def _module_tensors(obj: Any, prefix: str = "", depth: int = 0) -> dict[str, torch.Tensor]:
    """The persistent parameters and buffers of a pickled ``nn.Module`` read as :class:`Inert` objects."""
    st = getattr(obj, "_cb_state", None)
    if not isinstance(st, Mapping) or depth > 64:
        return {}
    out: dict[str, torch.Tensor] = {}
    skip = st.get("_non_persistent_buffers_set") or set()
    for group in ("_parameters", "_buffers"):
        for k, v in (st.get(group) or {}).items():
            if isinstance(v, torch.Tensor) and k not in skip:
                out[prefix + k] = v
    for k, child in (st.get("_modules") or {}).items():
        out.update(_module_tensors(child, f"{prefix}{k}.", depth + 1))
    return out


@dataclass
class WeightsFile:
    """What a file holds: the weights (``state_dict``), where in the file they were (``where``), and for
    one of our checkpoints its ``spec`` / ``steps``."""

    path: Path
    state_dict: dict[str, torch.Tensor]
    where: str
    spec: dict[str, Any] | None = None
    steps: list[Any] = field(default_factory=list)
    sha256: str | None = None  # of the bytes read


def _find_weights(obj: Any, where: str = "", depth: int = 0) -> tuple[dict[str, torch.Tensor], str] | None:
    if _is_state_dict(obj):
        return dict(obj), where or "the file itself (a bare state dict)"
    if isinstance(obj, Inert):
        sd = _module_tensors(obj)
        return (
            (sd, (where or "the file") + f" (a pickled {getattr(obj, '_cb_name', 'module')}, read as data)")
            if sd
            else None
        )
    if isinstance(obj, Mapping) and depth < 3:
        for k in WRAPPER_KEYS:
            if k in obj:
                found = _find_weights(obj[k], f"{where}['{k}']" if where else f"key '{k}'", depth + 1)
                if found:
                    return found
    return None


def read_bytes(path: str | Path, expect_sha256: str | None = None) -> tuple[Path, bytes, str]:
    """(path, the file's bytes, their sha256), read once: everything after this — the planned hash, the
    container's checks, the tensors — sees the same bytes, whatever happens to the file meanwhile. Only a
    regular file is read (not a FIFO, a device, or a /proc, /sys or /dev entry such as ``/proc/self/mem``,
    symlinks followed). ``expect_sha256``: the hash the run was planned with (a mismatch: the file changed)."""
    p = Path(path).expanduser()
    if not p.exists():
        raise CheckpointError(f"{p}: no such weights file")
    real = p.resolve()
    try:
        st = real.stat()
    except OSError as e:
        raise CheckpointError(f"{p}: cannot read the weights file ({e.strerror})") from None
    if not stat.S_ISREG(st.st_mode) or real.parts[1:2] in (("proc",), ("sys",), ("dev",)):
        where = f" (it resolves to {real})" if real != p.absolute() else ""
        raise CheckpointError(f"{p}: is not a regular file{where}; give a weights file on disk")
    try:
        data = real.read_bytes()
    except OSError as e:
        raise CheckpointError(f"{p}: cannot read the weights file ({e.strerror or type(e).__name__})") from None
    digest = hashlib.sha256(data).hexdigest()
    if expect_sha256 is not None and digest != expect_sha256:
        raise CheckpointError(
            f"{p}: the weights file changed since this run was planned (sha256 {digest[:12]}, "
            f"planned {expect_sha256[:12]}); nothing was computed from it — run again to use "
            f"the file as it is now"
        )
    return p, data, digest


def read_weights(path: str | Path, expect_sha256: str | None = None) -> WeightsFile:
    """Read a weights file (see the module docstring): its bytes once (:func:`read_bytes`; ``expect_sha256``:
    the hash it must have), the container checked (:func:`.filecheck.check_bytes`: zip CRCs, a safetensors
    header), every floating tensor finite. One-line :class:`CheckpointError` on failure."""
    p, data, digest = read_bytes(path, expect_sha256)
    check_bytes(data, str(p))
    wf = _parse(p, data)
    check_finite(wf.state_dict, str(p))
    wf.sha256 = digest
    return wf


def _parse(p: Path, data: bytes) -> WeightsFile:
    # safetensors: an 8-byte little-endian header length, then the JSON header
    if p.suffix == ".safetensors" or is_safetensors(data):
        try:
            from safetensors.torch import load

            return WeightsFile(p, dict(load(data)), "the safetensors file")
        except Exception as e:
            if p.suffix == ".safetensors":
                raise CheckpointError(f"{p}: not a readable safetensors file: {_first_line(e)}") from None
    obj = _torch_load(p, data)
    if (
        isinstance(obj, Mapping)
        and isinstance(obj.get("spec"), Mapping)
        and "format" in obj
        and _is_state_dict(obj.get("state_dict"))
    ):
        return WeightsFile(
            p, dict(obj["state_dict"]), "a compressbench checkpoint", dict(obj["spec"]), list(obj.get("steps") or [])
        )
    found = _find_weights(obj)
    if found is None:
        keys = f" (top-level keys: {', '.join(map(str, list(obj)[:8]))})" if isinstance(obj, Mapping) else ""
        raise CheckpointError(
            f"{p}: holds no state dict of tensors{keys}; save model.state_dict(), or a dict with "
            f"it under one of {', '.join(WRAPPER_KEYS[:4])}"
        )
    return WeightsFile(p, found[0], found[1])


# --------------------------------------------------------------------------- fitting to a model
def _rename(sd: Mapping[str, torch.Tensor], prefix: str, as_net: bool) -> dict[str, torch.Tensor]:
    """Keys with ``prefix`` stripped, as Classifier keys (``net.*`` / ``normalize.*``); keys without the
    prefix are kept as they are (they will be reported as unexpected)."""
    out: dict[str, torch.Tensor] = {}
    for k, v in sd.items():
        if not k.startswith(prefix):
            out[k] = v
            continue
        r = k[len(prefix) :]
        out[r if not as_net and r.startswith(("net.", "normalize.")) else "net." + r] = v
    return out


def to_model_keys(sd: Mapping[str, torch.Tensor], target: set[str]) -> dict[str, torch.Tensor]:
    """``sd`` with its keys mapped onto a Classifier's (``target``): the wrapper prefix and reading (a bare
    network's keys or a whole model's) that match most keys."""
    cands = {""}
    for k in sd:
        parts, p = k.split(".")[:-1], ""
        for part in parts[:3]:
            if part not in WRAPPER_PREFIXES:
                break
            p += part + "."
            cands.add(p)
    best, score = dict(sd), -1
    for p in sorted(cands, key=len):
        for as_net in (False, True):
            m = _rename(sd, p, as_net)
            s = len(target.intersection(m))
            if s > score:
                best, score = m, s
    return best


def _shape(t: torch.Tensor) -> str:
    return "[" + ", ".join(str(d) for d in t.shape) + "]"


def _few(keys: list[str]) -> str:
    more = f" (+{len(keys) - _SHOW} more)" if len(keys) > _SHOW else ""
    return ", ".join(keys[:_SHOW]) + more


def module_path(net: nn.Module, path: str | None, last: bool) -> str | None:
    """``path`` if the network has it, else the first (``last=False``) / last conv or linear module."""
    if path:
        try:
            net.get_submodule(path)
            return path
        except AttributeError:
            pass
    names = [n for n, m in net.named_modules() if isinstance(m, (nn.Linear, nn.modules.conv._ConvNd))]
    return (names[-1] if last else names[0]) if names else None


@dataclass
class Fitted:
    """A state dict in the model's keys, and what was adapted to get it (for logs and records)."""

    state_dict: dict[str, torch.Tensor]
    notes: list[str]
    has_normalize: bool
    fresh: list[str] = field(default_factory=list)  # model keys deliberately left at their initial values


def _apply_filter(mapped: dict[str, torch.Tensor], filter_fn: Any, net: nn.Module) -> dict[str, torch.Tensor]:
    """Run the architecture's converter over the ``net.`` part of ``mapped``; a converter meeting a layout it
    does not know leaves the keys as they are (the key check below then says what does not fit)."""
    net_sd = {k[4:]: v for k, v in mapped.items() if k.startswith("net.")}
    try:
        net_sd = filter_fn(net_sd, net)
    except Exception as e:
        log.debug("checkpoint filter skipped: %s", e)
    return {
        **{k: v for k, v in mapped.items() if not k.startswith("net.")},
        **{"net." + k: v for k, v in net_sd.items()},
    }


def _drop_other_head(
    mapped: dict[str, torch.Tensor], target: Mapping[str, torch.Tensor], head: str, notes: list[str]
) -> list[str]:
    """Transfer learning to another number of classes: drop the file's classifier ``net.{head}`` when its shape
    differs from the model's, and return the model keys left at their initial values (none if it fits)."""
    hp = f"net.{head}."
    bad = [k for k, v in mapped.items() if k.startswith(hp) and k in target and v.shape != target[k].shape]
    if not bad:
        return []
    old = mapped[bad[0]].shape[0]
    for k in [k for k in mapped if k.startswith(hp)]:
        del mapped[k]
    notes.append(f"classifier net.{head} replaced: {old} → {target[bad[0]].shape[0]} classes (re-initialised)")
    return [k for k in target if k.startswith(hp)]


def _adapt_stem(
    mapped: dict[str, torch.Tensor], target: Mapping[str, torch.Tensor], stem: str, notes: list[str]
) -> None:
    """Transfer learning to another number of input channels: adapt the first conv ``net.{stem}``'s weight
    with timm's ``adapt_input_conv`` (summed to one channel, or tiled and rescaled)."""
    k = f"net.{stem}.weight"
    if not (k in mapped and k in target and mapped[k].dim() == 4 and mapped[k].shape[1] != target[k].shape[1]):
        return
    from timm.models import adapt_input_conv

    old = mapped[k].shape[1]
    mapped[k] = adapt_input_conv(target[k].shape[1], mapped[k].float(), base_chans=old).to(mapped[k].dtype)
    how = "summed over its input channels" if target[k].shape[1] == 1 else "tiled and rescaled"
    notes.append(f"first conv net.{stem} adapted from {old} to {target[k].shape[1]} input channel(s) ({how})")


def _check_keys(
    mapped: Mapping[str, torch.Tensor],
    target: Mapping[str, torch.Tensor],
    fresh: list[str],
    head: str | None,
    stem: str | None,
    transfer: bool,
    label: str,
    what: str,
) -> None:
    """Refuse (one line) a state dict with missing or unexpected keys or other shapes than the model's;
    the input normalisation, BatchNorm step counters and deliberately fresh keys may be missing."""
    missing = [
        k
        for k in target
        if k not in mapped
        and not k.startswith("normalize.")
        and not k.endswith("num_batches_tracked")
        and k not in fresh
    ]
    unexpected = [k for k in mapped if k not in target]
    shapes = [k for k in mapped if k in target and mapped[k].shape != target[k].shape]
    if not (missing or unexpected or shapes):
        return
    parts = []
    if shapes:
        k = shapes[0]
        parts.append(
            f"shape of {k} is {_shape(mapped[k])} in the file but {_shape(target[k])} in the model"
            + (f" (+{len(shapes) - 1} more shape mismatches)" if len(shapes) > 1 else "")
        )
    if missing:
        parts.append(f"{len(missing)} missing key(s): {_few(missing)}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected key(s): {_few(unexpected)}")
    hint = _hint(shapes, mapped, target, head, stem, transfer)
    raise CheckpointError(f"{label} do not fit {what}: " + "; ".join(parts) + hint)


def _check_floats(mapped: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor], label: str) -> None:
    """Refuse integer tensors for floating-point parameters (``load_state_dict`` would cast them silently: an
    integer file is not these weights)."""
    ints = [k for k in mapped if target[k].is_floating_point() and not mapped[k].is_floating_point()]
    if ints:
        k = ints[0]
        raise CheckpointError(
            f"{label}: tensor {k} is {str(mapped[k].dtype).removeprefix('torch.')} in the file "
            f"but a {str(target[k].dtype).removeprefix('torch.')} parameter of the model"
            + (f" (+{len(ints) - 1} more)" if len(ints) > 1 else "")
            + "; weights must be floating point (convert the file to float first)"
        )


def _check_normalisation(mapped: Mapping[str, torch.Tensor], label: str) -> None:
    """Refuse a file's input normalisation outside the range of images in [0, 1] (a damaged file, or one made
    for 0-255 inputs)."""
    for k, (lo, hi) in (("normalize.mean", NORM_MEAN_RANGE), ("normalize.std", NORM_STD_RANGE)):
        v = mapped.get(k)
        if v is not None and v.numel() and not bool(((v >= lo) & (v <= hi)).all()):
            raise CheckpointError(
                f"{label}: the file's input normalisation {k} is {v.flatten().tolist()[:4]}, "
                f"outside [{lo:g}, {hi:g}] (images are in [0, 1]); the file is damaged or was "
                f"made for another input scale"
            )


def fit_state_dict(
    sd: Mapping[str, torch.Tensor],
    model: nn.Module,
    *,
    classifier: str | None = None,
    first_conv: str | None = None,
    filter_fn: Any = None,
    transfer: bool = False,
    label: str = "the weights",
    what: str = "the model",
) -> Fitted:
    """Map ``sd`` onto ``model`` (a Classifier: ``normalize`` → ``net``) and check it fits exactly.

    ``classifier`` / ``first_conv``: module paths inside ``model.net`` (None: by position);
    ``filter_fn(net_state_dict, net)``: the architecture's converter; ``transfer``: adapt the head and
    the first conv instead of refusing them. Raises a one-line :class:`CheckpointError`."""
    target = model.state_dict()
    mapped = to_model_keys(sd, set(target))
    if filter_fn is not None:
        mapped = _apply_filter(mapped, filter_fn, model.net)
    notes: list[str] = []
    fresh: list[str] = []
    head = module_path(model.net, classifier, last=True)
    stem = module_path(model.net, first_conv, last=False)
    if transfer and head:
        fresh = _drop_other_head(mapped, target, head, notes)
    if transfer and stem:
        _adapt_stem(mapped, target, stem, notes)
    _check_keys(mapped, target, fresh, head, stem, transfer, label, what)
    _check_floats(mapped, target, label)
    for k in [k for k in mapped if k.endswith("num_batches_tracked")]:
        mapped[k] = mapped[k].to(target[k].dtype)
    _check_normalisation(mapped, label)
    return Fitted(mapped, notes, any(k.startswith("normalize.") for k in mapped), fresh)


def _hint(
    shapes: list[str],
    mapped: Mapping[str, torch.Tensor],
    target: Mapping[str, torch.Tensor],
    head: str | None,
    stem: str | None,
    transfer: bool,
) -> str:
    """What a shape mismatch means, when it is only the head's classes or the first conv's channels."""
    if transfer or not shapes:
        return ""

    def only_dim(k: str, d: int) -> bool:
        a, b = mapped[k].shape, target[k].shape
        return len(a) == len(b) and all((x == y) != (i == d) for i, (x, y) in enumerate(zip(a, b)))

    if head and all(k.startswith(f"net.{head}.") and only_dim(k, 0) for k in shapes):
        return (
            "; the weights were trained for another number of classes: fine-tune them on this dataset with "
            "train: {init: weights, ...} (the classifier head is replaced)"
        )
    if stem and shapes == [f"net.{stem}.weight"] and only_dim(shapes[0], 1):
        return (
            "; the weights expect another number of input channels: fine-tune with train: {init: weights, ...} "
            "(the first conv is adapted)"
        )
    return "; the file holds another architecture (or width) than model.name"


def load_fitted(model: nn.Module, fitted: Fitted) -> nn.Module:
    """Load a :class:`Fitted` state dict into ``model`` (checked already: strict on everything it holds)."""
    missing, unexpected = model.load_state_dict(fitted.state_dict, strict=False)
    bad = [
        k
        for k in missing
        if not k.startswith("normalize.") and not k.endswith("num_batches_tracked") and k not in fitted.fresh
    ]
    if bad or unexpected:  # fit_state_dict guarantees this cannot happen
        raise CheckpointError(f"weights do not load: missing {bad[:3]}, unexpected {list(unexpected)[:3]}")
    return model

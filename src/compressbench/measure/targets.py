"""How a profiled model is (re)built — in this process and in a fresh one.

A *target* is a JSON-able dict a worker process can act on: ``{"kind": "checkpoint", "path": ...}``
(rebuilt by ``checkpoint.load_model``) or ``{"kind": "factory", "target": "pkg.mod:fn" | model name,
"kwargs", "input_shape", "num_classes", "sys_path"}`` (:func:`build_factory`).
"""

from __future__ import annotations

import inspect
import logging
import sys
from typing import Any

from torch import nn

from ..errors import UserError

log = logging.getLogger(__name__)


class ProfileInputError(UserError):
    """A profile target or input shape that cannot be used (one line, the CLI exits 2)."""


def build_factory(spec: dict[str, Any]) -> nn.Module:
    """Build a model from a factory target. A ``pkg.mod:fn`` is called with ``**kwargs``, or through
    ``create_model`` (with a ``DataMeta`` made from the input shape) if it takes ``meta``; a registered
    model name goes through ``create_model``."""
    from ..data.base import DataMeta
    from ..models import create_model
    from ..registry import UnknownNameError, import_object, models

    for sp in spec.get("sys_path", []):
        if sp not in sys.path:
            sys.path.insert(0, sp)
    target, kwargs = spec["target"], dict(spec.get("kwargs") or {})
    shape = spec["input_shape"]
    meta = DataMeta(
        "profile",
        int(spec.get("num_classes", 10)),
        int(shape[1]),
        tuple(shape[2:4]),
        (0.5,) * int(shape[1]),
        (0.25,) * int(shape[1]),
    )
    if ":" in target:
        try:
            fn = import_object(target)
        except (ImportError, AttributeError, ValueError) as e:
            raise ProfileInputError(f"cannot import profile target '{target}': {type(e).__name__}: {e}") from e
        if "meta" in inspect.signature(fn).parameters:
            models.resolve(target)  # the user named it on the command line: register it for create_model
            return create_model(target, meta, **kwargs).eval()
        model = fn(**kwargs)
    elif target in models:
        model = create_model(target, meta, **kwargs)
    else:
        raise UnknownNameError(
            "profile target",
            target,
            models.names(),
            f"profile target '{target}' is neither a checkpoint file, a package.module:factory "
            f"nor a registered model ({', '.join(models.names())})",
        )
    if not isinstance(model, nn.Module):
        raise ProfileInputError(f"factory '{target}' returned {type(model).__name__}, not an nn.Module")
    return model.eval()


def float_source_from_checkpoint(target: dict[str, Any]) -> nn.Module | None:
    """For a quantized checkpoint: its float architecture (spec + the steps that do not quantize, random
    weights — ONNX Runtime int8 latency does not depend on weight values). None if not rebuildable."""
    if target.get("kind") != "checkpoint":
        return None
    from ..checkpoint import build_from_spec, read_checkpoint, rebuilders, step_quantizes
    from ..models import trusting_code

    ck = read_checkpoint(target["path"])
    trust = bool(target.get("trust", False))
    model = build_from_spec(ck["spec"], trust=trust)
    try:
        with trusting_code(trust):
            for step in ck["steps"]:
                if not step_quantizes(step):
                    model = rebuilders.get(step["kind"])(model, step, ck["state_dict"])
    except Exception as e:  # noqa: BLE001
        log.warning("efficiency: cannot rebuild the float source of %s (%s): ONNX int8 skipped", target["path"], e)
        return None
    return model.eval()

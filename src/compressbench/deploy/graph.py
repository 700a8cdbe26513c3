"""A float model as a JSON graph that :mod:`.standalone` rebuilds with ``torch.nn`` alone.

``torch.fx.symbolic_trace`` gives the forward as nodes; each module becomes ``[name, torch.nn class,
constructor arguments]`` (arguments read back from the module's attributes by the names in its
constructor's signature, e.g. a pruned ``Conv2d``'s real channel counts) or ``[name, null, {}]`` for a
plain container (its own tensors become buffers); each node ``[name, op, target, args, kwargs]`` with
node references as ``{"node": name}``. Only the functions and tensor methods the standalone loader
allows (:data:`.standalone.OPS` / ``METHODS``) may appear. A model that does not fit (int8 modules,
an untraceable forward, a layer whose arguments cannot be read back) gets no graph, with the reason:
it still loads with ``compressbench.load_model``.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn

from .standalone import METHODS, OPS

_FN_NAMES = {fn: name for name, fn in OPS.items()}


class NotRepresentable(ValueError):
    """The model cannot be written as a standalone graph (the message says why)."""


def _is_torch_layer(m: nn.Module) -> bool:
    return type(m) is getattr(nn, type(m).__name__, None)


def _ctor_args(m: nn.Module, name: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for p in list(inspect.signature(type(m).__init__).parameters.values())[1:]:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or p.name in ("device", "dtype"):
            continue
        if not hasattr(m, p.name):
            if p.default is p.empty:
                raise NotRepresentable(f"{name} ({type(m).__name__}): argument '{p.name}' cannot be read back")
            continue
        v = getattr(m, p.name)
        if p.name == "bias" and (v is None or isinstance(v, torch.Tensor)):
            v = v is not None
        out[p.name] = _plain(v, f"{name}.{p.name}")
    return out


def _plain(v: Any, where: str) -> Any:
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, (tuple, list)):
        return [_plain(i, where) for i in v]
    raise NotRepresentable(f"{where}: a {type(v).__name__} value has no JSON form")


def _arg(a: Any, where: str) -> Any:
    if isinstance(a, torch.fx.Node):
        return {"node": a.name}
    if isinstance(a, (tuple, list)):
        return [_arg(i, where) for i in a]
    if isinstance(a, dict):
        raise NotRepresentable(f"{where}: a dict argument has no JSON form")
    return _plain(a, where)


def graph_spec(model: nn.Module) -> dict[str, Any]:
    """``{"modules": [...], "nodes": [...]}`` of a float model (see the module docstring); raises
    :class:`NotRepresentable` with the reason."""
    try:
        gm = torch.fx.symbolic_trace(model)
    except Exception as e:  # noqa: BLE001 — any tracing failure is "not representable"
        raise NotRepresentable(
            f"torch.fx cannot trace the model: {type(e).__name__}: {str(e).splitlines()[0]}"
        ) from None
    modules = []
    for name, m in model.named_modules():
        if not name:
            continue
        if _is_torch_layer(m) and not isinstance(m, (nn.Sequential, nn.ModuleList, nn.ModuleDict)):
            modules.append([name, type(m).__name__, _ctor_args(m, name)])
        elif type(m) in (nn.Sequential, nn.ModuleList, nn.ModuleDict):
            modules.append([name, type(m).__name__, {}])
        else:
            modules.append([name, None, {}])
    typed = {n for n, t, _ in modules if t}
    nodes = []
    for n in gm.graph.nodes:
        target: Any = n.target
        where = f"node {n.name}"
        if n.op == "call_function":
            target = _FN_NAMES.get(n.target)
            if target is None:
                fn = getattr(n.target, "__qualname__", str(n.target))
                raise NotRepresentable(
                    f"{where} calls {getattr(n.target, '__module__', '')}.{fn}, which the "
                    f"standalone loader does not allow"
                )
        elif n.op == "call_method" and n.target not in METHODS:
            raise NotRepresentable(
                f"{where} calls the tensor method '{n.target}', which the standalone loader does not allow"
            )
        elif n.op == "call_module" and n.target not in typed:
            m = model.get_submodule(n.target)
            raise NotRepresentable(
                f"{where} calls {n.target} ({type(m).__module__}.{type(m).__name__}), not a torch.nn layer"
            )
        nodes.append(
            [n.name, n.op, str(target), _arg(list(n.args), where), {k: _arg(v, where) for k, v in n.kwargs.items()}]
        )
    return {"modules": modules, "nodes": nodes}

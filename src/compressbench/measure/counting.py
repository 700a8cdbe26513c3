"""Parameter counts on the tensors a model really deploys: total, nonzero, per-layer density.

Two things make this more than ``sum(p.numel())``: ``torch.nn.utils.prune`` keeps ``weight_orig``
plus a ``weight_mask`` buffer (the deployed weight is their product, counted once), and ``torch.ao``
int8 modules keep packed weights that are not ``nn.Parameter`` (counted from their int8 tensors).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .precision import is_int8_module


def deployed_weights(model: nn.Module) -> list[tuple[str, nn.Module, str, torch.Tensor]]:
    """``(module name, module, param name, tensor as deployed)`` for every stored weight: pruning
    masks folded (``module.weight``), int8 modules' packed weight and bias unpacked."""
    out = []
    for mname, m in model.named_modules():
        for pname, p in m.named_parameters(recurse=False):
            if pname.endswith("_orig") and hasattr(m, pname[:-5] + "_mask"):
                out.append((mname, m, pname[:-5], getattr(m, pname[:-5]).detach()))
            else:
                out.append((mname, m, pname, p.detach()))
        if is_int8_module(m) and callable(getattr(m, "weight", None)):
            try:
                out.append((mname, m, "weight", m.weight()))
                b = m.bias() if callable(getattr(m, "bias", None)) else None
                if b is not None:
                    out.append((mname, m, "bias", b))
            except Exception:  # noqa: BLE001 — modules without packed weights
                pass
    return out


def nonzero(t: torch.Tensor) -> int:
    """Nonzero entries (of the integer representation for a quantized tensor)."""
    tt = t.int_repr() if t.is_quantized else t
    return int((tt != 0).sum())


def param_counts(model: nn.Module) -> dict[str, int]:
    """``{"params", "params_nonzero"}`` over :func:`deployed_weights` (shared tensors counted once).

    ``params`` is what is stored; ``params_nonzero`` what a sparse format or kernel would keep."""
    total = nnz = 0
    seen: set[int] = set()
    for _, _, _, t in deployed_weights(model):
        key = t.data_ptr() if not t.is_quantized else id(t)
        if key in seen and key != 0:
            continue
        seen.add(key)
        total += t.numel()
        nnz += nonzero(t)
    return {"params": total, "params_nonzero": nnz}


def layer_density(model: nn.Module) -> list[dict[str, Any]]:
    """``[{"layer", "type", "params", "nonzero", "density", "dtype"}]`` for every module that owns a
    weight (conv, linear, BN, int8 modules)."""
    rows: dict[str, dict[str, Any]] = {}
    for mname, m, pname, t in deployed_weights(model):
        if pname != "weight":
            continue
        nz = nonzero(t)
        rows[mname] = {
            "layer": mname,
            "type": type(m).__name__,
            "params": t.numel(),
            "nonzero": nz,
            "density": nz / max(1, t.numel()),
            "dtype": str(t.dtype).replace("torch.", ""),
        }
    return list(rows.values())


def is_masked_model(model: nn.Module) -> bool:
    """True when ``torch.nn.utils.prune`` re-parametrisations (masks) are still attached."""
    return any(n.endswith("_mask") for n, _ in model.named_buffers())

"""Bytes: one function per meaning of "size", and the bitmask sparse file format.

Three sizes are reported, each from exactly one function here:

* :func:`checkpoint_bytes` — the saved checkpoint file as it is on disk (weights *and* the
  rebuild recipe: spec, steps). The compress job's ``checkpoint_bytes`` metric, what the quickstart
  prints, and the ``bytes`` fraction of a compress job whose method reports none.
* :func:`dense_bytes` — ``torch.save`` of the deployable state dict (pruning masks folded): what
  shipping the weights costs. The ``bytes`` budgets (``compress.common.model_stats``) and the
  efficiency evaluator's ``bytes_dense``.
* :func:`sparse_payload_bytes` — a *theoretical* size: per tensor the smaller of dense and
  bitmask + nonzero values, without any container. ``prune.unstructured``'s ``bytes_sparse`` record.

:func:`compressed_sizes` gives the *realised* encodings (``bytes_compressed``): bytes really produced
by zlib / zstd and by :func:`encode_sparse_state_dict`, which :func:`decode_sparse_state_dict` reads
back exactly. The encoding is ours because no maintained package stores a PyTorch state dict as
bitmask + values.
"""

from __future__ import annotations

import io
import json
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

SPARSE_MAGIC = b"CBSPARSE1\n"


def deployable_state_dict(model: nn.Module) -> dict[str, Any]:
    """The state dict one would ship: pruning masks folded into the weights (``prune.remove``
    semantics, ``weight_orig``/``weight_mask`` -> ``weight``); everything else untouched."""
    sd = model.state_dict()
    out: dict[str, Any] = {}
    for k, v in sd.items():
        if k.endswith("_mask") and k[:-5] + "_orig" in sd:
            continue
        if k.endswith("_orig") and k[:-5] + "_mask" in sd:
            out[k[:-5]] = (v * sd[k[:-5] + "_mask"]).detach()
        else:
            out[k] = v
    return out


def torch_save_bytes(obj: Any) -> bytes:
    """What ``torch.save(obj)`` writes."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def checkpoint_bytes(path: str | Path) -> int:
    """Size of a saved checkpoint file (state dict + rebuild recipe), as on disk."""
    return Path(path).stat().st_size


def dense_bytes(model: nn.Module) -> int:
    """Size of ``torch.save`` of :func:`deployable_state_dict` — a plain dict of the tensors, without the
    module-version metadata a checkpoint carries: masks folded (a masked model ships as its dense
    weights), int8 modules at int8 size."""
    return len(torch_save_bytes(deployable_state_dict(model)))


def bitmask_encoded_size(numel: int, nnz: int, elem_size: int) -> int:
    """Payload bytes of one tensor in the bitmask encoding: ⌈numel/8⌉ mask + nnz values."""
    return (numel + 7) // 8 + nnz * elem_size


def sparse_payload_bytes(model: nn.Module) -> int:
    """Theoretical sparse size of ``model.state_dict()``: per floating tensor the smaller of dense
    (numel × itemsize) and :func:`bitmask_encoded_size`; other tensors dense (int8 at one byte);
    no container or header."""
    total = 0
    for t in model.state_dict().values():
        if not isinstance(t, torch.Tensor):
            continue
        if t.is_quantized:
            t = t.int_repr()
        dense = t.numel() * t.element_size()
        if t.is_floating_point():
            total += min(dense, bitmask_encoded_size(t.numel(), int((t != 0).sum()), t.element_size()))
        else:
            total += dense
    return total


def encode_sparse_state_dict(sd: dict[str, Any]) -> bytes:
    """Bitmask + nonzero values for every float tensor (≥ 64 elements) where that is smaller than
    dense (density < 1 − 1/(8·elem_size), i.e. < 96.9 % for fp32); ``torch.save`` for the rest.

    Layout: magic, 8-byte little-endian header length, JSON header, then per encoded tensor the
    packed bitmask (``numpy.packbits``, C order) and the nonzero values, then the rest blob."""
    header: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    rest: dict[str, Any] = {}
    for k, v in sd.items():
        if isinstance(v, torch.Tensor) and v.is_floating_point() and not v.is_quantized and v.numel() >= 64:
            flat = v.detach().cpu().contiguous().reshape(-1)
            mask = flat != 0
            es = flat.element_size()
            if bitmask_encoded_size(flat.numel(), int(mask.sum()), es) < flat.numel() * es:
                mbytes = np.packbits(mask.numpy()).tobytes()
                vbytes = flat[mask].contiguous().view(torch.uint8).numpy().tobytes()
                header.append(
                    {
                        "name": k,
                        "shape": list(v.shape),
                        "dtype": str(v.dtype).replace("torch.", ""),
                        "mask": len(mbytes),
                        "values": len(vbytes),
                    }
                )
                chunks += [mbytes, vbytes]
                continue
        rest[k] = v
    rest_b = torch_save_bytes(rest)
    head = json.dumps({"tensors": header, "rest": len(rest_b)}).encode()
    return b"".join([SPARSE_MAGIC, len(head).to_bytes(8, "little"), head, *chunks, rest_b])


def decode_sparse_state_dict(data: bytes) -> dict[str, Any]:
    """Inverse of :func:`encode_sparse_state_dict` (proves the encoding is a real format)."""
    if not data.startswith(SPARSE_MAGIC):
        raise ValueError("not a compressbench sparse state dict (bad magic)")
    pos = len(SPARSE_MAGIC)
    n = int.from_bytes(data[pos : pos + 8], "little")
    pos += 8
    head = json.loads(data[pos : pos + n])
    pos += n
    out: dict[str, Any] = {}
    for t in head["tensors"]:
        numel = int(np.prod(t["shape"])) if t["shape"] else 1
        mask = np.unpackbits(np.frombuffer(data, np.uint8, t["mask"], pos))[:numel].astype(bool)
        pos += t["mask"]
        dtype = getattr(torch, t["dtype"])
        vals = (
            torch.frombuffer(bytearray(data[pos : pos + t["values"]]), dtype=dtype)
            if t["values"]
            else torch.empty(0, dtype=dtype)
        )
        pos += t["values"]
        full = torch.zeros(numel, dtype=dtype)
        full[torch.from_numpy(mask)] = vals
        out[t["name"]] = full.reshape(t["shape"])
    out.update(torch.load(io.BytesIO(data[pos : pos + head["rest"]]), weights_only=True))
    return out


def compressed_sizes(model: nn.Module, zstd_level: int = 10) -> dict[str, int]:
    """Realised sizes (bytes really produced) of the deployable state dict: ``torch.save`` (dense,
    = :func:`dense_bytes`), ``zlib``/``zstd`` of it, ``bitmask`` (:func:`encode_sparse_state_dict`)
    and ``bitmask+zstd``."""
    import zstandard

    sd = deployable_state_dict(model)
    dense = torch_save_bytes(sd)
    sparse = encode_sparse_state_dict(sd)
    zc = zstandard.ZstdCompressor(level=zstd_level)
    return {
        "torch.save": len(dense),
        "zlib": len(zlib.compress(dense, 6)),
        "zstd": len(zc.compress(dense)),
        "bitmask": len(sparse),
        "bitmask+zstd": len(zc.compress(sparse)),
    }

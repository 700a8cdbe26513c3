"""Checks of a weights file's bytes and tensors before any of it is used (the user's ``model.weights``, published
weights once fetched): a damaged or mislabelled file is one line at ``validate``, never a baseline.

* **A PyTorch zip checkpoint** (what ``torch.save`` writes: ``.pt`` / ``.pth`` / ``.bin``): every member's
  CRC-32 is recomputed (:meth:`zipfile.ZipFile.testzip`). ``torch.load`` does not check them, so 200 garbled
  bytes inside a tensor's data loaded as weights whose loss was 6e34. A legacy (pre-1.6, non-zip) pickle
  carries no checksum: it is read as it is.
* **A .safetensors file**: the header is read as the format defines it (8-byte little-endian length, a JSON
  object of ``{name: {dtype, shape, data_offsets}}``) and every tensor's offsets, length and dtype are checked
  against each other and against the file's size before the library maps it — a header that lies is named,
  tensor by tensor, instead of a generic loader error.
* **Every floating tensor is finite** (:func:`check_finite`): an all-NaN file gave a stored baseline top-1 of
  0.12 without a word.

Whether each tensor's dtype suits the model (a float parameter needs a float tensor: an I32 file whose header
is consistent is still not weights) is checked where the model is known, in
:func:`~compressbench.models.weights.fit_state_dict`. Python's :mod:`zipfile` and :mod:`json` do the parsing;
the safetensors header walk is ours because the library's own refusal names no tensor.
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from typing import Mapping

import torch

from ..errors import CheckpointError

# the safetensors format's dtypes and their sizes in bytes (its specification)
SAFETENSORS_DTYPES = {
    "F64": 8,
    "F32": 4,
    "F16": 2,
    "BF16": 2,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
    "I64": 8,
    "I32": 4,
    "I16": 2,
    "I8": 1,
    "U64": 8,
    "U32": 4,
    "U16": 2,
    "U8": 1,
    "BOOL": 1,
}
MAX_HEADER = 100 << 20  # the format's own limit on the JSON header (100 MB)
ZIP_MAGIC = b"PK\x03\x04"


def is_safetensors(data: bytes) -> bool:
    """An 8-byte header length then ``{``: the safetensors layout."""
    return len(data) >= 9 and data[8:9] == b"{"


def check_zip(data: bytes, label: str) -> None:
    """Every member of a zip checkpoint reads back with its CRC-32. One-line :class:`CheckpointError`."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            bad = z.testzip()
    except Exception as e:  # BadZipFile, a garbled central directory (UnicodeDecodeError, struct.error ...)
        raise CheckpointError(
            f"{label}: a damaged PyTorch checkpoint (its zip directory is unreadable: "
            f"{type(e).__name__}); restore the file or save it again"
        ) from None
    if bad is not None:
        raise CheckpointError(
            f"{label}: a damaged PyTorch checkpoint (member '{bad}' fails its CRC-32 check: the "
            f"bytes changed after torch.save wrote them); restore the file or save it again"
        )


def check_safetensors_header(data: bytes, label: str) -> None:
    """The header's tensors fit the file: known dtypes, whole shapes, offsets in order, each length equal to
    elements × dtype size, together covering the data exactly. One-line :class:`CheckpointError`."""
    n = int.from_bytes(data[:8], "little")
    if n > min(MAX_HEADER, len(data) - 8):
        raise CheckpointError(
            f"{label}: a damaged safetensors file (header length {n} exceeds the file's {len(data)} bytes)"
        )
    try:
        header = json.loads(data[8 : 8 + n])
    except (ValueError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{label}: a damaged safetensors file (its header is not JSON: {e})") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{label}: a damaged safetensors file (its header is not a JSON object)")
    body = len(data) - 8 - n
    spans = []
    for name, t in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(t, dict) or t.get("dtype") not in SAFETENSORS_DTYPES:
            dtype = t.get("dtype") if isinstance(t, dict) else None
            raise CheckpointError(
                f"{label}: tensor '{name}' has dtype {dtype!r}, not one of the safetensors "
                f"dtypes ({', '.join(SAFETENSORS_DTYPES)})"
            )
        shape, off = t.get("shape"), t.get("data_offsets")
        if not (
            isinstance(shape, list) and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
        ):
            raise CheckpointError(f"{label}: tensor '{name}' has shape {shape!r}, not a list of sizes")
        if not (
            isinstance(off, list)
            and len(off) == 2
            and all(isinstance(o, int) for o in off)
            and 0 <= off[0] <= off[1] <= body
        ):
            raise CheckpointError(
                f"{label}: tensor '{name}' has data_offsets {off!r}, outside the file's {body} data bytes"
            )
        want = math.prod(shape) * SAFETENSORS_DTYPES[t["dtype"]]
        if off[1] - off[0] != want:
            raise CheckpointError(
                f"{label}: tensor '{name}' ({t['dtype']} {shape}) needs {want} bytes but its "
                f"offsets span {off[1] - off[0]}: the header and the data disagree"
            )
        spans.append((off[0], off[1], name))
    end = 0
    for a, b, name in sorted(spans):
        if a != end:
            raise CheckpointError(
                f"{label}: tensor '{name}' starts at byte {a} of the data, expected {end}: "
                f"the tensors overlap or leave a gap"
            )
        end = b
    if end != body:
        raise CheckpointError(f"{label}: the tensors cover {end} of the file's {body} data bytes (truncated or padded)")


def check_bytes(data: bytes, label: str) -> None:
    """The container's own checks: a zip checkpoint's CRCs, a safetensors header (see the module docstring)."""
    if data[:4] == ZIP_MAGIC:
        check_zip(data, label)
    elif is_safetensors(data):
        check_safetensors_header(data, label)


def check_finite(state_dict: Mapping[str, torch.Tensor], label: str) -> None:
    """Every floating tensor holds finite values only. One-line :class:`CheckpointError` naming the first
    tensor that does not and how many of the file's values are NaN or infinite."""
    bad = [(k, v) for k, v in state_dict.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if not bad:
        return
    k, v = bad[0]
    n = int((~torch.isfinite(v)).sum())
    more = f" (+{len(bad) - 1} more tensors)" if len(bad) > 1 else ""
    raise CheckpointError(
        f"{label}: tensor '{k}' holds {n} of {v.numel()} non-finite values (NaN or infinity)"
        f"{more}; these are not usable weights"
    )


__all__ = [
    "check_bytes",
    "check_zip",
    "check_safetensors_header",
    "check_finite",
    "is_safetensors",
    "SAFETENSORS_DTYPES",
]

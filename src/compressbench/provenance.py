"""What a run's numbers depend on beyond the config and the code: stored with every run, compared by
``compressbench compare``.

On one machine an unchanged experiment reproduces bit for bit. Across machines three things move results
by small amounts, and each is recorded here:

* **CPU kernels.** torch picks its vectorised ATen kernels by the CPU's instruction set
  (``torch.backends.cpu.get_cpu_capability()``: DEFAULT / AVX2 / AVX512 ..., capped by the environment
  variable ``ATEN_CPU_CAPABILITY``); oneDNN (convolutions) and MKL (matrix products) dispatch on their own
  (``ONEDNN_MAX_CPU_ISA``, ``MKL_CBWR``, ``MKL_ENABLE_INSTRUCTIONS``). Different kernels round differently,
  training amplifies the last bits. Recorded: CPU model, the ISA extensions that select kernels, torch's
  capability, the kernel-selecting environment variables, thread counts, torch / oneDNN / MKL versions.
* **Library versions** (torch, torchvision, Torch-Pruning, numpy ...).
* **Generated datasets.** A dataset whose images are generated here (``DatasetSpec.fingerprint``:
  digits-domains renders matplotlib's fonts with Pillow's FreeType; ``synthetic`` draws from torch's RNG)
  records the inputs of its generator (font files and their sha256, FreeType / Pillow / matplotlib
  versions, options) and a sha256 of the generated images, so two machines that drew different images
  say so.

Everything here is written into the runs table (``host_json``: :func:`host_info`, ``versions_json``:
:func:`versions`, whose ``datasets`` entry holds the fingerprints). Written because no library records
exactly this set; torch's own ``torch.__config__.show()`` is the source of the oneDNN / MKL versions.
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import re
from pathlib import Path
from typing import Any, Iterable

import torch

from .measure.hardware import cpu_flags, cpu_id, cpu_model

log = logging.getLogger(__name__)

# environment variables that change which CPU kernels run (or how many threads reduce)
KERNEL_ENV = (
    "ATEN_CPU_CAPABILITY",
    "ONEDNN_MAX_CPU_ISA",
    "DNNL_MAX_CPU_ISA",
    "MKL_CBWR",
    "MKL_ENABLE_INSTRUCTIONS",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
)
# /proc/cpuinfo flags that select kernel paths (vector width, FMA, int8 / bf16 dot products, AMX)
ISA_FLAGS = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "avx_vnni",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
    "asimd",
    "sve",
)
PACKAGES = (
    "compressbench",
    "torch",
    "torchvision",
    "numpy",
    "torch-pruning",
    "onnxruntime",
    "pydantic",
    "foolbox",
    "torchattacks",
    "timm",
)


def cpu_capability() -> str:
    """torch's ATen CPU capability in use (DEFAULT, AVX2, AVX512, ...; '' when torch cannot tell)."""
    try:
        return str(torch.backends.cpu.get_cpu_capability())
    except Exception:  # pragma: no cover - older torch
        return ""


def host_info() -> dict[str, Any]:
    """The run's host: CPU model and kernel selection, threads, GPU (stored as the run's ``host_json``)."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": cpu_model(),
        "cpu_id": cpu_id(),
        "cpu_flags": cpu_flags(ISA_FLAGS),
        "cpu_capability": cpu_capability(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "mkldnn": bool(torch.backends.mkldnn.is_available()),
        "quantized_engine": torch.backends.quantized.engine,
        "env": {k: os.environ[k] for k in KERNEL_ENV if k in os.environ},
        "cuda": torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def _build_config() -> dict[str, str]:
    """oneDNN and MKL versions from ``torch.__config__.show()`` (the only place torch states them)."""
    try:
        text = torch.__config__.show()
    except Exception:  # pragma: no cover
        return {}
    out = {}
    m = re.search(r"MKL-DNN v([\w.]+)", text) or re.search(r"oneDNN v([\w.]+)", text)
    if m:
        out["onednn"] = m.group(1)
    m = re.search(r"Math Kernel Library Version ([\w.]+)", text)
    if m:
        out["mkl"] = m.group(1)
    return out


def versions(experiment: Any = None) -> dict[str, Any]:
    """Package versions, torch's oneDNN / MKL, and — given the experiment — the fingerprints of the generated
    datasets it uses (``datasets``); stored as the run's ``versions_json``."""
    from importlib import metadata

    out: dict[str, Any] = {"python": platform.python_version()}
    for pkg in PACKAGES:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    out.update(_build_config())
    if experiment is not None:
        fps = dataset_fingerprints(experiment)
        if fps:
            out["datasets"] = fps
    return out


def dataset_fingerprints(experiment: Any) -> dict[str, dict[str, Any]]:
    """``{dataset name: fingerprint}`` for the experiment's dataset when its spec declares a fingerprint (a
    generated dataset). A fingerprint that fails is recorded as its error (provenance never stops a run)."""
    from .registry import datasets

    ds = experiment.dataset
    spec = datasets.spec(ds.name)
    if spec.fingerprint is None:
        return {}
    root = Path(ds.root) if getattr(ds, "root", None) else None
    cache = Path(experiment.cache_dir) / "data"
    try:
        fp = dict(spec.fingerprint(root, cache, **dict(ds.options or {})))
    except Exception as e:  # e.g. fonts unreadable: the run itself will say what is wrong
        log.warning("dataset fingerprint of %s failed: %s", ds.name, e)
        fp = {"error": f"{type(e).__name__}: {e}"}
    return {ds.name: fp}


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_tensors(tensors: Iterable[torch.Tensor]) -> str:
    """One digest over tensors' bytes (images and labels of a generated dataset), in order."""
    h = hashlib.sha256()
    for t in tensors:
        t = t.detach().cpu().contiguous()
        h.update(str((t.dtype, tuple(t.shape))).encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (lists kept as values, empty dicts dropped): the fields
    ``compare`` diffs."""
    if not isinstance(d, dict):
        return {prefix: d} if prefix else {}
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, dict):
            out.update(flatten(v, key))  # an empty dict (no kernel variables set) adds no field
        else:
            out[key] = v
    return out

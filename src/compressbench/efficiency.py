"""Efficiency profile: parameters, bytes, FLOPs/MACs, latency, throughput, peak memory, ONNX Runtime.

Every figure carries a tag:

* ``theoretical`` — counted, not measured: FLOPs, MACs, effective FLOPs (dense × per-layer
  density), int8 op counts, nonzero parameters. A sparse or fake-quantized model is *never*
  faster because of these numbers alone.
* ``realised`` — measured on this machine: bytes of a file we really wrote (and can decode),
  wall-clock latency/throughput, peak resident memory.

Conventions
-----------
* FLOPs = 2 × MACs. Float FLOPs come from ``torch.utils.flop_counter.FlopCounterMode``
  (it counts convolutions and matmuls; BN/ReLU/pooling/additions are not counted, like fvcore,
  thop and ptflops — which report MACs). ``FlopCounterMode`` does not see quantized kernels
  (``quantized::conv2d`` ...): int8 MACs are counted from module shapes by forward hooks
  (:func:`shape_macs`) and reported as ``int8_ops`` (= 2 × int8 MACs).
* Latency: ``torch.utils.benchmark.Timer`` (explicit thread count, CUDA synchronisation) under
  ``torch.inference_mode()``, ``warmup`` calls then ``repeats`` single-call samples; median and
  inter-quartile range. Throughput: the same at a large batch, images / median seconds.
* Each variant is timed in a **fresh Python process** (``_profile_worker.py``) that loads the
  saved checkpoint (or calls a ``package.module:factory``): nothing one measurement does
  (thread pools, allocator caches, ``torch.compile`` state, ORT sessions) can touch the next.
  ONNX Runtime is timed in yet another process that imports only numpy and onnxruntime.
* Peak memory: Linux ``VmHWM`` (reset through ``/proc/self/clear_refs``) minus the resident
  set before the model was loaded (fresh process: weights + activations + workspace at the
  throughput batch) — in-process fallback: minus the resident set before the first forward
  (activations/workspace only; condition ``scope``). On CUDA: ``torch.cuda.max_memory_allocated``.

Written here rather than taken from a library: the sparse bitmask encoding (no maintained
package stores a PyTorch state dict as bitmask + values) and the shape-based int8 MAC counter
(fvcore/thop/ptflops do not handle ``torch.ao`` quantized modules). Everything else composes
torch.utils.flop_counter, torch.utils.benchmark, torch.onnx, onnxruntime(.quantization), zstandard.
"""

from __future__ import annotations

import argparse
import copy
import io
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field
from torch import nn

from ._profile_worker import _rss_kb, reset_peak_rss, summarize, time_onnx
from .interfaces import EvalContext, Measurement, Params
from .registry import evaluators

log = logging.getLogger(__name__)

WORKER = Path(__file__).with_name("_profile_worker.py")


# =========================================================================== parameters
def _effective_params(model: nn.Module) -> list[tuple[str, nn.Module, str, torch.Tensor]]:
    """(module name, module, param name, tensor as deployed) for every stored weight.

    ``torch.nn.utils.prune`` keeps ``weight_orig`` + a ``weight_mask`` buffer: the deployed weight
    is their product (``module.weight``), so that is what we count."""
    out = []
    for mname, m in model.named_modules():
        for pname, p in m.named_parameters(recurse=False):
            if pname.endswith("_orig") and hasattr(m, pname[:-5] + "_mask"):
                out.append((mname, m, pname[:-5], getattr(m, pname[:-5]).detach()))
            else:
                out.append((mname, m, pname, p.detach()))
        # quantized weights (packed) are not parameters
        if "quantized" in type(m).__module__ and callable(getattr(m, "weight", None)):
            try:
                out.append((mname, m, "weight", m.weight()))
                b = m.bias() if callable(getattr(m, "bias", None)) else None
                if b is not None:
                    out.append((mname, m, "bias", b))
            except Exception:  # noqa: BLE001 — modules without packed weights
                pass
    return out


def _nonzero(t: torch.Tensor) -> int:
    tt = t.int_repr() if t.is_quantized else t
    return int((tt != 0).sum())


def param_counts(model: nn.Module) -> dict[str, int]:
    """Total and nonzero parameters (counted on the tensors that are really deployed).

    Quantized modules keep their weights as packed params, not ``nn.Parameter``: they are
    counted from their int8 tensors. Pruning masks are folded (``weight_orig × weight_mask``)."""
    total = nonzero = 0
    seen: set[int] = set()
    for _, _, _, t in _effective_params(model):
        key = t.data_ptr() if not t.is_quantized else id(t)
        if key in seen and key != 0:
            continue
        seen.add(key)
        total += t.numel()
        nonzero += _nonzero(t)
    return {"params": total, "params_nonzero": nonzero}


def layer_density(model: nn.Module) -> list[dict[str, Any]]:
    """Per-layer weight counts: ``[{"layer", "type", "params", "nonzero", "density"}]`` for every
    module that owns a weight (conv, linear, BN, quantized modules)."""
    rows: dict[str, dict[str, Any]] = {}
    for mname, m, pname, t in _effective_params(model):
        if pname != "weight":
            continue
        rows[mname] = {"layer": mname, "type": type(m).__name__, "params": t.numel(), "nonzero": _nonzero(t),
                       "density": _nonzero(t) / max(1, t.numel()), "dtype": str(t.dtype).replace("torch.", "")}
    return list(rows.values())


def is_quantized_model(model: nn.Module) -> bool:
    """True when the model holds real int8 modules (torch.ao converted), not fake-quant."""
    return any(".quantized" in type(m).__module__ for m in model.modules())


def is_masked_model(model: nn.Module) -> bool:
    """True when ``torch.nn.utils.prune`` re-parametrisations (masks) are still attached."""
    return any(n.endswith("_mask") for n, _ in model.named_buffers())


# =========================================================================== bytes
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


def _torch_save_bytes(obj: Any) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def serialized_bytes(model: nn.Module) -> int:
    """Size of ``torch.save(state_dict)``: the dense bytes on disk. Pruning masks are folded
    first (a masked model ships as its dense weights); int8 modules serialise as int8."""
    return len(_torch_save_bytes(deployable_state_dict(model)))


_SPARSE_MAGIC = b"CBSPARSE1\n"


def bitmask_encoded_size(numel: int, nnz: int, elem_size: int) -> int:
    """Payload bytes of one tensor in the bitmask encoding: ⌈numel/8⌉ mask + nnz values."""
    return (numel + 7) // 8 + nnz * elem_size


def encode_sparse_state_dict(sd: dict[str, Any]) -> bytes:
    """Bitmask + nonzero values for every float tensor where that is smaller than dense
    (density < 1 − 1/(8·elem_size), i.e. < 96.9 % for fp32); ``torch.save`` for the rest.

    Layout: magic, 8-byte little-endian header length, JSON header, then per encoded tensor the
    packed bitmask (``numpy.packbits``, C order) and the nonzero values, then the rest blob."""
    header: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    rest: dict[str, Any] = {}
    for k, v in sd.items():
        if (isinstance(v, torch.Tensor) and v.is_floating_point() and not v.is_quantized and v.numel() >= 64):
            flat = v.detach().cpu().contiguous().reshape(-1)
            mask = flat != 0
            nnz = int(mask.sum())
            es = flat.element_size()
            if bitmask_encoded_size(flat.numel(), nnz, es) < flat.numel() * es:
                mbytes = np.packbits(mask.numpy()).tobytes()
                vbytes = flat[mask].contiguous().view(torch.uint8).numpy().tobytes()
                header.append({"name": k, "shape": list(v.shape), "dtype": str(v.dtype).replace("torch.", ""),
                               "mask": len(mbytes), "values": len(vbytes)})
                chunks += [mbytes, vbytes]
                continue
        rest[k] = v
    rest_b = _torch_save_bytes(rest)
    head = json.dumps({"tensors": header, "rest": len(rest_b)}).encode()
    return b"".join([_SPARSE_MAGIC, len(head).to_bytes(8, "little"), head, *chunks, rest_b])


def decode_sparse_state_dict(data: bytes) -> dict[str, Any]:
    """Inverse of :func:`encode_sparse_state_dict` (proves the encoding is a real format)."""
    if not data.startswith(_SPARSE_MAGIC):
        raise ValueError("not a compressbench sparse state dict (bad magic)")
    pos = len(_SPARSE_MAGIC)
    n = int.from_bytes(data[pos:pos + 8], "little")
    pos += 8
    head = json.loads(data[pos:pos + n])
    pos += n
    out: dict[str, Any] = {}
    for t in head["tensors"]:
        numel = int(np.prod(t["shape"])) if t["shape"] else 1
        mask = np.unpackbits(np.frombuffer(data, np.uint8, t["mask"], pos))[:numel].astype(bool)
        pos += t["mask"]
        dtype = getattr(torch, t["dtype"])
        vals = torch.frombuffer(bytearray(data[pos:pos + t["values"]]), dtype=dtype) if t["values"] else \
            torch.empty(0, dtype=dtype)
        pos += t["values"]
        full = torch.zeros(numel, dtype=dtype)
        full[torch.from_numpy(mask)] = vals
        out[t["name"]] = full.reshape(t["shape"])
    rest = torch.load(io.BytesIO(data[pos:pos + head["rest"]]), weights_only=True)
    out.update(rest)
    return out


def compressed_sizes(model: nn.Module, zstd_level: int = 10) -> dict[str, int]:
    """Realised sizes (bytes really produced) of the deployable state dict under several encodings:
    ``torch.save`` (dense), ``zlib``/``zstd`` of it, ``bitmask`` (:func:`encode_sparse_state_dict`)
    and ``bitmask+zstd``."""
    import zstandard

    sd = deployable_state_dict(model)
    dense = _torch_save_bytes(sd)
    sparse = encode_sparse_state_dict(sd)
    zc = zstandard.ZstdCompressor(level=zstd_level)
    return {"torch.save": len(dense), "zlib": len(zlib.compress(dense, 6)), "zstd": len(zc.compress(dense)),
            "bitmask": len(sparse), "bitmask+zstd": len(zc.compress(sparse))}


# =========================================================================== FLOPs / MACs
def _example_input(model: nn.Module, input_shape: tuple[int, ...]) -> torch.Tensor:
    dev = next((p.device for p in model.parameters()), torch.device("cpu"))
    return torch.rand(*input_shape, device=dev)


def flops_by_module(model: nn.Module, input_shape: tuple[int, ...]) -> tuple[int, dict[str, int]]:
    """FlopCounterMode total FLOPs and per-module FLOPs keyed by the module's qualified name
    (``""`` is the whole model; a module's figure includes its children)."""
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    x = _example_input(model, input_shape)
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        model(x)
    model.train(was_training)
    per: dict[str, int] = {}
    for name, ops in fc.get_flop_counts().items():
        if name == "Global":
            continue
        fqn = name.split(".", 1)[1] if "." in name else ""
        per[fqn] = int(sum(ops.values()))
    return int(fc.get_total_flops()), per


def count_flops(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Dense FLOPs (2 × MACs) of one forward pass at ``input_shape`` (batch included)."""
    return flops_by_module(model, input_shape)[0]


def shape_macs(model: nn.Module, input_shape: tuple[int, ...]) -> dict[str, dict[str, Any]]:
    """MACs of every conv / linear layer (float or ``torch.ao`` quantized) from its shapes, by
    forward hooks: conv = out.numel() × in_channels/groups × kh × kw; linear = out.numel() × in_features.
    Returns ``{layer: {"macs", "quantized"}}``."""
    out: dict[str, dict[str, Any]] = {}
    hooks = []

    def hook(name: str, m: nn.Module):
        def fn(_m, _inp, o):
            o = o[0] if isinstance(o, (tuple, list)) else o
            if hasattr(m, "kernel_size") and hasattr(m, "in_channels"):
                ks = m.kernel_size if isinstance(m.kernel_size, (tuple, list)) else (m.kernel_size,)
                per = m.in_channels // m.groups * int(np.prod(ks))
            else:
                per = m.in_features
            rec = out.setdefault(name, {"macs": 0, "quantized": ".quantized" in type(m).__module__})
            rec["macs"] += int(o.numel()) * int(per)
        return fn

    def is_layer(m: nn.Module) -> bool:
        conv = hasattr(m, "kernel_size") and hasattr(m, "in_channels") and hasattr(m, "groups")
        return conv or (hasattr(m, "in_features") and hasattr(m, "out_features"))

    for name, m in model.named_modules():
        # innermost layers only (quantized Linear owns a packed-params child, so "leaf" is too strict)
        if is_layer(m) and not any(is_layer(c) for c in m.modules() if c is not m):
            hooks.append(m.register_forward_hook(hook(name, m)))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(_example_input(model, input_shape))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return out


def flop_profile(model: nn.Module, input_shape: tuple[int, ...]) -> dict[str, Any]:
    """Dense FLOPs, MACs, effective FLOPs (each conv/linear's FLOPs × its weight density) and
    int8 ops. All theoretical.

    Float model: ``flops`` from FlopCounterMode, ``macs = flops / 2``. Quantized model:
    ``int8_ops = 2 × Σ int8 MACs`` (shape counter); ``flops`` = int8 ops + float FLOPs that
    FlopCounterMode still sees (layers left in float); ``macs`` likewise."""
    total, per = flops_by_module(model, input_shape)
    layers = shape_macs(model, input_shape)
    dens = {r["layer"]: r["density"] for r in layer_density(model)}
    int8_macs = sum(r["macs"] for r in layers.values() if r["quantized"])
    flops = total + 2 * int8_macs
    eff = float(flops)
    for name, r in layers.items():
        f = 2 * r["macs"] if r["quantized"] else per.get(name, 0)
        eff -= f * (1.0 - dens.get(name, 1.0))
    return {"flops": flops, "macs": flops // 2, "flops_effective": eff, "int8_ops": 2 * int8_macs,
            "float_flops": total, "counter": "FlopCounterMode" + ("+shape-hooks(int8)" if int8_macs else ""),
            "input_shape": list(input_shape)}


# =========================================================================== hardware
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware_info(device: str = "cpu", threads: int | None = None) -> dict[str, Any]:
    """What every timing depends on: CPU model, cores, threads, GPU, library versions, load."""
    info: dict[str, Any] = {"cpu": cpu_model(), "logical_cores": os.cpu_count(), "threads": threads,
                            "machine": platform.machine(), "os": platform.platform(),
                            "python": platform.python_version(), "torch": torch.__version__,
                            "device": device, "quantized_engine": torch.backends.quantized.engine}
    try:
        import onnxruntime

        info["onnxruntime"] = onnxruntime.__version__
    except ImportError:  # pragma: no cover
        info["onnxruntime"] = None
    try:
        info["loadavg_1m"] = os.getloadavg()[0]
    except OSError:  # pragma: no cover
        pass
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
        info["cuda"] = torch.version.cuda
    return info


# =========================================================================== timing
def time_torch(model: nn.Module, x: torch.Tensor, threads: int, warmup: int = 10, repeats: int = 50) -> dict[str, Any]:
    """Per-call latency of ``model(x)`` with ``torch.utils.benchmark.Timer`` (explicit
    ``num_threads``; CUDA synchronised by Timer's timer on GPU), under inference mode."""
    from torch.utils.benchmark import Timer

    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats must be ≥ 1 and warmup ≥ 0 (got {repeats}, {warmup})")
    timer = Timer("model(x)", globals={"model": model, "x": x}, num_threads=threads)
    with torch.inference_mode():
        if warmup:
            timer.timeit(warmup)
        samples = [timer.timeit(1).times[0] for _ in range(repeats)]
    return summarize(samples)


def measure_torch_model(model: nn.Module, input_shape: tuple[int, ...], threads: int, throughput_batch: int,
                        warmup: int, repeats: int, throughput_repeats: int, device: str = "cpu",
                        rss_base_kb: int | None = None) -> dict[str, Any]:
    """Latency at batch ``input_shape[0]`` (normally 1), throughput at ``throughput_batch`` and
    peak memory, in this process. Used by the fresh-process worker and the in-process fallback."""
    dev = torch.device(device)
    torch.set_num_threads(threads)
    model = model.eval().to(dev)
    scope = "model+activations" if rss_base_kb is not None else "activations"
    base = rss_base_kb if rss_base_kb is not None else _rss_kb()
    reset_peak_rss()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    x1 = torch.rand(*input_shape, device=dev)
    lat = time_torch(model, x1, threads, warmup, repeats)
    res: dict[str, Any] = {"latency": lat}
    if throughput_batch:
        xb = torch.rand(throughput_batch, *input_shape[1:], device=dev)
        tp = time_torch(model, xb, threads, max(1, warmup // 5), throughput_repeats)
        tp["img_s"] = throughput_batch / (tp["median_ms"] / 1e3)
        res["throughput"] = tp
    if dev.type == "cuda":
        res["peak_mem_mb"], scope = torch.cuda.max_memory_allocated(dev) / 2**20, "cuda-allocated"
    else:
        peak = _rss_kb("VmHWM")
        res["peak_mem_mb"] = (peak - base) / 1024 if peak is not None and base is not None else None
    res["peak_mem_scope"] = scope
    return res


def run_worker(job: dict[str, Any], timeout: float = 900.0) -> dict[str, Any]:
    """Run one measurement job in a fresh Python process (``_profile_worker.py``) and return its
    JSON result. Thread env vars are pinned so the child's pools match ``job['threads']``."""
    threads = str(job.get("threads", 1))
    env = dict(os.environ, OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads, COMPRESSBENCH_PROGRESS="0")
    with tempfile.TemporaryDirectory(prefix="cb-profile-") as td:
        jpath, opath = Path(td) / "job.json", Path(td) / "out.json"
        jpath.write_text(json.dumps(job))
        proc = subprocess.run([sys.executable, str(WORKER), str(jpath), str(opath)], env=env,
                              capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0 or not opath.is_file():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            raise RuntimeError(f"profile worker failed ({job.get('mode')}, exit {proc.returncode}): {' | '.join(tail)}")
        return json.loads(opath.read_text())


# =========================================================================== ONNX
def export_onnx(model: nn.Module, path: str | Path, input_shape: tuple[int, ...], opset: int = 17) -> Path:
    """Export with a dynamic batch axis (TorchScript-based exporter: it handles every model of the
    zoo, masked pruning included, and needs no onnxscript rewrite)."""
    import warnings

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if any(t.device.type != "cpu" for t in list(model.parameters()) + list(model.buffers())):
        model = copy.deepcopy(model).cpu()  # never move the caller's model
    model = model.eval()
    x = torch.rand(*input_shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), str(path), input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, opset_version=opset,
                          dynamo=False)
    return path


def quantize_onnx_static(fp32_path: str | Path, out_path: str | Path, calib: list[np.ndarray],
                         per_channel: bool = True) -> Path:
    """onnxruntime's own static int8 quantization (QDQ format, int8 weights per channel, uint8
    activations), calibrated (MinMax) on ``calib`` batches."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter([{"input": b.astype(np.float32)} for b in calib])

        def get_next(self):
            return next(self.it, None)

    pre = Path(out_path).with_suffix(".pre.onnx")
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.WARNING))  # onnxruntime.quantization logs every bias copy at INFO on root
    try:
        quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
        quantize_static(str(pre), str(out_path), _Reader(), quant_format=QuantFormat.QDQ, per_channel=per_channel,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    finally:
        root.setLevel(level)
        pre.unlink(missing_ok=True)
    return Path(out_path)


# =========================================================================== the profile
class EfficiencyParams(Params):
    """Parameters of the ``efficiency`` evaluator (and ``compressbench profile``)."""

    throughput_batch: int | None = Field(None, ge=0)  # None: 64 on CPU, 256 on GPU; 0: no throughput run
    threads: int = Field(1, ge=0)  # intra-op threads for torch and ONNX Runtime (0 = all logical cores)
    warmup: int = Field(10, ge=0)
    repeats: int = Field(50, ge=1)  # batch-1 samples (median + IQR)
    throughput_repeats: int = Field(10, ge=1)
    timing: bool = True  # False: parameters, bytes and FLOPs only
    onnx: bool = True  # ONNX export + ONNX Runtime latency
    onnx_int8: Literal["auto", "always", "never"] = "auto"  # auto: only for quantized variants
    calib_batches: int = Field(4, ge=1)  # for ORT static int8 calibration
    fresh_process: bool = True  # time each variant in its own process (needs a checkpoint / factory)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    zstd_level: int = Field(10, ge=1, le=22)
    timeout_s: float = Field(900.0, gt=0)


def _resolve(params: EfficiencyParams) -> tuple[str, int, int]:
    device = params.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    threads = params.threads if params.threads > 0 else (os.cpu_count() or 1)
    if params.throughput_batch is not None and params.throughput_batch < 0:
        raise ValueError(f"efficiency: throughput_batch must be ≥ 0, got {params.throughput_batch}")
    tb = params.throughput_batch if params.throughput_batch is not None else (256 if device == "cuda" else 64)
    return device, threads, tb


def timing_job(mode: Literal["torch", "onnx"], input_shape: tuple[int, ...], params: EfficiencyParams, *,
               target: dict[str, Any] | None = None, path: str | Path | None = None,
               device: str | None = None) -> dict[str, Any]:
    """The JSON job :func:`run_worker` hands to a fresh process (torch: ``target``; onnx: ``path``)."""
    dev, threads, tb = _resolve(params)
    job: dict[str, Any] = {"mode": mode, "input_shape": list(input_shape), "threads": threads, "throughput_batch": tb,
                           "warmup": params.warmup, "repeats": params.repeats,
                           "throughput_repeats": params.throughput_repeats}
    if mode == "torch":
        job.update(target=target, device=device or dev, quantized_engine=torch.backends.quantized.engine)
    else:
        job["path"] = str(path)
    return job


def static_profile(model: nn.Module, input_shape: tuple[int, ...], zstd_level: int = 10) -> dict[str, Any]:
    """Parameters, per-layer density, bytes under every encoding, FLOPs — no timing."""
    model = model.eval()
    return {"params": param_counts(model), "layers": layer_density(model),
            "bytes": compressed_sizes(model, zstd_level), "flops": flop_profile(model, input_shape),
            "quantized": is_quantized_model(model), "masked": is_masked_model(model)}


def profile(model: nn.Module, input_shape: tuple[int, ...], params: EfficiencyParams | None = None, *,
            target: dict[str, Any] | None = None, float_model: nn.Module | None = None,
            calib: list[np.ndarray] | None = None, workdir: str | Path | None = None) -> dict[str, Any]:
    """The whole efficiency profile of one model as a JSON-able dict.

    ``target``: how a fresh process rebuilds the model — ``{"kind": "checkpoint", "path": ...}`` or
    ``{"kind": "factory", "target": "pkg.mod:fn", "kwargs": {...}, "sys_path": [...]}``; without it
    (or with ``fresh_process=False``) timing is in-process and says so. ``float_model``: the float
    model ONNX Runtime int8 is built from for a quantized variant (torch.ao int8 modules do not
    export); ``calib``: calibration batches for it (random uniform images if absent)."""
    params = params or EfficiencyParams()
    device, threads, tb = _resolve(params)
    input_shape = tuple(int(s) for s in input_shape)
    quant = is_quantized_model(model)
    if quant and device == "cuda":
        device = "cpu"  # torch.ao int8 kernels are CPU-only
    rep: dict[str, Any] = static_profile(model, input_shape, params.zstd_level)
    rep["hardware"] = hardware_info(device, threads)
    rep["settings"] = {"threads": threads, "throughput_batch": tb, "warmup": params.warmup,
                       "repeats": params.repeats, "throughput_repeats": params.throughput_repeats,
                       "device": device}
    if not params.timing:
        return rep
    fresh = params.fresh_process and target is not None
    job = timing_job("torch", input_shape, params, target=target, device=device)
    if fresh:
        rep["torch"] = run_worker(job, params.timeout_s)
    else:
        if params.fresh_process:
            log.info("efficiency: no checkpoint/factory for a fresh process — timing in-process")
        prev = torch.get_num_threads()
        try:
            rep["torch"] = measure_torch_model(model, input_shape, threads, tb, params.warmup, params.repeats,
                                               params.throughput_repeats, device)
        finally:
            torch.set_num_threads(prev)
    rep["torch"]["process"] = "fresh" if fresh else "in-process"
    if params.onnx:
        rep["onnx"] = _onnx_profiles(model, input_shape, params, threads, tb, quant, float_model, calib, workdir, fresh)
    return rep


def _onnx_profiles(model, input_shape, params, threads, tb, quant, float_model, calib, workdir, fresh):
    out: dict[str, Any] = {}
    own_tmp = None
    if workdir is None:
        own_tmp = tempfile.TemporaryDirectory(prefix="cb-onnx-")
        workdir = own_tmp.name
    wd = Path(workdir)
    try:
        src = float_model if quant else model
        if src is None:
            out["error"] = "quantized model without its float source: ONNX Runtime int8 skipped"
            log.warning("efficiency: %s", out["error"])
            return out
        dtypes = []
        if not quant:
            dtypes.append("fp32")
        if params.onnx_int8 == "always" or (quant and params.onnx_int8 == "auto"):
            dtypes.append("int8")
        if not dtypes:
            return out
        fp32 = export_onnx(src, wd / "model_fp32.onnx", (1, *input_shape[1:]))
        for dt in dtypes:
            path = fp32
            if dt == "int8":
                if calib is None:
                    rng = np.random.default_rng(0)
                    calib = [rng.random((8, *input_shape[1:]), dtype=np.float32) for _ in range(params.calib_batches)]
                    out["calibration"] = "random-uniform"
                else:
                    out.setdefault("calibration", "data")
                path = quantize_onnx_static(fp32, wd / "model_int8.onnx", calib[:params.calib_batches])
            job = timing_job("onnx", input_shape, params, path=path)
            r = run_worker(job, params.timeout_s) if fresh or params.fresh_process else time_onnx(
                path, tuple(input_shape), threads, tb, params.warmup, params.repeats, params.throughput_repeats)
            r["bytes"] = Path(path).stat().st_size
            r["source"] = "float-source" if quant else "variant"
            r["process"] = "fresh" if fresh or params.fresh_process else "in-process"
            out[dt] = r
    except Exception as e:  # noqa: BLE001 — ONNX is best-effort; the torch figures still stand
        out["error"] = f"{type(e).__name__}: {e}"
        log.warning("efficiency: ONNX profile failed: %s", out["error"])
    finally:
        if own_tmp is not None:
            own_tmp.cleanup()
    return out


def to_measurements(rep: dict[str, Any]) -> list[Measurement]:
    """Flatten a :func:`profile` report into tagged measurements (the metric naming contract)."""
    hw, st = rep["hardware"], rep["settings"]
    dev = f"{st['device']}:{hw.get('gpu') or hw['cpu']}"
    ms: list[Measurement] = []
    p, b, f = rep["params"], rep["bytes"], rep["flops"]
    ms += [Measurement("params", p["params"], tag="realised"),
           Measurement("params_nonzero", p["params_nonzero"], tag="theoretical")]
    ms.append(Measurement("bytes_dense", b["torch.save"], {"encoding": "torch.save"}, "realised", "B"))
    best = min((k for k in b if k != "torch.save"), key=lambda k: b[k])
    ms.append(Measurement("bytes_compressed", b[best], {"encoding": best}, "realised", "B"))
    fc = {"counter": f["counter"]}
    ms += [Measurement("flops", f["flops"], fc, "theoretical", "FLOP"),
           Measurement("macs", f["macs"], fc, "theoretical", "MAC"),
           Measurement("flops_effective", f["flops_effective"], fc, "theoretical", "FLOP")]
    if f["int8_ops"]:
        ms.append(Measurement("int8_ops", f["int8_ops"], {"counter": "shape-hooks"}, "theoretical", "OP"))
    t = rep.get("torch")
    if t:
        rt = f"torch-{hw['torch']}" + ("-int8" if rep["quantized"] else "")
        base = {"threads": st["threads"], "runtime": rt, "device": dev, "process": t["process"]}
        ms += [Measurement("latency_b1_ms", t["latency"]["median_ms"], {**base, "batch": 1}, "realised", "ms"),
               Measurement("latency_b1_iqr_ms", t["latency"]["iqr_ms"], {**base, "batch": 1}, "realised", "ms")]
        if "throughput" in t:
            ms.append(Measurement("throughput_img_s", t["throughput"]["img_s"],
                                  {**base, "batch": st["throughput_batch"]}, "realised", "img/s"))
        if t.get("peak_mem_mb") is not None:
            ms.append(Measurement("peak_mem_mb", t["peak_mem_mb"],
                                  {**base, "batch": st["throughput_batch"], "scope": t["peak_mem_scope"]},
                                  "realised", "MB"))
    for dt, r in (rep.get("onnx") or {}).items():
        if not isinstance(r, dict):
            continue
        base = {"threads": st["threads"], "runtime": f"onnxruntime-{hw['onnxruntime']}", "dtype": dt,
                "device": f"cpu:{hw['cpu']}", "process": r.get("process", "fresh"), "source": r["source"]}
        ms += [Measurement("onnx_latency_b1_ms", r["latency"]["median_ms"], {**base, "batch": 1}, "realised", "ms"),
               Measurement("onnx_latency_b1_iqr_ms", r["latency"]["iqr_ms"], {**base, "batch": 1}, "realised", "ms")]
        if "throughput" in r:
            ms.append(Measurement("onnx_throughput_img_s", r["throughput"]["img_s"],
                                  {**base, "batch": st["throughput_batch"]}, "realised", "img/s"))
        ms.append(Measurement("onnx_bytes", r["bytes"], {"dtype": dt}, "realised", "B"))
    for m in ms:
        m.value = float(m.value)
    return ms


# =========================================================================== evaluator
@evaluators.register("efficiency", params=EfficiencyParams, version=1,
                     description="params, bytes (dense / sparse-encoded / zstd), FLOPs & MACs (dense, effective, "
                                 "int8), latency b1 + throughput + peak memory in a fresh process, ONNX Runtime "
                                 "fp32/int8 latency; each figure tagged realised or theoretical")
def efficiency(model: nn.Module, ctx: EvalContext, params: EfficiencyParams) -> list[Measurement]:
    input_shape = (1, ctx.meta.channels, *ctx.meta.size)
    from .checkpoint import worker_trust

    ck = ctx.extra.get("checkpoint")
    target = {"kind": "checkpoint", "path": str(ck), **worker_trust()} if ck else None
    quant = is_quantized_model(model)
    float_model = calib = None
    if params.onnx and ((quant and params.onnx_int8 != "never") or params.onnx_int8 == "always"):
        if quant:
            # torch.ao int8 modules do not export to ONNX: ORT int8 is onnxruntime's own static
            # quantization of the float model. Pure quantization: the trained parent. After an
            # architecture-changing step (pipeline): that architecture, random weights (speed only).
            if any(not s.get("kind", "").startswith("quantize") for s in ctx.variant.steps) and target:
                float_model = float_source_from_checkpoint(target)
            else:
                float_model = ctx.load_parent()
        calib = [x.numpy() for x, _, _ in _take(ctx.data.train.batches(32), params.calib_batches)]
    rep = profile(model, input_shape, params, target=target, float_model=float_model, calib=calib,
                  workdir=ctx.workdir)
    Path(ctx.workdir).mkdir(parents=True, exist_ok=True)
    (Path(ctx.workdir) / "efficiency.json").write_text(json.dumps(rep, indent=1, default=str))
    return to_measurements(rep)


def _take(it, n):
    for i, v in enumerate(it):
        if i >= n:
            break
        yield v


# =========================================================================== CLI
def parse_shape(s: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(v) for v in s.replace("x", ",").split(",") if v.strip())
    except ValueError:
        shape = ()
    if len(shape) < 2 or any(v <= 0 for v in shape):
        raise ValueError(f"--input-shape must be positive integers like 1,3,32,32, got '{s}'")
    return shape


def load_target(target: str, input_shape: tuple[int, ...] | None = None, num_classes: int = 10,
                kwargs: dict[str, Any] | None = None, *, trust: bool = False
                ) -> tuple[nn.Module, dict[str, Any], tuple[int, ...]]:
    """A model from a checkpoint (.pt), a ``package.module:factory`` or a registered model name.
    Returns (model, worker target dict, input shape). ``trust``: see ``checkpoint.load_model``."""
    from .checkpoint import load_model, worker_trust

    kwargs = dict(kwargs or {})
    p = Path(target)
    if p.suffix in (".pt", ".pth") or p.is_file():
        if not p.is_file():
            raise ValueError(f"checkpoint '{target}' does not exist")
        model, ck = load_model(p, trust=trust)
        if input_shape is None:
            meta = ck["spec"]["meta"]
            input_shape = (1, meta["channels"], *meta["size"])
        return model, {"kind": "checkpoint", "path": str(p.resolve()), **worker_trust(trust)}, input_shape
    if input_shape is None:
        raise ValueError(f"'{target}' is not a checkpoint: give --input-shape, e.g. 1,3,32,32")
    spec = {"kind": "factory", "target": target, "kwargs": kwargs, "input_shape": list(input_shape),
            "num_classes": num_classes, "sys_path": [os.getcwd()]}
    return build_factory(spec), spec, input_shape


def build_factory(spec: dict[str, Any]) -> nn.Module:
    """Build a model from ``{"target": "pkg.mod:fn" | model name, "kwargs", "input_shape", "num_classes"}``.
    A factory is called with ``**kwargs``; if it wants a ``meta`` it gets a DataMeta made from the input shape."""
    import inspect

    from .data.base import DataMeta
    from .models import create_model
    from .registry import import_object, models

    for sp in spec.get("sys_path", []):
        if sp not in sys.path:
            sys.path.insert(0, sp)
    target, kwargs = spec["target"], dict(spec.get("kwargs") or {})
    shape = spec["input_shape"]
    meta = DataMeta("profile", int(spec.get("num_classes", 10)), int(shape[1]), tuple(shape[2:4]),
                    (0.5,) * int(shape[1]), (0.25,) * int(shape[1]))
    if ":" in target:
        fn = import_object(target)
        if "meta" in inspect.signature(fn).parameters:
            models.resolve(target)  # the user named it on the command line: register it for create_model
            return create_model(target, meta, **kwargs)
        model = fn(**kwargs)
    elif target in models:
        model = create_model(target, meta, **kwargs)
    else:
        raise ValueError(f"profile target '{target}' is neither a checkpoint file, a package.module:factory "
                         f"nor a registered model ({', '.join(models.names())})")
    if not isinstance(model, nn.Module):
        raise ValueError(f"factory '{target}' returned {type(model).__name__}, not an nn.Module")
    return model.eval()


def add_profile_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``compressbench profile TARGET``."""
    parser.add_argument("target", help="saved checkpoint (.pt), package.module:factory, or a registered model name")
    parser.add_argument("--input-shape", help="N,C,H,W for factories / model names (e.g. 1,3,32,32)")
    parser.add_argument("--num-classes", type=int, default=10, help="classes for model names / meta factories")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads (0 = all cores; default 1)")
    parser.add_argument("--batch", type=int, default=None, help="throughput batch (default 64 CPU / 256 GPU)")
    parser.add_argument("--repeats", type=int, default=50, help="batch-1 timing samples")
    parser.add_argument("--throughput-repeats", type=int, default=10, help="throughput-batch timing samples")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--no-onnx", action="store_true", help="skip ONNX export / ONNX Runtime")
    parser.add_argument("--onnx-int8", choices=["auto", "always", "never"], default="auto",
                        help="ONNX Runtime static int8 (auto: quantized models only)")
    parser.add_argument("--in-process", action="store_true", help="time in this process (default: fresh process)")
    parser.add_argument("--no-timing", action="store_true", help="params, bytes and FLOPs only")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--json", metavar="FILE", help="write the full profile as JSON")
    parser.add_argument("--trust-code", action="store_true",
                        help="let a checkpoint's 'pkg.mod:factory' model name be imported and run (trusted files only)")


def profile_command(args: argparse.Namespace) -> int:
    """``compressbench profile``: print a table, optionally write JSON. Returns the exit code."""
    from rich.console import Console

    shape = parse_shape(args.input_shape) if args.input_shape else None
    model, target, shape = load_target(args.target, shape, args.num_classes, trust=args.trust_code)
    params = EfficiencyParams(throughput_batch=args.batch, threads=args.threads, repeats=args.repeats,
                              throughput_repeats=args.throughput_repeats, warmup=args.warmup,
                              onnx=not args.no_onnx, onnx_int8=args.onnx_int8,
                              fresh_process=not args.in_process, timing=not args.no_timing, device=args.device)
    float_model = None
    if params.onnx and is_quantized_model(model):
        float_model = float_source_from_checkpoint(target)
    rep = profile(model, shape, params, target=target, float_model=float_model)
    rep["target"] = args.target
    Console(width=max(160, Console().width)).print(render_table({args.target: rep}))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(rep, indent=1, default=str))
    return 0


def float_source_from_checkpoint(target: dict[str, Any]) -> nn.Module | None:
    """For a quantized checkpoint: its float architecture (spec + non-quantize steps, random weights —
    ONNX Runtime int8 latency does not depend on weight values)."""
    if target.get("kind") != "checkpoint":
        return None
    from .checkpoint import build_from_spec, read_checkpoint, rebuilders
    from .models import trusting_code

    ck = read_checkpoint(target["path"])
    trust = bool(target.get("trust", False))
    model = build_from_spec(ck["spec"], trust=trust)
    try:
        with trusting_code(trust):
            for step in ck["steps"]:
                if not step["kind"].startswith("quantize"):
                    model = rebuilders.get(step["kind"])(model, step, ck["state_dict"])
    except Exception as e:  # noqa: BLE001
        log.warning("efficiency: cannot rebuild the float source of %s (%s): ONNX int8 skipped", target["path"], e)
        return None
    return model.eval()


def _fmt_bytes(n: float) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"


def summary_rows(rep: dict[str, Any], ref: dict[str, Any] | None = None) -> tuple[dict[str, str], dict[str, str]]:
    """Readable cells of one profile — (size & compute, speed) — with ratios against ``ref``."""
    b, f, p = rep["bytes"], rep["flops"], rep["params"]
    best = min((k for k in b if k != "torch.save"), key=lambda k: b[k])
    size = {"params": f"{p['params'] / 1e6:.3f} M", "nonzero [T]": f"{p['params_nonzero'] / 1e6:.3f} M",
            "dense [R]": _fmt_bytes(b["torch.save"]), "compressed [R]": f"{_fmt_bytes(b[best])} {best}",
            "FLOPs [T]": f"{f['flops'] / 1e6:.1f} M", "eff. FLOPs [T]": f"{f['flops_effective'] / 1e6:.1f} M"}
    if f.get("int8_ops"):
        size["FLOPs [T]"] += " (int8)"
    if ref is not None:
        size["bytes ×"] = f"{b['torch.save'] / ref['bytes']['torch.save']:.3f}"
        size["compr. ×"] = f"{b[best] / ref['bytes']['torch.save']:.3f}"
    speed: dict[str, str] = {}
    t = rep.get("torch")
    if t:
        speed["b1 ms [R]"] = f"{t['latency']['median_ms']:.2f} ±{t['latency']['iqr_ms']:.2f}"
        if ref is not None and ref.get("torch"):
            r = t.get("speedup_b1") or ref["torch"]["latency"]["median_ms"] / t["latency"]["median_ms"]
            speed["b1 speedup"] = f"{r:.2f}×"
        if "throughput" in t:
            speed["img/s [R]"] = f"{t['throughput']['img_s']:.0f}"
        if t.get("peak_mem_mb") is not None:
            speed["peak MB [R]"] = f"{t['peak_mem_mb']:.0f}"
    for dt in ("fp32", "int8"):
        r = (rep.get("onnx") or {}).get(dt)
        if isinstance(r, dict) and "latency" in r:
            speed[f"ORT {dt} b1 ms [R]"] = f"{r['latency']['median_ms']:.2f}"
            if "throughput" in r:
                speed[f"ORT {dt} img/s [R]"] = f"{r['throughput']['img_s']:.0f}"
    return size, speed


def render_table(reps: dict[str, dict[str, Any]], ref: str | None = None):
    """Rich tables (size & compute, then speed): one row per profiled model.
    [R] realised (measured / really encoded), [T] theoretical (counted)."""
    from rich.console import Group
    from rich.table import Table

    rows = {name: summary_rows(r, reps.get(ref) if ref else None) for name, r in reps.items()}
    any_rep = next(iter(reps.values()))
    hw, st = any_rep["hardware"], any_rep["settings"]
    titles = ("size and compute — [R] realised (bytes really written), [T] theoretical (counted)",
              f"speed — {hw['cpu']}, {st['threads']} thread(s), torch {hw['torch']}, onnxruntime "
              f"{hw['onnxruntime']}, throughput batch {st['throughput_batch']}; median ± IQR")
    tables = []
    for i, title in enumerate(titles):
        cols: list[str] = []
        for r in rows.values():
            cols += [c for c in r[i] if c not in cols]
        if not cols:
            continue
        table = Table(title=title, title_justify="left")
        table.add_column("model", no_wrap=True)
        for c in cols:
            table.add_column(c, justify="right")
        for name, r in rows.items():
            table.add_row(name, *[r[i].get(c, "—") for c in cols])
        tables.append(table)
    return Group(*tables)


__all__ = ["param_counts", "serialized_bytes", "count_flops", "layer_density", "deployable_state_dict",
           "encode_sparse_state_dict", "decode_sparse_state_dict", "compressed_sizes", "flops_by_module",
           "shape_macs", "flop_profile", "hardware_info", "time_torch", "measure_torch_model", "time_onnx",
           "run_worker", "export_onnx", "quantize_onnx_static", "EfficiencyParams", "profile",
           "static_profile", "to_measurements", "efficiency", "add_profile_arguments", "profile_command",
           "render_table", "load_target", "build_factory"]

"""Quantization: int8 dynamic, int8 static (post-training, calibrated), int8 QAT, fp16 / bf16 casts.

Backend choice — ``torch.ao`` **eager mode** (``torch.ao.quantization.prepare/convert``), not
torchao's PT2E path, on measured evidence (see ``docs/methods.md``, "Why eager torch.ao"):
eager-converted models run real int8 fbgemm/x86 kernels in plain eager PyTorch, save as an
ordinary state dict (packed int8 weights, scales, zero points) and rebuild without tracing;
a PT2E-converted model is an exported graph of quantize/dequantize ops that only becomes an int8
model under ``torch.compile`` (Inductor), which costs a C++ compile per model and process.

Eager mode needs explicit structure, added here without touching the model zoo:

* the float normalisation (the model's first layer) stays float; a ``QuantStub`` /
  ``DeQuantStub`` pair wraps ``model.net``;
* conv-bn(-relu), conv-relu, linear-relu runs inside ``nn.Sequential`` containers are fused;
* torchvision residual blocks (``out += identity`` is not eager-quantizable) are switched to
  torchvision's ``QuantizableBasicBlock`` / ``QuantizableBottleneck`` (same parameters, the add
  done by a ``FloatFunctional``) and fused with their own ``fuse_model``.

Architectures eager mode cannot handle (timm / torchvision-hub networks that add, multiply or normalise
in their ``forward``) go through FX graph mode instead (:mod:`.int8_fx`); the step records which.
Calibration uses the validation split when the experiment has one (``dataset.val_fraction``), else
training batches.

The rebuild for save / reload repeats the same preparation on the freshly built float model and
converts it without calibration; the saved state dict then supplies weights, scales and zero points.
"""

from __future__ import annotations

import copy
import logging
import warnings
import weakref
from typing import Any

import torch
from torch import nn
from torch.ao import quantization as tq

from ..catalog.methods import (  # noqa: F401 (torch-free: compressbench.catalog)
    CastParams,
    DynamicParams,
    QATParams,
    StaticParams,
)
from ..checkpoint import register_rebuilder
from ..costs import TrainingCost
from ..interfaces import CompressContext, CompressResult, Params
from ..registry import methods
from . import int8_fx
from .budget import Solution
from .common import clone, finetune, first_unplain_module, input_shape

log = logging.getLogger(__name__)


def default_backend() -> str:
    engines = torch.backends.quantized.supported_engines
    for e in ("x86", "fbgemm", "qnnpack"):
        if e in engines:
            return e
    raise RuntimeError(f"no int8 quantization engine available (supported: {engines})")


# --------------------------------------------------------------------------- eager preparation
class QuantNet(nn.Module):
    """``QuantStub -> net -> DeQuantStub``: the quantized region of a Classifier (after normalisation)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.quant = tq.QuantStub()
        self.net = net
        self.dequant = tq.DeQuantStub()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dequant(self.net(self.quant(x)))


_FUSE_PATTERNS = [
    (nn.Conv2d, nn.BatchNorm2d, nn.ReLU),
    (nn.Conv2d, nn.BatchNorm2d),
    (nn.Conv2d, nn.ReLU),
    (nn.Conv1d, nn.BatchNorm1d, nn.ReLU),
    (nn.Conv1d, nn.BatchNorm1d),
    (nn.Linear, nn.ReLU),
    (nn.Linear, nn.BatchNorm1d),
]


def _sequential_groups(seq: nn.Sequential) -> list[list[str]]:
    names = list(seq._modules)
    mods = [seq._modules[n] for n in names]
    groups, i = [], 0
    while i < len(mods):
        for pat in _FUSE_PATTERNS:
            k = len(pat)
            if i + k <= len(mods) and all(type(m) is t for m, t in zip(mods[i : i + k], pat, strict=True)):
                groups.append(names[i : i + k])
                i += k
                break
        else:
            i += 1
    return groups


def _fuse_if_plain(module: nn.Module, groups: list[list[str]], qat: bool) -> None:
    """Fuse the named groups whose first module is a plain conv / linear (a factorised conv —
    an ``nn.Sequential`` from ``lowrank`` — stays unfused)."""
    ok = [
        g
        for g in groups
        if all(hasattr(module, n) for n in g) and type(getattr(module, g[0])) in (nn.Conv2d, nn.Conv1d, nn.Linear)
    ]
    if ok:
        (tq.fuse_modules_qat if qat else tq.fuse_modules)(module, ok, inplace=True)


def make_quantizable(net: nn.Module, qat: bool) -> nn.Module:
    """Swap torchvision residual blocks for their quantizable twins and fuse conv-bn-relu runs (in place)."""
    from torchvision.models import resnet as tvr
    from torchvision.models.quantization import resnet as qr

    for m in list(net.modules()):
        if type(m) is tvr.BasicBlock:
            m.__class__ = qr.QuantizableBasicBlock
            m.add_relu = nn.quantized.FloatFunctional()
            _fuse_if_plain(m, [["conv1", "bn1", "relu"], ["conv2", "bn2"]], qat)
        elif type(m) is tvr.Bottleneck:
            m.__class__ = qr.QuantizableBottleneck
            m.skip_add_relu = nn.quantized.FloatFunctional()
            # new modules start in training mode: match the block's, or fusing conv-bn-relu refuses the mix
            m.relu1, m.relu2 = nn.ReLU(inplace=False).train(m.training), nn.ReLU(inplace=False).train(m.training)
            _fuse_if_plain(m, [["conv1", "bn1", "relu1"], ["conv2", "bn2", "relu2"], ["conv3", "bn3"]], qat)
        elif isinstance(m, tvr.ResNet):
            _fuse_if_plain(m, [["conv1", "bn1", "relu"]], qat)
        if isinstance(m, nn.Sequential):
            groups = _sequential_groups(m)
            if groups:
                (tq.fuse_modules_qat if qat else tq.fuse_modules)(m, groups, inplace=True)
    return net


class FloatIsland(nn.Module):
    """A layer kept in float inside an eager int8 network (mixed precision): its int8 input is dequantized, the
    layer runs in float32, its output is quantized again (with its own calibrated scale) for the int8 layers
    after it. ``inner`` carries ``qconfig = None``, so eager preparation leaves it and its children float."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.dequant = tq.DeQuantStub()
        self.inner = inner
        self.quant = tq.QuantStub()
        inner.qconfig = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.quant(self.inner(self.dequant(x)))


def net_path(name: str) -> str:
    """A layer's path inside ``model.net`` from its path in the Classifier (``net.features.0`` -> ``features.0``)."""
    return name[4:] if name.startswith("net.") else name


def keep_float(net: nn.Module, float_layers: tuple[str, ...] | list[str]) -> nn.Module:
    """Wrap each named layer of ``net`` (Classifier paths) in a :class:`FloatIsland` (in place); after fusion a
    conv's path names its fused conv-bn-relu module, which stays float as a whole."""
    for name in float_layers:
        path = net_path(name)
        net.set_submodule(path, FloatIsland(net.get_submodule(path)))
    return net


def prepare_int8(
    model: nn.Module, backend: str, qat: bool = False, float_layers: tuple[str, ...] | list[str] = ()
) -> nn.Module:
    """Float Classifier -> prepared (observed / fake-quant) model; normalisation stays float, and so do the
    layers named in ``float_layers`` (mixed precision: :class:`FloatIsland`)."""
    torch.backends.quantized.engine = backend
    if not hasattr(model, "net") or not hasattr(model, "normalize"):
        raise ValueError("int8 quantization expects a compressbench Classifier (normalize -> net)")
    if qat:
        model.train()
    else:
        model.eval()
    model.net = QuantNet(keep_float(make_quantizable(model.net, qat), float_layers))
    model.net.qconfig = tq.get_default_qat_qconfig(backend) if qat else tq.get_default_qconfig(backend)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (tq.prepare_qat if qat else tq.prepare)(model, inplace=True)
    return model


def convert_int8(model: nn.Module) -> nn.Module:
    if int8_fx.is_fx(model):
        return int8_fx.convert_fx(model)
    model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tq.convert(model, inplace=True)
    return model


def eager_dry_run(model: nn.Module, backend: str, input_shape: tuple[int, ...]) -> str | None:
    """Why eager int8 fails on a copy of ``model`` (one random batch through prepare, convert and a
    forward pass), or None when it works."""
    try:
        m = prepare_int8(copy.deepcopy(model).cpu(), backend)
        x = torch.rand(*input_shape)
        with torch.inference_mode():
            m(x)
        convert_int8(m)
        with torch.inference_mode():
            m(x)
        return None
    except Exception as e:
        lines = [ln for ln in str(e).splitlines() if ln.strip()]
        return f"{type(e).__name__}: {lines[0][:160] if lines else ''}"


def choose_path(model: nn.Module, backend: str, input_shape: tuple[int, ...]) -> str:
    """``eager`` when eager int8 handles the network (see the module docstring), else ``fx``."""
    if first_unplain_module(model.net) is None or eager_dry_run(model, backend, input_shape) is None:
        return "eager"
    return "fx"


def prepare_any(
    model: nn.Module,
    backend: str,
    qat: bool,
    path: str,
    shape: tuple[int, ...],
    float_layers: tuple[str, ...] | list[str] = (),
) -> nn.Module:
    """:func:`prepare_int8` (eager) or FX graph mode's prepare, by ``path``; ``float_layers`` stay float."""
    if path == "fx":
        return int8_fx.prepare_fx(model, backend, qat, shape, float_layers=[net_path(n) for n in float_layers])
    return prepare_int8(model, backend, qat, float_layers)


def _int8_step(
    mode: str, backend: str, path: str, shape: tuple[int, ...], float_layers: list[str] | None = None
) -> dict:
    step: dict = {"kind": "quantize.int8", "mode": mode, "backend": backend}
    if float_layers:  # mixed precision (only when set: steps of full int8 stay as they were)
        step["float_layers"] = list(float_layers)
    return step if path == "eager" else {**step, "path": path, "input_shape": list(shape)}


def quantizable_layers(model: nn.Module) -> list[str]:
    """The conv / linear layers of a Classifier's network, by module path (``net.features.0``): what int8
    quantizes and a mixed-precision variant may keep in float."""
    net = getattr(model, "net", model)
    prefix = "net." if net is not model else ""
    return [prefix + n for n, m in net.named_modules() if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear))]


def check_float_layers(model: nn.Module, names: list[str]) -> str | None:
    """Why ``keep_float`` cannot name these layers of ``model`` (None: it can)."""
    known = quantizable_layers(model)
    bad = [n for n in names if n not in known]
    if bad:
        from ..errors import did_you_mean

        return (
            f"keep_float: '{bad[0]}' is not a conv / linear layer of the model{did_you_mean(bad[0], known)}; "
            f"layers: {', '.join(known[:20])}{' ...' if len(known) > 20 else ''}"
        )
    if len(set(names)) < len(names):
        return "keep_float: a layer is listed twice"
    return None


def check_int8(model: nn.Module, ctx: CompressContext, params: Params) -> str | None:
    """``check_model`` of static / QAT int8: eager or FX graph mode must be able to prepare the model, and the
    layers kept in float must be its conv / linear layers."""
    backend = default_backend() if params.backend == "auto" else params.backend
    shape, qat = input_shape(ctx.meta), isinstance(params, QATParams)
    msg = check_float_layers(model, list(getattr(params, "keep_float", []) or []))
    if msg:
        return msg
    memo = _CHECKED.setdefault(model, {})  # static, QAT and a pipeline's int8 stage ask once per model
    if ("path", backend, shape) not in memo:
        memo["path", backend, shape] = choose_path(model, backend, shape)
    if memo["path", backend, shape] == "eager":
        return None
    if ("fx", backend, shape, qat) not in memo:
        memo["fx", backend, shape, qat] = int8_fx.fx_blocker(model, backend, shape, qat=qat)
    return memo["fx", backend, shape, qat]


_CHECKED: weakref.WeakKeyDictionary[nn.Module, dict[tuple, Any]] = weakref.WeakKeyDictionary()


def calibrate(model: nn.Module, ctx: CompressContext, batches: int, batch_size: int) -> int:
    g = torch.Generator().manual_seed(ctx.seed)
    seen = 0
    val = getattr(ctx.data, "val", None)
    images = val if val is not None and len(val) else ctx.data.train  # the test split stays untouched
    with torch.inference_mode():
        for i, (x, _, _) in enumerate(images.batches(batch_size, shuffle=True, generator=g)):
            if i >= batches:
                break
            model(x)
            seen += len(x)
    return seen


# static int8's fixed work (fusion, observer insertion, int8 conversion: per-layer Python work) for ``compressbench
# plan``, in the model's per-call inference overheads: 1.0 CPU s per job vs 2.27 ms per call on the Office-31 smoke's
# ResNet-50 at 1/16 width (``benchmarks/plan_vs_run.py``, AMD EPYC, 1 thread, loaded machine; the mean of small
# calls). Re-checked with the fastest-call measurement (1.4 ms per call there): its 2 static jobs priced at 0.84 of
# their 2.05 CPU s
STATIC_OVERHEAD_CALLS = 400.0


@methods.register(
    "quantize.static",
    family="quantization",
    changes_architecture=True,
    needs_training_data=True,
    check_model=check_int8,
    float_layers="keep_float",
    cost=lambda p: TrainingCost(
        forward_images=p.calibration_batches * p.batch_size, batch=p.batch_size, overhead_calls=STATIC_OVERHEAD_CALLS
    ),
)
def static_int8(parent: nn.Module, ctx: CompressContext, sol: Solution, params: StaticParams) -> CompressResult:
    backend = default_backend() if params.backend == "auto" else params.backend
    shape = input_shape(ctx.meta)
    path = choose_path(parent, backend, shape)
    msg = check_float_layers(parent, params.keep_float)
    if msg:
        raise ValueError(msg)
    model = prepare_any(clone(parent).cpu(), backend, False, path, shape, params.keep_float)
    n = calibrate(model, ctx, params.calibration_batches, params.batch_size)
    convert_int8(model)
    record = {"backend": backend, "calibration_images": n, "path": f"torch.ao {path}"}
    if params.keep_float:
        record["float_layers"] = list(params.keep_float)
    return CompressResult(model, record, [_int8_step("static", backend, path, shape, params.keep_float)])


@methods.register(
    "quantize.qat",
    family="quantization",
    changes_architecture=True,
    needs_training_data=True,
    check_model=check_int8,
    cost=lambda p: TrainingCost(input_epochs=p.finetune.epochs, forward_images=p.calibration_batches * p.batch_size),
)
def qat_int8(parent: nn.Module, ctx: CompressContext, sol: Solution, params: QATParams) -> CompressResult:
    backend = default_backend() if params.backend == "auto" else params.backend
    shape = input_shape(ctx.meta)
    path = choose_path(parent, backend, shape)
    model = prepare_any(clone(parent).cpu(), backend, True, path, shape)
    n = calibrate(model, ctx, params.calibration_batches, params.batch_size)
    # fp32 whatever train.amp says: torch.ao's fused observer + fake-quantize kernel takes float32 only (a bf16
    # autocast step fails with "expected scalar type Float but found BFloat16")
    model = finetune(model, ctx, params.finetune, desc="finetune(qat)", amp=False)
    convert_int8(model)
    return CompressResult(
        model,
        {"backend": backend, "warmup_images": n, "qat_epochs": params.finetune.epochs, "path": f"torch.ao {path} QAT"},
        [_int8_step("qat", backend, path, shape)],
    )


def check_dynamic(model: nn.Module, ctx: CompressContext, params: Params) -> str | None:
    if not any(isinstance(m, nn.Linear) for m in model.modules()):
        return "dynamic int8 quantizes nn.Linear layers only, and this model has none"
    return None


@methods.register("quantize.dynamic", family="quantization", changes_architecture=True, check_model=check_dynamic)
def dynamic_int8(parent: nn.Module, ctx: CompressContext, sol: Solution, params: DynamicParams) -> CompressResult:
    backend = default_backend() if params.backend == "auto" else params.backend
    model = _dynamic(clone(parent).cpu(), backend)
    n_lin = sum(1 for m in model.modules() if "quantized" in type(m).__module__ and "Linear" in type(m).__name__)
    return CompressResult(
        model,
        {"backend": backend, "quantized_linear_layers": n_lin},
        [{"kind": "quantize.int8", "mode": "dynamic", "backend": backend}],
    )


def _dynamic(model: nn.Module, backend: str) -> nn.Module:
    torch.backends.quantized.engine = backend
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return tq.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8, inplace=False)


@register_rebuilder("quantize.int8", quantizes=True)
def _rebuild_int8(model: nn.Module, step: dict, state_dict: dict) -> nn.Module:
    backend = step.get("backend", "x86")
    if backend not in torch.backends.quantized.supported_engines:
        backend = default_backend()
    if step["mode"] == "dynamic":
        return _dynamic(model, backend)
    # QAT converts to the same int8 modules as static preparation
    path, shape = step.get("path", "eager"), tuple(step.get("input_shape", ()))
    floats = list(step.get("float_layers", []))  # mixed precision: these stay float32
    if path == "fx":  # the same preparation as the variant's (QAT and static FX graphs differ)
        model = int8_fx.prepare_fx(
            model, backend, step["mode"] == "qat", shape, cheap=True, float_layers=[net_path(n) for n in floats]
        )
        int8_fx.mark_observed(model)
        return convert_int8(model)
    model = prepare_int8(model, backend, qat=False, float_layers=floats)  # eager QAT: the same int8 modules
    return convert_int8(model)


# --------------------------------------------------------------------------- fp16 / bf16
class CastNet(nn.Module):
    """Runs ``net`` in a narrower float type: casts its input, returns float32 logits."""

    def __init__(self, net: nn.Module, dtype: torch.dtype):
        super().__init__()
        self.net = net.to(dtype)
        self.dtype = dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.to(self.dtype)).float()


_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16}


def cast_model(model: nn.Module, dtype_name: str) -> nn.Module:
    dtype = _DTYPES[dtype_name]
    if hasattr(model, "net") and hasattr(model, "normalize"):
        model.net = CastNet(model.net, dtype)  # normalisation stays float32
        return model
    return CastNet(model, dtype)


def _cast_method(dtype_name: str):
    def fn(parent: nn.Module, ctx: CompressContext, sol: Solution, params: CastParams) -> CompressResult:
        model = cast_model(clone(parent).cpu(), dtype_name).eval()
        return CompressResult(model, {"dtype": dtype_name}, [{"kind": "quantize.cast", "dtype": dtype_name}])

    return fn


for _short, _dt in (("fp16", "float16"), ("bf16", "bfloat16")):
    methods.register(f"quantize.{_short}", _cast_method(_dt), family="quantization", changes_architecture=True)


@register_rebuilder("quantize.cast", quantizes=True)
def _rebuild_cast(model: nn.Module, step: dict, state_dict: dict) -> nn.Module:
    return cast_model(model, step["dtype"])

"""Model zoo. Every model is a :class:`Classifier`: ``Normalize(mean, std)`` then the network,
so models take float images in [0, 1] and preprocessing travels with the model.

Registered factories take ``(meta: DataMeta, width: float = 1.0, **kwargs) -> nn.Module``
(the bare network); :func:`create_model` wraps it. Any user model is reachable as
``"package.module:factory"`` with the same signature, once *resolved*: ``models.resolve(name)``
imports the module and registers the factory under that string. A config (``model.name``, a distill
student — :data:`ModelName`) and the ``--model`` flags resolve what the user wrote; :func:`create_model`
itself only looks names up, so a name read from a checkpoint never imports code (docs/architecture.md,
convention 14) unless the caller opts in with :func:`trusting_code` (``load_model(..., trust=True)``).

Library models: ``"timm:<architecture>"`` (:mod:`.timm`) and ``"torchvision:<model>"`` (:mod:`.tv`) are
name families the registry serves on first use. Weights of any model come from ``model.weights``
(:mod:`.weights` for files, :mod:`.published` for torchvision / timm tags; :mod:`.baseline` puts them in).
"""

from __future__ import annotations

import contextlib
import contextvars
import difflib
import inspect
from typing import Any, Iterator, Sequence

import torch
from torch import nn

from ..catalog.models import ModelName, _resolve_model_name  # noqa: F401 (torch-free: compressbench.catalog)
from ..data.base import DataMeta
from ..registry import UnknownNameError, is_object_path, models
from .published import torchvision_weights

__all__ = [
    "Classifier",
    "Normalize",
    "create_model",
    "count_params",
    "ModelName",
    "trusting_code",
    "user_model_names",
    "check_factory_kwargs",
]

# while set, create_model may import an unregistered "pkg.mod:factory" (the caller trusts the source)
_TRUST_CODE: contextvars.ContextVar[bool] = contextvars.ContextVar("compressbench_trust_code", default=False)


@contextlib.contextmanager
def trusting_code(trust: bool = True) -> Iterator[None]:
    """Within this block :func:`create_model` resolves (imports) ``"pkg.mod:factory"`` names it meets —
    for ``load_model(path, trust=True)`` on a checkpoint whose source the caller trusts."""
    token = _TRUST_CODE.set(trust)
    try:
        yield
    finally:
        _TRUST_CODE.reset(token)


class UntrustedModelError(UnknownNameError):
    """A ``"pkg.mod:factory"`` that nobody resolved in this process: building it would import code."""

    def __init__(self, name: str):
        super().__init__(
            "model",
            name,
            models.names(),
            f"model factory '{name}' is not registered in this process, and importing it would run "
            f"its code: name it in the config's model.name (or call "
            f"compressbench.registry.models.resolve('{name}')) first",
        )


def user_model_names() -> list[str]:
    """The ``"pkg.mod:factory"`` names resolved in this process (written by the user in a config or
    a flag) — a fresh worker process re-resolves exactly these, and nothing a checkpoint names.
    Library name families (``timm:...``) need no trust and are not listed."""
    return [n for n in models.names() if is_object_path(n) and not models.source_of(n)]


class Normalize(nn.Module):
    """(x - mean) / std with per-channel constants kept as buffers (saved with the model)."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class Classifier(nn.Module):
    """normalize -> net. ``net`` is any module mapping normalised images to logits."""

    def __init__(self, net: nn.Module, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.normalize(x))


def count_params(model: nn.Module, nonzero: bool = False) -> int:
    ps = [p for p in model.parameters()]
    return int(sum(int((p != 0).sum()) if nonzero else p.numel() for p in ps))


def create_model(name: str, meta: DataMeta, width: float = 1.0, **kwargs: Any) -> Classifier:
    """Build a registered model for a dataset's metadata. Only looks ``name`` up: a
    ``"pkg.mod:factory"`` must have been resolved first (``models.resolve(name)``, done by config
    validation), or be met inside :func:`trusting_code`."""
    if is_object_path(name) and name not in models and not models.source_of(name):
        if not _TRUST_CODE.get():
            raise UntrustedModelError(name)
        models.resolve(name)
    factory = models.get(name)
    net = factory(meta, width=width, **kwargs)
    return Classifier(net, meta.mean, meta.std)


def check_factory_kwargs(name: str, kwargs: dict[str, Any]) -> tuple[str, str] | None:
    """Why ``model.kwargs`` cannot be passed to the factory ``name``: ``(config path, one-line reason)``,
    or None. Checked against the factory's signature at validate time, so that a kwarg it does not
    take (``pretrained: true``) fails before any work instead of failing every job at build time.
    ``name`` must already be resolved (registered, or a ``pkg.mod:factory`` the user wrote); nothing
    is called."""
    factory = models.get(name)
    for reserved in ("meta", "width"):
        if reserved in kwargs:
            how = "model.width" if reserved == "width" else "compressbench (the dataset's metadata)"
            return f"model.kwargs.{reserved}", f"'{reserved}' is not a kwarg: it is given by {how}"
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError):  # a callable without an inspectable signature: nothing to check
        return None
    params = list(sig.parameters.values())
    var_kw = any(p.kind is p.VAR_KEYWORD for p in params)
    named = [p.name for p in params[1:] if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    accepted = [n for n in named if n != "width"]
    if not var_kw:
        for k in kwargs:
            if k not in named:
                close = difflib.get_close_matches(str(k), accepted, n=1, cutoff=0.5)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                return f"model.kwargs.{k}", (
                    f"model '{name}' takes no argument '{k}'{hint}; accepted: "
                    f"{', '.join(accepted) or 'none (only model.width)'}"
                )
    try:
        sig.bind(None, width=1.0, **kwargs)
    except TypeError as e:
        missing = [
            p.name
            for p in params[1:]
            if p.default is p.empty
            and p.name not in kwargs
            and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
            and p.name != "width"
        ]
        if missing:
            return f"model.kwargs.{missing[0]}", f"model '{name}' needs argument '{missing[0]}' ({e})"
        return "model.name", f"'{name}' is not a model factory fn(meta, width=1.0, **kwargs): its signature is {sig}"
    return None


def _w(c: int, width: float) -> int:
    return max(1, int(round(c * width)))


# --------------------------------------------------------------------------- small CNNs
def _conv_bn(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


@models.register("cnn5", family="cnn")
def cnn5(meta: DataMeta, width: float = 1.0, channels: Sequence[int] = (32, 32, 64, 64, 128)) -> nn.Module:
    c = [_w(ch, width) for ch in channels]
    layers: list[nn.Module] = []
    cin = meta.channels
    for i, cout in enumerate(c):
        layers += _conv_bn(cin, cout)
        if i in (1, 3):
            layers.append(nn.MaxPool2d(2))
        cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, meta.num_classes)]
    return nn.Sequential(*layers)


@models.register("tinycnn", family="cnn")
def tinycnn(meta: DataMeta, width: float = 1.0) -> nn.Module:
    c1, c2 = _w(8, width), _w(16, width)
    return nn.Sequential(
        *_conv_bn(meta.channels, c1),
        nn.MaxPool2d(2),
        *_conv_bn(c1, c2),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(c2, meta.num_classes),
    )


# --------------------------------------------------------------------------- ResNets
# torchvision is imported when a ResNet is built, not when the registry is listed or a config is
# validated (importing torchvision.models pulls in torch._dynamo: seconds).
def _cifar_resnet(depth: int):
    """He et al. (2016) CIFAR ResNets: 6n+2 layers, widths 16/32/64 (1×1-conv shortcuts)."""
    n = (depth - 2) // 6

    def factory(meta: DataMeta, width: float = 1.0, depth_scale: float = 1.0) -> nn.Module:
        from torchvision.models import resnet as tv_resnet

        from .resnet import ResNet

        blocks = max(1, int(round(n * depth_scale)))
        return ResNet(
            tv_resnet.BasicBlock,
            [blocks] * 3,
            [_w(c, width) for c in (16, 32, 64)],
            meta.num_classes,
            meta.channels,
            "cifar",
        )

    factory.__doc__ = f"CIFAR ResNet-{depth} (He et al. 2016), 3 stages of {n} basic blocks"
    return factory


for _d in (8, 20, 32, 44, 56, 110):
    models.register(
        f"resnet{_d}",
        _cifar_resnet(_d),
        family="resnet",
        classifier="fc",
        first_conv="conv1",
    )

_TV = {
    18: ("BasicBlock", [2, 2, 2, 2]),
    34: ("BasicBlock", [3, 4, 6, 3]),
    50: ("Bottleneck", [3, 4, 6, 3]),
    101: ("Bottleneck", [3, 4, 23, 3]),
    152: ("Bottleneck", [3, 8, 36, 3]),
}


def _tv_resnet(depth: int, stem: str):
    block_name, layers = _TV[depth]

    def factory(meta: DataMeta, width: float = 1.0, depth_scale: float = 1.0) -> nn.Module:
        from torchvision.models import resnet as tv_resnet

        from .resnet import ResNet

        block = getattr(tv_resnet, block_name)
        ls = [max(1, int(round(n * depth_scale))) for n in layers]
        return ResNet(block, ls, [_w(c, width) for c in (64, 128, 256, 512)], meta.num_classes, meta.channels, stem)

    return factory


for _d in _TV:
    models.register(
        f"cifar_resnet{_d}",
        _tv_resnet(_d, "cifar"),
        family="resnet",
        classifier="fc",
        first_conv="conv1",
    )
    models.register(
        f"tv_resnet{_d}",
        _tv_resnet(_d, "imagenet"),
        family="resnet",
        classifier="fc",
        first_conv="conv1",
        published=torchvision_weights(f"resnet{_d}"),
    )


def _timm_source(name: str):
    from ..extras import needs

    needs(f"model '{name}'", "timm")  # one line naming the extra, before timm is imported
    from . import timm as timm_models

    return timm_models.source(name)


def _torchvision_source(name: str):
    from . import tv

    return tv.source(name)


models.add_source("timm:", _timm_source, "any timm architecture, random init (timm.list_models())")
models.add_source(
    "torchvision:",
    _torchvision_source,
    "any torchvision classification model, random init (torchvision.models.list_models())",
)

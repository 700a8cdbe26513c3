"""The built-in models, declared torch-free (what ``compressbench list`` shows) and the ``ModelName`` field type
of configs and methods' params. The factories register in :mod:`compressbench.models` (imported on first use)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator

from ..registry import models


def _resolve_model_name(name: str) -> str:
    models.resolve(name)  # imports a "pkg.mod:factory" the user wrote; one-line error otherwise
    return name


ModelName = Annotated[str, AfterValidator(_resolve_model_name)]
"""A model name in a config or a method's parameters: validating it resolves it (imports a
``"pkg.mod:factory"`` the user wrote), so later :func:`create_model` calls find it registered."""


# --------------------------------------------------------------------------- declarations: registry.models
models.declare("cnn5", description="plain CNN: 5 conv-bn-relu layers (2 max-pools), global pool, linear")
models.declare("tinycnn", description="2-conv test fixture (a few thousand parameters)")
for _d in (8, 20, 32, 44, 56, 110):
    models.declare(f"resnet{_d}", description=f"CIFAR ResNet-{_d} of He et al. (3×3 stem)")
for _d in (18, 34, 50, 101, 152):
    models.declare(
        f"cifar_resnet{_d}", description=f"ResNet-{_d} (torchvision blocks) with a 3×3 stem for small images"
    )
    models.declare(
        f"tv_resnet{_d}",
        description=f"torchvision ImageNet ResNet-{_d} (7×7 stem; torchvision:IMAGENET1K_V1 weights load)",
    )
models.declare_source(
    "timm:",
    "any timm architecture, random init (timm.list_models())",
)
models.declare_source(
    "torchvision:",
    "any torchvision classification model, random init (torchvision.models.list_models())",
)

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
models.declare('cifar_resnet101', description='ResNet-101 (torchvision blocks) with a 3×3 stem for small images')
models.declare('cifar_resnet152', description='ResNet-152 (torchvision blocks) with a 3×3 stem for small images')
models.declare('cifar_resnet18', description='ResNet-18 (torchvision blocks) with a 3×3 stem for small images')
models.declare('cifar_resnet34', description='ResNet-34 (torchvision blocks) with a 3×3 stem for small images')
models.declare('cifar_resnet50', description='ResNet-50 (torchvision blocks) with a 3×3 stem for small images')
models.declare('cnn5', description='plain CNN: 5 conv-bn-relu layers (2 max-pools), global pool, linear')
models.declare('resnet110', description='CIFAR ResNet-110 of He et al. (3×3 stem)')
models.declare('resnet20', description='CIFAR ResNet-20 of He et al. (3×3 stem)')
models.declare('resnet32', description='CIFAR ResNet-32 of He et al. (3×3 stem)')
models.declare('resnet44', description='CIFAR ResNet-44 of He et al. (3×3 stem)')
models.declare('resnet56', description='CIFAR ResNet-56 of He et al. (3×3 stem)')
models.declare('resnet8', description='CIFAR ResNet-8 of He et al. (3×3 stem)')
models.declare('tinycnn', description='2-conv test fixture (a few thousand parameters)')
models.declare(
    'tv_resnet101',
    description='torchvision ImageNet ResNet-101 (7×7 stem; torchvision:IMAGENET1K_V1 weights load)',
)
models.declare(
    'tv_resnet152',
    description='torchvision ImageNet ResNet-152 (7×7 stem; torchvision:IMAGENET1K_V1 weights load)',
)
models.declare(
    'tv_resnet18',
    description='torchvision ImageNet ResNet-18 (7×7 stem; torchvision:IMAGENET1K_V1 weights load)',
)
models.declare(
    'tv_resnet34',
    description='torchvision ImageNet ResNet-34 (7×7 stem; torchvision:IMAGENET1K_V1 weights load)',
)
models.declare(
    'tv_resnet50',
    description='torchvision ImageNet ResNet-50 (7×7 stem; torchvision:IMAGENET1K_V1 weights load)',
)
models.declare_source(
    'timm:',
    'any timm architecture, random init (timm.list_models())',
)
models.declare_source(
    'torchvision:',
    'any torchvision classification model, random init (torchvision.models.list_models())',
)

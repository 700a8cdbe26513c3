"""CIFAR-stem / configurable ResNets built from torchvision's blocks."""

from __future__ import annotations

from typing import Sequence

from torch import nn
from torchvision.models import resnet as tv_resnet


class ResNet(tv_resnet.ResNet):
    """torchvision's ResNet with configurable stage widths/depths, stem and input channels.

    ``stem='cifar'``: 3×3 stride-1 conv, no max-pool (for 32×32 / 28×28 images).
    ``stem='imagenet'``: torchvision's 7×7 stride-2 conv + max-pool.
    """

    def __init__(
        self,
        block: type,
        layers: Sequence[int],
        widths: Sequence[int],
        num_classes: int,
        in_channels: int = 3,
        stem: str = "cifar",
    ):
        nn.Module.__init__(self)
        self._norm_layer = nn.BatchNorm2d
        self.dilation, self.groups, self.base_width = 1, 1, 64
        self.inplanes = widths[0]
        if stem == "cifar":
            self.conv1 = nn.Conv2d(in_channels, self.inplanes, 3, 1, 1, bias=False)
            self.maxpool = nn.Identity()
        else:
            self.conv1 = nn.Conv2d(in_channels, self.inplanes, 7, 2, 3, bias=False)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        stages = []
        for i, (w, n) in enumerate(zip(widths, layers)):
            stages.append(self._make_layer(block, w, n, stride=1 if i == 0 else 2))
        self.layer1 = stages[0]
        self.layer2 = stages[1] if len(stages) > 1 else nn.Identity()
        self.layer3 = stages[2] if len(stages) > 2 else nn.Identity()
        self.layer4 = stages[3] if len(stages) > 3 else nn.Identity()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(widths[len(stages) - 1] * block.expansion, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

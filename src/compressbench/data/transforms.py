"""Batched, seeded image transforms: resizing (``dataset.resize``) and the training augmentations
beyond crop / flip (``train.rotation``, ``train.color_jitter``).

Everything works on whole N×C×H×W batches on the batch's device, with per-image random parameters drawn
from the training loop's ``torch.Generator`` (on CPU, so a run is reproducible whatever the device):

* :func:`fit_size` — bilinear resizing with antialiasing (``F.interpolate``), float [0, 1] or uint8 in,
  the same dtype out. Datasets keep their images at their stored size and batches are resized as they
  are drawn: CIFAR-10 at 224 px needs 150 MB of images, not 7.5 GB.
* :func:`rotate` — a uniform angle in ±``degrees`` per image (``affine_grid`` + ``grid_sample``,
  bilinear, zeros outside), as ``torchvision.transforms.RandomRotation``.
* :func:`color_jitter` — per-image brightness, contrast, saturation factors uniform in [1 − s, 1 + s]
  and a hue shift uniform in ±``hue`` of a turn, applied in that order, as ``ColorJitter`` does with a
  fixed order. Contrast blends with the image's mean grey level, saturation with its grey image
  (ITU-R 601 luma); the hue shift is a rotation of the chroma plane in YIQ space (a linear
  approximation of torchvision's HSV hue shift, exact for grey, and cheap). Saturation and hue need 3
  channels (a config asking for them on grey images fails at ``validate``).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

_LUMA = (0.299, 0.587, 0.114)
_RGB2YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])


def fit_size(x: torch.Tensor, size: tuple[int, int] | list[int]) -> torch.Tensor:
    """``x`` (N×C×H×W, uint8 or float) resized to ``size`` (H, W) unless it has that size already."""
    size = (int(size[0]), int(size[1]))
    if tuple(x.shape[-2:]) == size:
        return x
    if x.dtype == torch.uint8:
        y = F.interpolate(x.float(), size=size, mode="bilinear", align_corners=False, antialias=True)
        return y.round_().clamp_(0, 255).to(torch.uint8)
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True).clamp_(0, 1)


def _uniform(n: int, lo: float, hi: float, g: torch.Generator, device: torch.device) -> torch.Tensor:
    return (lo + (hi - lo) * torch.rand(n, generator=g)).to(device)


def rotate(x: torch.Tensor, degrees: float, g: torch.Generator) -> torch.Tensor:
    """Rotate each image by an angle uniform in [−degrees, degrees] about its centre."""
    if degrees <= 0:
        return x
    n, _, h, w = x.shape
    a = _uniform(n, -degrees, degrees, g, x.device) * (math.pi / 180)
    cos, sin = torch.cos(a), torch.sin(a)
    # affine_grid works in normalised coordinates: correct the rotation for non-square images
    theta = torch.zeros(n, 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0], theta[:, 0, 1] = cos, -sin * h / w
    theta[:, 1, 0], theta[:, 1, 1] = sin * w / h, cos
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _grey(x: torch.Tensor) -> torch.Tensor:
    if x.shape[1] != 3:
        return x.mean(1, keepdim=True)
    w = torch.tensor(_LUMA, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


def color_jitter(
    x: torch.Tensor,
    g: torch.Generator,
    brightness: float = 0.0,
    contrast: float = 0.0,
    saturation: float = 0.0,
    hue: float = 0.0,
) -> torch.Tensor:
    """Per-image brightness / contrast / saturation / hue jitter (see the module docstring)."""
    n = x.shape[0]
    shape = (n, 1, 1, 1)
    if brightness > 0:
        x = x * _uniform(n, max(0.0, 1 - brightness), 1 + brightness, g, x.device).view(shape)
        x = x.clamp(0, 1)
    if contrast > 0:
        m = _grey(x).mean(dim=(1, 2, 3), keepdim=True)
        c = _uniform(n, max(0.0, 1 - contrast), 1 + contrast, g, x.device).view(shape)
        x = ((x - m) * c + m).clamp(0, 1)
    if saturation > 0 and x.shape[1] == 3:
        grey = _grey(x)
        s = _uniform(n, max(0.0, 1 - saturation), 1 + saturation, g, x.device).view(shape)
        x = ((x - grey) * s + grey).clamp(0, 1)
    if hue > 0 and x.shape[1] == 3:
        t = _uniform(n, -hue, hue, g, x.device) * (2 * math.pi)
        m = _RGB2YIQ.to(x.device, x.dtype)
        yiq = torch.einsum("ij,njhw->nihw", m, x)
        i, q = yiq[:, 1], yiq[:, 2]
        cos, sin = torch.cos(t).view(n, 1, 1), torch.sin(t).view(n, 1, 1)
        yiq = torch.stack([yiq[:, 0], i * cos - q * sin, i * sin + q * cos], 1)
        x = torch.einsum("ij,njhw->nihw", torch.linalg.inv(m), yiq).clamp(0, 1)
    return x


def photometric(x: torch.Tensor, recipe: Any, g: torch.Generator) -> torch.Tensor:
    """The recipe's rotation and colour jitter (after crop / flip); nothing drawn when they are off, so
    recipes without them keep their random streams."""
    deg = float(getattr(recipe, "rotation", 0.0) or 0.0)
    cj = getattr(recipe, "color_jitter", None) or {}
    if deg > 0:
        x = rotate(x, deg, g)
    if cj and any(float(v) > 0 for v in cj.values()):
        x = color_jitter(x, g, **{k: float(v) for k, v in cj.items()})
    return x

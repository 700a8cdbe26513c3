"""Procedural frost textures (replacing the six frost photographs of ImageNet-C).

The original ``frost`` corruption blends a random crop of one of six photographs of frost on a
window (``frost1.png`` … ``frost6.jpg``, shipped with ``hendrycks/robustness`` and
``imagecorruptions`` without a stated licence). We generate stand-ins instead, so nothing needs
to be shipped or downloaded:

* a cloudy base (sum of five octaves of smooth value noise, the "breath" film on the glass);
* crystal veins: ridged noise ``(1 − |2n − 1|)^p`` of three octaves, stretched along random
  directions, which gives the thin bright branching lines of ice crystals;
* a fine grain, and a cold tint (R, G, B) ∝ (0.86, 0.93, 1.00).

The textures are deterministic (fixed seed), uint8 RGB, S×S with S = max(128, 2 × the next power
of two of the image side), and their mean intensity (≈ 0.45) and contrast are in the range of the
photographs'. They are not the photographs: numbers from ``frost`` differ from the published
CIFAR-10-C frost files by more than the other corruptions do; use the official files (the
``cifar10-c`` dataset) for numbers comparable with papers.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F

TEXTURE_SEED = 20190101
TINT = (0.86, 0.93, 1.00)


def _smooth_noise(g: torch.Generator, size: int, cells: int) -> torch.Tensor:
    n = torch.rand(1, 1, cells + 1, cells + 1, generator=g)
    return F.interpolate(n, size=(size, size), mode="bicubic", align_corners=True)[0, 0]


def _stretched(g: torch.Generator, size: int, cells: int, stretch: float) -> torch.Tensor:
    """Noise stretched along a random direction (rotate a larger noise field)."""
    big = int(size * 1.5)
    n = torch.rand(1, 1, cells + 1, int(cells * stretch) + 1, generator=g)
    n = F.interpolate(n, size=(big, big), mode="bicubic", align_corners=True)
    ang = float(torch.rand((), generator=g)) * math.pi
    c, s = math.cos(ang), math.sin(ang)
    theta = torch.tensor([[c, -s, 0.0], [s, c, 0.0]]).unsqueeze(0) / 1.5 * torch.tensor([[1.0, 1.0, 1.5]])
    grid = F.affine_grid(theta, (1, 1, size, size), align_corners=False)
    return F.grid_sample(n, grid, mode="bilinear", padding_mode="reflection", align_corners=False)[0, 0]


def _one(g: torch.Generator, size: int) -> torch.Tensor:
    base = torch.zeros(size, size)
    for o in range(5):
        base += _smooth_noise(g, size, 2 ** (o + 1)) * 0.5**o
    base = (base - base.min()) / (base.max() - base.min() + 1e-8)
    veins = torch.zeros(size, size)
    for o, (cells, w) in enumerate(((size // 24, 1.0), (size // 12, 0.7), (size // 6, 0.45))):
        n = _stretched(g, size, max(cells, 2), 3.0 + o)
        veins += w * (1 - (2 * n - 1).abs()).clamp(0, 1) ** 12
    veins = veins / (veins.max() + 1e-8)
    grain = torch.rand(size, size, generator=g)
    inten = (0.25 + 0.35 * base) * (1 - veins) + veins * (0.75 + 0.25 * base) + 0.06 * (grain - 0.5)
    inten = inten.clamp(0, 1)
    rgb = torch.stack([inten * t for t in TINT])
    return (rgb * 255).round().clamp(0, 255).to(torch.uint8)


@lru_cache(maxsize=4)
def frost_textures(size: int, n: int = 6) -> torch.Tensor:
    """``n`` frost textures, uint8 n×3×size×size, deterministic."""
    g = torch.Generator().manual_seed(TEXTURE_SEED + size)
    return torch.stack([_one(g, size) for _ in range(n)])

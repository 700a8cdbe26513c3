"""The large-image fast paths of the cheap per-pixel corruptions give the bytes of the general paths they replace
(issue 27: faster at 224 px with the same bytes). Each test runs the old form, kept as the general path, next to
the fast one on a few images with the cases the fast path special-cases."""

from __future__ import annotations

import torch

from compressbench.evaluate.corruptions import hendrycks, ops
from compressbench.evaluate.corruptions.params import CIFAR, IMAGENET


def _images(seed: int, size: int = 72) -> torch.Tensor:
    """Random RGB images with a few gray pixels (r = g = b), a mostly gray one, and black and white ones."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (5, 3, size, size), generator=g, dtype=torch.uint8)
    x[0, :, :3, :5] = x[0, :1, :3, :5]  # a few gray pixels
    x[1] = x[1, :1]  # a gray photograph stored as RGB
    x[1, 0, :4, :4] = 7  # ... with a few coloured pixels
    x[2, :, ::7] = 0
    x[3, :, :, ::5] = 255
    return x


def test_saturate_uint8_rgb_equals_the_blend_of_the_float_path():
    """``_saturate_uint8_rgb`` (sparse gray term, no clip before the cast) equals ``_blend_uint8`` around
    ``_saturate_rgb``, byte for byte, at every severity of both constant sets."""
    x = _images(1)
    rng = ops.BatchRNG(list(range(len(x))))
    for table in (CIFAR, IMAGENET):
        for c in table["saturate"]:
            ref = hendrycks._blend_uint8(
                x, lambda xi, i, c=c: hendrycks._saturate_rgb(xi.div_(255), rng, c, "").mul_(255)
            )
            assert torch.equal(hendrycks._saturate_uint8_rgb(x, c), ref), c

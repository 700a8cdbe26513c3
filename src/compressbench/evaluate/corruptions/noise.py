"""The noise-study set: albumentations-1.x transforms with explicit semantics on [0, 1] images.

The reference study applied albumentations 1.x transforms (p = 1 here) to uint8 images. Each is
re-implemented batched, in uint8 units converted to [0, 1] (value / 255). Severity 3 is the
study's setting; the table is ``params.NOISE``.

* ``gauss_noise`` — ``GaussNoise(var_limit=(lo, hi))`` in albumentations 1.x: per image a variance
  ``v ~ U(lo, hi)`` in uint8² units, noise ``N(0, √v)`` per pixel and channel, i.e.
  ``σ = √v / 255`` on [0, 1]. Severity 3 = ``var_limit=(0, 2)``: σ ≤ 1.41/255, nearly invisible.
  (albumentations 2.x ignores ``var_limit`` and applies std 20–44 % of full scale: not this.)
* ``iso_noise`` — ``ISONoise(color_shift, intensity)``: in HLS, hue += N(0, shift·360·intensity),
  L += Poisson(std(L)·intensity·255)/255 · (1 − L). Gray images: only the luminance part.
* ``rgb_shift`` — ``RGBShift(l, l, l)``: each channel + U(−l, l)/255 (one value per image and channel).
* ``pixel_dropout`` — ``PixelDropout(dropout_prob=p)``: each pixel (all channels) set to 0 with prob. p.
* ``random_fog`` — ``RandomFog(fog_coef_lower, fog_coef_upper, alpha_coef)``: white discs ("haze")
  alpha-blended at positions drawn as albumentations does, then a box blur. Faithful consequence:
  on images narrower than 30 px no haze is drawn unless ``fog_coef`` = 1, so at 28–32 px it is
  (almost) the identity — as it was in the study. The discs are blended in float (``1 − (1 − x)(1 − a)^k``
  under k discs: the intended formula); albumentations 1.3.1 rounds the uint8 image after every disc,
  which at 224 px and fog coefficient 0.6 adds about 19 % more haze (docs/corruptions.md).
* ``random_brightness_contrast`` — ``RandomBrightnessContrast(brightness_limit=b, contrast_limit=c,
  brightness_by_max=True)``: per image ``α = 1 + U(−c, c)``, ``β = U(−b, b)``, out = ``x·α + β`` (uint8:
  ``clip(u8·α + 255·β)`` truncated, albumentations' lookup table). Not in the ``noise`` suite (whose
  brightness / contrast are the CIFAR-10-C ones); name it where a protocol used it.
* ``brightness``, ``contrast``, ``defocus_blur`` of the study are the CIFAR-10-C ones (suite lists).
"""

from __future__ import annotations

import torch

from ...catalog.corruptions import (  # noqa: F401 (torch-free: compressbench.catalog)
    BrightnessContrastParams,
    GaussNoiseParams,
    ISONoiseParams,
    PixelDropoutParams,
    RandomFogParams,
    RGBShiftParams,
    _Range,
)
from ...registry import corruptions
from . import ops
from .params import NOISE

# --------------------------------------------------------------------------- direct parameters
# albumentations 1.x argument names and defaults; ``from_params`` turns them into the constant the
# function takes (the same layout as a severity's). Symmetric limits only (a float l means (−l, l)).


def _rgb_constant(p: RGBShiftParams):
    lims = (p.r_shift_limit, p.g_shift_limit, p.b_shift_limit)
    return lims[0] if len(set(lims)) == 1 else lims


DIRECT = {
    "gauss_noise": (GaussNoiseParams, lambda p: tuple(p.var_limit)),
    "iso_noise": (ISONoiseParams, lambda p: (tuple(p.color_shift), tuple(p.intensity))),
    "rgb_shift": (RGBShiftParams, _rgb_constant),
    "pixel_dropout": (PixelDropoutParams, lambda p: p.dropout_prob),
    "random_fog": (RandomFogParams, lambda p: (p.fog_coef_lower, p.fog_coef_upper, p.alpha_coef)),
    "random_brightness_contrast": (BrightnessContrastParams, lambda p: (p.brightness_limit, p.contrast_limit)),
}


def _register(name: str):
    """Register a corruption's code-side fields; its description, version, suites and params schema (the
    schema of ``DIRECT``) are declared in :mod:`compressbench.catalog.corruptions`."""
    return corruptions.register(
        name,
        deterministic=False,
        constants={"any": NOISE[name]},
        from_params=DIRECT[name][1],
    )


# version 3 (and iso_noise's): normals by inversion of 16-bit uniforms (ops.normal_table)
@_register("gauss_noise")
def gauss_noise(x, rng, c, pset):
    lo, hi = c
    sigma = torch.sqrt(rng.uniform((), lo, hi)) / 255.0
    z = rng.normal(x.shape[1:]).to(x.dtype)
    return x + z * ops.per_image(sigma, x)


@_register("iso_noise")
def iso_noise(x, rng, c, pset):
    (cs_lo, cs_hi), (in_lo, in_hi) = c
    N, C, H, W = x.shape
    shift = ops.per_image(rng.uniform((), cs_lo, cs_hi), x)[:, 0]
    inten = ops.per_image(rng.uniform((), in_lo, in_hi), x)[:, 0]
    if C == 1:
        L = x[:, 0]
        std = L.std((1, 2), unbiased=False, keepdim=True)
        lum = rng.poisson((std * inten * 255).expand(N, H, W)).to(x.dtype)
        return (L + lum / 255 * (1 - L))[:, None]
    Hh, L, S = ops.rgb_to_hls(x)
    std = L.std((1, 2), unbiased=False, keepdim=True)
    lum = rng.poisson((std * inten * 255).expand(N, H, W)).to(x.dtype)
    col = rng.normal((H, W)).to(x.dtype) * (shift * 360 * inten)
    Hh = torch.remainder(Hh + col, 360.0)
    L = L + lum / 255 * (1 - L)
    return ops.hls_to_rgb(Hh, L, S)


@_register("rgb_shift")
def rgb_shift(x, rng, c, pset):
    if isinstance(c, (tuple, list)):  # per-channel limits (r, g, b) given directly
        lim = torch.tensor([float(v) for v in c][: x.shape[1]], dtype=torch.float32)
        s = (rng.uniform((x.shape[1],)) * 2 - 1) * lim / 255.0
    else:
        s = rng.uniform((x.shape[1],), -float(c), float(c)) / 255.0
    return x + s.to(x.dtype)[:, :, None, None]


@_register("pixel_dropout")
def pixel_dropout(x, rng, c, pset):
    drop = rng.uniform((1, *x.shape[2:])) < float(c)
    return torch.where(drop, torch.zeros_like(x), x)


def _haze_points(g: torch.Generator, H: int, W: int, fog_coef: float) -> list[tuple[int, int]]:
    """albumentations 1.x ``RandomFog.get_params_dependent_on_targets`` (randint inclusive)."""
    hw = max(1, int(W // 3 * fog_coef))
    pts: list[tuple[int, int]] = []
    midx, midy, index = W // 2 - 2 * hw, H // 2 - hw, 1

    def randint(a: int, b: int) -> int:
        return a + int(torch.randint(0, b - a + 1, (), generator=g))

    while midx > -hw or midy > -hw:
        for _ in range(hw // 10 * index):
            pts.append((randint(midx, W - midx - hw), randint(midy, H - midy - hw)))
        midx -= 3 * hw * W // (H + W)
        midy -= 3 * hw * H // (H + W)
        index += 1
    return pts


# version 4: the box blur on planes from 96×96 px by sliced passes (ops.LARGE_SLICE_TAPS; float32 rounding differs)
@_register("random_fog")
def random_fog(x, rng, c, pset):
    lo, hi, alpha_coef = c
    N, C, H, W = x.shape
    out = []
    yy, xx = torch.meshgrid(torch.arange(H, device=x.device), torch.arange(W, device=x.device), indexing="ij")
    for i, g in enumerate(rng.gens):
        fog_coef = lo + (hi - lo) * float(torch.rand((), generator=g))
        pts = _haze_points(g, H, W, fog_coef)
        hw = max(int(W // 3 * fog_coef), 10)
        img = x[i : i + 1]
        if pts:
            p = torch.tensor(pts, device=x.device, dtype=torch.long)
            cx, cy, rad = p[:, 0] + hw // 2, p[:, 1] + hw // 2, hw // 2
            inside = ((xx[None] - cx[:, None, None]) ** 2 + (yy[None] - cy[:, None, None]) ** 2) <= rad * rad
            k = inside.sum(0).to(x.dtype)
            a = alpha_coef * fog_coef
            img = 1 - (1 - img) * torch.pow(torch.tensor(1 - a, dtype=x.dtype, device=x.device), k)
        out.append(ops.box_blur(img, hw // 10))
    return torch.cat(out)


@_register("random_brightness_contrast")
def random_brightness_contrast(x, rng, c, pset):
    b_lim, c_lim = c
    beta = rng.uniform((), -float(b_lim), float(b_lim))
    alpha = 1.0 + rng.uniform((), -float(c_lim), float(c_lim))
    return x * ops.per_image(alpha, x) + ops.per_image(beta, x)

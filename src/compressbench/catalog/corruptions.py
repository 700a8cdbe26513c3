"""The built-in corruptions, declared torch-free: the parameter schemas of the direct-parameter ones and what
``compressbench list`` shows. The functions register in :mod:`compressbench.evaluate.corruptions` (imported on
first use)."""

from __future__ import annotations

from typing import Sequence

from pydantic import Field, model_validator

from ..registry import corruptions
from .base import Params

CIFAR_C = (
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "defocus_blur",
    "glass_blur",
    "motion_blur",
    "zoom_blur",
    "snow",
    "frost",
    "fog",
    "brightness",
    "contrast",
    "elastic_transform",
    "pixelate",
    "jpeg_compression",
)
EXTRA = ("speckle_noise", "gaussian_blur", "spatter", "saturate")
NOISE_STUDY = (
    "gauss_noise",
    "iso_noise",
    "rgb_shift",
    "pixel_dropout",
    "random_fog",
    "brightness",
    "contrast",
    "defocus_blur",
)
# the built-in suites in their published order; a corruption registered elsewhere joins the suites named
# in its spec's ``suites`` (after the built-in members), and may name new suites
SUITES: dict[str, tuple[str, ...]] = {
    "cifar10-c": CIFAR_C,
    "extra": EXTRA,
    "noise": NOISE_STUDY,
    "all": CIFAR_C + EXTRA,
}


def suites() -> dict[str, tuple[str, ...]]:
    """Every suite: the built-in ones, extended by the ``suites`` of every registered corruption."""
    out = {k: list(v) for k, v in SUITES.items()}
    for name in corruptions.names():  # declared suites: no corruption code imported
        for s in corruptions.field(name, "suites"):
            members = out.setdefault(s, [])
            if name not in members:
                members.append(name)
    return {k: tuple(v) for k, v in out.items()}


def suite_names(suite: str) -> tuple[str, ...]:
    """The corruption names of a suite (``cifar10-c``, ``extra``, ``noise``, ``all``, or a plugin's)."""
    known = suites()
    if suite not in known:
        raise ValueError(f"unknown corruption suite '{suite}' (known: {', '.join(known)})")
    return known[suite]


def resolve_names(items: Sequence[str]) -> list[str]:
    """Expand suite names and check corruption names (order kept, duplicates dropped)."""
    out: list[str] = []
    known = suites()
    for it in items:
        names = known[it] if it in known else (corruptions.declared(it).name,)
        out += [n for n in names if n not in out]
    return out


class _Range(Params):
    @model_validator(mode="after")
    def _ordered(self):
        for name, v in self:
            if isinstance(v, tuple) and len(v) == 2 and v[0] > v[1]:
                raise ValueError(f"{name}: the lower end {v[0]} is above the upper end {v[1]}")
        return self


class GaussNoiseParams(_Range):
    var_limit: tuple[float, float] = (10.0, 50.0)  # variance in uint8² units, drawn per image


class ISONoiseParams(_Range):
    color_shift: tuple[float, float] = (0.01, 0.05)
    intensity: tuple[float, float] = (0.1, 0.5)


class RGBShiftParams(Params):
    r_shift_limit: float = Field(20.0, ge=0, le=255)
    g_shift_limit: float = Field(20.0, ge=0, le=255)
    b_shift_limit: float = Field(20.0, ge=0, le=255)


class PixelDropoutParams(Params):
    dropout_prob: float = Field(0.01, ge=0, le=1)


class RandomFogParams(Params):
    fog_coef_lower: float = Field(0.3, ge=0, le=1)
    fog_coef_upper: float = Field(1.0, ge=0, le=1)
    alpha_coef: float = Field(0.08, ge=0, le=1)

    @model_validator(mode="after")
    def _ordered(self):
        if self.fog_coef_lower > self.fog_coef_upper:
            raise ValueError("fog_coef_lower must not exceed fog_coef_upper")
        return self


class BrightnessContrastParams(Params):
    brightness_limit: float = Field(0.2, ge=0, le=1)
    contrast_limit: float = Field(0.2, ge=0, le=1)


# --------------------------------------------------------------------------- declarations: registry.corruptions
# (the random ones of the Hendrycks set start at version 2: counter-based streams, other draws than version 1)
corruptions.declare("brightness", description="HSV value + c", version=3, suites=("cifar10-c",))
corruptions.declare("contrast", description="(x − per-channel mean) · c + mean", version=2, suites=("cifar10-c",))
corruptions.declare(
    "defocus_blur",
    description="disk (defocus) blur, anti-aliased disk kernel",
    version=5,
    suites=("cifar10-c",),
)
corruptions.declare(
    "elastic_transform",
    description="random affine + smooth elastic displacement",
    version=3,
    suites=("cifar10-c",),
)
corruptions.declare("fog", description="plasma-fractal fog", version=2, suites=("cifar10-c",))
corruptions.declare(
    "frost",
    description="frost texture overlay (procedural textures)",
    version=2,
    suites=("cifar10-c",),
)
corruptions.declare(
    "gauss_noise",
    description="albumentations-1.x GaussNoise(var_limit): σ = √U(lo, hi) / 255",
    version=3,
    params=GaussNoiseParams,
    suites=("noise",),
)
corruptions.declare(
    "gaussian_blur",
    description="Gaussian blur (skimage.filters.gaussian)",
    version=3,
    suites=("extra",),
)
corruptions.declare(
    "gaussian_noise",
    description="additive Gaussian noise, σ per severity",
    version=4,
    suites=("cifar10-c",),
)
corruptions.declare(
    "glass_blur",
    description="Gaussian blur, local pixel shuffling, Gaussian blur",
    version=4,
    suites=("cifar10-c",),
)
corruptions.declare(
    "impulse_noise",
    description="salt-and-pepper noise (skimage random_noise 's&p')",
    version=3,
    suites=("cifar10-c",),
)
corruptions.declare(
    "iso_noise",
    description="albumentations-1.x ISONoise: HLS hue jitter + Poisson luminance noise",
    version=3,
    params=ISONoiseParams,
    suites=("noise",),
)
corruptions.declare(
    "jpeg_compression",
    description="JPEG at the given quality (libjpeg-turbo as PIL, bit-exact)",
    suites=("cifar10-c",),
)
corruptions.declare(
    "motion_blur",
    description="ImageMagick-style motion blur, angle U(-45°, 45°)",
    version=3,
    suites=("cifar10-c",),
)
corruptions.declare(
    "pixel_dropout",
    description="albumentations-1.x PixelDropout: pixels set to 0 with probability p",
    version=2,
    params=PixelDropoutParams,
    suites=("noise",),
)
corruptions.declare(
    "pixelate",
    description="PIL BOX downscale to int(size·c) and back",
    version=2,
    suites=("cifar10-c",),
)
corruptions.declare(
    "random_brightness_contrast",
    description="albumentations-1.x RandomBrightnessContrast: x·(1 + U(−c, c)) + U(−b, b)",
    params=BrightnessContrastParams,
)
corruptions.declare(
    "random_fog",
    description="albumentations-1.x RandomFog: alpha-blended white haze discs + box blur",
    version=4,
    params=RandomFogParams,
    suites=("noise",),
)
corruptions.declare(
    "rgb_shift",
    description="albumentations-1.x RGBShift: per-channel shift U(−l, l)/255",
    version=2,
    params=RGBShiftParams,
    suites=("noise",),
)
corruptions.declare("saturate", description="HSV saturation × a + b", version=2, suites=("extra",))
corruptions.declare("shot_noise", description="Poisson (photon) noise", version=3, suites=("cifar10-c",))
corruptions.declare(
    "snow",
    description="snow flakes: zoomed, thresholded, motion-blurred noise layer",
    version=4,
    suites=("cifar10-c",),
)
corruptions.declare("spatter", description="water (sev. 1–3) or mud (sev. 4–5) spatter", version=5, suites=("extra",))
corruptions.declare("speckle_noise", description="multiplicative Gaussian noise", version=4, suites=("extra",))
corruptions.declare(
    "zoom_blur",
    description="average of centre zooms 1 → z_max (scipy zoom, order 1)",
    version=2,
    suites=("cifar10-c",),
)

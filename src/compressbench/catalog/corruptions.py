"""The built-in corruptions, declared torch-free: the parameter schemas of the direct-parameter ones and what
``compressbench list`` shows. The functions register in :mod:`compressbench.evaluate.corruptions` (imported on
first use)."""

from __future__ import annotations

from pydantic import Field, model_validator

from ..registry import corruptions
from .base import Params


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
corruptions.declare('brightness', description='HSV value + c', version=3, suites=('cifar10-c',))
corruptions.declare('contrast', description='(x − per-channel mean) · c + mean', version=2, suites=('cifar10-c',))
corruptions.declare(
    'defocus_blur',
    description='disk (defocus) blur, anti-aliased disk kernel',
    version=5,
    suites=('cifar10-c',),
)
corruptions.declare(
    'elastic_transform',
    description='random affine + smooth elastic displacement',
    version=3,
    suites=('cifar10-c',),
)
corruptions.declare('fog', description='plasma-fractal fog', version=2, suites=('cifar10-c',))
corruptions.declare(
    'frost',
    description='frost texture overlay (procedural textures)',
    version=2,
    suites=('cifar10-c',),
)
corruptions.declare(
    'gauss_noise',
    description='albumentations-1.x GaussNoise(var_limit): σ = √U(lo, hi) / 255',
    version=3,
    params=GaussNoiseParams,
    suites=('noise',),
)
corruptions.declare(
    'gaussian_blur',
    description='Gaussian blur (skimage.filters.gaussian)',
    version=3,
    suites=('extra',),
)
corruptions.declare(
    'gaussian_noise',
    description='additive Gaussian noise, σ per severity',
    version=4,
    suites=('cifar10-c',),
)
corruptions.declare(
    'glass_blur',
    description='Gaussian blur, local pixel shuffling, Gaussian blur',
    version=4,
    suites=('cifar10-c',),
)
corruptions.declare(
    'impulse_noise',
    description="salt-and-pepper noise (skimage random_noise 's&p')",
    version=3,
    suites=('cifar10-c',),
)
corruptions.declare(
    'iso_noise',
    description='albumentations-1.x ISONoise: HLS hue jitter + Poisson luminance noise',
    version=3,
    params=ISONoiseParams,
    suites=('noise',),
)
corruptions.declare(
    'jpeg_compression',
    description='JPEG at the given quality (libjpeg-turbo as PIL, bit-exact)',
    suites=('cifar10-c',),
)
corruptions.declare(
    'motion_blur',
    description='ImageMagick-style motion blur, angle U(-45°, 45°)',
    version=3,
    suites=('cifar10-c',),
)
corruptions.declare(
    'pixel_dropout',
    description='albumentations-1.x PixelDropout: pixels set to 0 with probability p',
    version=2,
    params=PixelDropoutParams,
    suites=('noise',),
)
corruptions.declare(
    'pixelate',
    description='PIL BOX downscale to int(size·c) and back',
    version=2,
    suites=('cifar10-c',),
)
corruptions.declare(
    'random_brightness_contrast',
    description='albumentations-1.x RandomBrightnessContrast: x·(1 + U(−c, c)) + U(−b, b)',
    params=BrightnessContrastParams,
)
corruptions.declare(
    'random_fog',
    description='albumentations-1.x RandomFog: alpha-blended white haze discs + box blur',
    version=4,
    params=RandomFogParams,
    suites=('noise',),
)
corruptions.declare(
    'rgb_shift',
    description='albumentations-1.x RGBShift: per-channel shift U(−l, l)/255',
    version=2,
    params=RGBShiftParams,
    suites=('noise',),
)
corruptions.declare('saturate', description='HSV saturation × a + b', version=2, suites=('extra',))
corruptions.declare('shot_noise', description='Poisson (photon) noise', version=3, suites=('cifar10-c',))
corruptions.declare(
    'snow',
    description='snow flakes: zoomed, thresholded, motion-blurred noise layer',
    version=4,
    suites=('cifar10-c',),
)
corruptions.declare('spatter', description='water (sev. 1–3) or mud (sev. 4–5) spatter', version=5, suites=('extra',))
corruptions.declare('speckle_noise', description='multiplicative Gaussian noise', version=4, suites=('extra',))
corruptions.declare(
    'zoom_blur',
    description='average of centre zooms 1 → z_max (scipy zoom, order 1)',
    version=2,
    suites=('cifar10-c',),
)

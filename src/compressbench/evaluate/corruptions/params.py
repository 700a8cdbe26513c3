"""Severity 1→5 constants of every corruption, with their sources.

``cifar``    — ``hendrycks/robustness``, ``ImageNet-C/create_c/make_cifar_c.py`` (the generator of
               the published CIFAR-10-C / CIFAR-100-C files; constants for 32×32 images).
``imagenet`` — ``hendrycks/robustness``, ``ImageNet-C/create_c/make_imagenet_c.py`` (224×224; the
               ``imagecorruptions`` package uses the same constants, except that it re-tuned
               glass blur's loop and elastic transform for arbitrary image sizes).
Both files were read with the project's code-search tool (commits ca36008 and e0377d4 of
hendrycks/robustness) and the tuples below copied verbatim; tuple layouts are the source's.

``noise``    — the noise study's albumentations-1.x transforms (see ``noise.py``); severity 3
               is the study's exact setting, 1–2 weaker and 4–5 stronger (our choice).
"""

from __future__ import annotations

from typing import Any

import numpy as np

CIFAR: dict[str, list[Any]] = {
    "gaussian_noise": [0.04, 0.06, 0.08, 0.09, 0.10],  # σ on [0, 1]
    "shot_noise": [500, 250, 100, 75, 50],  # Poisson photons per unit intensity
    "impulse_noise": [0.01, 0.02, 0.03, 0.05, 0.07],  # s&p amount (skimage random_noise)
    "speckle_noise": [0.06, 0.1, 0.12, 0.16, 0.2],  # σ of multiplicative noise
    "gaussian_blur": [0.4, 0.6, 0.7, 0.8, 1],  # σ (pixels)
    "glass_blur": [(0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)],  # σ, max_delta, iterations
    "defocus_blur": [(0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)],  # disk radius, alias blur
    "motion_blur": [(6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)],  # ImageMagick radius, sigma
    "zoom_blur": [(1, 1.06, 0.01), (1, 1.11, 0.01), (1, 1.16, 0.01), (1, 1.21, 0.01), (1, 1.26, 0.01)],  # np.arange
    "fog": [(0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)],  # strength, wibble decay
    "frost": [(1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)],  # image weight, frost weight
    "snow": [
        (0.1, 0.2, 1, 0.6, 8, 3, 0.95),
        (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
        (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
        (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
        (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8),
    ],  # loc, scale, zoom, threshold, blur radius, blur σ, mix
    "spatter": [
        (0.62, 0.1, 0.7, 0.7, 0.5, 0),
        (0.65, 0.1, 0.8, 0.7, 0.5, 0),
        (0.65, 0.3, 1, 0.69, 0.5, 0),
        (0.65, 0.1, 0.7, 0.69, 0.6, 1),
        (0.65, 0.1, 0.5, 0.68, 0.6, 1),
    ],  # loc, scale, σ, threshold, intensity, mud?
    "contrast": [0.75, 0.5, 0.4, 0.3, 0.15],
    "brightness": [0.05, 0.1, 0.15, 0.2, 0.3],  # added to HSV value
    "saturate": [(0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2)],  # HSV saturation × a + b
    "jpeg_compression": [80, 65, 58, 50, 40],  # PIL quality
    "pixelate": [0.95, 0.9, 0.85, 0.75, 0.65],  # BOX down to int(size·c), BOX back up
    # (alpha, sigma, affine) = IMSIZE × (…) with IMSIZE = 32 in the source
    "elastic_transform": [
        (32 * 0, 32 * 0, 32 * 0.08),
        (32 * 0.05, 32 * 0.2, 32 * 0.07),
        (32 * 0.08, 32 * 0.06, 32 * 0.06),
        (32 * 0.1, 32 * 0.04, 32 * 0.05),
        (32 * 0.1, 32 * 0.03, 32 * 0.03),
    ],
}

IMAGENET: dict[str, list[Any]] = {
    "gaussian_noise": [0.08, 0.12, 0.18, 0.26, 0.38],
    "shot_noise": [60, 25, 12, 5, 3],
    "impulse_noise": [0.03, 0.06, 0.09, 0.17, 0.27],
    "speckle_noise": [0.15, 0.2, 0.35, 0.45, 0.6],
    "gaussian_blur": [1, 2, 3, 4, 6],
    "glass_blur": [(0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2)],
    "defocus_blur": [(3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)],
    "motion_blur": [(10, 3), (15, 5), (15, 8), (15, 12), (20, 15)],
    "zoom_blur": [(1, 1.11, 0.01), (1, 1.16, 0.01), (1, 1.21, 0.02), (1, 1.26, 0.02), (1, 1.31, 0.03)],
    "fog": [(1.5, 2), (2.0, 2), (2.5, 1.7), (2.5, 1.5), (3.0, 1.4)],
    "frost": [(1, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75)],
    "snow": [
        (0.1, 0.3, 3, 0.5, 10, 4, 0.8),
        (0.2, 0.3, 2, 0.5, 12, 4, 0.7),
        (0.55, 0.3, 4, 0.9, 12, 8, 0.7),
        (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65),
        (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55),
    ],
    "spatter": [
        (0.65, 0.3, 4, 0.69, 0.6, 0),
        (0.65, 0.3, 3, 0.68, 0.6, 0),
        (0.65, 0.3, 2, 0.68, 0.5, 0),
        (0.65, 0.3, 1, 0.65, 1.5, 1),
        (0.67, 0.4, 1, 0.65, 1.5, 1),
    ],
    "contrast": [0.4, 0.3, 0.2, 0.1, 0.05],
    "brightness": [0.1, 0.2, 0.3, 0.4, 0.5],
    "saturate": [(0.3, 0), (0.1, 0), (2, 0), (5, 0.1), (20, 0.2)],
    "jpeg_compression": [25, 18, 15, 10, 7],
    "pixelate": [0.6, 0.5, 0.4, 0.3, 0.25],
    # the source writes 244 ("should have been 224, but ultimately nothing is incorrect")
    "elastic_transform": [
        (244 * 2, 244 * 0.7, 244 * 0.1),
        (244 * 2, 244 * 0.08, 244 * 0.2),
        (244 * 0.05, 244 * 0.01, 244 * 0.02),
        (244 * 0.07, 244 * 0.01, 244 * 0.02),
        (244 * 0.12, 244 * 0.01, 244 * 0.02),
    ],
}

# Image side the pixel constants of elastic_transform were written for (scaled to the actual size).
REF_SIZE = {"cifar": 32, "imagenet": 224}

# Noise-study set (albumentations 1.x semantics, in uint8 units where the library used them).
# Severity 3 = the study's setting.
NOISE: dict[str, list[Any]] = {
    # GaussNoise(var_limit=(0, v)): variance ~ U(0, v) in uint8² units, σ = √variance / 255
    "gauss_noise": [(0.0, 0.5), (0.0, 1.0), (0.0, 2.0), (0.0, 8.0), (0.0, 32.0)],
    # ISONoise(color_shift=(lo, hi), intensity=(lo, hi))
    "iso_noise": [
        ((0.01, 0.05), (0.025, 0.125)),
        ((0.01, 0.05), (0.05, 0.25)),
        ((0.01, 0.05), (0.1, 0.5)),
        ((0.02, 0.10), (0.2, 1.0)),
        ((0.04, 0.20), (0.4, 2.0)),
    ],
    # RGBShift(r=g=b=limit): per-channel shift ~ U(−limit, limit), limit in uint8 units
    "rgb_shift": [5, 10, 20, 40, 80],
    # PixelDropout(dropout_prob=p, per_channel=False, drop_value=0)
    "pixel_dropout": [0.0025, 0.005, 0.01, 0.02, 0.04],
    # RandomFog(fog_coef_lower, fog_coef_upper, alpha_coef)
    "random_fog": [(0.1, 0.3, 0.08), (0.2, 0.6, 0.08), (0.3, 1.0, 0.08), (0.6, 1.0, 0.12), (0.9, 1.0, 0.16)],
    # RandomBrightnessContrast(brightness_limit=b, contrast_limit=c, brightness_by_max=True); 3 = the defaults
    "random_brightness_contrast": [(0.05, 0.05), (0.1, 0.1), (0.2, 0.2), (0.3, 0.3), (0.4, 0.4)],
}

PARAM_SETS = {"cifar": CIFAR, "imagenet": IMAGENET}


def resolve_set(params: str, height: int, width: int) -> str:
    """``auto`` -> ``cifar`` for images up to 64 px on the longer side, else ``imagenet``."""
    if params == "auto":
        return "cifar" if max(height, width) <= 64 else "imagenet"
    if params not in PARAM_SETS:
        raise ValueError(f"unknown corruption parameter set '{params}' (known: auto, {', '.join(PARAM_SETS)})")
    return params


def zoom_factors(spec: tuple[float, float, float]) -> np.ndarray:
    """The source's ``np.arange(start, stop, step)`` zoom list (kept as numpy for bit-equality)."""
    return np.arange(*spec)

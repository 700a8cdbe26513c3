"""The built-in datasets, declared torch-free: their option schemas and what ``compressbench list`` shows.
The loaders register in :mod:`compressbench.data` (imported on first use)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from ..fields import Fraction, Seed, Severity
from ..registry import datasets
from .base import DatasetOptions


# --------------------------------------------------------------------------- image folders
class ImageFolderOptions(DatasetOptions):
    size: int = Field(32, ge=1, le=1024)  # images are resized to size × size
    channels: Literal[1, 3] = 3  # 1: grayscale, 3: RGB
    test_fraction: Fraction = 0.2  # share held out as the test split when there is no train/ + test/
    split_seed: Seed = 0
    domains: dict[str, str] | None = None  # domain name -> class-folder tree (relative to root)


# --------------------------------------------------------------------------- tiny real / synthetic data
class DigitsOptions(DatasetOptions):
    size: int = Field(16, ge=1, le=256)  # the 8×8 images are resized to size × size
    test_fraction: Fraction = 0.25


class SyntheticOptions(DatasetOptions):
    n_train: int = Field(600, ge=1, le=1_000_000)
    n_test: int = Field(200, ge=1, le=1_000_000)
    size: int = Field(32, ge=4, le=512)
    num_classes: int = Field(4, ge=2, le=1000)
    channels: int = Field(3, ge=1, le=4)
    seed: Seed = 0


class CifarCOptions(DatasetOptions):
    corruption: str = "gaussian_noise"  # the <corruption>.npy file to use as the test split
    severity: Severity = 5

    @field_validator("corruption")
    @classmethod
    def _known(cls, v: str) -> str:
        from ..registry import corruptions

        corruptions.entry(v)  # unknown: the known names and a "did you mean"
        return v


class DigitsDomainsOptions(DatasetOptions):
    """``dataset.options`` of digits-domains."""

    size: int = Field(16, ge=8, le=64)  # both domains are resized from 8 × 8 to size × size
    renders: int = Field(8, ge=1, le=100)  # renders per font and digit (printed domain)
    seed: int = Field(0, ge=0)  # the printed domain's jitter seed


class Office31Options(DatasetOptions):
    """``dataset.options`` of office31."""

    size: int = Field(224, ge=8, le=1024)  # images are size × size
    resize: int | None = Field(None, ge=8, le=2048)  # shorter side -> resize, then centre crop (None: plain resize)
    channels: Literal[1, 3] = 3
    stats: Literal["source", "imagenet"] = "source"  # normalisation statistics


# --------------------------------------------------------------------------- declarations: registry.datasets
datasets.declare("cifar10", description="CIFAR-10 32×32 RGB via torchvision (downloads to the cache dir)")
datasets.declare(
    "cifar10-c",
    description="official CIFAR-10-C .npy files (one corruption × severity as the test split)",
    params=CifarCOptions,
)
datasets.declare("cifar100", description="CIFAR-100 32×32 RGB via torchvision (downloads to the cache dir)")
datasets.declare(
    "cifar100-c",
    description="official CIFAR-100-C .npy files (one corruption × severity as the test split)",
    params=CifarCOptions,
)
datasets.declare(
    "digits",
    description="scikit-learn's bundled 8×8 handwritten digits (1797), upsampled; for tests",
    params=DigitsOptions,
)
datasets.declare(
    "digits-domains",
    description=(
        "offline two-domain digits: printed (22 matplotlib fonts, jittered) vs handwritten (scikit-"
        "learn's 1,797), both via UCI's 32×32 -> 8×8 block counts"
    ),
    params=DigitsDomainsOptions,
)
datasets.declare("fashion-mnist", description="Fashion-MNIST 28×28 grayscale, 10 classes (60k/10k)")
datasets.declare(
    "imagefolder",
    description=(
        "any folder of class subfolders (train/ and test/ or a split); with options domains: {name: "
        "folder}, one domain per folder"
    ),
    params=ImageFolderOptions,
)
datasets.declare(
    "office31",
    description=(
        "Office-31 (amazon, dslr, webcam; 31 classes) from the extracted archive at dataset.root; decoded once, cached"
    ),
    params=Office31Options,
)
datasets.declare(
    "synthetic",
    description="seeded RGB shapes (class = shape×colour), any size; for tests",
    params=SyntheticOptions,
)

"""Constrained field types shared by every schema (the experiment, method / evaluator / dataset params).

A config is data written by a person: each number has a range that makes sense, and one that does
not (``epochs: 1e12`` never ends, ``seed: 2**70`` overflows after training, ``subset: -3`` silently
drops three images). These types state the ranges once so every schema rejects the same mistakes at
``validate`` time with the same wording::

    from compressbench.fields import Epochs, Seed, BatchSize, Subset

    class MyParams(Params):
        epochs: Epochs = 1.0          # 0 < epochs <= 10,000
        seed: Seed = 0                # 0 <= seed < 2**32
        subset: Subset = None         # None, or >= 1 images
        batch_size: BatchSize = 256   # 1 ..= 65,536

Non-finite floats (``.inf``, ``.nan``) are rejected anywhere in a config by ``config.validate``;
``FiniteFloat`` states it in a schema for callers that bypass the config (the Python API).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

MAX_EPOCHS = 10_000  # a bound that no real recipe reaches, but that a typo (1e12) does
SEED_LIMIT = 2**32  # numpy / torch generators take seeds in [0, 2**32)
MAX_BATCH_SIZE = 65_536

FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
Epochs = Annotated[float, Field(gt=0, le=MAX_EPOCHS, allow_inf_nan=False)]  # training length, > 0
FinetuneEpochs = Annotated[float, Field(ge=0, le=MAX_EPOCHS, allow_inf_nan=False)]  # 0 = no fine-tuning
Seed = Annotated[int, Field(ge=0, lt=SEED_LIMIT)]
PositiveInt = Annotated[int, Field(ge=1)]
NonNegativeInt = Annotated[int, Field(ge=0)]
BatchSize = Annotated[int, Field(ge=1, le=MAX_BATCH_SIZE)]
Subset = Annotated[int, Field(ge=1)] | None  # images of the evaluation subset; None = the experiment's default
Severity = Annotated[int, Field(ge=1, le=5)]  # corruption severity (Hendrycks & Dietterich's 1..5)
Fraction = Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)]  # open interval (0, 1)
PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
# pixels of one image side (dataset.resize); strict: YAML's `true` is not 1 px
ImageSize = Annotated[int, Field(ge=1, le=4096, strict=True)]
# an input normalisation's mean / std per channel: images are in [0, 1], so a mean outside [-1, 2] or a std
# outside [1e-3, 10] is another input scale (0-255) or a typo, and a std of 1e-30 multiplies inputs by 1e30
NORM_MEAN_RANGE = (-1.0, 2.0)
NORM_STD_RANGE = (1e-3, 10.0)


def _norm_check(lo: float, hi: float, what: str):
    def check(v: float) -> float:
        if not lo <= v <= hi:
            raise ValueError(f"a normalisation {what} must be in [{lo:g}, {hi:g}] (images are in [0, 1]), got {v:g}")
        return v

    return AfterValidator(check)


NormMean = Annotated[float, Field(allow_inf_nan=False), _norm_check(*NORM_MEAN_RANGE, "mean")]
NormStd = Annotated[float, Field(allow_inf_nan=False), _norm_check(*NORM_STD_RANGE, "std")]
Aggregate = Literal["mean", "min", "max", "sum"]  # how a metric's conditions reduce to one number
# cell formats (the report's and the console's renderings: ``report.tables.CELL_FORMATS``)
Format = Literal["pct", "f1", "f2", "f3", "int", "bytes", "ms", "g"]

__all__ = [
    "MAX_EPOCHS",
    "SEED_LIMIT",
    "MAX_BATCH_SIZE",
    "FiniteFloat",
    "Epochs",
    "FinetuneEpochs",
    "Seed",
    "PositiveInt",
    "NonNegativeInt",
    "BatchSize",
    "Subset",
    "Severity",
    "Fraction",
    "PositiveFloat",
    "ImageSize",
    "NormMean",
    "NormStd",
    "NORM_MEAN_RANGE",
    "NORM_STD_RANGE",
    "Aggregate",
    "Format",
]


def file_name(v: str) -> str:
    """Validator: a string that names a file or folder (no '/', no leading '.' or '-')."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", v):
        raise ValueError("use letters, digits, '-', '_' or '.' (it names files)")
    return v


def FileName(longest: int) -> object:  # noqa: N802  (used as a type: ``name: FileName(64)``)
    """A string field that names a file or folder, at most ``longest`` characters."""
    return Annotated[str, Field(max_length=longest), AfterValidator(file_name)]

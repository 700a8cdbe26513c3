"""Common corruptions: CIFAR-10-C (15), its 4 extras and the noise-study set, as deterministic
batched tensor operations; the ``corruptions`` evaluator; CE / relative CE / retention metrics;
a gallery; the ``compressbench corrupt`` command.

Why our own implementation: the reference generators and the ``imagecorruptions`` package process
one numpy image at a time (≈ 1k 32×32 images/s/core), need ImageMagick, crash on current
numpy/scikit-image for several corruptions, and their randomness is global. Here each corruption
is a batched torch op (CPU or GPU) whose randomness depends only on (dataset index, corruption,
severity, seed) — every model of a study sees identical inputs.

Python API::

    from compressbench.evaluate.corruptions import corrupt
    y = corrupt(x, indices, "fog", severity=3, seed=0, params="auto")   # x: float N×C×H×W in [0, 1]
"""

from __future__ import annotations

from . import hendrycks, noise, ops  # noqa: F401  (hendrycks, noise: register the corruptions)
from .core import NOISE_STUDY, SEVERITIES, SUITES, corrupt, resolve_names, suite_names, suites
from .evaluator import CorruptionsParams, corruptions_evaluator
from .export import add_corrupt_arguments, corrupt_command
from .gallery import make_gallery
from .hendrycks import CIFAR_C, EXTRA
from .metrics import corruption_error, mean_corruption_error, relative_ce, retention

__all__ = [
    "corrupt",
    "SUITES",
    "suites",
    "SEVERITIES",
    "suite_names",
    "resolve_names",
    "CorruptionsParams",
    "corruptions_evaluator",
    "add_corrupt_arguments",
    "corrupt_command",
    "make_gallery",
    "corruption_error",
    "mean_corruption_error",
    "relative_ce",
    "retention",
    "CIFAR_C",
    "EXTRA",
    "NOISE_STUDY",
]

"""Corruption metrics as pure functions of top-1 accuracies (fractions in [0, 1]).

ImageNet-C (Hendrycks & Dietterich 2019) with the uncompressed parent as the reference model
in place of AlexNet; errors E = 1 − top-1:

* CE_c          = Σ_s E_{s,c} / Σ_s E^ref_{s,c}
* relative CE_c = Σ_s (E_{s,c} − E_clean) / Σ_s (E^ref_{s,c} − E^ref_clean)
* mCE / relative mCE = the mean over corruptions
* retention     = corrupted top-1 / clean top-1
* unnormalised mCE = 1 − mean corruption top-1 (the CIFAR practice; no reference model)

A zero denominator gives ``nan`` (e.g. a parent that makes no errors under a corruption).
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence


def _check(acc: Sequence[float], ref: Sequence[float]) -> None:
    if len(acc) != len(ref) or not len(acc):
        raise ValueError(f"need the same non-zero number of severities, got {len(acc)} and {len(ref)}")


def corruption_error(top1: Sequence[float], ref_top1: Sequence[float]) -> float:
    """CE of one corruption from per-severity top-1 of the model and of the reference (parent)."""
    _check(top1, ref_top1)
    den = sum(1 - a for a in ref_top1)
    return sum(1 - a for a in top1) / den if den else math.nan


def relative_ce(top1: Sequence[float], clean_top1: float, ref_top1: Sequence[float], ref_clean_top1: float) -> float:
    """Relative CE of one corruption: degradation from clean, relative to the reference's."""
    _check(top1, ref_top1)
    num = sum((1 - a) - (1 - clean_top1) for a in top1)
    den = sum((1 - a) - (1 - ref_clean_top1) for a in ref_top1)
    return num / den if den else math.nan


def mean_corruption_error(
    top1: Mapping[str, Sequence[float]],
    ref_top1: Mapping[str, Sequence[float]],
    clean_top1: float | None = None,
    ref_clean_top1: float | None = None,
) -> float:
    """mCE over the corruptions both mappings share (relative mCE when both clean values are given)."""
    names = [c for c in top1 if c in ref_top1]
    if not names:
        raise ValueError("no corruption in common between the model and the reference")
    if clean_top1 is not None and ref_clean_top1 is not None:
        vals = [relative_ce(top1[c], clean_top1, ref_top1[c], ref_clean_top1) for c in names]
    else:
        vals = [corruption_error(top1[c], ref_top1[c]) for c in names]
    return sum(vals) / len(vals)


def retention(corrupted_top1: float, clean_top1: float) -> float:
    """Fraction of clean accuracy kept under corruption."""
    return corrupted_top1 / clean_top1 if clean_top1 else math.nan


def mce_unnormalised(mean_top1: float) -> float:
    """1 − mean corruption top-1 (a fraction)."""
    return 1.0 - mean_top1

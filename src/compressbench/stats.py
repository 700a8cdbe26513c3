"""Paired statistics for declared findings (and, later, decisions with tolerances): pure functions on arrays.

Two variants of one experiment are *paired*: at each training seed both derive from the same parent,
and every evaluation runs on the same fixed image subset. So a comparison is always made on differences
— per seed, or per image — never on two independent means.

* **Over seeds** (``method="seeds"``, ≥ 2 seeds): the mean of the per-seed differences with a Student-t
  confidence interval and t-test p-values (scipy's ``ttest_1samp``). This covers retraining noise.
* **Over images** (``method="bootstrap"``, one seed): a paired bootstrap over the evaluation images —
  the same resampled images for both variants — with a percentile interval and the matching bootstrap
  p-value (the share of replicates on the other side of the null, +1 corrected). This covers only the
  choice of test images, not retraining: one seed says nothing about another seed.

:func:`paired_difference` / :func:`paired_drop` take per-seed values or per-image outcomes directly;
:func:`from_replicates` turns bootstrap replicates of any statistic (e.g. a worst case over attacks,
computed elsewhere from resampled images: :func:`resample_counts`) into the same :class:`Estimate`.
A trend over budgets is a linear contrast (:func:`trend_weights`) of per-seed or per-replicate values.
:func:`holm` corrects a family of p-values (Holm 1979).

Why our own code for two of these: scipy's ``bootstrap`` gives intervals but no p-value and cannot share
one set of resamples across many rows of a store (needed to pair variants image by image); Holm's
step-down is a few lines and the only reason to add ``statsmodels`` would be this function.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, Sequence

import numpy as np
from scipy import stats as _st

Method = Literal["seeds", "bootstrap"]
DEFAULT_BOOTSTRAP = 2000


@dataclass(frozen=True)
class Estimate:
    """A paired difference (or any contrast): point estimate ``mean``, two-sided ``confidence`` interval
    ``[lo, hi]`` (nan when there is nothing to estimate a spread from), how many seeds and images it rests
    on, and ``method``: ``seeds`` (Student t over seeds), ``bootstrap`` (paired bootstrap over images) or
    ``none`` (one value, no interval). ``hi`` is the upper confidence bound a tolerance is checked against.
    ``se``/``df`` (seeds) or ``replicates`` (bootstrap) let :func:`p_greater` / :func:`p_less` test any
    null value."""

    mean: float
    lo: float
    hi: float
    n_seeds: int
    n_images: int
    method: str
    confidence: float = 0.95
    se: float = math.nan
    df: int = 0
    replicates: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def defined(self) -> bool:
        """There is a spread to test against (a CI)."""
        return self.method in ("seeds", "bootstrap") and not math.isnan(self.lo)

    def describe(self) -> str:
        """``3 seeds (t)`` / ``1 seed, 2,000 images (paired bootstrap)`` / ``1 seed (no interval)``."""
        if self.method == "seeds":
            return f"{self.n_seeds} seeds (t)"
        if self.method == "bootstrap":
            return f"{self.n_seeds} seed, {self.n_images:,} images (paired bootstrap)"
        return f"{self.n_seeds} seed{'s' if self.n_seeds != 1 else ''} (no interval)"


def _undefined(mean: float, n_seeds: int, n_images: int = 0, confidence: float = 0.95) -> Estimate:
    return Estimate(mean, math.nan, math.nan, n_seeds, n_images, "none", confidence)


def t_estimate(d: Sequence[float] | np.ndarray, confidence: float = 0.95, n_images: int = 0) -> Estimate:
    """Mean of per-seed differences ``d`` with a Student-t interval (``n − 1`` degrees of freedom); one
    value gives no interval (``method="none"``). NaNs are dropped."""
    x = np.asarray(d, dtype=float)
    x = x[~np.isnan(x)]
    n = len(x)
    if n == 0:
        return _undefined(math.nan, 0, n_images, confidence)
    m = float(x.mean())
    if n < 2:
        return _undefined(m, 1, n_images, confidence)
    se = float(x.std(ddof=1) / math.sqrt(n))
    if se == 0.0:  # every seed gave the same difference: the interval is that value
        return Estimate(m, m, m, n, n_images, "seeds", confidence, 0.0, n - 1)
    lo, hi = _st.ttest_1samp(x, 0.0).confidence_interval(confidence)
    return Estimate(m, float(lo), float(hi), n, n_images, "seeds", confidence, se, n - 1)


def resample_counts(n: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """``n_boot × n`` bootstrap weights: how often each of ``n`` images is drawn in each replicate
    (multinomial, ``n`` draws with replacement). One matrix resamples every outcome on these images the
    same way, which is what makes the bootstrap paired."""
    return rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(np.float32)


def from_replicates(
    observed: float, replicates: np.ndarray, confidence: float = 0.95, n_seeds: int = 1, n_images: int = 0
) -> Estimate:
    """An estimate from bootstrap replicates of a statistic: the observed value, the percentile interval."""
    r = np.asarray(replicates, dtype=float)
    r = r[~np.isnan(r)]
    if not len(r) or math.isnan(observed):
        return _undefined(observed, n_seeds, n_images, confidence)
    a = (1 - confidence) / 2
    lo, hi = np.quantile(r, [a, 1 - a])
    return Estimate(float(observed), float(lo), float(hi), n_seeds, n_images, "bootstrap", confidence, replicates=r)


def bootstrap_mean(
    d: Sequence[float] | np.ndarray, confidence: float = 0.95, n_boot: int = DEFAULT_BOOTSTRAP, seed: int = 0
) -> Estimate:
    """Paired bootstrap of the mean of per-image differences ``d`` (one seed)."""
    x = np.asarray(d, dtype=float)
    if not len(x):
        return _undefined(math.nan, 1, 0, confidence)
    w = resample_counts(len(x), n_boot, np.random.default_rng(seed))
    return from_replicates(float(x.mean()), w @ x / len(x), confidence, 1, len(x))


def paired_difference(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    confidence: float = 0.95,
    method: Method = "seeds",
    *,
    n_boot: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
) -> Estimate:
    """The mean paired difference ``a − b``.

    ``method="seeds"``: ``a`` and ``b`` hold one value per seed (same order); Student-t interval.
    ``method="bootstrap"``: they hold per-image outcomes of one seed (1/0 for correct/wrong, or any score
    whose mean is the metric) on the same images in the same order; paired bootstrap over images."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"paired values need the same shape, got {x.shape} and {y.shape}")
    if method == "seeds":
        return t_estimate(x - y, confidence)
    if method == "bootstrap":
        return bootstrap_mean(x - y, confidence, n_boot, seed)
    raise ValueError(f"method must be 'seeds' or 'bootstrap', got {method!r}")


def paired_drop(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    confidence: float = 0.95,
    method: Method = "seeds",
    **kw: int,
) -> Estimate:
    """The drop from ``a`` (the parent) to ``b`` (a variant), ``a − b``: its ``hi`` is the upper confidence
    bound a tolerance ("loses at most 1 point") is checked against. Same inputs as :func:`paired_difference`."""
    return paired_difference(a, b, confidence, method, **kw)


def trend_weights(k: int) -> np.ndarray:
    """Weights turning ``k`` ordered values into their least-squares slope per step (centred positions
    over their sum of squares): ``trend_weights(k) @ values`` is the average change from one step to
    the next, using every step (not only the two ends)."""
    if k < 2:
        raise ValueError("a trend needs at least 2 points")
    c = np.arange(k, dtype=float) - (k - 1) / 2
    return c / float((c * c).sum())


def p_greater(est: Estimate, null: float = 0.0) -> float:
    """One-sided p-value for "the true difference is greater than ``null``" (nan without an interval)."""
    if est.method == "seeds":
        if est.se == 0.0:
            return 0.0 if est.mean > null else 1.0
        return float(_st.t.sf((est.mean - null) / est.se, est.df))
    if est.method == "bootstrap" and est.replicates is not None:
        r = est.replicates
        return float((np.count_nonzero(r <= null) + 1) / (len(r) + 1))
    return math.nan


def p_less(est: Estimate, null: float = 0.0) -> float:
    """One-sided p-value for "the true difference is less than ``null``"."""
    if est.method == "seeds":
        if est.se == 0.0:
            return 0.0 if est.mean < null else 1.0
        return float(_st.t.cdf((est.mean - null) / est.se, est.df))
    if est.method == "bootstrap" and est.replicates is not None:
        r = est.replicates
        return float((np.count_nonzero(r >= null) + 1) / (len(r) + 1))
    return math.nan


def p_equivalent(est: Estimate, margin: float) -> float:
    """Two one-sided tests (TOST): p-value for "the difference lies within ±``margin``"."""
    return max(p_greater(est, -margin), p_less(est, margin))


def p_outside(est: Estimate, margin: float) -> float:
    """p-value for "the difference lies outside ±``margin``" (two one-sided tests, Bonferroni over the two)."""
    return min(1.0, 2 * min(p_greater(est, margin), p_less(est, -margin)))


def holm(p: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error control). NaN entries stay NaN and do not
    count in the family size. ``holm(p) < α`` rejects exactly the hypotheses Holm's procedure rejects."""
    x = np.asarray(p, dtype=float)
    out = np.full(x.shape, np.nan)
    ok = np.flatnonzero(~np.isnan(x))
    m = len(ok)
    if not m:
        return out
    order = ok[np.argsort(x[ok], kind="stable")]
    adj = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * x[order]))
    out[order] = adj
    return out


__all__ = [
    "Estimate",
    "Method",
    "DEFAULT_BOOTSTRAP",
    "t_estimate",
    "resample_counts",
    "from_replicates",
    "bootstrap_mean",
    "paired_difference",
    "paired_drop",
    "trend_weights",
    "p_greater",
    "p_less",
    "p_equivalent",
    "p_outside",
    "holm",
]

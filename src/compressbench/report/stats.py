"""Small statistics for the report: mean and Student-t 95 % confidence interval over seeds.

scipy supplies the t quantile; the rest is two lines, so no extra library is needed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

from scipy import stats as _st


@dataclass(frozen=True)
class Estimate:
    """Mean over seeds, half-width of the two-sided CI (``nan`` with fewer than 2 values), count."""

    mean: float
    ci: float
    n: int

    @property
    def low(self) -> float:
        return self.mean - self.ci if not math.isnan(self.ci) else self.mean

    @property
    def high(self) -> float:
        return self.mean + self.ci if not math.isnan(self.ci) else self.mean


NAN_ESTIMATE = Estimate(float("nan"), float("nan"), 0)


def mean_ci(values: Iterable[float], confidence: float = 0.95) -> Estimate:
    """Mean and half-width ``t_{(1+c)/2, n-1} · s / √n`` (s: sample std, ddof=1); NaNs are dropped.

    One value -> CI ``nan`` (not 0: a single seed says nothing about the spread)."""
    xs = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    n = len(xs)
    if n == 0:
        return NAN_ESTIMATE
    m = sum(xs) / n
    if n < 2:
        return Estimate(m, float("nan"), 1)
    s = math.sqrt(sum((x - m) ** 2 for x in xs) / (n - 1))
    t = float(_st.t.ppf((1 + confidence) / 2, n - 1))
    return Estimate(m, t * s / math.sqrt(n), n)

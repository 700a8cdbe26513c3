"""The paired statistics of compressbench.stats on hand-made arrays: known differences, known intervals, the
one-seed bootstrap, one-sided and equivalence p-values, the trend slope, Holm on known p-values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from compressbench.stats import (
    Estimate,
    bootstrap_mean,
    from_replicates,
    holm,
    p_equivalent,
    p_greater,
    p_less,
    p_outside,
    paired_difference,
    paired_drop,
    resample_counts,
    t_estimate,
    trend_weights,
)

T_975_2 = 4.302652729911275  # Student t quantile, 0.975, 2 degrees of freedom (tables)


def test_paired_difference_over_seeds_known_interval():
    a, b = [0.80, 0.82, 0.81], [0.75, 0.78, 0.74]  # differences 0.05, 0.04, 0.07
    e = paired_difference(a, b)
    d = np.array([0.05, 0.04, 0.07])
    half = T_975_2 * d.std(ddof=1) / math.sqrt(3)
    assert e.method == "seeds" and e.n_seeds == 3 and e.n_images == 0
    assert e.mean == pytest.approx(0.053333333, abs=1e-9)
    assert (e.lo, e.hi) == (pytest.approx(d.mean() - half, abs=1e-9), pytest.approx(d.mean() + half, abs=1e-9))
    assert e.describe() == "3 seeds (t)"
    # two-sided t-test p-value: t = mean / se with 2 d.o.f.; the one-sided ones add up to 1
    se = d.std(ddof=1) / math.sqrt(3)
    from scipy import stats

    assert p_greater(e) == pytest.approx(stats.t.sf(d.mean() / se, 2))
    assert p_greater(e) + p_less(e) == pytest.approx(1.0)
    assert 2 * min(p_greater(e), p_less(e)) == pytest.approx(stats.ttest_1samp(d, 0).pvalue)


def test_paired_drop_is_parent_minus_variant_and_its_upper_bound():
    parent, variant = [0.90, 0.91, 0.92], [0.88, 0.88, 0.90]
    e = paired_drop(parent, variant, confidence=0.9)
    assert e.mean == pytest.approx(0.0233333, abs=1e-6) and e.confidence == 0.9
    assert e.hi > e.mean > e.lo  # hi: the upper confidence bound a tolerance is checked against


def test_one_value_gives_no_interval_and_equal_differences_a_point_interval():
    e = t_estimate([0.03])
    assert e.method == "none" and math.isnan(e.lo) and not e.defined and math.isnan(p_greater(e))
    same = t_estimate([0.02, 0.02, 0.02])
    assert (same.lo, same.hi) == (0.02, 0.02) and p_greater(same) == 0.0 and p_less(same) == 1.0
    assert math.isnan(t_estimate([]).mean)


def test_one_seed_paired_bootstrap_over_images():
    rng = np.random.default_rng(1)
    b = rng.random(400) < 0.8
    a = b.copy()
    flip = np.flatnonzero(~b)[:40]  # a is right on 40 more images: exactly +0.10
    a[flip] = True
    e = paired_difference(a.astype(float), b.astype(float), method="bootstrap", n_boot=4000, seed=3)
    assert e.method == "bootstrap" and e.n_seeds == 1 and e.n_images == 400
    assert e.mean == pytest.approx(0.10)
    # the paired difference per image is 1 on 40 images, 0 elsewhere: its standard error is √(.1·.9/400) = .015
    assert e.lo == pytest.approx(0.10 - 1.96 * 0.015, abs=0.006) and e.hi == pytest.approx(
        0.10 + 1.96 * 0.015, abs=0.006
    )
    assert p_greater(e) == pytest.approx(1 / 4001)  # no replicate at or below 0
    assert e.describe() == "1 seed, 400 images (paired bootstrap)"
    # pairing matters: the same accuracies unpaired (independent images) would give a much wider interval
    assert e.hi - e.lo < 0.7 * 2 * 1.96 * math.sqrt((a.var() + b.var()) / 400)


def test_bootstrap_is_reproducible_and_resamples_with_replacement():
    w = resample_counts(50, 7, np.random.default_rng(0))
    assert w.shape == (7, 50) and (w.sum(1) == 50).all() and (w >= 0).all()
    x = np.linspace(0, 1, 50)
    assert bootstrap_mean(x, seed=5).lo == bootstrap_mean(x, seed=5).lo
    with pytest.raises(ValueError, match="same shape"):
        paired_difference([1.0, 2.0], [1.0], method="seeds")
    with pytest.raises(ValueError, match="method"):
        paired_difference([1.0], [1.0], method="permutation")  # type: ignore[arg-type]


def test_from_replicates_percentile_interval():
    r = np.arange(1, 101, dtype=float) / 100  # 0.01 .. 1.00
    e = from_replicates(0.5, r, confidence=0.9, n_images=123)
    assert (e.lo, e.hi) == (pytest.approx(np.quantile(r, 0.05)), pytest.approx(np.quantile(r, 0.95)))
    assert e.mean == 0.5 and e.n_images == 123
    assert p_less(e, 0.2) == pytest.approx((81 + 1) / 101)  # replicates ≥ 0.2: 81 of 100


def test_equivalence_and_outside_margin():
    close = Estimate(0.002, -0.004, 0.008, 3, 0, "seeds", 0.95, se=0.002, df=2)
    assert p_equivalent(close, 0.02) < 0.05 and p_outside(close, 0.02) > 0.5
    far = Estimate(0.06, 0.05, 0.07, 3, 0, "seeds", 0.95, se=0.002, df=2)
    assert p_equivalent(far, 0.02) > 0.5 and p_outside(far, 0.02) < 0.05


def test_trend_weights_are_the_least_squares_slope():
    y = np.array([0.9, 0.85, 0.7, 0.65, 0.5])
    assert trend_weights(5) @ y == pytest.approx(np.polyfit(np.arange(5), y, 1)[0])
    assert trend_weights(2) @ np.array([3.0, 1.0]) == pytest.approx(-2.0)
    with pytest.raises(ValueError):
        trend_weights(1)


def test_holm_on_known_p_values():
    p = [0.01, 0.04, 0.03, 0.005]
    # sorted 0.005, 0.01, 0.03, 0.04 -> ×4, ×3, ×2, ×1 = 0.02, 0.03, 0.06, 0.04 -> running max 0.02 .03 .06 .06
    assert holm(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert list(holm(p) < 0.05) == [True, False, False, True]
    adj = holm([0.2, math.nan, 0.01])  # NaN: not tested, not counted
    assert math.isnan(adj[1]) and adj[[0, 2]] == pytest.approx([0.2, 0.02])
    assert holm([0.6, 0.7]) == pytest.approx([1.0, 1.0]) and len(holm([])) == 0

"""Statistics of the report: bootstrap coverage, paired differences, medians with censoring, performance profiles."""
import math

import numpy as np
import pytest
from scipy import stats as sps

from course_lib.experiments import stats


def test_bootstrap_interval_covers_a_known_mean_about_95_percent_of_the_time():
    rng = np.random.default_rng(2024)
    reps, n, mu = 400, 30, 1.5
    hits = 0
    for i in range(reps):
        x = rng.exponential(mu, n)  # skewed synthetic results with a known mean
        lo, hi = stats.bootstrap_ci(x, seed=i, n_resamples=999)
        hits += lo <= mu <= hi
    coverage = hits / reps
    # binomial sd at 95% with 400 repetitions is 1.1 points; BCa on n = 30 skewed draws is within a few points
    assert abs(coverage - 0.95) <= 0.04, coverage  # measured: 0.93


def test_bootstrap_is_seeded_and_degenerate_samples_give_a_point():
    x = [1.0, 2.0, 4.0, 3.5, 2.5]
    assert stats.bootstrap_ci(x, seed=3) == stats.bootstrap_ci(x, seed=3)
    lo, hi = stats.bootstrap_ci(x, seed=3)
    assert lo < np.mean(x) < hi
    assert stats.bootstrap_ci([2.0] * 5) == (2.0, 2.0)
    assert all(math.isnan(v) for v in stats.bootstrap_ci([]))


def test_median_ci_with_censored_runs():
    med, lo, hi = stats.median_ci([10, 12, 11, math.inf, 13], seed=0)
    assert med == 12 and 10 <= lo <= 12 and hi >= 12
    med, lo, hi = stats.median_ci([10, math.inf, math.inf, math.inf, 13], seed=0)
    assert med == math.inf and hi == math.inf


def test_paired_difference_matches_the_direct_computation_and_scipy():
    rng = np.random.default_rng(7)
    base = rng.normal(1.0, 0.3, 8)
    other = base - 0.2 + rng.normal(0, 0.05, 8)
    d = stats.paired_difference(dict(enumerate(other)), dict(enumerate(base)), seed=1, goal="min")
    diff = other - base
    assert d["n"] == 8 and d["mean"] == pytest.approx(diff.mean()) and d["median"] == pytest.approx(np.median(diff))
    assert d["low"] < diff.mean() < d["high"] < 0
    assert d["wins"] == int((diff < 0).sum()) and d["losses"] == int((diff > 0).sum())
    assert d["p_wilcoxon"] == pytest.approx(sps.wilcoxon(diff).pvalue)
    # only common, finite seeds are paired
    d = stats.paired_difference({0: 1.0, 1: None, 2: 3.0}, {0: 0.5, 2: math.inf, 3: 1.0})
    assert d["n"] == 1 and d["mean"] == 0.5 and d["p_wilcoxon"] is None


def test_performance_profile_closed_form():
    times = {("p1", "a"): 1.0, ("p1", "b"): 2.0, ("p2", "a"): math.inf, ("p2", "b"): 3.0,
             ("p3", "a"): 4.0, ("p3", "b"): 4.0}
    taus, rho = stats.performance_profile(times, ["a", "b"], ["p1", "p2", "p3"], taus=[1.0, 1.5, 2.0, 100.0])
    # ratios: a = [1, inf, 1], b = [2, 1, 1]
    np.testing.assert_allclose(rho["a"], [2 / 3, 2 / 3, 2 / 3, 2 / 3])
    np.testing.assert_allclose(rho["b"], [2 / 3, 2 / 3, 1.0, 1.0])
    taus, rho = stats.performance_profile(times, ["a", "b"], ["p1", "p2", "p3"])
    assert taus[0] == 1.0 and rho["b"][-1] == 1.0 and rho["a"][-1] == pytest.approx(2 / 3)


def test_band_of_step_curves():
    curves = [([0, 2, 4], [4.0, 2.0, 1.0]), ([0, 1, 4], [4.0, 3.0, 0.5])]
    c, lo, hi = stats.band(curves, [0, 1, 2, 3, 4])
    np.testing.assert_allclose(c, [4.0, 3.5, 2.5, 2.5, 0.75])
    assert np.all(lo <= c + 1e-12) and np.all(c <= hi + 1e-12)

"""Statistics for comparisons: seeded bootstrap intervals, paired differences, performance profiles.

* :func:`bootstrap_ci` -- ``scipy.stats.bootstrap`` (BCa by default) with a seed; a sample whose
  values are all equal gets the degenerate interval [v, v].
* :func:`median_ci` -- percentile bootstrap of the median; censored values (inf: a missed target)
  are allowed, so the interval's upper end is inf when too many runs missed.
* :func:`paired_difference` -- differences on common seeds (method minus baseline), their mean
  with a bootstrap interval, the median, wins/losses and the Wilcoxon signed-rank p-value
  (``scipy.stats.wilcoxon``).
* :func:`performance_profile` -- Dolan and More (Math. Program. 91, 2002): for each method s,
  rho_s(tau) = fraction of workloads p with t_{p,s} <= tau min_s t_{p,s}.
"""
from __future__ import annotations

import math
import warnings

import numpy as np

__all__ = ["bootstrap_ci", "median_ci", "paired_difference", "performance_profile", "band"]


def bootstrap_ci(values, seed: int = 0, confidence: float = 0.95, statistic=np.mean, n_resamples: int = 2000,
                 method: str = "BCa") -> tuple[float, float]:
    """A (low, high) bootstrap confidence interval of ``statistic`` over finite ``values``.

    Returns (nan, nan) for an empty sample and (v, v) when there is one value or all are equal.
    """
    from scipy import stats

    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if x.size == 0:
        return math.nan, math.nan
    if x.size == 1 or np.all(x == x[0]):
        return float(x[0]), float(x[0])
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore")  # BCa on tiny, lumpy samples: handled by the fallback below
        res = stats.bootstrap((x,), statistic, confidence_level=confidence, n_resamples=n_resamples, method=method,
                              rng=np.random.default_rng(seed), vectorized=True)
    lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
    if not (math.isfinite(lo) and math.isfinite(hi)):  # BCa can fail on tiny, lumpy samples
        res = stats.bootstrap((x,), statistic, confidence_level=confidence, n_resamples=n_resamples,
                              method="percentile", rng=np.random.default_rng(seed), vectorized=True)
        lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
    return lo, hi


def median_ci(values, seed: int = 0, confidence: float = 0.95, n_resamples: int = 2000) -> tuple[float, float, float]:
    """(median, low, high) with a percentile bootstrap; ``values`` may hold inf (censored) but not NaN."""
    from scipy import stats

    x = np.asarray([math.inf if v is None else v for v in values], dtype=float)
    if x.size == 0:
        return math.nan, math.nan, math.nan
    med = float(np.median(x))
    if x.size == 1 or np.all(x == x[0]):
        return med, med, med
    big = np.finfo(float).max
    xs = np.where(np.isinf(x), big, x)
    with np.errstate(over="ignore", invalid="ignore"):  # scipy's standard error of the sentinel overflows
        res = stats.bootstrap((xs,), np.median, confidence_level=confidence, n_resamples=n_resamples,
                              method="percentile", rng=np.random.default_rng(seed), vectorized=True)
    lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
    return med, (math.inf if lo >= big else lo), (math.inf if hi >= big else hi)


def paired_difference(values: dict, baseline: dict, seed: int = 0, confidence: float = 0.95, goal: str = "min") -> dict:
    """Method minus baseline on the seeds both have (dicts seed_index -> value; None/inf skipped).

    Returns:
        dict with n (common seeds), mean, low, high (bootstrap CI of the mean difference), median,
        wins (seeds where the method is better for ``goal``), losses, ties, p_wilcoxon (None when
        undefined: fewer than 2 pairs or all differences zero).
    """
    from scipy import stats

    common = sorted(k for k in values if k in baseline and values[k] is not None and baseline[k] is not None
                    and math.isfinite(values[k]) and math.isfinite(baseline[k]))
    d = np.asarray([values[k] - baseline[k] for k in common], dtype=float)
    out = {"n": len(common), "mean": math.nan, "low": math.nan, "high": math.nan, "median": math.nan,
           "wins": 0, "losses": 0, "ties": 0, "p_wilcoxon": None}
    if not len(d):
        return out
    better = d < 0 if goal == "min" else d > 0
    worse = d > 0 if goal == "min" else d < 0
    lo, hi = bootstrap_ci(d, seed=seed, confidence=confidence)
    out.update(mean=float(d.mean()), low=lo, high=hi, median=float(np.median(d)), wins=int(better.sum()),
               losses=int(worse.sum()), ties=int((d == 0).sum()))
    if len(d) >= 2 and np.any(d != 0):
        out["p_wilcoxon"] = float(stats.wilcoxon(d).pvalue)
    return out


def performance_profile(times: dict, methods: list, workloads: list, taus=None) -> tuple[np.ndarray, dict]:
    """Dolan-More performance profiles.

    Args:
        times: (workload, method) -> cost (e.g. median time-to-target; inf when not solved).
        methods, workloads: the names to include.
        taus: performance-ratio grid (default: the ratios that occur, from 1 up).
    Returns:
        (taus, {method: rho(taus)}): rho_s(tau) = |{p : r_{p,s} <= tau}| / |workloads|,
        r_{p,s} = t_{p,s} / min_s t_{p,s} (inf when method s, or every method, failed on p).
    """
    T = np.array([[times.get((p, s), math.inf) for s in methods] for p in workloads], dtype=float)
    best = T.min(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        R = np.where(np.isfinite(best) & (best > 0), T / best, np.where(T == best, 1.0, math.inf))
    R = np.where(np.isnan(R), math.inf, R)
    if taus is None:
        finite = R[np.isfinite(R)]
        top = max(float(finite.max()) if finite.size else 1.0, 1.0)
        taus = np.unique(np.concatenate([[1.0], finite, [top * 1.05 + 1e-12]]))
    taus = np.asarray(taus, dtype=float)
    rho = {s: np.array([(R[:, j] <= t).mean() for t in taus]) for j, s in enumerate(methods)}
    return taus, rho


def band(curves: list, grid, seed: int = 0, confidence: float = 0.95, log: bool = False):
    """Mean (or geometric mean when ``log``) of step-function curves on ``grid`` with a pointwise CI band.

    Args:
        curves: [(budget list, metric list)], each a right-continuous step function (the last value
            logged at or before each grid point; before the first point: the first value).
        grid: budget points. log: average log10 of the metric (for suboptimalities).
    Returns:
        (centre, low, high) arrays on the grid (bootstrap percentile band over the curves).
    """
    from scipy import stats

    grid = np.asarray(grid, dtype=float)
    rows = []
    for b, m in curves:
        b = np.asarray(b, dtype=float)
        m = np.asarray([math.nan if v is None else v for v in m], dtype=float)
        if not b.size:
            continue
        idx = np.clip(np.searchsorted(b, grid, side="right") - 1, 0, len(b) - 1)
        v = m[idx]
        if log:
            v = np.log10(np.maximum(v, 1e-300))
        rows.append(v)
    if not rows:
        nan = np.full(grid.shape, math.nan)
        return nan, nan, nan
    Y = np.vstack(rows)
    centre = np.nanmean(Y, axis=0)
    if Y.shape[0] < 2 or not np.isfinite(Y).all():
        lo = hi = centre
    else:
        res = stats.bootstrap((Y,), np.mean, axis=0, confidence_level=confidence, n_resamples=500,
                              method="percentile", rng=np.random.default_rng(seed), vectorized=True)
        lo, hi = res.confidence_interval.low, res.confidence_interval.high
        lo, hi = np.where(np.isnan(lo), centre, lo), np.where(np.isnan(hi), centre, hi)
    if log:
        return 10 ** centre, 10 ** lo, 10 ** hi
    return centre, lo, hi

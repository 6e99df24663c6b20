"""Chapter 5, PAC-Bayes bounds: KL divergences, the binary kl and its inverses, the classical bounds.

Setting: n i.i.d. examples, a prior P fixed before seeing them, any posterior Q. For a loss in
[0, 1], ``risk`` is the empirical risk r(Q) of the stochastic (Gibbs) classifier on the sample,
``kl`` is KL(Q || P), and each bound returns an upper bound on the true risk R(Q) that holds with
probability >= 1 - delta over the sample, *simultaneously for every Q*. A bound >= 1 (or >= 0.5
for balanced binary labels) is vacuous.

Every function works on Python floats (returns a float) and, elementwise, on NumPy arrays or
torch tensors (returns an array of the same backend; torch keeps autograd where the formula is
smooth), written once with the array API.

Sources: McAllester, *PAC-Bayesian stochastic model selection*, Mach. Learn. 51 (2003); Seeger,
*PAC-Bayesian generalisation error bounds for Gaussian process classification*, JMLR 3 (2002);
Maurer, *A note on the PAC Bayesian theorem*, arXiv:cs/0411099 (2004); Catoni, *PAC-Bayesian
supervised classification*, IMS Lecture Notes 56 (2007); Thiemann, Igel, Wintenberger & Seldin,
*A strongly quasiconvex PAC-Bayesian bound*, ALT 2017; Langford & Caruana, *(Not) bounding the
true error*, NIPS 2001; Dziugaite & Roy, *Computing nonvacuous generalization bounds for deep
(stochastic) neural networks*, UAI 2017.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .backend import is_torch, namespace, to_numpy
import numpy as np

from .validation import (CourseError, check_callable, check_int, check_positive, check_probability, check_real,
                         check_same_backend)

__all__ = ["kl_bernoulli", "kl_gaussian", "kl_inv_upper", "kl_inv_lower", "mcallester_bound", "seeger_bound",
           "catoni_bound", "lambda_bound", "optimal_lambda", "grid_bound", "mc_risk_bound", "Certificate",
           "kl_certificate"]

_BISECTION_STEPS = 80  # 2^-80 < float64 spacing on [0, 1]: the interval stops shrinking well before


# -- input handling ------------------------------------------------------------------------------
def _args(*values, names=()):
    """(xp, arrays, scalar) for floats or arrays of one backend; floats become 0-d float64 arrays.

    ``names`` name the values in the messages: arrays must share a backend and broadcast together,
    scalars must be reals (not None, strings or complex numbers).
    """
    names = tuple(names) + tuple(f"argument {i + 1}" for i in range(len(names), len(values)))
    arrays = [v for v in values if is_torch(v) or hasattr(v, "shape")]
    check_same_backend(*arrays, names=tuple(n for n, v in zip(names, values) if is_torch(v) or hasattr(v, "shape")))
    xp = namespace(*arrays)
    ref = arrays[0] if arrays else None
    dtype = ref.dtype if ref is not None and "float" in str(ref.dtype) else xp.float64
    device = getattr(ref, "device", None) if ref is not None and is_torch(ref) else None
    out = []
    for v, name in zip(values, names):
        if is_torch(v) or hasattr(v, "shape"):
            if "complex" in str(v.dtype) or not ("float" in str(v.dtype) or "int" in str(v.dtype)):
                raise CourseError(f"{name} must hold real numbers, got dtype {v.dtype}.")
            out.append(v if "float" in str(v.dtype) else xp.astype(v, dtype))
        else:
            if isinstance(v, (list, tuple)):
                raise CourseError(f"{name} must be a number or an array, got a {type(v).__name__}; "
                                  f"pass np.asarray({name}).")
            out.append(xp.asarray(check_real(v, name, finite=False), dtype=dtype, device=device))
    shapes = [tuple(a.shape) for a in out]
    try:
        np.broadcast_shapes(*shapes)
    except ValueError:
        desc = ", ".join(f"{n}: {sh}" for n, sh in zip(names, shapes))
        raise CourseError(f"The arguments have shapes that do not broadcast together ({desc}); give every "
                          "array the same length (or pass a scalar).") from None
    return xp, out, not arrays


def _result(x, scalar):
    return float(x) if scalar else x


def _check(xp, v, name, low, high, low_open=False, high_open=False, hint=""):
    """Raise a CourseError naming ``name`` unless every entry of v lies in the interval."""
    lo = (v > low) if low_open else (v >= low)
    hi = (v < high) if high_open else (v <= high)
    if not bool(xp.all(lo & hi)):
        vals = to_numpy(v).reshape(-1)
        bad = vals[~(to_numpy(lo & hi).reshape(-1))][0]
        interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        raise CourseError(f"{name} must lie in {interval}, got {float(bad)!r}.{hint}")


def _check_risk(xp, q, name="risk"):
    _check(xp, q, name, 0.0, 1.0, hint=" It is a fraction of misclassified examples (a loss in [0, 1]).")


def _check_kl(xp, kl, name="kl"):
    _check(xp, kl, name, 0.0, math.inf, hint=" A KL divergence is >= 0; check the order KL(Q || P).")


def _check_delta(delta, name="delta"):
    return check_probability(delta, name, "it is the failure probability, e.g. 0.05")


def _check_n(n, minimum=1):
    n = check_int(n, "n", minimum)
    return n


def _xlogx_ratio(xp, a, b):
    """a * log(a / b) with 0 log(0 / b) = 0 (and a log(a / 0) = inf for a > 0)."""
    one = xp.ones_like(a)
    val = a * (xp.log(xp.where(a > 0, a, one)) - xp.log(xp.where(b > 0, b, one)))
    val = xp.where(b > 0, val, math.inf * one)
    return xp.where(a > 0, val, 0 * one)


# -- divergences ---------------------------------------------------------------------------------
def kl_bernoulli(q, p):
    """Binary kl: kl(q || p) = q log(q/p) + (1 - q) log((1 - q)/(1 - p)), with 0 log 0 = 0.

    The KL divergence between Bernoulli(q) and Bernoulli(p); convex in (q, p), zero iff q = p,
    and kl(q || p) >= 2 (q - p)^2 (Pinsker's inequality).

    Args:
        q: empirical risk(s) in [0, 1] (float or array).
        p: true risk(s) in [0, 1]; kl is +inf where p in {0, 1} and q != p.
    Returns:
        kl(q || p), a float or an array of q's backend.
    """
    xp, (q, p), scalar = _args(q, p, names=("q", "p"))
    _check_risk(xp, q, "q")
    _check_risk(xp, p, "p")
    return _result(_xlogx_ratio(xp, q, p) + _xlogx_ratio(xp, 1 - q, 1 - p), scalar)


def kl_gaussian(mu_q, mu_p, *args, var_q=None, var_p=None, std_q=None, std_p=None):
    """KL(Q || P) between diagonal Gaussians Q = N(mu_q, diag var_q) and P = N(mu_p, diag var_p).

    KL = 1/2 sum_i [ var_q,i / var_p,i + (mu_q,i - mu_p,i)^2 / var_p,i - 1 + log(var_p,i / var_q,i) ]
    (closed form, e.g. Bishop, *Pattern Recognition and Machine Learning*, 2006, Ex. 2.13 with
    diagonal covariances). Variances broadcast: a scalar var_p is an isotropic prior. Differentiable
    on torch (used as the complexity term when optimising a posterior).

    The spreads are keyword-only and say what they are: ``var_q=``/``var_p=`` take variances,
    ``std_q=``/``std_p=`` standard deviations (what ``torch.distributions.Normal(loc, scale)`` takes),
    so a standard deviation passed by habit cannot silently be read as a variance.

    Example:
        >>> float(kl_gaussian(np.zeros(2), np.ones(2), var_q=1.0, var_p=1.0))   # ||mu_q - mu_p||^2 / 2
        1.0

    Args:
        mu_q: posterior mean (d,). mu_p: prior mean (d,).
        var_q or std_q: posterior variances / standard deviations, (d,) or scalar, > 0 (exactly one).
        var_p or std_p: prior variances / standard deviations, (d,) or scalar, > 0 (exactly one).
    Returns:
        The KL divergence (a float for float inputs, else a 0-d array of the inputs' backend).
    """
    if args:
        raise TypeError("kl_gaussian takes the spreads by keyword, so a variance and a standard deviation cannot "
                        "be mixed up: kl_gaussian(mu_q, mu_p, var_q=..., var_p=...) for variances, or "
                        "std_q=/std_p= for standard deviations (torch.distributions.Normal's scale).")
    spreads = []
    for side, var, std in (("q", var_q, std_q), ("p", var_p, std_p)):
        if (var is None) == (std is None):
            raise TypeError(f"kl_gaussian needs exactly one of var_{side}= (variance) or std_{side}= (standard "
                            f"deviation) for {'the posterior Q' if side == 'q' else 'the prior P'}.")
        spreads.append((var, f"var_{side}") if std is None else (std, f"std_{side}"))
    (sq, nq), (sp, np_) = spreads
    xp, (mu_q, sq, mu_p, sp), scalar = _args(mu_q, sq, mu_p, sp, names=("mu_q", nq, "mu_p", np_))
    for v, name in ((sq, nq), (sp, np_)):
        _check(xp, v, name, 0.0, math.inf, low_open=True, high_open=True,
               hint=" Spreads must be positive and finite; parametrise them as exp(log_var).")
    for v, name in ((mu_q, "mu_q"), (mu_p, "mu_p")):
        if not bool(xp.all(xp.isfinite(v))):
            raise CourseError(f"{name} contains NaN or inf entries; check how the mean was computed.")
    var_q = sq * sq if nq == "std_q" else sq
    var_p = sp * sp if np_ == "std_p" else sp
    ratio = var_q / var_p
    terms = ratio + (mu_q - mu_p) ** 2 / var_p - 1 - xp.log(ratio)
    terms = terms + xp.zeros_like(mu_q + mu_p)  # broadcast scalar variances over the dimension
    return _result(0.5 * xp.sum(terms), scalar)


# -- kl inverses ---------------------------------------------------------------------------------
def _kl_inv(q, c, upper):
    xp, (q, c), scalar = _args(q, c, names=("q", "c"))
    _check_risk(xp, q, "q")
    _check(xp, c, "c", 0.0, math.inf, hint=" c is a KL budget such as (KL + log(2 sqrt(n)/delta)) / n.")
    q, c = q + xp.zeros_like(c), c + xp.zeros_like(q)
    lo, hi = (q, xp.ones_like(q)) if upper else (xp.zeros_like(q), q)
    for _ in range(_BISECTION_STEPS):
        mid = (lo + hi) / 2
        over = _xlogx_ratio(xp, q, mid) + _xlogx_ratio(xp, 1 - q, 1 - mid) > c
        if upper:  # kl(q || .) increases on [q, 1]
            hi, lo = xp.where(over, mid, hi), xp.where(over, lo, mid)
        else:      # kl(q || .) decreases on [0, q]
            lo, hi = xp.where(over, mid, lo), xp.where(over, hi, mid)
    if upper:  # q = 0 has the closed form 1 - exp(-c); q = 1 gives 1
        out = xp.where(q == 0, -xp.expm1(-c), hi)
        out = xp.where(q == 1, xp.ones_like(q), out)
    else:      # q = 1 has the closed form exp(-c); q = 0 gives 0
        out = xp.where(q == 1, xp.exp(-c), lo)
        out = xp.where(q == 0, xp.zeros_like(q), out)
    out = xp.where(c == 0, q, out)  # kl(q || p) = 0 iff p = q (bisection cannot resolve kl below rounding)
    return _result(out, scalar)


def kl_inv_upper(q, c):
    """Upper kl inverse: kl^{-1}(q, c) = max { p in [q, 1] : kl(q || p) <= c }.

    Computed by bisection on [q, 1], where p -> kl(q || p) is increasing, to float64 accuracy; the
    returned p is the upper end of the final interval, so kl(q || p) >= c (never optimistic).
    Edge cases: q = 0 gives 1 - exp(-c) exactly; q = 1 gives 1; c = 0 gives q.
    Guarantee used by every kl bound: kl(q || p) <= c implies p <= kl^{-1}(q, c).

    Args:
        q: empirical risk(s) in [0, 1]. c: budget(s) >= 0 (inf allowed: returns 1).
    Returns:
        The inverse (float, or array broadcast over q and c).
    """
    return _kl_inv(q, c, upper=True)


def kl_inv_lower(q, c):
    """Lower kl inverse: min { p in [0, q] : kl(q || p) <= c }, a lower confidence bound on p.

    Bisection on [0, q], where p -> kl(q || p) is decreasing; returns the lower end of the final
    interval (never optimistic). Edge cases: q = 1 gives exp(-c) exactly; q = 0 gives 0; c = 0 gives q.

    Args:
        q: empirical risk(s) in [0, 1]. c: budget(s) >= 0.
    Returns:
        The lower inverse (float, or array broadcast over q and c).
    """
    return _kl_inv(q, c, upper=False)


# -- PAC-Bayes bounds ----------------------------------------------------------------------------
def _common(risk, kl, n, delta, n_min=1):
    xp, (risk, kl), scalar = _args(risk, kl, names=("risk", "kl"))
    _check_risk(xp, risk)
    _check_kl(xp, kl)
    return xp, risk, kl, _check_n(n, n_min), _check_delta(delta), scalar


def mcallester_bound(risk, kl, n, delta, refined: bool = True):
    """McAllester's bound: R(Q) <= r(Q) + sqrt((KL(Q||P) + log(2 sqrt(n) / delta)) / (2n)).

    That is the Maurer-refined form (``refined=True``; Seeger's kl bound relaxed by Pinsker's
    inequality kl(q||p) >= 2 (p - q)^2, Maurer 2004, Thm 5; needs n >= 8). The original form
    (``refined=False``) is R(Q) <= r(Q) + sqrt((KL + log(1/delta) + log n + 2) / (2n - 1))
    (McAllester 2003, Thm 1). Both hold with probability >= 1 - delta simultaneously for all Q,
    for a loss in [0, 1] and a prior P chosen before the sample. The value may exceed 1 (vacuous).

    Args:
        risk: empirical risk(s) r(Q) in [0, 1]. kl: KL(Q || P) >= 0. n: sample size.
        delta: failure probability in (0, 1). refined: Maurer's constant (default) or McAllester's.
    Returns:
        The upper bound on R(Q) (float or array).
    """
    xp, risk, kl, n, delta, scalar = _common(risk, kl, n, delta, 8 if refined else 1)
    if refined:
        gap = xp.sqrt((kl + math.log(2 * math.sqrt(n) / delta)) / (2 * n))
    else:
        gap = xp.sqrt((kl + math.log(1 / delta) + math.log(n) + 2) / (2 * n - 1))
    return _result(risk + gap, scalar)


def seeger_bound(risk, kl, n, delta):
    """Seeger/Maurer kl bound: kl(r(Q) || R(Q)) <= (KL(Q||P) + log(2 sqrt(n) / delta)) / n, i.e.

    R(Q) <= kl^{-1}(r(Q), (KL + log(2 sqrt(n) / delta)) / n).

    Holds with probability >= 1 - delta over the n i.i.d. examples, simultaneously for all Q, for a
    loss in [0, 1], prior P independent of the sample and n >= 8 (Seeger 2002, Thm 1; Maurer 2004,
    Thm 5). The tightest of the classical forms: McAllester's and the lambda bound relax it. Never
    exceeds 1.

    Args:
        risk: empirical risk(s) in [0, 1]. kl: KL(Q || P) >= 0. n: sample size (>= 8).
        delta: failure probability in (0, 1).
    Returns:
        The upper bound on R(Q) (float or array).
    """
    xp, risk, kl, n, delta, scalar = _common(risk, kl, n, delta, 8)
    out = kl_inv_upper(risk, (kl + math.log(2 * math.sqrt(n) / delta)) / n)
    return _result(out, scalar)


def catoni_bound(risk, kl, n, delta, C: float):
    """Catoni's bound for a fixed C > 0:

    R(Q) <= (1 - exp(-C r(Q) - (KL(Q||P) + log(1/delta)) / n)) / (1 - exp(-C)).

    Holds with probability >= 1 - delta simultaneously for all Q, for the *fixed* C (Catoni 2007,
    Thm 1.2.6). To choose C from the data, take a grid of C values and a union bound
    (:func:`grid_bound`, each C pays log(grid size) in delta).

    Args:
        risk: empirical risk(s) in [0, 1]. kl: KL(Q || P) >= 0. n: sample size.
        delta: failure probability in (0, 1). C: the trade-off parameter, > 0.
    Returns:
        The upper bound on R(Q) (float or array).
    """
    xp, risk, kl, n, delta, scalar = _common(risk, kl, n, delta)
    C = check_positive(C, "C")  # a grid such as C in [0.5, 1, 2, 4] with grid_bound chooses it
    out = -xp.expm1(-C * risk - (kl + math.log(1 / delta)) / n) / -math.expm1(-C)
    return _result(out, scalar)


def optimal_lambda(risk, kl, n, delta):
    """The minimiser over lambda in (0, 2) of :func:`lambda_bound`:

    lambda* = 2 / (sqrt(2 n r(Q) / (KL + log(2 sqrt(n) / delta)) + 1) + 1)  (Thiemann et al. 2017, Sec. 3).

    Args and Returns: as :func:`lambda_bound`, returning lambda* (float or array).
    """
    xp, risk, kl, n, delta, scalar = _common(risk, kl, n, delta, 8)
    b = kl + math.log(2 * math.sqrt(n) / delta)
    return _result(2 / (xp.sqrt(2 * n * risk / b + 1) + 1), scalar)


def lambda_bound(risk, kl, n, delta, lam=None):
    """Thiemann et al.'s lambda bound: for lambda in (0, 2),

    R(Q) <= r(Q) / (1 - lambda/2) + (KL(Q||P) + log(2 sqrt(n) / delta)) / (lambda (1 - lambda/2) n).

    It holds with probability >= 1 - delta simultaneously for all Q *and all lambda in (0, 2)*
    (it relaxes the kl bound with kl(q||p) >= (p - q)^2 / (2p)), so lambda may be optimised after
    seeing the data at no cost in delta (Thiemann, Igel, Wintenberger & Seldin 2017, Thm 3; n >= 8).
    The objective is jointly quasiconvex in (Q, lambda) -- the reason the bound is used for training.

    Args:
        risk: empirical risk(s) in [0, 1]. kl: KL(Q || P) >= 0. n: sample size (>= 8).
        delta: failure probability in (0, 1).
        lam: lambda in (0, 2) (float or array); None uses :func:`optimal_lambda`.
    Returns:
        The upper bound on R(Q) (float or array).
    """
    if lam is None:
        lam = optimal_lambda(risk, kl, n, delta)
    xp, (risk, kl, lam), scalar = _args(risk, kl, lam, names=("risk", "kl", "lam"))
    _check(xp, lam, "lam", 0.0, 2.0, low_open=True, high_open=True, hint=" Pass lam=None to use the optimal lambda.")
    xp, risk, kl, n, delta, _ = _common(risk, kl, n, delta, 8)
    b = kl + math.log(2 * math.sqrt(n) / delta)
    out = risk / (1 - lam / 2) + b / (lam * (1 - lam / 2) * n)
    return _result(out, scalar)


def grid_bound(bound, candidates, delta: float, **fixed):
    """Union bound over a finite grid: the best of ``bound(**candidate, **fixed, delta=delta/K)``.

    If each of K bounds holds with probability >= 1 - delta/K, all hold together with probability
    >= 1 - delta (the union bound), so their minimum is a valid bound at level delta. Use it to
    choose a prior (e.g. its variance) or Catoni's C after seeing the data: each grid point costs
    log K in the bound's log(1/delta) term.

    Args:
        bound: a bound function of this module (``seeger_bound``, ``catoni_bound``, ...).
        candidates: a non-empty list of keyword dicts, one per grid point (e.g. ``[{"C": 1.0}, ...]``
            or ``[{"kl": kl_j} for each prior j]``).
        delta: total failure probability in (0, 1).
        **fixed: arguments shared by every grid point (e.g. risk=..., n=...).
    Returns:
        (best bound value, index of the best grid point).
    """
    delta = _check_delta(delta)
    check_callable(bound, "bound", "Pass a bound function of course_lib.pac_bayes, e.g. catoni_bound.")
    candidates = list(candidates)
    if not candidates:
        raise CourseError("candidates is empty: pass at least one grid point, e.g. [{'C': 1.0}].")
    if not all(isinstance(c, dict) for c in candidates):
        raise CourseError(f"candidates must be keyword dicts, one per grid point (e.g. [{{'C': 1.0}}, {{'C': 2.0}}]), "
                          f"got {candidates[:3]!r}.")
    values = [float(bound(**fixed, **cand, delta=delta / len(candidates))) for cand in candidates]
    best = min(range(len(values)), key=values.__getitem__)
    return values[best], best


# -- Monte Carlo estimation and certificates -----------------------------------------------------
def mc_risk_bound(risk_mc, m, delta, delta_name: str = "delta"):
    """Upper bound on a stochastic classifier's empirical risk from m Monte Carlo draws:

    r(Q) <= kl^{-1}(r_m, log(2 / delta) / m),

    where r_m is the average empirical risk of m classifiers h_1..h_m drawn i.i.d. from Q (on the
    same n examples). Holds with probability >= 1 - delta over the draws (Chernoff bound in kl
    form; Langford & Caruana 2001, "sample convergence bound"; Dziugaite & Roy 2017, Sec. 3).

    Args:
        risk_mc: the Monte Carlo estimate r_m in [0, 1]. m: number of draws (>= 1).
        delta: failure probability of this estimate, in (0, 1).
        delta_name: the name of ``delta`` in error messages (``kl_certificate`` passes "delta_mc").
    Returns:
        The upper bound (float or array).
    """
    xp, (risk_mc,), scalar = _args(risk_mc, names=("risk_mc",))
    _check_risk(xp, risk_mc, "risk_mc")
    m = check_int(m, "m", 1)
    return _result(kl_inv_upper(risk_mc, math.log(2 / _check_delta(delta, delta_name)) / m), scalar)


@dataclass(frozen=True)
class Certificate:
    """A PAC-Bayes risk certificate: R(Q) <= ``bound`` with probability >= 1 - ``failure_probability``.

    Attributes:
        bound: the certified upper bound on the true risk of the stochastic classifier Q.
        risk_mc: Monte Carlo estimate of its empirical risk; risk_bound: its upper bound.
        kl, n, m: KL(Q || P), sample size, Monte Carlo draws.
        delta, delta_mc: failure probabilities of the PAC-Bayes bound and of the estimate.
        n_priors: size of the prior grid paid for by a union bound.
    """

    bound: float
    risk_mc: float
    risk_bound: float
    kl: float
    n: int
    m: int
    delta: float
    delta_mc: float
    n_priors: int = 1

    @property
    def failure_probability(self) -> float:
        """Total failure probability delta + delta_mc (union bound over the two events)."""
        return self.delta + self.delta_mc

    @property
    def vacuous(self) -> bool:
        """True when the bound says nothing for balanced binary labels (>= 0.5)."""
        return self.bound >= 0.5


def kl_certificate(risk_mc: float, m: int, kl: float, n: int, delta: float = 0.025, delta_mc: float = 0.01,
                   n_priors: int = 1) -> Certificate:
    """Certify a stochastic classifier: R(Q) <= kl^{-1}(kl^{-1}(r_m, log(2/delta_mc)/m), (KL + log(2 sqrt(n) K/delta))/n).

    The Monte Carlo bound (:func:`mc_risk_bound`, failure delta_mc) bounds the empirical risk; the
    Seeger/Maurer bound (:func:`seeger_bound`, failure delta), which increases with the risk, turns
    that into a bound on the true risk; with K = ``n_priors`` priors fixed in advance the union bound
    gives each delta/K. All hold together with probability >= 1 - delta - delta_mc
    (Dziugaite & Roy 2017, Sec. 3 and 5).

    Args:
        risk_mc: Monte Carlo estimate of the empirical risk in [0, 1]. m: its number of draws.
        kl: KL(Q || P) for the prior used. n: training-set size (>= 8).
        delta, delta_mc: failure probabilities in (0, 1). n_priors: grid size K (>= 1).
    Returns:
        A :class:`Certificate`.
    """
    n_priors = check_int(n_priors, "n_priors", 1)
    delta, delta_mc = _check_delta(delta), _check_delta(delta_mc, "delta_mc")
    if delta + delta_mc >= 1:
        raise CourseError(f"delta + delta_mc = {delta + delta_mc:g} must be < 1: the certificate holds with probability "
                          f">= 1 - delta - delta_mc. Use e.g. delta=0.025, delta_mc=0.01.")
    risk_mc, kl = check_real(risk_mc, "risk_mc", finite=False), check_real(kl, "kl", finite=False)
    risk_bound = float(mc_risk_bound(risk_mc, m, delta_mc, "delta_mc"))
    bound = float(seeger_bound(risk_bound, float(kl), n, _check_delta(delta) / n_priors))
    return Certificate(bound=bound, risk_mc=float(risk_mc), risk_bound=risk_bound, kl=float(kl), n=int(n),
                       m=int(m), delta=float(delta), delta_mc=float(delta_mc), n_priors=n_priors)

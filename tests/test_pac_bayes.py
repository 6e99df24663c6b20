"""Chapter 5 tools: divergences, kl inverses and PAC-Bayes bounds against closed forms, SciPy, torch and simulation."""
import math

import numpy as np
import pytest
import scipy.optimize
import scipy.stats
import torch

from course_lib import pac_bayes as pb
from course_lib.backend import asarray, to_numpy
from course_lib.validation import CourseError

# (risk, KL, n, delta) cases for hand computation
CASES = [(0.0, 0.0, 100, 0.05), (0.05, 10.0, 1000, 0.05), (0.2, 150.0, 5000, 0.01), (0.5, 3.0, 30, 0.1),
         (0.01, 500.0, 60000, 0.025), (1.0, 1.0, 10, 0.5)]


def kl_ref(q, p):
    return float(scipy.stats.entropy([q, 1 - q], [p, 1 - p]))


# -- binary kl and its inverses -----------------------------------------------------------------
@pytest.mark.parametrize("q,p", [(0.1, 0.2), (0.0, 0.3), (1.0, 0.7), (0.5, 0.5), (0.9, 0.01), (0.3, 0.999)])
def test_kl_bernoulli_matches_scipy_entropy(q, p):
    assert pb.kl_bernoulli(q, p) == pytest.approx(kl_ref(q, p), rel=1e-12, abs=1e-15)


def test_kl_bernoulli_edges_and_pinsker():
    assert pb.kl_bernoulli(0.2, 0.0) == math.inf and pb.kl_bernoulli(0.0, 0.0) == 0.0
    q, p = np.meshgrid(np.linspace(0, 1, 41), np.linspace(0.01, 0.99, 41))
    assert np.all(pb.kl_bernoulli(q, p) >= 2 * (q - p) ** 2 - 1e-15)


@pytest.mark.parametrize("q", [0.0, 1e-4, 0.05, 0.3, 0.5, 0.8, 0.999])
@pytest.mark.parametrize("c", [1e-6, 0.01, 0.1, 1.0, 5.0])
def test_kl_inv_upper_solves_equation(q, c):
    p = pb.kl_inv_upper(q, c)
    assert q <= p <= 1
    if kl_ref(q, 1 - 1e-15) <= c:  # the root is within float64 spacing of 1
        assert p >= 1 - 1e-15
        return
    ref = scipy.optimize.brentq(lambda t: kl_ref(q, t) - c, q, 1 - 1e-15, xtol=1e-15, rtol=1e-15)
    assert p == pytest.approx(ref, abs=1e-12)
    if p < 1 - 1e-6:  # closer to 1, float64 cannot resolve 1 - p well enough to evaluate kl to 1e-9
        assert pb.kl_bernoulli(q, p) == pytest.approx(c, rel=1e-9, abs=1e-13)
        assert pb.kl_bernoulli(q, p) >= c * (1 - 1e-9)  # the returned end is never optimistic (up to rounding of log)


@pytest.mark.parametrize("q", [1e-4, 0.05, 0.3, 0.5, 0.8, 0.999, 1.0])
@pytest.mark.parametrize("c", [1e-6, 0.01, 0.1, 1.0])
def test_kl_inv_lower_solves_equation(q, c):
    p = pb.kl_inv_lower(q, c)
    assert 0 <= p <= q
    if p > 1e-12:
        assert pb.kl_bernoulli(q, p) == pytest.approx(c, rel=1e-9, abs=1e-13)
        ref = scipy.optimize.brentq(lambda t: kl_ref(q, t) - c, 1e-300, q, xtol=1e-15, rtol=1e-15)
        assert p == pytest.approx(ref, abs=1e-12)


def test_kl_inv_closed_forms():
    c = np.array([0.0, 1e-8, 0.1, 1.0, 10.0, 50.0])
    np.testing.assert_allclose(pb.kl_inv_upper(np.zeros(6), c), -np.expm1(-c), rtol=1e-14, atol=0)
    np.testing.assert_allclose(pb.kl_inv_lower(np.ones(6), c), np.exp(-c), rtol=1e-14)
    assert pb.kl_inv_upper(1.0, 0.3) == 1.0 and pb.kl_inv_lower(0.0, 0.3) == 0.0
    assert pb.kl_inv_upper(0.3, 0.0) == 0.3 and pb.kl_inv_lower(0.3, 0.0) == 0.3
    assert pb.kl_inv_upper(0.3, math.inf) == 1.0


def test_kl_inv_monotone():
    c = np.linspace(0, 2, 201)
    up, lo = pb.kl_inv_upper(0.2 * np.ones_like(c), c), pb.kl_inv_lower(0.2 * np.ones_like(c), c)
    assert np.all(np.diff(up) > 0) and np.all(np.diff(lo) <= 0)
    q = np.linspace(0, 1, 201)
    assert np.all(np.diff(pb.kl_inv_upper(q, 0.05)) >= 0) and np.all(np.diff(pb.kl_inv_lower(q, 0.05)) >= 0)


def test_kl_inv_backends_agree(backend):
    q, c = np.linspace(0, 1, 23), np.geomspace(1e-5, 3, 23)
    for f in (pb.kl_inv_upper, pb.kl_inv_lower):
        out = f(asarray(q, backend), asarray(c, backend))
        np.testing.assert_allclose(to_numpy(out), f(q, c), rtol=1e-12, atol=1e-15)


# -- Gaussian KL ---------------------------------------------------------------------------------
def test_kl_gaussian_closed_forms():
    assert pb.kl_gaussian(np.ones(4), np.ones(4), var_q=np.full(4, 2.0), var_p=2.0) == 0.0
    # 1-D: KL(N(m1, s1^2) || N(m2, s2^2)) = log(s2/s1) + (s1^2 + (m1 - m2)^2) / (2 s2^2) - 1/2
    m1, v1, m2, v2 = 0.3, 0.5, -1.2, 2.5
    ref = math.log(math.sqrt(v2 / v1)) + (v1 + (m1 - m2) ** 2) / (2 * v2) - 0.5
    assert pb.kl_gaussian(np.array([m1]), np.array([m2]), var_q=np.array([v1]), var_p=np.array([v2])) == pytest.approx(ref, rel=1e-14)
    # isotropic: d/2 (s/l - 1 - log(s/l)) + ||m||^2 / (2 l)
    d, s, lam = 7, 0.1, 0.4
    mu = np.arange(d) / 10
    ref = d / 2 * (s / lam - 1 - math.log(s / lam)) + mu @ mu / (2 * lam)
    assert pb.kl_gaussian(mu, np.zeros(d), var_q=s, var_p=lam) == pytest.approx(ref, rel=1e-14)


def test_kl_gaussian_matches_torch_distributions():
    rng = np.random.default_rng(0)
    mq, mp = rng.standard_normal(50), rng.standard_normal(50)
    vq, vp = rng.uniform(0.1, 2, 50), rng.uniform(0.1, 2, 50)
    t = [torch.tensor(a, dtype=torch.float64) for a in (mq, vq, mp, vp)]
    Q = torch.distributions.Normal(t[0], t[1].sqrt())
    P = torch.distributions.Normal(t[2], t[3].sqrt())
    ref = torch.distributions.kl_divergence(Q, P).sum().item()
    assert pb.kl_gaussian(mq, mp, var_q=vq, var_p=vp) == pytest.approx(ref, rel=1e-12)
    Qm = torch.distributions.MultivariateNormal(t[0], torch.diag(t[1]))
    Pm = torch.distributions.MultivariateNormal(t[2], torch.diag(t[3]))
    got = pb.kl_gaussian(t[0], t[2], var_q=t[1], var_p=t[3])
    assert got.dtype == torch.float64
    assert got.item() == pytest.approx(torch.distributions.kl_divergence(Qm, Pm).item(), rel=1e-12)


def test_kl_gaussian_backends_and_autograd(torch_backend):
    rng = np.random.default_rng(1)
    mq, mp, vq = rng.standard_normal(20), rng.standard_normal(20), rng.uniform(0.1, 2, 20)
    ref = pb.kl_gaussian(mq, mp, var_q=vq, var_p=0.7)
    mu = asarray(mq, torch_backend).requires_grad_(True)
    kl = pb.kl_gaussian(mu, asarray(mp, torch_backend), var_q=asarray(vq, torch_backend), var_p=0.7)
    assert kl.item() == pytest.approx(float(ref), rel=1e-12)
    kl.backward()  # d KL / d mu = (mu - mu_p) / var_p
    np.testing.assert_allclose(to_numpy(mu.grad), (mq - mp) / 0.7, rtol=1e-12)


def test_kl_gaussian_bad_variance():
    with pytest.raises(CourseError, match="var_q"):
        pb.kl_gaussian(np.zeros(2), np.zeros(2), var_q=np.array([1.0, -1.0]), var_p=1.0)
    with pytest.raises(CourseError, match="var_p"):
        pb.kl_gaussian(np.zeros(2), np.zeros(2), var_q=1.0, var_p=0.0)


# -- bounds against hand computation -------------------------------------------------------------
@pytest.mark.parametrize("risk,kl,n,delta", CASES)
def test_bounds_match_hand_computation(risk, kl, n, delta):
    eps = (kl + math.log(2 * math.sqrt(n) / delta)) / n
    assert pb.mcallester_bound(risk, kl, n, delta) == pytest.approx(risk + math.sqrt(eps / 2), rel=1e-14)
    orig = risk + math.sqrt((kl + math.log(1 / delta) + math.log(n) + 2) / (2 * n - 1))
    assert pb.mcallester_bound(risk, kl, n, delta, refined=False) == pytest.approx(orig, rel=1e-14)
    s = pb.seeger_bound(risk, kl, n, delta)
    assert s >= risk
    if s < 1 - 1e-9:
        assert kl_ref(risk, s) == pytest.approx(eps, rel=1e-9)  # s solves kl(risk || s) = eps
    for C in (0.5, 1.0, 3.0):
        cat = (1 - math.exp(-C * risk - (kl + math.log(1 / delta)) / n)) / (1 - math.exp(-C))
        assert pb.catoni_bound(risk, kl, n, delta, C) == pytest.approx(cat, rel=1e-13)
    for lam in (0.1, 1.0, 1.9):
        ref = risk / (1 - lam / 2) + eps / (lam * (1 - lam / 2))
        assert pb.lambda_bound(risk, kl, n, delta, lam) == pytest.approx(ref, rel=1e-14)


@pytest.mark.parametrize("risk,kl,n,delta", CASES)
def test_bound_orderings(risk, kl, n, delta):
    """kl bound <= both of its relaxations: Maurer-McAllester (Pinsker) and the lambda bound (every lambda)."""
    s = pb.seeger_bound(risk, kl, n, delta)
    assert s <= pb.mcallester_bound(risk, kl, n, delta) + 1e-12
    lams = np.linspace(0.01, 1.99, 199)
    assert np.all(s <= pb.lambda_bound(np.full_like(lams, risk), kl, n, delta, lams) + 1e-12)
    assert pb.mcallester_bound(risk, kl, n, delta) <= pb.mcallester_bound(risk, kl, n, delta, refined=False)


@pytest.mark.parametrize("risk,kl,n,delta", CASES)
def test_optimal_lambda_is_the_minimiser(risk, kl, n, delta):
    res = scipy.optimize.minimize_scalar(lambda t: pb.lambda_bound(risk, kl, n, delta, t), bounds=(1e-9, 2 - 1e-9),
                                         method="bounded", options={"xatol": 1e-12})
    lam = pb.optimal_lambda(risk, kl, n, delta)
    assert lam == pytest.approx(res.x, abs=1e-5)
    assert pb.lambda_bound(risk, kl, n, delta) == pytest.approx(res.fun, rel=1e-10)
    assert pb.lambda_bound(risk, kl, n, delta) <= res.fun + 1e-14


def test_bounds_monotone_in_risk_kl_n():
    r = np.linspace(0, 0.6, 61)
    for f in (pb.seeger_bound, pb.mcallester_bound, pb.lambda_bound):
        assert np.all(np.diff(f(r, 20.0, 500, 0.05)) > 0)
        assert f(0.1, 20.0, 500, 0.05) < f(0.1, 40.0, 500, 0.05)
        assert f(0.1, 20.0, 2000, 0.05) < f(0.1, 20.0, 500, 0.05)


def test_grid_bound_is_min_over_grid_with_split_delta():
    grid = [{"C": c} for c in (0.25, 0.5, 1.0, 2.0, 4.0)]
    val, j = pb.grid_bound(pb.catoni_bound, grid, 0.05, risk=0.1, kl=30.0, n=2000)
    each = [pb.catoni_bound(0.1, 30.0, 2000, 0.01, c["C"]) for c in grid]
    assert val == min(each) and j == int(np.argmin(each))
    kls = [{"kl": k} for k in (50.0, 20.0, 80.0)]
    val, j = pb.grid_bound(pb.seeger_bound, kls, 0.03, risk=0.05, n=1000)
    assert j == 1 and val == pb.seeger_bound(0.05, 20.0, 1000, 0.01)
    with pytest.raises(CourseError, match="empty"):
        pb.grid_bound(pb.seeger_bound, [], 0.05, risk=0.1, n=100)


def test_bounds_backends_agree(backend):
    r, k = np.linspace(0, 0.5, 11), np.geomspace(0.1, 300, 11)
    for f in (pb.seeger_bound, pb.mcallester_bound, pb.lambda_bound):
        got = f(asarray(r, backend), asarray(k, backend), 1000, 0.05)
        np.testing.assert_allclose(to_numpy(got), f(r, k, 1000, 0.05), rtol=1e-12)
    got = pb.catoni_bound(asarray(r, backend), asarray(k, backend), 1000, 0.05, 2.0)
    np.testing.assert_allclose(to_numpy(got), pb.catoni_bound(r, k, 1000, 0.05, 2.0), rtol=1e-12)


# -- coverage by simulation (KL = 0: a single classifier, the bound is a test-set bound) ---------
@pytest.mark.parametrize("p", [0.02, 0.2, 0.5])
def test_seeger_and_mc_bounds_cover_true_risk(p):
    rng = np.random.default_rng(5)
    n, delta, trials = 200, 0.1, 4000
    risks = rng.binomial(n, p, trials) / n
    fails_seeger = np.mean(pb.seeger_bound(risks, 0.0, n, delta) < p)
    fails_mc = np.mean(pb.mc_risk_bound(risks, n, delta) < p)
    assert fails_seeger <= delta and fails_mc <= delta / 2 + 0.01  # mc uses log(2/delta): at most delta/2


def test_kl_certificate_composes_mc_and_seeger():
    cert = pb.kl_certificate(0.08, 1000, 120.0, 1500, delta=0.02, delta_mc=0.01, n_priors=10)
    r = pb.kl_inv_upper(0.08, math.log(2 / 0.01) / 1000)
    assert cert.risk_bound == pytest.approx(r, rel=1e-14)
    assert cert.bound == pytest.approx(pb.kl_inv_upper(r, (120.0 + math.log(2 * math.sqrt(1500) * 10 / 0.02)) / 1500),
                                       rel=1e-14)
    assert cert.failure_probability == pytest.approx(0.03) and not cert.vacuous
    assert cert.bound > cert.risk_bound > cert.risk_mc


# -- bad inputs --------------------------------------------------------------------------------
@pytest.mark.parametrize("f", [pb.seeger_bound, pb.mcallester_bound, pb.lambda_bound, pb.optimal_lambda])
def test_bad_inputs_raise_clear_errors(f):
    with pytest.raises(CourseError, match=r"risk must lie in \[0.0, 1.0\], got 1.5"):
        f(1.5, 1.0, 100, 0.05)
    with pytest.raises(CourseError, match=r"risk .* got -0.1"):
        f(np.array([0.2, -0.1]), 1.0, 100, 0.05)
    with pytest.raises(CourseError, match="kl must .* got -2.0.*KL divergence is >= 0"):
        f(0.1, -2.0, 100, 0.05)
    for d in (0.0, 1.0, -0.1, 2.0):
        with pytest.raises(CourseError, match="delta must lie in"):
            f(0.1, 1.0, 100, d)
    with pytest.raises(CourseError, match="n must be >= 8"):
        f(0.1, 1.0, 5, 0.05)
    with pytest.raises(CourseError, match="n must be an integer"):
        f(0.1, 1.0, 100.5, 0.05)


def test_bad_inputs_other_functions():
    with pytest.raises(CourseError, match="C must be"):
        pb.catoni_bound(0.1, 1.0, 100, 0.05, C=0.0)
    with pytest.raises(CourseError, match="lam must lie in"):
        pb.lambda_bound(0.1, 1.0, 100, 0.05, lam=2.0)
    with pytest.raises(CourseError, match="c must lie in"):
        pb.kl_inv_upper(0.1, -1.0)
    with pytest.raises(CourseError, match="q must lie in"):
        pb.kl_inv_lower(1.2, 0.1)
    with pytest.raises(CourseError, match="p must lie in"):
        pb.kl_bernoulli(0.1, 1.2)
    with pytest.raises(CourseError, match="m must be >= 1"):
        pb.mc_risk_bound(0.1, 0, 0.05)
    with pytest.raises(CourseError, match="n_priors"):
        pb.kl_certificate(0.1, 100, 1.0, 100, n_priors=0)

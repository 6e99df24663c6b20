"""course_lib.stochastic: exact identities (running mean, averaging, minibatch variance), theorem bounds
checked at every iteration in expectation over seeds, Reddi's counterexample, backends, determinism, errors."""
import itertools

import numpy as np
import pytest

from course_lib import optimizers as O
from course_lib import problems
from course_lib import stochastic as S
from course_lib.backend import available_backends, to_numpy
from course_lib.datasets import make_classification, make_regression
from course_lib.validation import CourseError, DivergenceError

BACKENDS = available_backends()


@pytest.fixture(scope="module")
def ridge():
    A, b, _ = make_regression(n=40, dim=3, seed=1, noise=0.5)
    return problems.Ridge(A, b, lam=0.2)


def mean_of(traces, fn):
    return np.mean([fn(t) for t in traces], axis=0)


# -- exact identities -------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_sgd_with_step_one_over_mu_t_is_the_running_mean(backend):
    # f(x) = (1/n) sum_i mu/2 (x - xi_i)^2 = LeastSquares with a_i = sqrt(mu), b_i = sqrt(mu) xi_i
    mu, n = 2.5, 30
    xi = np.random.default_rng(0).standard_normal(n)
    p = problems.LeastSquares(np.full((n, 1), np.sqrt(mu)), np.sqrt(mu) * xi).to(backend)
    tr = S.sgd(p, p.asarray([7.0]), step_size=S.inverse_time(1 / mu), max_iter=200, seed=4)
    sampler = S.MinibatchSampler(n, 1, "with_replacement", seed=4)
    drawn = xi[[int(to_numpy(sampler())[0]) for _ in range(200)]]
    running_mean = np.cumsum(drawn) / np.arange(1, 201)
    np.testing.assert_allclose(tr.x[1:, 0], running_mean, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("averaging,weights", [("uniform", lambda k: np.ones(k + 1)),
                                               ("weighted", lambda k: np.arange(1.0, k + 2))])
def test_averaging_is_the_weighted_mean_of_the_iterates(ridge, averaging, weights):
    plain = S.sgd(ridge, ridge.zeros(), step_size=0.02, max_iter=60, seed=3, keep_x=True)
    avg = S.sgd(ridge, ridge.zeros(), step_size=0.02, max_iter=60, seed=3, keep_x=True, averaging=averaging)
    for k in (1, 7, 60):
        w = weights(k)
        np.testing.assert_allclose(avg.x[k], w @ plain.x[:k + 1] / w.sum(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(avg.info["f_last"], plain.f, rtol=1e-12)
    np.testing.assert_allclose(avg.f[-1], ridge.value(avg.x_final), rtol=1e-12)


@pytest.mark.parametrize("n,b", [(6, 1), (6, 2), (5, 3)])
def test_gradient_variance_matches_enumeration_of_all_batches(ridge, n, b):
    A, y, _ = make_regression(n=n, dim=3, seed=n + b)
    p = problems.Ridge(A, y, lam=0.1)
    x = np.array([0.3, -1.0, 2.0])
    g = p.grad(x)

    def exact(batches):
        return np.mean([np.sum((p.grad_batch(x, list(B)) - g) ** 2) for B in batches])

    with_repl = exact(itertools.product(range(n), repeat=b))
    without = exact(itertools.combinations(range(n), b))
    np.testing.assert_allclose(S.gradient_variance(p, x, b, "with_replacement"), with_repl, rtol=1e-12)
    np.testing.assert_allclose(S.gradient_variance(p, x, b, "without_replacement"), without, rtol=1e-12)
    # unbiasedness: the mean minibatch gradient over all batches is the full gradient
    np.testing.assert_allclose(np.mean([p.grad_batch(x, list(B)) for B in itertools.combinations(range(n), b)],
                                       axis=0), g, rtol=1e-12)


def test_sampler_modes():
    n, b = 10, 3
    s = S.MinibatchSampler(n, b, "shuffle", seed=0)
    epoch = np.concatenate([to_numpy(s()) for _ in range(4)])  # 3 + 3 + 3 + 1
    assert sorted(epoch.tolist()) == list(range(n))
    s = S.MinibatchSampler(n, b, "without_replacement", seed=0)
    assert all(len(set(to_numpy(s()).tolist())) == b for _ in range(50))
    s = S.MinibatchSampler(n, 8, "with_replacement", seed=0)
    draws = np.concatenate([to_numpy(s()) for _ in range(50)])
    assert draws.min() >= 0 and draws.max() < n and len(draws) == 400
    assert any(len(set(to_numpy(s()).tolist())) < 8 for _ in range(50))  # repeats happen with replacement


# -- theorem bounds, in expectation over seeds, at every iteration ---------------------------------
def test_constant_step_sgd_bound_strongly_convex(ridge):
    """Gower et al. (2019), Thm 3.1: E||x_t - x*||^2 <= (1 - eta mu)^t ||x0 - x*||^2 + 2 eta sigma*^2 / mu."""
    eta, T, seeds = 1 / (2 * ridge.L_max), 300, 20
    x_star = to_numpy(ridge.x_star)
    sigma2 = S.gradient_variance(ridge, ridge.x_star, 1)
    runs = [S.sgd(ridge, ridge.zeros(), step_size=eta, max_iter=T, seed=s, keep_x=True) for s in range(seeds)]
    err = mean_of(runs, lambda t: np.sum((t.x - x_star) ** 2, axis=1))
    t = np.arange(T + 1)
    bound = (1 - eta * ridge.mu) ** t * err[0] + 2 * eta * sigma2 / ridge.mu
    assert np.all(err <= bound)
    assert err[-1] < 1e-2 * err[0]  # and the run did converge towards the floor


def test_averaged_sgd_bound_convex():
    """Bubeck (2015), Thm 6.1: E f(xbar_t) - f* <= ||x0 - x*||^2 / (2 eta (t+1)) + eta G^2 / 2 (uniform average)."""
    X, y, _ = make_classification(n=50, dim=3, seed=2, flip=0.2)
    p = problems.LogisticRegression(X, y, lam=0.0)
    w = np.zeros(3)
    for _ in range(50):  # Newton in float64 for x* (lam = 0, non-separable data)
        w = w - np.linalg.solve(p.hess(w), p.grad(w))
    assert np.linalg.norm(p.grad(w)) < 1e-12
    f_star = p.value(w)
    G2 = np.max(np.sum(to_numpy(X) ** 2, axis=1))  # ||grad f_i|| <= ||x_i||
    eta, T = 0.1, 300
    runs = [S.sgd(p, p.zeros(), step_size=eta, max_iter=T, seed=s, averaging="uniform") for s in range(20)]
    gap = mean_of(runs, lambda t: t.f - f_star)
    k = np.arange(T + 1)
    bound = np.sum(w**2) / (2 * eta * (k + 1)) + eta * G2 / 2
    assert np.all(gap <= bound)
    assert gap[-1] < 0.5 * gap[0]


def test_svrg_linear_rate(ridge):
    """Johnson & Zhang (2013), Thm 1 (option II): E f(xt_s) - f* <= alpha^s (f(x0) - f*)."""
    L, eta, m, epochs = ridge.L_max, 1 / (10 * ridge.L_max), 800, 5
    alpha = S.svrg_rate(L, ridge.mu, eta, m)
    assert alpha < 0.5
    runs = [S.svrg(ridge, ridge.zeros(), eta, epochs=epochs, inner_steps=m, snapshot="random", seed=s,
                   record_every=m) for s in range(8)]
    assert list(runs[0].iteration) == [m * s for s in range(epochs + 1)]
    gap = mean_of(runs, lambda t: t.f - ridge.f_star)
    assert np.all(gap <= alpha ** np.arange(epochs + 1) * gap[0])
    last = S.svrg(ridge, ridge.zeros(), epochs=12, seed=0, record_every=80)  # defaults: 1/(5 L_max), m = 2n
    assert last.f_final - ridge.f_star < 1e-9 * gap[0]
    assert last.oracle_calls[-1] == 12 * (ridge.n + 2 * 2 * ridge.n)


def test_saga_bound_and_linear_convergence(ridge):
    """Defazio et al. (2014), Thm 1: eta = 1/(2(mu n + L)), each f_i mu-strongly convex (mu = lam):
    E||x_k - x*||^2 <= (1 - mu eta)^k (||x0 - x*||^2 + 2 eta n (f(x0) - f*))."""
    mu, L, n = ridge.lam, ridge.L_max, ridge.n
    eta, T = 1 / (2 * (mu * n + L)), 300
    x_star = to_numpy(ridge.x_star)
    runs = [S.saga(ridge, ridge.zeros(), eta, max_iter=T, seed=s, keep_x=True) for s in range(10)]
    err = mean_of(runs, lambda t: np.sum((t.x - x_star) ** 2, axis=1))
    c0 = np.sum(x_star**2) + 2 * eta * n * (ridge.value(ridge.zeros()) - ridge.f_star)
    assert np.all(err <= (1 - mu * eta) ** np.arange(T + 1) * c0)
    fast = S.saga(ridge, ridge.zeros(), max_iter=40 * n, seed=0, record_every=n)
    assert fast.f_final - ridge.f_star < 1e-12
    assert fast.oracle_calls[-1] == n + 40 * n


def test_reddi_counterexample_adam_vs_amsgrad():
    C = 3.0
    kw = dict(lr=S.inverse_sqrt(0.5), betas=(0.0, 1 / (1 + C**2)))
    adam = S.reddi_counterexample(O.adam(**kw), max_iter=3000, C=C)
    ams = S.reddi_counterexample(O.amsgrad(**kw), max_iter=3000, C=C)
    assert np.mean(adam.x[-300:, 0]) > 0.95  # Adam sits at the worst point +1
    assert np.mean(ams.x[-300:, 0]) < -0.95  # AMSGrad finds x* = -1
    assert np.all(np.abs(adam.x) <= 1.0)


# -- backends, determinism, errors ------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS[1:])
@pytest.mark.parametrize("method", ["sgd", "svrg", "saga", "adam"])
def test_numpy_and_torch_agree(ridge, backend, method):
    def go(p):
        if method == "sgd":
            return S.sgd(p, p.zeros(), step_size=0.03, max_iter=50, batch_size=4, momentum=0.9, nesterov=True,
                         averaging="weighted", seed=1)
        if method == "svrg":
            return S.svrg(p, p.zeros(), epochs=2, inner_steps=25, batch_size=2, snapshot="random", seed=1)
        if method == "saga":
            return S.saga(p, p.zeros(), max_iter=50, batch_size=3, seed=1)
        return S.run(p, p.zeros(), O.adam(lr=0.05), max_iter=50, batch_size=5, sampling="shuffle", seed=1)

    ref, got = go(ridge), go(ridge.to(backend))
    np.testing.assert_allclose(to_numpy(got.x_final), to_numpy(ref.x_final), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got.f, ref.f, rtol=1e-12)


def test_determinism_per_seed(ridge):
    a = S.sgd(ridge, ridge.zeros(), step_size=0.03, max_iter=40, batch_size=4, sampling="shuffle", seed=5)
    b = S.sgd(ridge, ridge.zeros(), step_size=0.03, max_iter=40, batch_size=4, sampling="shuffle", seed=5)
    c = S.sgd(ridge, ridge.zeros(), step_size=0.03, max_iter=40, batch_size=4, sampling="shuffle", seed=6)
    np.testing.assert_array_equal(a.f, b.f)
    assert not np.array_equal(a.f, c.f)
    assert a.oracle_calls[-1] == 40 * 4


def test_full_batch_run_is_gradient_descent(ridge):
    from course_lib.convex import gradient_descent

    gd = gradient_descent(ridge, ridge.zeros(), step_size=0.3, max_iter=30)
    tr = S.run(ridge, ridge.zeros(), O.sgd(lr=0.3), max_iter=30, batch_size=None)
    np.testing.assert_allclose(tr.f, gd.f, rtol=1e-12)
    assert tr.oracle_calls[-1] == 30 * ridge.n


def test_divergence_is_reported(ridge):
    with pytest.raises(CourseError, match="step_size=1 is >= 2/L"):
        S.sgd(ridge, ridge.zeros(), step_size=1.0)
    with pytest.raises(DivergenceError, match="diverged"):
        S.sgd(ridge, ridge.zeros(), step_size=10.0, max_iter=500, check_step=False)


@pytest.mark.parametrize("call,match", [
    (lambda p: S.sgd(p, p.zeros(), batch_size=41), "batch_size=41 is larger than the number of terms n=40"),
    (lambda p: S.sgd(p, p.zeros(), step_size=-0.1), "step_size must be > 0, got -0.1"),
    (lambda p: S.sgd(p, p.zeros(), sampling="random"), "sampling must be one of"),
    (lambda p: S.sgd(p, p.zeros(), averaging="mean"), "averaging must be None"),
    (lambda p: S.svrg(p, p.zeros(), snapshot="first"), "snapshot must be"),
    (lambda p: S.run(problems.Quadratic(np.eye(2)), np.zeros(2), O.sgd()), "has no grad_batch"),
    (lambda p: S.run(p, p.zeros(), O.adam(lr=-1.0)), "lr must be >= 0"),
    (lambda p: S.inverse_time(0.0), "step_size must be > 0"),
    (lambda p: S.cosine(0.1, total=10, min_step=1.0), "min_step=1 must be <= step_size"),
    (lambda p: S.reddi_counterexample(O.adam(), C=1.5), "C must be > 2"),
])
def test_bad_inputs_raise_clear_errors(ridge, call, match):
    with pytest.raises(CourseError, match=match):
        call(ridge)

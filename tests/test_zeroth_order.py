"""Zeroth-order estimators against their closed-form means and variances; methods on quadratics; MeZO replay."""
import numpy as np
import pytest

from course_lib import zeroth_order as zo
from course_lib.backend import RNG
from course_lib.problems import Quadratic
from course_lib.validation import CourseError

D = 8


@pytest.fixture(scope="module")
def quad():
    rng = np.random.default_rng(0)
    Q = np.linalg.qr(rng.standard_normal((D, D)))[0]
    A = Q @ np.diag(np.linspace(1.0, 4.0, D)) @ Q.T
    A = (A + A.T) / 2
    b = rng.standard_normal(D)
    return Quadratic(A, b), rng.standard_normal(D)


def _samples(estimator, n=20000):
    return np.array([estimator(i) for i in range(n)])


def _check_moments(G, g, expected_sq_err, n_sigma=5.0):
    """Mean within n_sigma standard errors of g (per coordinate); E||G - g||^2 within n_sigma standard errors."""
    n = len(G)
    se_mean = G.std(axis=0, ddof=1) / np.sqrt(n)
    assert np.all(np.abs(G.mean(axis=0) - g) <= n_sigma * se_mean), (G.mean(axis=0), g)
    sq = ((G - g) ** 2).sum(axis=1)
    assert abs(sq.mean() - expected_sq_err) <= n_sigma * sq.std(ddof=1) / np.sqrt(n), (sq.mean(), expected_sq_err)


def test_central_smoothing_is_unbiased_with_variance_d_plus_1(quad):
    f, x = quad
    g = f.grad(x)
    rng = RNG(1)
    G = _samples(lambda i: zo.smoothing_gradient(f, x, mu=0.3, kind="central", rng=rng)[0])
    _check_moments(G, g, (D + 1) * g @ g)


def test_forward_smoothing_is_unbiased_with_its_closed_form_variance(quad):
    f, x = quad
    g, A, mu = f.grad(x), f.A, 0.5
    rng = RNG(2)
    G = _samples(lambda i: zo.smoothing_gradient(f, x, mu=mu, kind="forward", rng=rng)[0])
    second_moment = (D + 2) * g @ g + mu ** 2 * (D + 4) * (np.trace(A) ** 2 + 2 * np.trace(A @ A)) / 4
    _check_moments(G, g, second_moment - g @ g)


def test_spsa_is_unbiased_with_variance_d_minus_1(quad):
    f, x = quad
    g = f.grad(x)
    rng = RNG(3)
    G = _samples(lambda i: zo.spsa_gradient(f, x, c=0.7, rng=rng)[0])
    _check_moments(G, g, (D - 1) * g @ g)


def test_smoothing_bias_on_a_non_quadratic_is_order_mu_squared():
    """For a cubic f = sum x_i^3, grad f_mu = 3 x^2 + 3 mu^2 (exactly): the estimator is biased for grad f."""
    f = lambda x: float(np.sum(x ** 3))  # noqa: E731
    x, mu = np.array([0.5, -1.0, 2.0]), 0.4
    rng = RNG(4)
    G = _samples(lambda i: zo.smoothing_gradient(f, x, mu=mu, kind="central", rng=rng)[0], n=40000)
    se = G.std(axis=0, ddof=1) / np.sqrt(len(G))
    assert np.all(np.abs(G.mean(axis=0) - (3 * x ** 2 + 3 * mu ** 2)) <= 5 * se)


@pytest.mark.parametrize("d", [4, 16])
def test_query_complexity_is_linear_in_dimension(d):
    """On f = L/2 ||x||^2 with h = 1/((d+2) L), E||x_k||^2 = (1 - 1/(d+2))^k ||x_0||^2 exactly (central estimator)."""
    L, k, runs = 2.0, 10, 600
    f = lambda x: 0.5 * L * float(x @ x)  # noqa: E731
    x0 = np.ones(d)
    finals = np.array([(zo.zo_gradient_descent(f, x0, step_size=1 / ((d + 2) * L), mu=1e-2, kind="central",
                                               max_iter=k, seed=s).x_final ** 2).sum() for s in range(runs)])
    expected = (1 - 1 / (d + 2)) ** k * d
    assert abs(finals.mean() - expected) <= 5 * finals.std(ddof=1) / np.sqrt(runs)


def test_methods_decrease_a_quadratic_and_count_evaluations(quad):
    f, _ = quad
    x0 = np.zeros(D)
    f0, fs = f.value(x0), f.f_star
    runs = {
        "random_search": zo.random_search(f, x0, sigma=0.1, max_evals=400, seed=0),
        "zo_gd": zo.zo_gradient_descent(f, x0, step_size=1 / (4 * (D + 4) * f.L), max_iter=200, seed=0),
        "spsa": zo.spsa(f, x0, a=0.1, c=0.05, max_iter=200, seed=0),
        "nes": zo.nes(f, x0, sigma=0.05, step_size=0.05, population=5, max_iter=40, seed=0),
        "cma_es": zo.cma_es(f, x0, sigma0=0.5, max_evals=400, seed=0),
    }
    for name, tr in runs.items():
        assert tr.oracle_calls[-1] == 400, name
        assert f.value(tr.x_final) - fs < 0.5 * (f0 - fs), name
    assert f.value(runs["cma_es"].x_final) - fs < 1e-3


def test_same_seed_same_trace(quad):
    f, _ = quad
    a = zo.spsa(f, np.zeros(D), max_iter=30, seed=5)
    b = zo.spsa(f, np.zeros(D), max_iter=30, seed=5)
    np.testing.assert_array_equal(a.x_final, b.x_final)
    c = zo.cma_es(f, np.zeros(D), max_evals=60, seed=5)
    d = zo.cma_es(f, np.zeros(D), max_evals=60, seed=5)
    np.testing.assert_array_equal(c.x_final, d.x_final)


def test_spsa_gains_are_spalls():
    a, c = zo.spsa_gains(9, a=1.0, c=2.0, A=5.0)
    assert a == pytest.approx(1.0 / 15 ** 0.602) and c == pytest.approx(2.0 / 10 ** 0.101)


def test_mezo_step_equals_spsa_with_the_replayed_direction():
    torch = pytest.importorskip("torch")
    gen = torch.Generator().manual_seed(0)
    A = torch.randn(5, 5, generator=gen, dtype=torch.float64)
    A = A @ A.T + torch.eye(5, dtype=torch.float64)
    w = [torch.randn(5, generator=gen, dtype=torch.float64), torch.randn(3, generator=gen, dtype=torch.float64)]
    start = [p.clone() for p in w]
    loss = lambda: float(w[0] @ A @ w[0] / 2 + (w[1] ** 2).sum())  # noqa: E731
    g, _ = zo.mezo_step(w, loss, eps=1e-3, step_size=0.1, seed=42)
    zgen = torch.Generator().manual_seed(42)
    z = [torch.randn(p.shape, generator=zgen, dtype=torch.float64) for p in start]
    exact = float(z[0] @ (A @ start[0]) + 2 * z[1] @ start[1])  # directional derivative z^T grad
    assert g == pytest.approx(exact, rel=1e-6)  # central difference of a quadratic is exact up to rounding
    for p, p0, zi in zip(w, start, z):
        torch.testing.assert_close(p, p0 - 0.1 * g * zi, rtol=0, atol=1e-12)


def test_mezo_descends_on_a_quadratic():
    torch = pytest.importorskip("torch")
    w = [torch.ones(20, dtype=torch.float64)]
    tr = zo.mezo(w, lambda k: float((w[0] ** 2).sum()), steps=300, step_size=0.02, eps=1e-3, seed=0)
    assert tr.oracle_calls[-1] == 600
    assert float((w[0] ** 2).sum()) < 0.2 * 20


def test_bad_input_is_named(quad):
    f, x = quad
    with pytest.raises(CourseError, match="kind"):
        zo.smoothing_gradient(f, x, kind="backward", rng=RNG(0))
    with pytest.raises(CourseError, match="seed"):
        zo.smoothing_gradient(f, x)
    with pytest.raises(CourseError, match="sigma"):
        zo.random_search(f, x, sigma=-1.0)
    with pytest.raises(CourseError, match="x0"):
        zo.spsa(f, np.zeros((2, 2)))
    with pytest.raises(CourseError, match="parameters"):
        zo.mezo([], lambda k: 0.0, steps=1)

"""Chapter 1 first-order methods: closed forms, reference solvers and the theorems' bounds at every iteration."""
import math

import numpy as np
import pytest
import torch
from scipy.optimize import minimize
from sklearn.linear_model import Lasso as SkLasso
from sklearn.linear_model import LogisticRegression as SkLogReg
from sklearn.linear_model import Ridge as SkRidge

from course_lib.backend import available_backends, to_numpy
from course_lib.convex import (Lasso, backtracking, frank_wolfe, gradient_descent, heavy_ball, mirror_descent,
                               nesterov, projected_gradient, proximal_gradient, subgradient_method)
from course_lib.datasets import load_dataset, make_regression
from course_lib.problems import LeastSquares, LogisticRegression, Quadratic, Ridge, Rosenbrock
from course_lib.projections import Ball, Box, L1Ball, Simplex
from course_lib.validation import CourseError, DivergenceError

BACKENDS = available_backends()
SLACK = 1e-10  # round-off allowance in the bound checks (relative to the bound's scale)


def dist2(x, y):
    return float(np.sum((to_numpy(x) - to_numpy(y)) ** 2))


@pytest.fixture(scope="module")
def quad():
    return Quadratic.random(20, cond=100.0, seed=3)


@pytest.fixture(scope="module")
def ls():
    A, b, _ = make_regression(n=80, dim=30, seed=1, cond=50.0)
    return LeastSquares(A, b)  # convex, mu > 0 but small


@pytest.fixture(scope="module")
def diabetes_lasso():
    X, y = load_dataset("diabetes")
    y = (y - y.mean()) / y.std()
    alpha = 0.02
    ref = SkLasso(alpha=alpha, fit_intercept=False, tol=1e-14, max_iter=200000).fit(X, y).coef_
    return Lasso(X, y, alpha), ref


# -- closed forms and reference libraries ------------------------------------------------------------------

@pytest.mark.parametrize("rule", ["1/L", "armijo", "exact", "polyak"])
def test_gd_step_rules_reach_closed_form_minimiser(quad, rule):
    # f-based rules (Armijo, Polyak) stall near sqrt(eps): f(x) - f* drowns in round-off there
    tol = 1e-6 if rule in ("armijo", "polyak") else 1e-9
    tr = gradient_descent(quad, quad.zeros(), step_size=rule, max_iter=3000, tol=tol)
    assert tr.status == "converged"
    # mu-strong convexity: ||x - x*|| <= ||grad f(x)|| / mu <= tol / mu
    err = np.linalg.norm(tr.x_final - np.linalg.solve(quad.A, quad.b))
    assert err <= tol / quad.mu * (1 + 1e-6)


def test_gd_ridge_matches_sklearn():
    X, y = load_dataset("diabetes")
    lam = 0.1
    prob = Ridge(X, y, lam=lam)
    ref = SkRidge(alpha=prob.n * lam, fit_intercept=False, solver="cholesky").fit(X, y).coef_
    tr = gradient_descent(prob, prob.zeros(), max_iter=5000, tol=1e-10)
    np.testing.assert_allclose(tr.x_final, ref, rtol=1e-8, atol=1e-9)


def test_nesterov_logistic_matches_sklearn():
    X, y = load_dataset("breast_cancer")
    lam = 1e-2
    prob = LogisticRegression(X, y, lam=lam)
    sk = SkLogReg(C=1 / (prob.n * lam), fit_intercept=False, tol=1e-12, max_iter=10000).fit(X, y)
    tr = nesterov(prob, prob.zeros(), mu=prob.mu, max_iter=3000, tol=1e-11)
    np.testing.assert_allclose(tr.x_final, sk.coef_.ravel(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("accelerated", [False, True])
def test_ista_fista_lasso_match_sklearn(diabetes_lasso, accelerated):
    prob, ref = diabetes_lasso
    tr = proximal_gradient(prob, prob.zeros(), accelerated=accelerated, max_iter=20000, tol=1e-12)
    np.testing.assert_allclose(tr.x_final, ref, atol=1e-8)
    assert np.array_equal(np.abs(tr.x_final) > 1e-9, np.abs(ref) > 1e-9)  # same support


def test_projected_gradient_box_matches_scipy(ls):
    box = Box(-0.2, 0.2, ls.dim)
    tr = projected_gradient(ls, ls.zeros(), box, max_iter=20000, tol=1e-12, accelerated=True)
    ref = minimize(lambda x: float(ls.value(x)), np.zeros(ls.dim), jac=ls.grad, method="L-BFGS-B",
                   bounds=[(-0.2, 0.2)] * ls.dim, options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 10000})
    assert float(ls.value(tr.x_final)) <= ref.fun + 1e-12
    np.testing.assert_allclose(tr.x_final, ref.x, atol=1e-5)
    assert box.contains(tr.x_final)


def test_heavy_ball_equals_torch_sgd_momentum(quad):
    eta, beta = 1.5 / quad.L, 0.6
    tr = heavy_ball(quad, quad.zeros(), step_size=eta, momentum=beta, max_iter=50, keep_x=True)
    w = torch.zeros(quad.dim, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.SGD([w], lr=eta, momentum=beta)
    A, b = torch.tensor(quad.A), torch.tensor(quad.b)
    for k in range(50):
        opt.zero_grad()
        (0.5 * w @ A @ w - b @ w).backward()
        opt.step()
        np.testing.assert_allclose(tr.x[k + 1], w.detach().numpy(), rtol=1e-12, atol=1e-13)


def test_gd_equals_torch_sgd(ls):
    tr = gradient_descent(ls, ls.zeros(), step_size=1.0 / ls.L, max_iter=30, keep_x=True)
    w = torch.zeros(ls.dim, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.SGD([w], lr=1.0 / ls.L)
    A, b = torch.tensor(to_numpy(ls.A)), torch.tensor(to_numpy(ls.b))
    for k in range(30):
        opt.zero_grad()
        (((A @ w - b) ** 2).sum() / (2 * ls.n)).backward()
        opt.step()
    np.testing.assert_allclose(tr.x_final, w.detach().numpy(), rtol=1e-12, atol=1e-14)


# -- the theorems' bounds, at every iteration ---------------------------------------------------------------

def test_gd_convex_bound_every_iteration(ls):
    x0 = ls.asarray(np.ones(ls.dim))
    tr = gradient_descent(ls, x0, max_iter=500)
    k = tr.iteration[1:]
    bound = ls.L * dist2(x0, ls.x_star) / (2 * k)
    assert np.all(tr.gap(ls.f_star)[1:] <= bound * (1 + SLACK))


def test_gd_strongly_convex_bound_every_iteration(quad):
    x0 = quad.zeros()
    tr = gradient_descent(quad, x0, max_iter=300, keep_x=True)
    d = np.sum((tr.x - to_numpy(quad.x_star)) ** 2, axis=1)
    assert np.all(d <= (1 - quad.mu / quad.L) ** tr.x_iteration * d[0] * (1 + SLACK))


def test_gd_step_2_over_mu_plus_L_meets_bound_with_equality():
    mu, L = 1.0, 9.0
    q = Quadratic(np.diag([mu, L]), np.array([1.0, -2.0]))
    tr = gradient_descent(q, q.asarray([3.0, 4.0]), step_size=2 / (mu + L), max_iter=40, keep_x=True)
    d = np.linalg.norm(tr.x - to_numpy(q.x_star), axis=1)
    np.testing.assert_allclose(d, ((L - mu) / (L + mu)) ** tr.x_iteration * d[0], rtol=1e-12)


def test_armijo_bound_every_iteration(ls):
    beta = 0.5
    x0 = ls.asarray(np.ones(ls.dim))
    tr = gradient_descent(ls, x0, step_size="armijo", c=0.5, beta=beta, t0=1.0, max_iter=300)
    t_min = min(1.0, beta / ls.L)
    assert np.all(tr.info["step_size"][1:] >= t_min * (1 - 1e-12))
    k = tr.iteration[1:]
    assert np.all(tr.gap(ls.f_star)[1:] <= dist2(x0, ls.x_star) / (2 * k * t_min) * (1 + SLACK))


def test_exact_line_search_kantorovich_bound(quad):
    tr = gradient_descent(quad, quad.zeros(), step_size="exact", max_iter=200)
    gap = tr.gap(quad.f_star)
    q = ((quad.condition_number - 1) / (quad.condition_number + 1)) ** 2
    ok = gap[1:] <= q * gap[:-1] * (1 + 1e-9) + 1e-13
    assert ok.all()


def test_polyak_step_distance_decrease(ls):
    x0 = ls.asarray(np.ones(ls.dim))
    tr = gradient_descent(ls, x0, step_size="polyak", max_iter=200, keep_x=True)
    d = np.sum((tr.x - to_numpy(ls.x_star)) ** 2, axis=1)
    gap = tr.gap(ls.f_star)
    assert np.all(d[1:] <= d[:-1] - gap[:-1] ** 2 / tr.grad_norm[:-1] ** 2 + 1e-12)


def test_fista_bound_every_iteration(diabetes_lasso):
    prob, _ = diabetes_lasso
    star = proximal_gradient(prob, prob.zeros(), accelerated=True, max_iter=20000, tol=1e-13).x_final
    F_star = float(prob.value(star))
    x0 = prob.asarray(np.ones(prob.dim))
    for acc, bound in [(True, lambda k: 2 * prob.L * dist2(x0, star) / (k + 1) ** 2),
                       (False, lambda k: prob.L * dist2(x0, star) / (2 * k))]:
        tr = proximal_gradient(prob, x0, accelerated=acc, max_iter=400)
        k = tr.iteration[1:]
        assert np.all(tr.gap(F_star)[1:] <= bound(k) + 1e-12), acc


def test_nesterov_strongly_convex_bound(quad):
    x0 = quad.zeros()
    tr = nesterov(quad, x0, mu=quad.mu, max_iter=300)
    c0 = tr.gap(quad.f_star)[0] + quad.mu / 2 * dist2(x0, quad.x_star)
    bound = (1 - 1 / math.sqrt(quad.condition_number)) ** tr.iteration * c0
    assert np.all(tr.gap(quad.f_star) <= bound * (1 + SLACK) + 1e-13)
    # and acceleration beats gradient descent on this kappa = 100 problem
    assert tr.gap(quad.f_star)[100] < 1e-3 * gradient_descent(quad, x0, max_iter=100).gap(quad.f_star)[-1]


@pytest.mark.parametrize("domain", [Simplex(1.0), L1Ball(0.5)])
def test_frank_wolfe_bound_and_gap(ls, domain):
    ref = projected_gradient(ls, ls.zeros(), domain, accelerated=True, max_iter=20000, tol=1e-12)
    f_star = float(ls.value(ref.x_final))
    x0 = domain.lmo(ls.grad(ls.zeros()))
    tr = frank_wolfe(ls, x0, domain, max_iter=300)
    gap = tr.gap(f_star)
    k = tr.iteration[1:]
    assert np.all(gap[1:] <= 2 * ls.L * domain.diameter ** 2 / (k + 2))
    assert np.all(tr.info["gap"] >= gap - 1e-12)  # the FW gap bounds the suboptimality
    assert np.count_nonzero(tr.x_final) <= 301 and domain.contains(tr.x_final)


def test_frank_wolfe_short_step_converges(ls):
    dom = Simplex(1.0)
    tr = frank_wolfe(ls, dom.lmo(ls.grad(ls.zeros())), dom, step="short", max_iter=2000, tol=1e-6)
    assert tr.info["gap"][-1] <= 1e-6 or tr.status == "converged"


def test_subgradient_bound_every_iteration(diabetes_lasso):
    prob, ref = diabetes_lasso
    F_star = float(prob.value(ref))
    x0 = prob.zeros()
    R2 = dist2(x0, ref)
    tr = subgradient_method(prob, x0, step_size=0.05, max_iter=2000)
    G2 = np.maximum.accumulate(tr.grad_norm[1:] ** 2)  # max ||g_j||^2 over j < k
    t = tr.info["step_size"][1:]
    bound = (R2 + G2 * np.cumsum(t ** 2)) / (2 * np.cumsum(t))
    assert np.all(tr.gap(F_star)[1:] <= bound + 1e-12)
    assert tr.gap(F_star)[-1] < 0.05 * tr.gap(F_star)[0]


def test_mirror_descent_bound_every_iteration():
    q = Quadratic.random(15, cond=20.0, seed=5)
    ref = projected_gradient(q, q.zeros(), Simplex(), accelerated=True, max_iter=20000, tol=1e-13)
    f_star = float(q.value(ref.x_final))
    x0 = q.asarray(np.full(15, 1 / 15))
    tr = mirror_descent(q, x0, step_size=0.1, max_iter=500)
    G = max(np.abs(q.A).sum(1).max() + np.abs(q.b).max(), 1.0)  # ||A x - b||_inf <= G on the simplex
    t = tr.info["step_size"][1:]
    bound = (np.log(15) + G ** 2 / 2 * np.cumsum(t ** 2)) / np.cumsum(t)
    assert np.all(tr.gap(f_star)[1:] <= bound + 1e-12)
    assert tr.gap(f_star)[-1] < 0.1 * tr.gap(f_star)[0]


# -- backends agree -----------------------------------------------------------------------------------------

CASES = {
    "gd_armijo": lambda p, x0: gradient_descent(p, x0, "armijo", max_iter=50),
    "gd_exact": lambda p, x0: gradient_descent(p, x0, "exact", max_iter=50),
    # Polyak's step divides a round-off-sized gap: errors grow ~10x per 8 steps, so compare a short run
    "gd_polyak": lambda p, x0: gradient_descent(p, x0, "polyak", max_iter=15, f_star=p.to("numpy").f_star),
    "heavy_ball": lambda p, x0: heavy_ball(p, x0, max_iter=50),
    "fista_mu": lambda p, x0: nesterov(p, x0, mu=p.mu, max_iter=50),
    "pgd_simplex": lambda p, x0: projected_gradient(p, x0, Simplex(), max_iter=50),
    "pgd_ball": lambda p, x0: projected_gradient(p, x0, Ball(0.3), max_iter=50),
    "pgd_l1": lambda p, x0: projected_gradient(p, x0, L1Ball(0.3), max_iter=50),
    "fw_l1": lambda p, x0: frank_wolfe(p, L1Ball(1.0).lmo(p.grad(x0)), L1Ball(1.0), max_iter=50),
    "md": lambda p, x0: mirror_descent(p, x0 * 0 + 1 / p.dim, 0.1, max_iter=50),
    "subgrad_box": lambda p, x0: subgradient_method(p, x0, 0.1, domain=Box(-1, 1, p.dim), max_iter=50),
}


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "numpy"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_numpy_and_torch_agree(quad, backend, case):
    a = CASES[case](quad, quad.zeros())
    qt = quad.to(backend)
    b = CASES[case](qt, qt.zeros())
    assert b.x_final.device.type == backend.partition(":")[2] or "cpu"
    np.testing.assert_allclose(to_numpy(b.x_final), to_numpy(a.x_final), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(b.f, a.f, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_lasso_runs_on_backend(diabetes_lasso, backend):
    prob, ref = diabetes_lasso
    p = prob.to(backend)
    tr = proximal_gradient(p, p.zeros(), accelerated=True, max_iter=3000)
    np.testing.assert_allclose(to_numpy(tr.x_final), ref, atol=1e-6)


# -- errors that teach --------------------------------------------------------------------------------------

def test_step_above_2_over_L_is_refused_and_divergence_detected(quad):
    with pytest.raises(CourseError, match="2/L"):
        gradient_descent(quad, quad.zeros(), step_size=2.5 / quad.L)
    with pytest.raises(DivergenceError, match="diverged"):
        gradient_descent(quad, quad.zeros(), step_size=2.5 / quad.L, check_step=False, max_iter=5000)
    tr = gradient_descent(quad, quad.zeros(), step_size=2.5 / quad.L, check_step=False, max_iter=5000,
                          on_divergence="stop")
    assert tr.status == "diverged"


def test_fista_refuses_step_above_1_over_L(diabetes_lasso):
    prob, _ = diabetes_lasso
    with pytest.raises(CourseError, match="step_size"):
        proximal_gradient(prob, prob.zeros(), step_size=1.5 / prob.L, accelerated=True)


def test_bad_rules_and_inputs(quad):
    with pytest.raises(CourseError, match="step rule"):
        gradient_descent(quad, quad.zeros(), step_size="wolfe")
    with pytest.raises(CourseError, match="quadratic"):
        gradient_descent(Rosenbrock(), Rosenbrock().zeros(), step_size="exact")
    with pytest.raises(CourseError, match="f_star"):
        gradient_descent(Rosenbrock(a=2.0, dim=3), Rosenbrock(a=2.0, dim=3).zeros(), step_size="polyak")
    with pytest.raises(CourseError, match="not in the feasible set"):
        frank_wolfe(quad, quad.asarray(np.ones(quad.dim)), Simplex())
    with pytest.raises(CourseError, match="interior of the simplex"):
        mirror_descent(quad, quad.zeros(), 0.1)
    with pytest.raises(CourseError, match="descent direction"):
        backtracking(quad.value, quad.zeros(), quad.value(quad.zeros()), quad.grad(quad.zeros()),
                     d=quad.grad(quad.zeros()))
    with pytest.raises(CourseError, match="NaN"):
        gradient_descent(quad, quad.asarray(np.full(quad.dim, np.nan)))


def test_armijo_on_rosenbrock_decreases_monotonically():
    r = Rosenbrock()
    tr = gradient_descent(r, r.asarray([-1.2, 1.0]), step_size="armijo", max_iter=3000)
    assert np.all(np.diff(tr.f) <= 0)
    assert tr.f_final < 1e-3

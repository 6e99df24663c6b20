"""Damped Newton: Boyd-Vandenberghe's phases checked at every iteration, reference solutions, backends, errors."""
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression as SkLogReg

from course_lib.backend import available_backends, to_numpy
from course_lib.datasets import load_dataset
from course_lib.newton import AnalyticCenter, newton, newton_decrement
from course_lib.problems import LogisticRegression, Quadratic, Rosenbrock
from course_lib.validation import CourseError


def test_newton_solves_a_quadratic_in_one_step():
    q = Quadratic.random(12, cond=1e4, seed=2)
    tr = newton(q, q.zeros())
    assert tr.n_iter == 1 and tr.status == "converged"
    np.testing.assert_allclose(tr.x_final, np.linalg.solve(q.A, q.b), rtol=1e-9)
    # lambda^2/2 = f(x0) - f* exactly for a quadratic
    np.testing.assert_allclose(tr.info["decrement"][0] ** 2 / 2, tr.f[0] - q.f_star, rtol=1e-10)


@pytest.mark.parametrize("alpha", [0.1, 0.25, 0.4])
@pytest.mark.parametrize("seed", [0, 1])
def test_self_concordant_phases_every_iteration(alpha, seed):
    beta = 0.5
    prob = AnalyticCenter.random(m=60, dim=10, seed=seed)
    # start close to the boundary, so the damped phase is visible
    x0 = np.zeros(10)
    d = np.random.default_rng(seed).standard_normal(10)
    s = prob.b / (prob.A @ d)
    x0 = 0.95 * s[s > 0].min() * d
    tr = newton(prob, x0, alpha=alpha, beta=beta, tol=1e-20)
    lam, f, t = tr.info["decrement"], tr.f, tr.info["step_size"]
    eta = (1 - 2 * alpha) / 4
    gamma = alpha * beta * eta ** 2 / (1 + eta)
    for k in range(len(lam) - 1):
        if lam[k] > eta:  # damped phase: a fixed decrease of f
            assert f[k + 1] - f[k] <= -gamma + 1e-12
        else:  # quadratic phase: full steps and 2 lambda+ <= (2 lambda)^2
            assert t[k + 1] == 1.0
            assert 2 * lam[k + 1] <= (2 * lam[k]) ** 2 * (1 + 1e-6) + 1e-13  # + round-off floor
    assert (lam > eta).any() and (lam[:-1] <= eta).any()  # both phases were exercised
    assert np.linalg.norm(prob.grad(tr.x_final)) < 1e-10
    # f - f* <= lambda^2 when lambda <= 0.68
    f_star = float(prob.value(prob.x_star))
    ok = lam <= 0.68
    assert np.all(f[ok] - f_star <= lam[ok] ** 2 + 1e-12)


def test_newton_logistic_matches_sklearn():
    X, y = load_dataset("breast_cancer")
    lam = 1e-3
    prob = LogisticRegression(X, y, lam=lam)
    tr = newton(prob, prob.zeros(), tol=1e-24)
    sk = SkLogReg(C=1 / (prob.n * lam), fit_intercept=False, tol=1e-12, max_iter=20000).fit(X, y)
    np.testing.assert_allclose(tr.x_final, sk.coef_.ravel(), rtol=1e-4, atol=1e-5)
    assert np.linalg.norm(prob.grad(tr.x_final)) < 1e-10
    # quadratic convergence of the decrement at the end: lambda_{k+1} <= C lambda_k^2 with a modest C
    lam_k = tr.info["decrement"]
    tail = np.flatnonzero((lam_k < 1e-2) & (lam_k > 1e-7))  # above the round-off floor
    ratios = lam_k[tail[1:]] / lam_k[tail[:-1]] ** 2
    assert len(ratios) >= 1 and ratios.max() < 50


@pytest.mark.parametrize("backend", [b for b in available_backends() if b != "numpy"])
def test_backends_agree(backend):
    prob = AnalyticCenter.random(seed=4)
    a = newton(prob, prob.zeros())
    pt = prob.to(backend)
    b = newton(pt, pt.zeros())
    np.testing.assert_allclose(to_numpy(b.x_final), a.x_final, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(b.info["decrement"], a.info["decrement"], rtol=1e-8, atol=1e-14)


def test_errors():
    r = Rosenbrock()
    with pytest.raises(CourseError, match="not positive definite"):
        newton(r, r.asarray([0.0, 1.0]))  # Hessian has a negative eigenvalue there
    with pytest.raises(CourseError, match="not positive definite"):
        newton_decrement(np.ones(2), np.diag([1.0, -1.0]))
    prob = AnalyticCenter.random(seed=0)
    with pytest.raises(CourseError, match="outside the domain"):
        newton(prob, prob.asarray(np.full(prob.dim, 100.0)))
    with pytest.raises(CourseError, match="alpha"):
        newton(prob, prob.zeros(), alpha=0.6)

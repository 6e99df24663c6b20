"""course_lib.preliminaries (chapter 0): derivative checks, Taylor remainders, L by power iteration,
constants of quadratics -- against closed forms, numpy.linalg and the orders the theory predicts."""
import math

import numpy as np
import pytest

from course_lib import datasets
from course_lib.backend import asarray, backend_of, get_backend, to_numpy
from course_lib.preliminaries import (check_gradient, check_hessian, fd_gradient, fd_hessian, power_iteration,
                                      quadratic_constants, smoothness_constant, taylor_remainders)
from course_lib.problems import LeastSquares, LogisticRegression, Quadratic, Rosenbrock
from course_lib.validation import CourseError


# a smooth test function with known derivatives, written with the array API (runs on every backend)
def f(x):
    from course_lib.backend import namespace

    xp = namespace(x)
    return xp.sum(xp.sin(x)) + 0.5 * xp.sum(x * x) ** 2


def grad_f(x):
    from course_lib.backend import namespace

    xp = namespace(x)
    return xp.cos(x) + 2 * xp.sum(x * x) * x


def hess_f(x):
    x = to_numpy(x)
    return np.diag(-np.sin(x)) + 2 * float(x @ x) * np.eye(x.size) + 4 * np.outer(x, x)


X0 = np.array([0.3, -0.7, 1.1, 0.2])


# ---------------------------------------------------------------------------------------------
# finite differences
# ---------------------------------------------------------------------------------------------
def test_fd_gradient_error_is_order_h_squared():
    hs = np.array([1e-1, 5e-2, 2.5e-2, 1.25e-2])
    errs = [np.linalg.norm(to_numpy(fd_gradient(f, X0, h)) - grad_f(X0)) for h in hs]
    slope = np.polyfit(np.log(hs), np.log(errs), 1)[0]
    assert slope == pytest.approx(2.0, abs=0.1)
    assert np.linalg.norm(to_numpy(fd_gradient(f, X0, 1e-6)) - grad_f(X0)) < 1e-8


def test_fd_hessian_matches_the_analytic_hessian():
    H = to_numpy(fd_hessian(grad_f, X0))
    np.testing.assert_allclose(H, H.T, atol=0)
    np.testing.assert_allclose(H, hess_f(X0), rtol=1e-7, atol=1e-8)


def test_check_gradient_accepts_a_right_gradient_and_catches_wrong_ones():
    ok = check_gradient(f, grad_f, X0)
    assert ok and ok.rel_error < 1e-8 and "gradient OK" in str(ok)

    def wrong_factor(x):  # the classic mistake: forgetting a factor 2 in one term
        return np.cos(x) + np.sum(x * x) * x

    bad = check_gradient(f, wrong_factor, X0)
    assert not bad and bad.rel_error > 1e-2 and "gradient MISMATCH" in str(bad)

    def wrong_coordinate(x):
        g = grad_f(x).copy()
        g[2] += 1e-3
        return g

    bad = check_gradient(f, wrong_coordinate, X0)
    assert not bad and bad.worst_index == 2 and bad.max_abs_error == pytest.approx(1e-3, rel=1e-3)
    assert "at coordinate 2" in str(bad)

    with pytest.raises(CourseError, match=r"grad\(x\) has shape \(3,\) but x has shape \(4,\)"):
        check_gradient(f, lambda x: np.zeros(3), X0)


def test_check_hessian_catches_a_wrong_hessian():
    assert check_hessian(grad_f, hess_f, X0)
    bad = check_hessian(grad_f, lambda x: hess_f(x) - 4 * np.outer(x, x), X0)  # dropped term
    assert not bad and bad.rel_error > 1e-2
    with pytest.raises(CourseError, match=r"hess\(x\) has shape \(3, 3\), expected \(4, 4\)"):
        check_hessian(grad_f, lambda x: np.eye(3), X0)


def test_fd_checks_on_library_problems():
    p = LogisticRegression(*datasets.make_classification(n=50, dim=4, seed=0)[:2], lam=0.1)
    x = np.array([0.5, -1.0, 0.2, 0.3])
    assert check_gradient(p.value, p.grad, x).rel_error < 1e-8
    assert check_hessian(p.grad, p.hess, x).rel_error < 1e-7
    r = Rosenbrock(3)
    assert check_gradient(r.value, r.grad, np.array([-1.0, 0.5, 2.0]))


def test_fd_rejects_bad_points():
    with pytest.raises(CourseError, match="x must have 1 dimension"):
        fd_gradient(f, np.zeros((2, 2)))
    with pytest.raises(CourseError, match="h must be > 0, got 0"):
        fd_gradient(f, X0, h=0.0)
    with pytest.raises(CourseError, match="x contains 1 NaN"):
        fd_gradient(f, np.array([0.0, np.nan]))


# ---------------------------------------------------------------------------------------------
# Taylor remainders
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("which", ["test_function", "logistic", "rosenbrock"])
def test_taylor_remainder_slopes_are_1_2_3(which):
    d = np.array([1.0, -2.0, 0.5, 1.5])
    if which == "test_function":
        out = taylor_remainders(f, grad_f, X0, d, hess=hess_f)
    elif which == "logistic":
        X, y, _ = datasets.make_classification(n=80, dim=4, seed=1)
        p = LogisticRegression(X, y, lam=0.1)
        out = taylor_remainders(p.value, p.grad, X0, d, hess=p.hess)
    else:
        p = Rosenbrock(4)
        out = taylor_remainders(p.value, p.grad, X0, d, hess=p.hess)
    s = out["slopes"]
    assert s["r0"] == pytest.approx(1.0, abs=0.1)
    assert s["r1"] == pytest.approx(2.0, abs=0.1)
    assert s["r2"] == pytest.approx(3.0, abs=0.15)
    assert len(out["h"]) == len(out["r0"]) == len(out["r2"]) == 9


def test_taylor_remainder_exposes_a_wrong_gradient():
    d = np.array([1.0, -2.0, 0.5, 1.5])
    out = taylor_remainders(f, lambda x: 1.01 * grad_f(x), X0, d, hs=np.logspace(-3, -6, 7))
    assert "r2" not in out and "r2" not in out["slopes"]
    assert out["slopes"]["r1"] == pytest.approx(1.0, abs=0.1)  # slope 1, not 2: the gradient is wrong


# ---------------------------------------------------------------------------------------------
# power iteration and L
# ---------------------------------------------------------------------------------------------
def test_power_iteration_matches_eigvalsh():
    A = datasets.random_spd(30, cond=50.0, seed=2)
    lam, v, iters = power_iteration(lambda u: A @ u, np.random.default_rng(0).standard_normal(30), tol=1e-14,
                                    max_iter=5000)
    lam_max = np.linalg.eigvalsh(A)[-1]
    assert lam == pytest.approx(lam_max, rel=1e-10)
    assert np.linalg.norm(v) == pytest.approx(1.0) and np.linalg.norm(A @ v - lam * v) < 1e-4 * lam_max
    assert 1 <= iters < 5000


def test_power_iteration_finds_the_largest_magnitude_eigenvalue():
    A = np.diag([1.0, 2.0, -5.0])
    lam, _, _ = power_iteration(lambda u: A @ u, np.ones(3), tol=1e-14)
    assert lam == pytest.approx(-5.0, rel=1e-10)


def test_power_iteration_edge_cases():
    with pytest.raises(CourseError, match="v0 is the zero vector"):
        power_iteration(lambda u: u, np.zeros(3))
    lam, _, k = power_iteration(lambda u: 0 * u, np.ones(3))
    assert lam == 0.0 and k == 1
    lam, _, k = power_iteration(lambda u: np.diag([1.0, 0.999]) @ u, np.ones(2), max_iter=3)
    assert k == 3  # hit the cap without converging


def test_smoothness_constant_by_hvp_equals_L():
    A, b, _ = datasets.make_regression(n=100, dim=10, seed=0, cond=30.0)
    ls = LeastSquares(A, b, lam=0.01)
    assert smoothness_constant(ls, tol=1e-13, max_iter=20000) == pytest.approx(ls.L, rel=1e-8)
    X, y = datasets.load_dataset("breast_cancer")
    lr = LogisticRegression(X, y, lam=1e-3)
    assert smoothness_constant(lr, tol=1e-13, max_iter=20000) == pytest.approx(lr.L, rel=1e-8)  # at w = 0
    w = np.asarray(lr.x_star)
    local = smoothness_constant(lr, x=w, tol=1e-13, max_iter=20000)
    assert local == pytest.approx(np.linalg.eigvalsh(lr.hess(w))[-1], rel=1e-8)
    assert local < lr.L


# ---------------------------------------------------------------------------------------------
# constants of quadratics
# ---------------------------------------------------------------------------------------------
def test_quadratic_constants_pd_psd_indefinite():
    A = datasets.random_spd(5, cond=20.0, seed=0, mu=0.5)
    c = quadratic_constants(A)
    assert (c.L, c.mu, c.kappa) == (pytest.approx(10.0), pytest.approx(0.5), pytest.approx(20.0))
    assert c.convex and c.strongly_convex
    B = np.random.default_rng(0).standard_normal((3, 5))
    psd = quadratic_constants(B.T @ B)  # rank 3 of 5: PSD, not PD
    assert psd.convex and not psd.strongly_convex and psd.kappa == math.inf
    assert abs(psd.mu) < 1e-12 * psd.L
    ind = quadratic_constants(np.diag([2.0, -1.0]))
    assert not ind.convex and not ind.strongly_convex and ind.mu == -1.0 and ind.L == 2.0
    with pytest.raises(CourseError, match="A must be a symmetric square matrix.*Use \\(A \\+ A.T\\) / 2"):
        quadratic_constants(np.array([[1.0, 1.0], [0.0, 1.0]]))
    with pytest.raises(CourseError, match=r"shape \(2, 3\)"):
        quadratic_constants(np.ones((2, 3)))


# ---------------------------------------------------------------------------------------------
# NumPy vs torch
# ---------------------------------------------------------------------------------------------
def test_chapter0_tools_agree_across_backends(torch_backend):
    xt = asarray(X0, backend=torch_backend)
    d = np.array([1.0, -2.0, 0.5, 1.5])
    # fd quotients divide rounding differences of f by 2h: with h = 1e-3 they stay below 1e-12
    gt = fd_gradient(f, xt, h=1e-3)
    assert backend_of(gt) == get_backend(torch_backend)
    np.testing.assert_allclose(to_numpy(gt), to_numpy(fd_gradient(f, X0, h=1e-3)), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(to_numpy(fd_hessian(grad_f, xt, h=1e-3)), to_numpy(fd_hessian(grad_f, X0, h=1e-3)),
                               rtol=1e-12, atol=1e-12)
    assert check_gradient(f, grad_f, xt).ok
    tn = taylor_remainders(f, grad_f, X0, d, hess=hess_f, hs=[1e-1, 1e-2])
    tt = taylor_remainders(f, grad_f, xt, asarray(d, like=xt), hess=lambda x: asarray(hess_f(x), like=x),
                           hs=[1e-1, 1e-2])
    for key in ("r0", "r1", "r2"):
        np.testing.assert_allclose(tt[key], tn[key], rtol=1e-10)  # r2 at h=1e-2 is ~1e-6: cancellation
    A = datasets.random_spd(6, cond=10.0, seed=1)
    At = asarray(A, backend=torch_backend)
    v0 = np.ones(6)
    ln, vn, kn = power_iteration(lambda u: A @ u, v0, tol=1e-13)
    lt, vt, kt = power_iteration(lambda u: At @ u, asarray(v0, like=At), tol=1e-13)
    assert lt == pytest.approx(ln, rel=1e-12) and kt == kn
    np.testing.assert_allclose(to_numpy(vt), vn, rtol=1e-10, atol=1e-12)
    X, y = datasets.load_dataset("breast_cancer")
    lr = LogisticRegression(X, y, lam=1e-3)
    assert smoothness_constant(lr.to(torch_backend), max_iter=200) == pytest.approx(
        smoothness_constant(lr, max_iter=200), rel=1e-12)
    assert quadratic_constants(At) == quadratic_constants(A)

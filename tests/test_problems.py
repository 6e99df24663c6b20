"""course_lib.problems against finite differences, eigenvalues, closed forms and scikit-learn.

Tolerances: gradients vs central differences (h = 1e-6) to 1e-7 relative; Hessians vs differences of
the gradient to 1e-6 relative; constants vs eigenvalues and hvp vs hess @ v to 1e-10 relative;
minimisers vs scikit-learn / lstsq to 1e-8 (exact solvers) or 1e-6 (iterative solver);
NumPy vs torch to 1e-12 (float64).
"""
import numpy as np
import pytest

from course_lib import datasets
from course_lib.backend import asarray, backend_of, get_backend, to_float, to_numpy
from course_lib.problems import (FiniteSum, LeastSquares, LogisticRegression, Quadratic, Ridge,
                                 Rosenbrock)
from course_lib.validation import CourseError


def _zoo():
    """Small instances of every problem class (NumPy backend)."""
    A, b, _ = datasets.make_regression(n=40, dim=6, noise=0.5, seed=1, cond=10.0)
    Xd, yd = datasets.load_dataset("diabetes")
    Xc, yc, _ = datasets.make_classification(n=60, dim=5, seed=2, flip=0.1)
    Xb, yb = datasets.load_dataset("breast_cancer")
    indefinite = np.diag([3.0, 1.0, -2.0])
    return {
        "quadratic": Quadratic.random(6, cond=50.0, seed=3),
        "quadratic_indefinite": Quadratic(indefinite, np.array([1.0, 0.0, 1.0])),
        "least_squares": LeastSquares(A, b),
        "least_squares_reg": LeastSquares(A, b, lam=0.1),
        "ridge_diabetes": Ridge(Xd, yd / yd.std(), lam=1e-2),
        "logistic_synthetic": LogisticRegression(Xc, yc, lam=1e-2),
        "logistic_breast_cancer": LogisticRegression(Xb, yb, lam=1e-3),
        "rosenbrock": Rosenbrock(4),
    }


ZOO = _zoo()
NAMES = list(ZOO)
FINITE_SUMS = [k for k, p in ZOO.items() if isinstance(p, FiniteSum)]


def _points(problem, k=3, seed=0):
    rng = np.random.default_rng(seed)
    scale = 0.5 if isinstance(problem, Rosenbrock) else 1.0
    return [scale * rng.standard_normal(problem.dim) for _ in range(k)]


def _fd_grad(f, x, h=1e-6):
    g = np.empty_like(x)
    for i in range(x.size):
        e = np.zeros_like(x)
        e[i] = h
        g[i] = (float(f(x + e)) - float(f(x - e))) / (2 * h)
    return g


def _fd_hess(grad, x, h=1e-5):
    cols = []
    for i in range(x.size):
        e = np.zeros_like(x)
        e[i] = h
        cols.append((grad(x + e) - grad(x - e)) / (2 * h))
    return np.stack(cols, axis=1)


def _rel(a, b):
    a, b = to_numpy(a), to_numpy(b)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


# ---------------------------------------------------------------------------------------------
# derivatives
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_gradient_matches_finite_differences(name):
    p = ZOO[name]
    for x in _points(p):
        assert _rel(p.grad(x), _fd_grad(p.value, x)) < 1e-7, name


@pytest.mark.parametrize("name", NAMES)
def test_hessian_matches_finite_differences_of_gradient(name):
    p = ZOO[name]
    for x in _points(p, k=2):
        H = to_numpy(p.hess(x))
        assert H.shape == (p.dim, p.dim)
        np.testing.assert_allclose(H, H.T, atol=1e-12)
        assert _rel(H, _fd_hess(p.grad, x)) < 1e-6, name


@pytest.mark.parametrize("name", NAMES)
def test_hvp_equals_hessian_times_vector(name):
    p = ZOO[name]
    rng = np.random.default_rng(7)
    for x in _points(p, k=2):
        v = rng.standard_normal(p.dim)
        assert _rel(p.hvp(x, v), p.hess(x) @ v) < 1e-12, name


@pytest.mark.parametrize("name", NAMES)
def test_value_and_grad_is_the_pair(name):
    p = ZOO[name]
    x = _points(p, k=1)[0]
    f, g = p.value_and_grad(x)
    assert to_float(f) == to_float(p.value(x))
    np.testing.assert_array_equal(to_numpy(g), to_numpy(p.grad(x)))


# ---------------------------------------------------------------------------------------------
# constants L, mu, L_max
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["quadratic", "least_squares", "least_squares_reg", "ridge_diabetes"])
def test_L_and_mu_are_the_extreme_hessian_eigenvalues(name):
    p = ZOO[name]
    eig = np.linalg.eigvalsh(to_numpy(p.hess(p.zeros())))
    assert p.L == pytest.approx(eig[-1], rel=1e-10)
    assert p.mu == pytest.approx(eig[0], rel=1e-8, abs=1e-12)
    assert p.condition_number == pytest.approx(eig[-1] / eig[0], rel=1e-8)
    assert p.convex


def test_quadratic_random_has_the_requested_condition_number():
    q = Quadratic.random(8, cond=123.0, seed=5, mu=0.5)
    assert q.mu == pytest.approx(0.5, rel=1e-10)
    assert q.L == pytest.approx(61.5, rel=1e-10)
    assert q.condition_number == pytest.approx(123.0, rel=1e-10)


def test_indefinite_quadratic_is_not_convex():
    q = ZOO["quadratic_indefinite"]
    assert q.mu is None and not q.convex
    assert q.L == pytest.approx(3.0)  # the largest |eigenvalue| bounds the Hessian's norm
    assert q.x_star is None and q.f_star is None


@pytest.mark.parametrize("name", ["logistic_synthetic", "logistic_breast_cancer"])
def test_logistic_L_is_the_bound_and_bounds_the_hessian(name):
    p = ZOO[name]
    X = to_numpy(p.X)
    bound = np.linalg.eigvalsh(X.T @ X)[-1] / (4 * p.n) + p.lam
    assert p.L == pytest.approx(bound, rel=1e-12)
    assert p.mu == p.lam
    # sigma(0)(1 - sigma(0)) = 1/4: the bound is attained at w = 0 ...
    assert np.linalg.eigvalsh(to_numpy(p.hess(p.zeros())))[-1] == pytest.approx(p.L, rel=1e-10)
    # ... and holds everywhere else, while lam stays below the smallest eigenvalue
    rng = np.random.default_rng(0)
    for scale in (0.1, 1.0, 10.0):
        eig = np.linalg.eigvalsh(to_numpy(p.hess(scale * rng.standard_normal(p.dim))))
        assert eig[-1] <= p.L * (1 + 1e-12)
        assert eig[0] >= p.lam * (1 - 1e-10)


@pytest.mark.parametrize("name", ["least_squares_reg", "ridge_diabetes", "logistic_synthetic"])
def test_L_max_is_the_largest_per_example_smoothness(name):
    p = ZOO[name]
    M = to_numpy(p.A if hasattr(p, "A") else p.X)
    curvature = 0.25 if isinstance(p, LogisticRegression) else 1.0
    per_example = [curvature * np.linalg.eigvalsh(np.outer(a, a))[-1] + p.lam for a in M]
    assert p.L_max == pytest.approx(max(per_example), rel=1e-10)
    assert p.L <= p.L_max * (1 + 1e-12)  # the average is never smoother than the worst term


def test_rosenbrock_constants():
    r = Rosenbrock(2)
    assert r.L is None and r.mu is None and not r.convex
    with pytest.raises(CourseError, match="condition number needs L and mu"):
        r.condition_number
    eig = np.linalg.eigvalsh(to_numpy(r.hess(r.x_star)))
    assert eig[-1] / eig[0] == pytest.approx(2508.0, rel=1e-3)


# ---------------------------------------------------------------------------------------------
# minimisers
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", [n for n in NAMES if n != "quadratic_indefinite"])
def test_x_star_is_stationary_and_f_star_its_value(name):
    p = ZOO[name]
    x = to_numpy(p.x_star)
    assert np.linalg.norm(to_numpy(p.grad(x))) < 1e-9 * max(1.0, p.L or 1.0)
    assert p.f_star == pytest.approx(to_float(p.value(x)), rel=1e-14)
    for y in _points(p):  # and it is a minimum: no sampled point is lower
        assert to_float(p.value(x)) <= to_float(p.value(x + 1e-3 * y))


def test_quadratic_x_star_closed_form():
    q = ZOO["quadratic"]
    A, b = to_numpy(q.A), to_numpy(q.b)
    np.testing.assert_allclose(to_numpy(q.x_star), np.linalg.solve(A, b), rtol=1e-12)
    assert q.f_star == pytest.approx(-0.5 * b @ np.linalg.solve(A, b), rel=1e-12)


def test_least_squares_matches_lstsq_also_when_rank_deficient():
    p = ZOO["least_squares"]
    x_ref = np.linalg.lstsq(to_numpy(p.A), to_numpy(p.b), rcond=None)[0]
    np.testing.assert_allclose(to_numpy(p.x_star), x_ref, rtol=1e-10)
    # more unknowns than equations: x* is the least-norm solution and f* = 0
    A = np.random.default_rng(3).standard_normal((5, 8))
    b = np.random.default_rng(4).standard_normal(5)
    q = LeastSquares(A, b)
    np.testing.assert_allclose(to_numpy(q.x_star), np.linalg.pinv(A) @ b, rtol=1e-10)
    assert q.mu == 0.0 and q.condition_number == float("inf")
    assert abs(q.f_star) < 1e-25


def test_ridge_matches_scikit_learn():
    from sklearn.linear_model import Ridge as SkRidge

    for p in (ZOO["ridge_diabetes"], ZOO["least_squares_reg"]):
        sk = SkRidge(alpha=p.n * p.lam, fit_intercept=False).fit(to_numpy(p.A), to_numpy(p.b))
        np.testing.assert_allclose(to_numpy(p.x_star), sk.coef_, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("name", ["logistic_breast_cancer", "logistic_synthetic"])
def test_logistic_matches_scikit_learn(name):
    from sklearn.linear_model import LogisticRegression as SkLogistic

    p = ZOO[name]
    sk = SkLogistic(C=1.0 / (p.n * p.lam), fit_intercept=False, solver="newton-cholesky", tol=1e-12,
                    max_iter=1000).fit(to_numpy(p.X), to_numpy(p.y))
    w_sk = sk.coef_.ravel()
    np.testing.assert_allclose(to_numpy(p.x_star), w_sk, rtol=1e-6, atol=1e-8)
    # same objective: our f* is no larger than f at scikit-learn's solution, and within 1e-12
    assert p.f_star <= to_float(p.value(w_sk)) + 1e-14
    assert to_float(p.value(w_sk)) - p.f_star < 1e-12
    # predictions agree with scikit-learn's labels
    np.testing.assert_array_equal(to_numpy(p.predict(p.x_star)), sk.predict(to_numpy(p.X)))


# ---------------------------------------------------------------------------------------------
# finite-sum structure
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", FINITE_SUMS)
def test_full_batch_equals_full_gradient(name, backend):
    p = ZOO[name].to(backend)
    x = p.asarray(_points(p, k=1)[0])
    all_idx = asarray(np.arange(p.n), like=x, dtype="int64")
    assert _rel(p.grad_batch(x, all_idx), p.grad(x)) < 1e-13
    assert to_float(p.value_batch(x, all_idx)) == pytest.approx(to_float(p.value(x)), rel=1e-13)


@pytest.mark.parametrize("name", FINITE_SUMS)
def test_single_example_gradients_average_to_the_gradient(name):
    """Unbiasedness: E_i grad f_i(x) over a uniform index equals grad f(x)."""
    p = ZOO[name]
    x = _points(p, k=1)[0]
    mean_g = np.mean([to_numpy(p.grad_batch(x, [i])) for i in range(p.n)], axis=0)
    mean_f = np.mean([to_float(p.value_batch(x, [i])) for i in range(p.n)])
    assert _rel(mean_g, p.grad(x)) < 1e-12
    assert mean_f == pytest.approx(to_float(p.value(x)), rel=1e-12)


@pytest.mark.parametrize("name", FINITE_SUMS)
def test_minibatch_gradient_is_the_mean_over_the_batch(name, backend):
    p = ZOO[name].to(backend)
    x = p.asarray(_points(p, k=1)[0])
    idx = [3, 0, 7, 7]
    expected = np.mean([to_numpy(p.grad_batch(x, [i])) for i in idx], axis=0)
    # lists, ranges, NumPy index arrays and backend index arrays give the same answer
    for form in (idx, np.array(idx), asarray(idx, like=x, dtype="int64")):
        assert _rel(p.grad_batch(x, form), expected) < 1e-13
    assert _rel(p.grad_batch(x, range(4)), p.grad_batch(x, [0, 1, 2, 3])) == 0.0


def test_empty_minibatch_is_refused():
    p = ZOO["least_squares"]
    with pytest.raises(CourseError, match="idx is empty"):
        p.grad_batch(p.zeros(), [])


# ---------------------------------------------------------------------------------------------
# NumPy vs torch (and CUDA where present)
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_numpy_and_torch_agree_on_every_function(name, torch_backend):
    p = ZOO[name]
    pt = p.to(torch_backend)
    assert backend_of(pt.zeros()) == pt.backend == get_backend(torch_backend)
    assert (pt.L, pt.mu, pt.dim) == (p.L, p.mu, p.dim)
    rng = np.random.default_rng(11)
    for x in _points(p, k=2):
        xt, v = pt.asarray(x), rng.standard_normal(p.dim)
        assert backend_of(pt.grad(xt)) == pt.backend
        assert to_float(pt.value(xt)) == pytest.approx(to_float(p.value(x)), rel=1e-12, abs=1e-12)
        np.testing.assert_allclose(to_numpy(pt.grad(xt)), to_numpy(p.grad(x)), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(to_numpy(pt.hess(xt)), to_numpy(p.hess(x)), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(to_numpy(pt.hvp(xt, pt.asarray(v))), to_numpy(p.hvp(x, v)),
                                   rtol=1e-12, atol=1e-12)
        if isinstance(p, FiniteSum):
            idx = [1, 4, 2]
            np.testing.assert_allclose(to_numpy(pt.grad_batch(xt, idx)), to_numpy(p.grad_batch(x, idx)),
                                       rtol=1e-12, atol=1e-12)
            assert to_float(pt.value_batch(xt, idx)) == pytest.approx(to_float(p.value_batch(x, idx)),
                                                                       rel=1e-12, abs=1e-12)
        if isinstance(p, LogisticRegression):
            np.testing.assert_array_equal(to_numpy(pt.predict(xt)), to_numpy(p.predict(x)))
    if p.x_star is not None:
        np.testing.assert_allclose(to_numpy(pt.x_star), to_numpy(p.x_star), rtol=1e-12, atol=1e-12)
        assert pt.f_star == pytest.approx(p.f_star, rel=1e-12, abs=1e-12)


def test_to_numpy_round_trip_keeps_everything():
    p = ZOO["logistic_synthetic"]
    back = p.to("torch").to("numpy")
    assert back.backend == get_backend("numpy")
    np.testing.assert_array_equal(back.X, p.X)
    assert (back.L, back.mu, back.L_max, back.lam) == (p.L, p.mu, p.L_max, p.lam)
    x = _points(p, k=1)[0]
    assert to_float(back.value(x)) == to_float(p.value(x))


# ---------------------------------------------------------------------------------------------
# errors that teach
# ---------------------------------------------------------------------------------------------
def test_bad_problem_data_is_refused_with_a_clear_message():
    A, b, _ = datasets.make_regression(n=20, dim=3, seed=0)
    with pytest.raises(CourseError, match=r"b must have shape \(20,\).*\(7,\)"):
        LeastSquares(A, b[:7])
    bad = np.array(A)
    bad[2, 1] = np.nan
    with pytest.raises(CourseError, match="A contains 1 NaN or inf"):
        LeastSquares(bad, b)
    with pytest.raises(CourseError, match="A must be symmetric.*Use \\(A \\+ A.T\\) / 2"):
        Quadratic(np.array([[1.0, 2.0], [0.0, 1.0]]))
    with pytest.raises(CourseError, match=r"A must have shape \(2, 2\)|A must have shape"):
        Quadratic(np.ones((2, 3)))
    with pytest.raises(CourseError, match=r"lam must be >= 0, got -1"):
        LeastSquares(A, b, lam=-1.0)
    with pytest.raises(CourseError, match=r"lam must be > 0, got 0"):
        Ridge(A, b, lam=0.0)
    with pytest.raises(CourseError, match=r"labels in \{-1, \+1\} or \{0, 1\}.*2\.0"):
        LogisticRegression(A, np.arange(20.0) % 3)
    with pytest.raises(CourseError, match=r"y must have shape \(20,\)"):
        LogisticRegression(A, np.ones(19))
    with pytest.raises(CourseError, match="Rosenbrock needs dim >= 2, got 1"):
        Rosenbrock(1)


def test_logistic_accepts_01_labels_as_pm1():
    X, y, _ = datasets.make_classification(n=30, dim=3, seed=4)
    p01 = LogisticRegression(X, (y + 1) / 2, lam=0.1)
    ppm = LogisticRegression(X, y, lam=0.1)
    np.testing.assert_array_equal(to_numpy(p01.y), to_numpy(ppm.y))


def test_bad_points_are_refused_with_a_clear_message():
    p = ZOO["least_squares"]
    with pytest.raises(CourseError, match=r"x must have shape \(6,\), got NumPy array of shape \(5,\)"):
        p.check_x(np.zeros(5))
    with pytest.raises(CourseError, match="x must have a floating dtype.*int64.*astype\\(float\\)"):
        p.check_x(np.zeros(6, dtype=np.int64))
    with pytest.raises(CourseError, match="x contains 1 NaN or inf"):
        p.check_x(np.array([0, 0, np.inf, 0, 0, 0.0]))
    with pytest.raises(CourseError, match="x must be an array.*list"):
        p.check_x([0.0] * 6)
    with pytest.raises(CourseError, match="x lives on backend torch but least_squares lives on numpy"):
        p.check_x(asarray(np.zeros(6), backend="torch"))

"""ADMM for the lasso (vs scikit-learn) and 1-D trend filtering (vs SciPy on the dual, KKT conditions)."""
import numpy as np
import pytest
from scipy.optimize import lsq_linear
from sklearn.linear_model import Lasso as SkLasso

from course_lib.admm import admm_lasso, admm_trend_filtering, difference_matrix, trend_filtering_objective
from course_lib.backend import asarray, available_backends, to_numpy
from course_lib.datasets import load_dataset, make_regression
from course_lib.validation import CourseError


@pytest.mark.parametrize("alpha", [0.005, 0.05])
@pytest.mark.parametrize("rho", [0.3, 3.0])
def test_admm_lasso_matches_sklearn(alpha, rho):
    X, y = load_dataset("diabetes")
    y = (y - y.mean()) / y.std()
    ref = SkLasso(alpha=alpha, fit_intercept=False, tol=1e-14, max_iter=200000).fit(X, y).coef_
    tr = admm_lasso(X, y, alpha, rho=rho, max_iter=5000, tol=1e-12)
    assert tr.status == "converged"
    np.testing.assert_allclose(tr.x_final, ref, atol=1e-7)
    assert tr.info["primal_residual"][-1] < 1e-9


def test_admm_lasso_high_dim_sparse_recovery():
    A, b, _ = make_regression(n=40, dim=100, seed=3)
    ref = SkLasso(alpha=0.1, fit_intercept=False, tol=1e-14, max_iter=500000).fit(A, b).coef_
    tr = admm_lasso(A, b, 0.1, max_iter=20000, tol=1e-12)
    np.testing.assert_allclose(tr.x_final, ref, atol=1e-6)


def signal(n=100, seed=0):
    t = np.linspace(0, 1, n)
    return np.abs(t - 0.4) * 3 - (t > 0.7) * 2 * (t - 0.7) + 0.1 * np.random.default_rng(seed).standard_normal(n)


@pytest.mark.parametrize("order", [1, 2])
@pytest.mark.parametrize("lam", [0.3, 3.0])
def test_trend_filtering_matches_dual_solution(order, lam):
    y = signal()
    D = difference_matrix(len(y), order)
    # dual: min 1/2 ||y - D^T v||^2 s.t. |v| <= lam, and beta = y - D^T v
    v = lsq_linear(D.T, y, bounds=(-lam, lam), method="bvls", tol=1e-15, max_iter=100000).x
    beta_ref = y - D.T @ v
    tr = admm_trend_filtering(y, lam, order=order, max_iter=5000, tol=1e-11)
    np.testing.assert_allclose(tr.x_final, beta_ref, atol=1e-5)
    assert tr.f_final <= trend_filtering_objective(beta_ref, y, lam, order) + 1e-9
    # KKT of the primal at the ADMM solution: y - beta = D^T v with |v| <= lam, v = lam sign(D beta) off zero
    vk = np.linalg.lstsq(D.T, y - tr.x_final, rcond=None)[0]
    assert np.abs(vk).max() <= lam * (1 + 1e-4)
    Db = D @ tr.x_final
    big = np.abs(Db) > 1e-6
    np.testing.assert_allclose(vk[big], lam * np.sign(Db[big]), rtol=1e-3)


def test_trend_filtering_order2_is_piecewise_linear():
    y = signal(seed=1)
    beta = admm_trend_filtering(y, 2.0, order=2, max_iter=5000, tol=1e-11).x_final
    kinks = np.abs(difference_matrix(len(y), 2) @ beta) > 1e-6
    assert 1 <= kinks.sum() <= 10  # a few knots, far fewer than n


def test_difference_matrix():
    np.testing.assert_array_equal(difference_matrix(4, 1), [[-1, 1, 0, 0], [0, -1, 1, 0], [0, 0, -1, 1]])
    np.testing.assert_array_equal(difference_matrix(4, 2), [[1, -2, 1, 0], [0, 1, -2, 1]])
    x = np.arange(10.0) ** 2
    np.testing.assert_allclose(difference_matrix(10, 3) @ x, 0, atol=1e-12)  # kills degree-2 polynomials


@pytest.mark.parametrize("backend", [b for b in available_backends() if b != "numpy"])
def test_backends_agree(backend):
    y = signal()
    a = admm_trend_filtering(y, 1.0, order=2, max_iter=200, tol=0.0)
    b = admm_trend_filtering(asarray(y, backend=backend), 1.0, order=2, max_iter=200, tol=0.0)
    np.testing.assert_allclose(to_numpy(b.x_final), a.x_final, rtol=1e-10, atol=1e-11)
    X, yy = load_dataset("diabetes")
    a = admm_lasso(X, yy / yy.std(), 0.05, max_iter=100, tol=0.0)
    b = admm_lasso(asarray(X, backend=backend), asarray(yy / yy.std(), backend=backend), 0.05, max_iter=100, tol=0.0)
    np.testing.assert_allclose(to_numpy(b.x_final), a.x_final, rtol=1e-10, atol=1e-12)


def test_errors():
    with pytest.raises(CourseError, match="rho"):
        admm_lasso(np.eye(3), np.ones(3), 0.1, rho=0.0)
    with pytest.raises(CourseError, match="b must have shape"):
        admm_lasso(np.eye(3), np.ones(4), 0.1)
    with pytest.raises(CourseError, match="order"):
        difference_matrix(3, 3)
    with pytest.raises(CourseError, match="lam"):
        admm_trend_filtering(np.ones(5), -1.0)

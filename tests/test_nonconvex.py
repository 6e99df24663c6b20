"""Chapter 4 tools against theorems (checked at every iteration), closed forms and eigvalsh."""
import math

import numpy as np
import pytest

from course_lib import nonconvex as nc
from course_lib.backend import RNG, asarray, to_float, to_numpy
from course_lib.convex import gradient_descent
from course_lib.nets import MatrixFactorization
from course_lib.preliminaries import check_gradient, fd_hessian
from course_lib.problems import Quadratic
from course_lib.validation import CourseError, DivergenceError


def _x(data, backend):
    return asarray(np.asarray(data, dtype=float), backend=backend)


# -- test functions ------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [nc.PLFunction, nc.StrictSaddle])
def test_gradient_and_hvp_match_finite_differences(cls):
    p = cls(dim=3)
    x = np.array([0.7, -1.3, 0.4])
    assert check_gradient(p.value, p.grad, x).rel_error < 1e-8
    H = to_numpy(fd_hessian(p.grad, x))
    v = np.array([0.3, -0.2, 1.1])
    np.testing.assert_allclose(to_numpy(p.hvp(x, v)), H @ v, rtol=1e-6, atol=1e-8)


def test_pl_function_is_nonconvex_but_pl_with_karimi_constant():
    p = nc.PLFunction()
    xs = np.linspace(-10, 10, 40001)
    xs = xs[xs != 0]
    f = xs**2 + 3 * np.sin(xs) ** 2
    g = 2 * xs + 3 * np.sin(2 * xs)
    assert np.all(g**2 >= 2 * p.pl_constant * f)  # the PL inequality, mu = 1/32
    assert np.min(g**2 / (2 * f)) < 0.2  # ... and it is not much better than ~0.1755
    assert to_float(p.hvp(np.array([np.pi / 2]), np.array([1.0]))[0]) == pytest.approx(-4.0)  # negative curvature
    assert np.max(2 + 6 * np.cos(2 * xs)) == pytest.approx(p.L, rel=1e-6)


def test_strict_saddle_constants():
    p = nc.StrictSaddle(dim=3, radius=2.0)
    assert (p.L, p.rho) == (11.0, 12.0)
    assert to_float(p.value(p.x_star)) == -0.25
    np.testing.assert_allclose(to_numpy(p.grad(p.x_star)), 0.0)
    lam, _ = nc.lanczos(lambda v: p.hvp(p.saddle, v), np.ones(3), k=3)
    np.testing.assert_allclose(lam, [-1.0, 1.0], atol=1e-12)  # two distinct eigenvalues: Krylov space stops at 2


# -- stationarity and PL -------------------------------------------------------------------------
@pytest.mark.parametrize("problem,x0", [(nc.PLFunction(dim=5), [2.0, -1.4, 0.3, 3.9, -2.2]),
                                        (nc.StrictSaddle(dim=2), [1.5, 1e-3])])
def test_gd_min_grad_norm_bound_every_iteration(problem, x0):
    x0 = np.array(x0)
    tr = gradient_descent(problem, x0, step_size=1 / problem.L, max_iter=300, keep_x=True)
    f_star = to_float(problem.value(problem.x_star))
    T = np.arange(1, len(tr.f))  # min over the first T gradients g_0 .. g_{T-1}
    min_sq = np.minimum.accumulate(tr.grad_norm[:-1] ** 2)
    bound = nc.gd_stationarity_bound(problem.L, tr.f[0], f_star, T)
    assert np.all(min_sq <= bound * (1 + 1e-12))
    if isinstance(problem, nc.StrictSaddle):  # L holds on the box |y| <= radius: the run stays there
        assert np.abs(tr.x[:, -1]).max() <= problem.radius


def test_pl_linear_rate_every_iteration(backend):
    p = nc.PLFunction(dim=4, backend=backend)
    tr = gradient_descent(p, _x([2.5, -1.0, 4.0, 0.5], backend), max_iter=400)
    bound = nc.pl_rate_bound(p.L, p.pl_constant, tr.f[0], tr.iteration)
    assert np.all(tr.f <= bound * (1 + 1e-12) + 1e-300)
    assert tr.f[-1] < 1e-3 * tr.f[0]


def test_noisy_gd_ghadimi_lan_bound_and_zero_noise_is_gd():
    p = nc.PLFunction(dim=3)
    x0 = np.array([2.0, -3.0, 1.0])
    eta, sigma, T = 1 / p.L, 0.5, 200
    avg = np.mean([np.mean(nc.noisy_gradient_descent(p, x0, eta, sigma, T, seed=s).grad_norm[:T] ** 2)
                   for s in range(10)])
    assert avg <= 2 * to_float(p.value(x0)) / (eta * T) + p.L * eta * p.dim * sigma**2
    assert avg > 0.5 * 0.5 * eta * p.L * sigma**2  # the noise floor is really there (not plain GD)
    np.testing.assert_array_equal(nc.noisy_gradient_descent(p, x0, eta, 0.0, 50).f,
                                  gradient_descent(p, x0, step_size=eta, max_iter=50).f)


# -- saddles and perturbed gradient descent -------------------------------------------------------
def test_pgd_parameters_follow_jin_et_al():
    d, L, rho, eps, df, c, delta = 2, 11.0, 12.0, 1e-2, 0.75, 0.5, 0.1
    prm = nc.pgd_parameters(d, L, rho, eps, df, c=c, delta=delta)
    chi = 3 * max(math.log(d * L * df / (c * eps**2 * delta)), 4)
    assert prm.chi == pytest.approx(chi, rel=1e-14)
    assert prm.step_size == pytest.approx(c / L)
    assert prm.radius == pytest.approx(math.sqrt(c) / chi**2 * eps / L)
    assert prm.g_thres == pytest.approx(math.sqrt(c) / chi**2 * eps)
    assert prm.f_thres == pytest.approx(c / chi**3 * math.sqrt(eps**3 / rho))
    assert prm.t_thres == math.ceil(chi / c**2 * L / math.sqrt(rho * eps))
    assert nc.pgd_parameters(1, 1.0, 1.0, 1.0, 1e-9, delta=0.9).chi == 12.0  # the max(., 4) branch
    with pytest.raises(CourseError, match="L\\^2/rho"):
        nc.pgd_parameters(d, L, rho, 20.0, df)


def test_gd_on_stable_manifold_converges_to_saddle(backend):
    p = nc.StrictSaddle(backend=backend)
    tr = gradient_descent(p, _x([1.0, 0.0], backend), max_iter=400)
    np.testing.assert_allclose(to_numpy(tr.x_final), [0.0, 0.0], atol=1e-14)
    assert tr.f_final == pytest.approx(0.0, abs=1e-28) and tr.f_final > -0.25  # stationary, not optimal


def test_pgd_escapes_and_returns_second_order_stationary_point(backend):
    p = nc.StrictSaddle(backend=backend)
    x0, eps = _x([1.0, 0.0], backend), 1e-2
    prm = nc.pgd_parameters(2, p.L, p.rho, eps, to_float(p.value(x0)) + 0.25)
    tr = nc.perturbed_gradient_descent(p, x0, prm, max_iter=20000, seed=0)
    x = to_numpy(tr.x_final)
    assert tr.status == "converged" and tr.info["perturbed"].sum() >= 1
    np.testing.assert_allclose(np.abs(x), [0.0, 1.0], atol=1e-6)  # a minimum (0, +-1)
    assert np.linalg.norm(to_numpy(p.grad(tr.x_final))) <= eps
    lam_min = nc.lanczos(lambda v: p.hvp(tr.x_final, v), _x([1.0, 1.0], backend), k=2)[0][0]
    assert lam_min >= -math.sqrt(p.rho * eps)
    # theorem 3's iteration count, up to its absolute constant: here well below L (f0 - f*) / eps^2 chi^4
    assert tr.n_iter <= p.L * 0.75 / eps**2 * prm.chi**4


def test_pgd_same_seed_same_trace_numpy_torch_agree():
    p = nc.StrictSaddle()
    prm = nc.pgd_parameters(2, p.L, p.rho, 1e-2, 0.75)
    a = nc.perturbed_gradient_descent(p, np.array([1.0, 0.0]), prm, max_iter=600, seed=3, terminate=False)
    b = nc.perturbed_gradient_descent(p, np.array([1.0, 0.0]), prm, max_iter=600, seed=3, terminate=False)
    np.testing.assert_array_equal(a.f, b.f)
    c = nc.perturbed_gradient_descent(p.to("torch"), asarray([1.0, 0.0], "torch"), prm, max_iter=600, seed=3,
                                      terminate=False)
    np.testing.assert_allclose(c.f, a.f, rtol=1e-12, atol=1e-14)
    d = nc.perturbed_gradient_descent(p, np.array([1.0, 0.0]), prm, max_iter=600, seed=4, terminate=False)
    assert np.abs(d.f - a.f).max() > 1e-3  # another seed, another escape


def test_escape_time_prediction_within_factor_1_5():
    p = nc.StrictSaddle(dim=3)
    x0 = np.array([1.0, -1.0, 0.0])
    prm = nc.pgd_parameters(3, p.L, p.rho, 1e-2, 1.0)
    times = [nc.escape_time(nc.perturbed_gradient_descent(p, x0, prm, max_iter=800, seed=s, terminate=False,
                                                          keep_x=True), p.saddle, 0.5) for s in range(15)]
    pred = nc.predicted_escape_time(prm.step_size, 1.0, prm.radius, 3, 0.5)
    assert pred / 1.5 <= np.median(times) <= 1.5 * pred


def test_uniform_ball_radius_and_second_moment():
    rng = RNG(0)
    pts = np.array([nc.uniform_ball(rng, 4, 2.0) for _ in range(4000)])
    assert np.linalg.norm(pts, axis=1).max() <= 2.0
    np.testing.assert_allclose(np.mean(pts**2, axis=0), 4.0 / 6, rtol=0.1)  # E xi_i^2 = r^2/(d+2)
    assert np.mean(np.linalg.norm(pts, axis=1) <= 2.0 * 0.5 ** 0.25) == pytest.approx(0.5, abs=0.03)


# -- curvature ---------------------------------------------------------------------------------------
def test_lanczos_full_and_partial_spectra(backend):
    rng = np.random.default_rng(1)
    Q, _ = np.linalg.qr(rng.standard_normal((300, 300)))
    eig = np.r_[-5.0, np.linspace(-1, 1, 298), 8.0]
    A = (Q * eig) @ Q.T
    A = (A + A.T) / 2
    A_b, v0 = _x(A, backend), _x(rng.standard_normal(300), backend)
    theta, V = nc.lanczos(lambda v: A_b @ v, v0, k=40)
    assert theta[-1] == pytest.approx(8.0, rel=1e-10) and theta[0] == pytest.approx(-5.0, rel=1e-10)
    v = to_numpy(V[:, -1])
    assert np.linalg.norm(A @ v - 8.0 * v) < 1e-6
    B = A[:12, :12]
    theta_full, _ = nc.lanczos(lambda v: _x(B, backend) @ v, v0[:12], k=12)
    np.testing.assert_allclose(theta_full, np.linalg.eigvalsh(B), atol=1e-10)


@pytest.mark.parametrize("method", ["lanczos", "power"])
def test_top_hessian_eigenvalue_matches_eigvalsh(backend, method):
    q = Quadratic.random(40, cond=50.0, seed=2, backend=backend)
    lam = nc.top_hessian_eigenvalue(q, q.zeros(), method=method, k=40, tol=1e-14, max_iter=5000)
    assert lam == pytest.approx(np.linalg.eigvalsh(to_numpy(q.A))[-1], rel=1e-8)


def test_hvp_autograd_problem_and_fd_agree(torch_backend):
    mf = MatrixFactorization.random(5, 4, 2, seed=0, backend=torch_backend)
    x, v = mf.init(1.0, seed=1), mf.init(1.0, seed=2)
    exact = to_numpy(nc.hvp(mf, x, v, "problem"))
    np.testing.assert_allclose(to_numpy(nc.hvp(mf, x, v, "autograd")), exact, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(to_numpy(nc.hvp(mf, x, v, "fd")), exact, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(to_numpy(nc.hvp(mf.to("numpy"), to_numpy(x), to_numpy(v), "fd")), exact, rtol=1e-6,
                               atol=1e-7)
    with pytest.raises(CourseError, match="method"):
        nc.hvp(mf, x, v, "exact")


def test_sharpness_on_quadratic_equals_lambda_max_along_gd():
    q = Quadratic.random(20, cond=30.0, seed=5)
    tr = nc.gd_with_sharpness(q, np.ones(20), step_size=1 / q.L, max_iter=30, every=10)
    sh = tr.info["sharpness"]
    assert np.sum(~np.isnan(sh)) == 4
    np.testing.assert_allclose(sh[~np.isnan(sh)], q.eigenvalues[-1], rtol=1e-10)


# -- edge of stability -----------------------------------------------------------------------------------
def test_gd_on_quadratic_diverges_exactly_above_two_over_lambda_max(backend):
    q = Quadratic.random(10, cond=20.0, seed=3, backend=backend)
    lam = nc.sharpness(q, q.zeros())
    x0 = q.zeros() + 1.0
    runs = nc.step_size_sweep(q, x0, [1.98 / lam, 2.02 / lam], max_iter=3000)
    below, above = runs.values()
    assert below.status != "diverged" and below.f_final - q.f_star < 1e-6
    assert above.status == "diverged" and "diverged" in above.message
    with pytest.raises(DivergenceError) as err:
        gradient_descent(q, x0, step_size=2.02 / lam, max_iter=3000, check_step=False)
    assert err.value.trace.status == "diverged"
    with pytest.raises(CourseError, match="2/L"):
        gradient_descent(q, x0, step_size=2.02 / lam)


# -- SAM -------------------------------------------------------------------------------------------------
def test_one_sam_step_matches_hand_computation(backend):
    q = Quadratic(np.diag([1.0, 4.0]), backend=backend)
    x = _x([1.0, 1.0], backend)
    got = to_numpy(nc.sam_step(q.grad, x, step_size=0.1, rho=0.1))
    e = 0.1 * np.array([1.0, 4.0]) / math.sqrt(17.0)  # eps = rho g / ||g||, g = A x = (1, 4)
    np.testing.assert_allclose(got, [1 - 0.1 * (1 + e[0]), 1 - 0.1 * 4 * (1 + e[1])], rtol=1e-14)


def test_one_asam_step_matches_hand_computation(backend):
    q = Quadratic(np.diag([1.0, 4.0]), backend=backend)
    x = _x([1.0, -2.0], backend)
    T = np.array([1.01, 2.01])  # |x| + eta
    g = np.array([1.0, -8.0])
    e = 0.3 * T**2 * g / np.linalg.norm(T * g)
    got = to_numpy(nc.sam_step(q.grad, x, step_size=0.05, rho=0.3, adaptive=True, eta=0.01))
    np.testing.assert_allclose(got, np.array([1.0, -2.0]) - 0.05 * np.array([1.0, 4.0]) * (np.array([1.0, -2.0]) + e),
                               rtol=1e-14)
    np.testing.assert_array_equal(to_numpy(nc.sam_perturbation(0 * x, x, 0.3)), [0.0, 0.0])


def test_sam_stationarity_bound_every_iteration_and_rho_zero_is_gd(backend):
    p = nc.PLFunction(dim=3, backend=backend)
    x0 = _x([3.0, -2.0, 1.2], backend)
    for adaptive in (False, True):
        tr = nc.sam(p, x0, rho=0.05, max_iter=300, adaptive=adaptive)
        # ||eps|| <= rho for SAM, <= rho max_i (|x_i| + eta) for ASAM
        rho_eff = 0.05 * (np.abs(tr.x).max() + 0.01) if adaptive else 0.05
        T = np.arange(1, len(tr.f))
        bound = nc.sam_stationarity_bound(p.L, tr.f[0], 0.0, rho_eff, T)
        assert np.all(np.minimum.accumulate(tr.grad_norm[:-1] ** 2) <= bound * (1 + 1e-12))
    np.testing.assert_allclose(nc.sam(p, x0, rho=0.0, max_iter=50).f,
                               gradient_descent(p, x0, max_iter=50).f, rtol=0, atol=0)


def test_sam_numpy_torch_agree():
    p = nc.PLFunction(dim=3)
    a = nc.sam(p, np.array([3.0, -2.0, 1.2]), rho=0.1, max_iter=100, adaptive=True)
    b = nc.sam(p.to("torch"), asarray([3.0, -2.0, 1.2], "torch"), rho=0.1, max_iter=100, adaptive=True)
    np.testing.assert_allclose(b.f, a.f, rtol=1e-12, atol=1e-15)


def test_bad_inputs_raise_course_errors():
    p = nc.PLFunction(dim=2)
    with pytest.raises(CourseError, match="PGDParams"):
        nc.perturbed_gradient_descent(p, np.zeros(2), {"step_size": 0.1})
    with pytest.raises(CourseError, match="zero vector"):
        nc.lanczos(lambda v: v, np.zeros(3))
    with pytest.raises(CourseError, match="rho"):
        nc.sam_perturbation(np.ones(2), np.ones(2), -1.0)
    with pytest.raises(CourseError, match="step_size"):
        nc.sam(p, np.ones(2), step_size=0.3)
    with pytest.raises(CourseError, match="lanczos"):
        nc.top_hessian_eigenvalue(p, np.ones(2), method="qr")


def test_pgd_replays_given_noise_and_perturbs_on_schedule():
    q = Quadratic(np.eye(2))  # grad = x: with g_thres huge, perturb at t = 0, t_thres + 1, 2 (t_thres + 1), ...
    prm = nc.PGDParams(step_size=0.5, radius=1.0, g_thres=1e9, f_thres=0.0, t_thres=3, chi=12.0)
    noise = np.arange(12.0).reshape(6, 2)
    tr = nc.perturbed_gradient_descent(q, np.array([3.0, 4.0]), prm, max_iter=10, terminate=False, noise=noise,
                                       keep_x=True)
    np.testing.assert_array_equal(tr.iteration[tr.info["perturbed"] == 1], [0, 4, 8])
    np.testing.assert_allclose(tr.x[0], [3.0, 5.0])  # x0 + noise[0]
    np.testing.assert_allclose(tr.x[4], 0.5**4 * np.array([3.0, 5.0]) + noise[1])
    with pytest.raises(CourseError, match="noise has 2 rows"):
        nc.perturbed_gradient_descent(q, np.array([3.0, 4.0]), prm, max_iter=10, terminate=False, noise=noise[:2])

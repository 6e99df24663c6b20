"""Tests of course_lib.online: exact comparators, regret bounds at every round, reference libraries.

Bounds (each checked at EVERY round t, on several environments, with a 1e-9 slack for rounding):
  OGD eta_t = D/(G sqrt t)      Regret_t <= (3/2) G D sqrt(t)                  Hazan 2022, Thm 3.1
  OGD eta_t = 1/(alpha t)       Regret_t <= G^2/(2 alpha) (1 + ln t)           Hazan 2022, Thm 3.3
  OGD constant eta              Regret_t <= D^2/(2 eta) + eta G^2 t / 2          Zinkevich 2003
  OGD adaptive (AdaGrad-norm)   Regret_t <= sqrt(2) D sqrt(sum ||g_s||^2)       Orabona 2019, Thm 4.14
  FTL, strongly convex          Regret_t <= sum_s ||g_s||^2 / (2 alpha s)      Orabona 2019, Cor. 7.24
  FTRL                          Regret_t <= range(psi)/eta + eta/2 sum ||g||_*^2 Orabona 2019, Cor. 7.9
  Hedge                         Regret_t <= ln N/eta + eta t/8, = sqrt(T ln N/2) CBL 2006, Thm 2.2
  Diagonal AdaGrad              DHS 2011, Thm 5
Exact facts: FTL regret t - 1/2 on the alternating sequence; comparator vs SciPy; AdaGrad vs torch.optim.Adagrad;
Hedge weights vs scipy.special.softmax; FTRL-entropic = EG = Hedge; NumPy vs torch to 1e-12.
"""
import math

import numpy as np
import pytest
import scipy.optimize
import scipy.special

from course_lib import online as ol
from course_lib.backend import to_numpy
from course_lib.datasets import make_regression
from course_lib.problems import LeastSquares
from course_lib.projections import Ball, Box, Simplex
from course_lib.validation import CourseError, DivergenceError

SLACK = 1e-9


def envs_convex(backend, T=200):
    return {
        "stochastic_linear": ol.stochastic_linear(Ball(1.0), T, 4, mean=[0.5, -0.2, 0.1, 0.0], seed=1, backend=backend),
        "stochastic_quadratic": ol.stochastic_quadratic(Ball(2.0), T, 3, mean=[1.0, 0.0, 0.5], seed=2, backend=backend),
        "alternating": ol.alternating(T, backend=backend),
        "adaptive_linear": ol.adaptive_linear(3, radius=1.5, G=2.0, backend=backend),
        "experts_simplex": ol.stochastic_experts([0.5, 0.5, 0.4, 0.6], T, seed=3, backend=backend),
    }


# --- the exact comparator --------------------------------------------------------------------------

@pytest.mark.parametrize("K", [Ball(1.5), Simplex(), Box(-1.0, 2.0, 4)], ids=repr)
def test_best_fixed_linear_matches_linprog_or_closed_form(K):
    g = np.random.default_rng(0).standard_normal((30, 4))
    u, v = ol.best_fixed(K, [ol.LinearLoss(r) for r in g])
    G = g.sum(0)
    if isinstance(K, Ball):
        assert v == pytest.approx(-1.5 * np.linalg.norm(G), rel=1e-13)
        np.testing.assert_allclose(u, -1.5 * G / np.linalg.norm(G), rtol=1e-13)
    else:
        A_eq, b_eq, bounds = (np.ones((1, 4)), [1.0], (0, None)) if isinstance(K, Simplex) else (None, None, (-1.0, 2.0))
        ref = scipy.optimize.linprog(G, A_eq=A_eq, b_eq=b_eq, bounds=bounds, method="highs")
        assert v == pytest.approx(ref.fun, rel=1e-10, abs=1e-10)
        assert float(G @ u) == pytest.approx(v, rel=1e-13)


@pytest.mark.parametrize("K", [Ball(0.8), Simplex()], ids=repr)
def test_best_fixed_quadratic_matches_scipy(K):
    rng = np.random.default_rng(1)
    Z = np.stack([K.project(z) for z in rng.standard_normal((25, 3)) + 0.7])
    losses = [ol.QuadraticLoss(z, 2.0) for z in Z]
    u, v = ol.best_fixed(K, losses)
    F = lambda x: sum(f.value(x) for f in losses)
    cons = ({"type": "ineq", "fun": lambda x: 0.64 - x @ x} if isinstance(K, Ball)
            else {"type": "eq", "fun": lambda x: x.sum() - 1})
    ref = scipy.optimize.minimize(F, np.full(3, 1 / 3), method="SLSQP", constraints=[cons],
                                  bounds=None if isinstance(K, Ball) else [(0, None)] * 3, tol=1e-14)
    assert v == pytest.approx(F(u), rel=1e-12)
    assert v <= ref.fun + 1e-9 and v == pytest.approx(ref.fun, rel=1e-7)
    np.testing.assert_allclose(u, ref.x, atol=1e-5)


def test_play_regret_equals_brute_force_recomputation(backend):
    env = ol.stochastic_experts([0.3, 0.5, 0.7], 150, seed=4, backend=backend)
    tr = ol.exponentiated_gradient(env, 150, eta=0.3, keep_x=True)
    L = to_numpy(env.data)
    learner = np.cumsum(np.sum(tr.x * L, axis=1))
    best = np.cumsum(L, axis=0).min(axis=1)
    np.testing.assert_allclose(tr.regret, learner - best, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(tr.loss, np.sum(tr.x * L, axis=1), rtol=1e-12, atol=1e-14)


# --- OGD -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["stochastic_linear", "stochastic_quadratic", "alternating", "adaptive_linear",
                                  "experts_simplex"])
def test_ogd_convex_bound_every_round(backend, name):
    env = envs_convex(backend)[name]
    tr = ol.ogd(env, 200)
    bound = ol.ogd_bound(env.G, env.K.diameter, tr.t)
    assert np.all(tr.regret <= bound + SLACK), np.max(tr.regret - bound)
    assert tr.status == "max_iter" and np.isfinite(tr.regret).all()


@pytest.mark.parametrize("seed,alpha,K", [(0, 1.0, Ball(1.0)), (5, 3.0, Ball(2.0)), (7, 0.5, Simplex())])
def test_ogd_strongly_convex_log_bound_every_round(seed, alpha, K):
    env = ol.stochastic_quadratic(K, 400, 3, mean=[0.5, 0.2, 0.3], noise=1.5, alpha=alpha, seed=seed)
    tr = ol.ogd(env, 400, step_size="strongly_convex")
    assert np.all(tr.regret <= ol.strongly_convex_bound(env.G, alpha, tr.t) + SLACK)
    # log regret: far below the sqrt(T) bound of the convex step at T = 400
    assert tr.regret[-1] < ol.strongly_convex_bound(env.G, alpha, 400) < ol.ogd_bound(env.G, K.diameter, 400)


def test_ogd_strongly_convex_is_ftl_on_quadratics_in_a_ball():
    # eta_t = 1/(alpha t) makes x_{t+1} the running mean of z_1..z_t, which is FTL's leader (the mean stays in K)
    env = ol.stochastic_quadratic(Ball(1.0), 100, 3, alpha=2.0, seed=8)
    a = ol.ogd(env, 100, step_size="strongly_convex", keep_x=True)
    b = ol.ftl(env, 100, keep_x=True)
    np.testing.assert_allclose(a.x[1:], b.x[1:], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(a.x[1:], np.cumsum(to_numpy(env.data), 0)[:-1] / np.arange(1, 100)[:, None], atol=1e-13)


@pytest.mark.parametrize("eta", [0.01, 0.1, 1.0])
def test_ogd_constant_step_bound_every_round(eta):
    env = ol.stochastic_linear(Ball(1.0), 300, 3, mean=[0.3, 0.0, -0.1], seed=9)
    tr = ol.ogd(env, 300, step_size=eta)
    D, G = env.K.diameter, env.G
    assert np.all(tr.regret <= D**2 / (2 * eta) + eta * G**2 * tr.t / 2 + SLACK)


@pytest.mark.parametrize("name", ["stochastic_linear", "stochastic_quadratic", "adaptive_linear"])
def test_ogd_adaptive_bound_every_round(name):
    env = envs_convex("numpy")[name]
    tr = ol.ogd(env, 200, step_size="adaptive")
    bound = math.sqrt(2) * env.K.diameter * np.sqrt(np.cumsum(tr.grad_norm**2))
    assert np.all(tr.regret <= bound + SLACK)


def test_ogd_constant_step_without_projection_is_torch_sgd():
    torch = pytest.importorskip("torch")
    env = ol.stochastic_quadratic(Ball(10.0), 50, 3, mean=[0.5, 0.2, 0.1], noise=0.3, seed=3)
    tr = ol.ogd(env, 50, step_size=0.05, keep_x=True)
    w = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.SGD([w], lr=0.05)
    Z = torch.as_tensor(to_numpy(env.data))
    for t in range(50):
        np.testing.assert_allclose(tr.x[t], w.detach().numpy(), rtol=1e-12, atol=1e-14)
        opt.zero_grad()
        (0.5 * ((w - Z[t]) ** 2).sum()).backward()
        opt.step()
    assert np.all(np.linalg.norm(tr.x, axis=1) < 10.0)  # the projection never acted


# --- FTL -------------------------------------------------------------------------------------------

def test_ftl_linear_regret_on_alternating_sequence(backend):
    tr = ol.ftl(ol.alternating(101, backend=backend), 101)
    np.testing.assert_allclose(tr.regret, tr.t - 0.5, rtol=0, atol=1e-12)  # Regret_t = t - 1/2 exactly
    # regularisation fixes it: OGD and FTRL stay within their sqrt(t) bounds on the same sequence
    assert ol.ogd(ol.alternating(101, backend=backend), 101).regret[-1] <= ol.ogd_bound(1.0, 2.0, 101)
    assert ol.ftrl(ol.alternating(101, backend=backend), 101, eta=0.1).regret[-1] < 10


def test_ftl_linear_regret_against_adaptive_experts_hedge_sublinear():
    N, T = 5, 500
    f = ol.ftl(ol.adaptive_experts(N), T)
    np.testing.assert_allclose(f.cumulative_loss, f.t - 1 + 1 / N, atol=1e-12)  # hit every round after x_1 uniform
    assert np.all(f.regret >= f.t * (1 - 1 / N) - 1)            # best expert has loss <= ceil(t / N)
    h = ol.hedge(ol.adaptive_experts(N), T)
    assert np.all(h.regret <= ol.hedge_bound(N, h.t, eta=h.params["eta"]) + SLACK)


@pytest.mark.parametrize("K", [Ball(1.0), Simplex()], ids=repr)
def test_ftl_strongly_convex_bound_every_round(K):
    env = ol.stochastic_quadratic(K, 300, 3, mean=[0.2, 0.5, 0.1], alpha=1.5, seed=11)
    tr = ol.ftl(env, 300)
    assert np.all(tr.regret <= np.cumsum(tr.grad_norm**2 / (2 * 1.5 * tr.t)) + SLACK)


# --- FTRL, EG, Hedge ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name,psi_range", [("stochastic_linear", 0.5), ("stochastic_quadratic", 2.0),
                                            ("alternating", 0.5), ("experts_simplex", 0.5 * (1 - 1 / 4))])
@pytest.mark.parametrize("eta", [0.05, 0.5])
def test_ftrl_quadratic_bound_every_round(name, psi_range, eta):
    env = envs_convex("numpy")[name]
    tr = ol.ftrl(env, 200, eta=eta)
    assert np.all(tr.regret <= psi_range / eta + eta / 2 * np.cumsum(tr.grad_norm**2) + SLACK)


def test_ftrl_quadratic_with_inactive_ball_is_ogd_constant_step():
    env = ol.stochastic_linear(Ball(100.0), 80, 3, seed=12)
    a, b = ol.ftrl(env, 80, eta=0.1, keep_x=True), ol.ogd(env, 80, step_size=0.1, keep_x=True)
    np.testing.assert_allclose(a.x, b.x, rtol=1e-12, atol=1e-13)


def test_ftrl_entropic_equals_eg_equals_hedge_and_softmax_weights(backend):
    env = ol.stochastic_experts([0.2, 0.5, 0.6, 0.9, 0.4], 120, seed=13, backend=backend)
    eta = 0.7
    a = ol.ftrl(env, 120, eta=eta, regularizer="entropic", keep_x=True)
    b = ol.exponentiated_gradient(env, 120, eta=eta, keep_x=True)
    c = ol.hedge(env, 120, eta=eta, keep_x=True)
    L = np.vstack([np.zeros(5), np.cumsum(to_numpy(env.data), 0)[:-1]])
    np.testing.assert_allclose(c.x, scipy.special.softmax(-eta * L, axis=1), rtol=1e-12, atol=1e-15)
    for tr in (a, b):
        np.testing.assert_allclose(tr.x, c.x, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(tr.regret, c.regret, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("env_name", ["equal_means", "gap", "adaptive", "switching"])
@pytest.mark.parametrize("T", [50, 400])
def test_hedge_bound_every_round(env_name, T):
    N = 8
    if env_name == "equal_means":
        env = ol.stochastic_experts([0.5] * N, T, seed=14)
    elif env_name == "gap":
        env = ol.stochastic_experts([0.2] + [0.6] * (N - 1), T, seed=15)
    elif env_name == "adaptive":
        env = ol.adaptive_experts(N)
    else:  # oblivious adversary: the good expert changes every 25 rounds
        L = np.ones((T, N))
        L[np.arange(T), (np.arange(T) // 25) % N] = 0.0
        env = ol.Sequence(Simplex(), L)
    tr = ol.hedge(env, T)
    assert tr.params["eta"] == pytest.approx(math.sqrt(8 * math.log(N) / T))
    assert np.all(tr.regret <= ol.hedge_bound(N, tr.t, eta=tr.params["eta"]) + SLACK)
    assert tr.regret[-1] <= math.sqrt(T / 2 * math.log(N)) + SLACK


def test_hedge_concentrates_on_the_best_expert_with_a_gap():
    env = ol.stochastic_experts([0.1, 0.6, 0.6, 0.6], 2000, seed=16)
    tr = ol.hedge(env, 2000, keep_x=True)
    assert tr.x[-1, 0] > 0.99
    # once the weight sits on the best expert the regret stops growing (vs sqrt(T) in the worst case)
    assert abs(tr.regret[-1] - tr.regret[999]) < 1.0 < 0.1 * ol.hedge_bound(4, 1000)


@pytest.mark.parametrize("seed", [0, 1])
def test_eg_bound_on_quadratic_losses_on_simplex(seed):
    env = ol.stochastic_quadratic(Simplex(), 300, 4, mean=[0.7, 0.1, 0.1, 0.1], noise=0.5, seed=seed)
    eta = 0.3
    tr = ol.exponentiated_gradient(env, 300, eta=eta)
    # ||g||_inf <= ||g||_2 makes this weaker than the theorem, still a valid check
    assert np.all(tr.regret <= math.log(4) / eta + eta / 2 * np.cumsum(tr.grad_norm**2) + SLACK)


# --- AdaGrad ---------------------------------------------------------------------------------------

def test_adagrad_matches_torch_optim_adagrad_when_box_is_inactive():
    torch = pytest.importorskip("torch")
    env = ol.stochastic_linear(Box(-100.0, 100.0, 4), 60, 4, mean=[1.0, -0.5, 0.2, 0.0], seed=17)
    tr = ol.adagrad(env, 60, eta=0.3, delta=1e-10, keep_x=True)
    w = torch.zeros(4, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adagrad([w], lr=0.3, eps=1e-10)
    for t in range(60):
        np.testing.assert_allclose(tr.x[t], w.detach().numpy(), rtol=1e-12, atol=1e-14)
        opt.zero_grad()
        (torch.as_tensor(env.data[t]) * w).sum().backward()
        opt.step()


@pytest.mark.parametrize("seed,mean", [(18, [0.5, 0.0, -0.3]), (19, [0.0, 0.0, 0.0])])
def test_adagrad_bound_every_round(seed, mean):
    env = ol.stochastic_linear(Box(-1.0, 1.0, 3), 300, 3, mean=mean, seed=seed)
    tr = ol.adagrad(env, 300)
    g = to_numpy(env.data)
    col = np.sqrt(np.cumsum(g**2, axis=0)).sum(axis=1)  # sum_i ||g_{1:t,i}||_2
    assert np.all(tr.regret <= math.sqrt(2) * 2.0 * col + SLACK)


# --- online-to-batch -------------------------------------------------------------------------------

def test_online_to_batch_jensen_and_expected_bound():
    A, b, _ = make_regression(100, 4, noise=0.5, seed=20)
    P = LeastSquares(A, b, lam=0.0)
    radius = 1.2 * float(np.linalg.norm(P.x_star))
    T = 400
    gaps = []
    for seed in range(4):
        tr = ol.online_to_batch(P, T, radius=radius, seed=seed)
        # Jensen: F(mean of x_s) <= mean of F(x_s), at every t
        assert np.all(tr.f <= np.cumsum(tr.info["f_last"]) / tr.iteration + 1e-12)
        env_G = ol._gradient_bound(P, Ball(radius))
        assert np.all(tr.info["regret"] <= ol.ogd_bound(env_G, 2 * radius, tr.iteration) + SLACK)
        gaps.append(tr.f[-1] - P.f_star)
    assert 0 <= np.mean(gaps) <= 1.5 * env_G * 2 * radius / math.sqrt(T)


def test_online_to_batch_needs_x_star_inside_the_ball():
    A, b, _ = make_regression(50, 3, seed=21)
    P = LeastSquares(A, b)
    with pytest.raises(CourseError, match="radius >="):
        ol.online_to_batch(P, 10, radius=1e-3)


# --- backends and determinism ------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["ogd", "ogd_sc", "ftl", "ftrl", "hedge", "adagrad", "adaptive"])
def test_numpy_and_torch_agree(torch_backend, method):
    def run(be):
        if method == "ogd":
            return ol.ogd(ol.stochastic_linear(Ball(1.0), 100, 3, seed=22, backend=be), 100)
        if method == "ogd_sc":
            return ol.ogd(ol.stochastic_quadratic(Simplex(), 100, 3, seed=23, backend=be), 100, "strongly_convex")
        if method == "ftl":
            return ol.ftl(ol.stochastic_quadratic(Ball(1.0), 100, 3, seed=24, backend=be), 100)
        if method == "ftrl":
            return ol.ftrl(ol.stochastic_linear(Simplex(), 100, 3, seed=25, backend=be), 100, eta=0.2)
        if method == "hedge":
            return ol.hedge(ol.adaptive_experts(6, backend=be), 100)
        if method == "adagrad":
            return ol.adagrad(ol.stochastic_linear(Box(-1.0, 1.0, 3), 100, 3, seed=26, backend=be), 100)
        return ol.ogd(ol.adaptive_linear(3, backend=be), 100, step_size="adaptive")

    a, b = run("numpy"), run(torch_backend)
    np.testing.assert_allclose(b.regret, a.regret, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(b.loss, a.loss, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(to_numpy(b.x_final), to_numpy(a.x_final), rtol=1e-12, atol=1e-14)


def test_same_seed_same_trace():
    a = ol.ogd(ol.stochastic_linear(Ball(1.0), 50, 3, seed=27), 50)
    b = ol.ogd(ol.stochastic_linear(Ball(1.0), 50, 3, seed=27), 50)
    c = ol.ogd(ol.stochastic_linear(Ball(1.0), 50, 3, seed=28), 50)
    np.testing.assert_array_equal(a.regret, b.regret)
    assert not np.array_equal(a.regret, c.regret)


# --- errors and divergence ---------------------------------------------------------------------------

def test_hedge_rejects_losses_outside_unit_interval():
    env = ol.Sequence(Simplex(), np.array([[0.2, 0.5], [1.5, 0.0]]))
    with pytest.raises(CourseError, match=r"\[0, 1\]; round 2 .*Rescale"):
        ol.hedge(env, 2)


@pytest.mark.parametrize("x0", [np.array([0.5, 0.6, -0.1]), np.array([0.5, 0.5, 0.0]), np.array([0.2, 0.2, 0.2])])
def test_eg_rejects_non_simplex_weights(x0):
    env = ol.stochastic_experts([0.5] * 3, 10)
    with pytest.raises(CourseError, match="probability vector"):
        ol.exponentiated_gradient(env, 10, eta=0.1, x0=x0)


def test_bad_inputs_give_clear_errors():
    lin = ol.stochastic_linear(Ball(1.0), 10, 2)
    with pytest.raises(CourseError, match="alpha > 0"):
        ol.ogd(lin, 10, step_size="strongly_convex")
    with pytest.raises(CourseError, match="step_size must be"):
        ol.ogd(lin, 10, step_size="fast")
    with pytest.raises(CourseError, match="box"):
        ol.adagrad(lin, 10)
    with pytest.raises(CourseError, match="simplex"):
        ol.ftrl(lin, 10, eta=0.1, regularizer="entropic")
    with pytest.raises(CourseError, match="K.project"):
        ol.ogd(lin, 10, x0=np.array([3.0, 0.0]))
    with pytest.raises(CourseError, match="centres z_t in K"):
        ol.Sequence(Ball(1.0), np.array([[0.0, 2.0]]), kind="quadratic")
    with pytest.raises(CourseError, match="T=10"):
        ol.ogd(lin, 11)
    with pytest.raises(CourseError, match="eta must be > 0"):
        ol.hedge(ol.stochastic_experts([0.5, 0.5], 5), 5, eta=-1.0)


def test_non_finite_losses_are_reported_as_divergence():
    rule = lambda t, x: x * 0.0 + (np.nan if t == 5 else 1.0)
    env = ol.Adaptive(Ball(1.0), 2, rule, G=2.0)
    with pytest.raises(DivergenceError) as info:
        ol.ogd(env, 10)
    assert info.value.iteration == 5
    tr = ol.ogd(env, 10, on_divergence="stop")
    assert tr.status == "diverged" and "iteration 5" in tr.message and tr.n_iter == 5

"""Second-order methods (course_lib.second_order) against SciPy, exact Fisher blocks and their definitions."""
import numpy as np
import pytest
import scipy.linalg
import scipy.optimize
import torch

from course_lib.datasets import load_dataset, random_spd
from course_lib.problems import LogisticRegression, Quadratic, Rosenbrock
from course_lib.second_order import KFAC, Shampoo, conjugate_gradient, lbfgs, matrix_power_sym, newton_cg
from course_lib.validation import CourseError


@pytest.fixture(scope="module")
def logreg():
    X, y = load_dataset("breast_cancer")
    return LogisticRegression(X, y, lam=1e-2)


def test_cg_solves_spd_systems_in_at_most_dim_steps():
    A = random_spd(30, cond=50, seed=1)
    b = np.random.default_rng(0).standard_normal(30)
    p, n = conjugate_gradient(lambda v: A @ v, b, tol=1e-12)
    np.testing.assert_allclose(p, np.linalg.solve(A, b), rtol=1e-9)
    assert n <= 40            # dim = 30 steps in exact arithmetic; measured 37 in float64
    _, n_exact = conjugate_gradient(lambda v: np.diag([1.0, 2.0, 3.0]) @ v, np.ones(3), tol=1e-14)
    assert n_exact == 3       # three distinct eigenvalues: three steps


def test_cg_stops_at_negative_curvature():
    A = np.diag([1.0, -1.0, 2.0])
    p, n = conjugate_gradient(lambda v: A @ v, np.array([0.0, 1.0, 0.0]))
    assert n == 1 and np.array_equal(p, [0.0, 1.0, 0.0])     # steepest descent fallback on the first step


def test_newton_cg_agrees_with_scipy_and_the_exact_minimiser(logreg):
    x0 = logreg.zeros()
    tr = newton_cg(logreg, x0, tol=1e-10)
    ref = scipy.optimize.minimize(logreg.value, x0, jac=logreg.grad, hessp=logreg.hvp, method="Newton-CG",
                                  options={"xtol": 1e-12, "maxiter": 200})
    np.testing.assert_allclose(tr.x_final, logreg.x_star, atol=1e-8)
    np.testing.assert_allclose(tr.x_final, ref.x, atol=1e-6)
    assert tr.status == "converged" and tr.iteration[-1] <= 20
    assert np.all(np.diff(tr.f) <= 1e-12)                    # Armijo: monotone


def test_newton_cg_is_one_step_on_a_quadratic():
    A = random_spd(20, cond=100, seed=3)
    q = Quadratic(A, b=np.ones(20))
    tr = newton_cg(q, q.zeros(), tol=1e-9, cg_tol=1e-13)
    np.testing.assert_allclose(tr.x_final, q.x_star, rtol=1e-9)
    assert tr.iteration[-1] <= 1 and tr.status == "converged"


@pytest.mark.parametrize("name", ["logistic", "rosenbrock"])
def test_lbfgs_torch_agrees_with_scipy_lbfgsb(name, logreg):
    problem = logreg if name == "logistic" else Rosenbrock(dim=6)
    x0 = problem.zeros() if name == "logistic" else np.full(6, -1.0)
    tr = lbfgs(problem, x0, history_size=10, max_iter=300, tol=1e-9)
    ref = scipy.optimize.minimize(problem.value, x0, jac=problem.grad, method="L-BFGS-B",
                                  options={"maxcor": 10, "gtol": 1e-11, "ftol": 0, "maxiter": 2000})
    np.testing.assert_allclose(tr.x_final, ref.x, atol=1e-6)
    np.testing.assert_allclose(tr.x_final, problem.x_star, atol=1e-6)


def _mlp(seed=0, sizes=(6, 5, 3)):
    torch.manual_seed(seed)
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [torch.nn.Linear(a, b, dtype=torch.float64), torch.nn.Tanh()]
    return torch.nn.Sequential(*layers[:-1])


def _per_example_grads(model, X, y):
    """Per example: each Linear layer's input and the gradient of the example's loss w.r.t. its output."""
    out = []
    for i in range(X.shape[0]):
        h, seen = X[i:i + 1], {}
        for m in model:
            inp = h
            h = m(h)
            if isinstance(m, torch.nn.Linear):
                h.retain_grad()
                seen[m] = (inp.detach(), h)
        torch.nn.functional.cross_entropy(h, y[i:i + 1]).backward()
        out.append({m: (a, s.grad.detach()) for m, (a, s) in seen.items()})
        model.zero_grad()
    return out


def test_kfac_factors_are_the_gradient_statistics_and_exact_for_one_example():
    model = _mlp()
    X = torch.randn(7, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, 1, 2, 0, 1, 2, 0])
    per = _per_example_grads(model, X, y)
    opt = KFAC(model, lr=0.1, decay=0.5)
    torch.nn.functional.cross_entropy(model(X), y).backward()
    for layer in opt.layers:
        A, G = opt.factors(layer)
        a = torch.stack([torch.cat([p[layer][0][0], torch.ones(1, dtype=torch.float64)]) for p in per])
        g = torch.stack([p[layer][1][0] for p in per])
        torch.testing.assert_close(A, a.T @ a / 7, rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(G, g.T @ g / 7, rtol=1e-12, atol=1e-14)
    # one example: A (x) G is exactly the (empirical) Fisher block vec(grad) vec(grad)^T (column-major vec)
    model1 = _mlp()
    opt1 = KFAC(model1, lr=0.1)
    torch.nn.functional.cross_entropy(model1(X[:1]), y[:1]).backward()
    for layer in opt1.layers:
        grad = torch.cat([layer.weight.grad, layer.bias.grad[:, None]], 1)
        v = grad.T.reshape(-1)
        A, G = opt1.factors(layer)
        torch.testing.assert_close(torch.kron(A, G), torch.outer(v, v), rtol=1e-10, atol=1e-13)


def test_kfac_step_is_the_damped_kronecker_preconditioned_gradient():
    model = _mlp(seed=2)
    before = [p.detach().clone() for p in model.parameters()]
    X = torch.randn(9, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    y = torch.arange(9) % 3
    opt = KFAC(model, lr=0.05, damping=1e-2)
    torch.nn.functional.cross_entropy(model(X), y).backward()
    grads = [torch.cat([m.weight.grad, m.bias.grad[:, None]], 1).clone() for m in opt.layers]
    opt.step()
    for layer, grad, (W0, b0) in zip(opt.layers, grads, zip(before[0::2], before[1::2])):
        A, G = opt.factors(layer)
        r = 0.1
        nat = (torch.linalg.solve(G + r * torch.eye(G.shape[0], dtype=G.dtype), grad)
               @ torch.linalg.inv(A + r * torch.eye(A.shape[0], dtype=A.dtype)))
        torch.testing.assert_close(layer.weight.detach(), W0 - 0.05 * nat[:, :-1], rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(layer.bias.detach(), b0 - 0.05 * nat[:, -1], rtol=1e-10, atol=1e-12)


def test_shampoo_statistics_and_step_follow_the_definition():
    torch.manual_seed(0)
    W = torch.nn.Parameter(torch.randn(4, 3, dtype=torch.float64))
    b = torch.nn.Parameter(torch.randn(4, dtype=torch.float64))
    opt = Shampoo([W, b], lr=0.3, eps=1e-3)
    L, R, H = 1e-3 * np.eye(4), 1e-3 * np.eye(3), 1e-3 * np.eye(4)
    rng = np.random.default_rng(0)
    for _ in range(3):
        target = torch.as_tensor(rng.standard_normal((4, 3)))
        W0, b0 = W.detach().numpy().copy(), b.detach().numpy().copy()
        opt.zero_grad()
        (((W - target) ** 3).sum() + (b ** 4).sum()).backward()
        Gw, gb = W.grad.numpy().copy(), b.grad.numpy().copy()
        opt.step()
        L, R, H = L + Gw @ Gw.T, R + Gw.T @ Gw, H + np.outer(gb, gb)
        expect_W = W0 - 0.3 * scipy.linalg.fractional_matrix_power(L, -0.25) @ Gw @ \
            scipy.linalg.fractional_matrix_power(R, -0.25)
        expect_b = b0 - 0.3 * scipy.linalg.fractional_matrix_power(H, -0.5) @ gb
        np.testing.assert_allclose(W.detach().numpy(), expect_W.real, rtol=1e-9, atol=1e-11)
        np.testing.assert_allclose(b.detach().numpy(), expect_b.real, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(opt.state[W]["L"].numpy(), L, rtol=1e-12)


def test_matrix_power_sym_matches_scipy():
    M = torch.as_tensor(random_spd(5, cond=20, seed=4))
    np.testing.assert_allclose(matrix_power_sym(M, -0.25).numpy(),
                               scipy.linalg.fractional_matrix_power(M.numpy(), -0.25).real, rtol=1e-10)


def test_kfac_trains_and_refuses_models_without_linear_layers():
    X, y = load_dataset("iris")
    X, y = torch.as_tensor(X), torch.as_tensor(y, dtype=torch.long)
    model = _mlp(sizes=(4, 8, 3))
    opt = KFAC(model, lr=0.3, damping=1e-2, momentum=0.5)
    first = None
    for _ in range(30):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(X), y)
        first = first if first is not None else loss.item()
        loss.backward()
        opt.step()
    assert loss.item() < 0.25 * first
    with pytest.raises(CourseError, match="no nn.Linear"):
        KFAC(torch.nn.Sequential(torch.nn.Tanh()))

"""Small nonconvex models against torch autograd, torch.nn, torch.optim.SGD and closed forms."""
import numpy as np
import pytest
import torch

from course_lib import nets
from course_lib.backend import RNG, asarray, to_numpy
from course_lib.convex import gradient_descent
from course_lib.nonconvex import lanczos
from course_lib.preliminaries import check_gradient, fd_hessian
from course_lib.validation import CourseError, DivergenceError


@pytest.fixture(scope="module")
def digits():
    X_tr, X_te, y_tr, y_te = nets.load_digits(test_fraction=0.25, seed=0)
    return X_tr[:300], X_te[:200], y_tr[:300], y_te[:200]


def _sequential(net, theta):
    """The torch.nn model with the same weights (Linear stores W^T)."""
    layers = []
    for l, (W, b) in enumerate(net.params(torch.as_tensor(theta))):
        lin = torch.nn.Linear(*W.shape, dtype=torch.float64)
        with torch.no_grad():
            lin.weight.copy_(W.T)
            lin.bias.copy_(b)
        layers += [lin] + ([torch.nn.Tanh()] if l < len(net.sizes) - 2 else [])
    return torch.nn.Sequential(*layers)


# -- matrix factorisation ------------------------------------------------------------------------
def test_matrix_factorization_derivatives():
    mf = nets.MatrixFactorization.random(5, 4, 2, seed=0)
    x, v = mf.init(1.0, seed=1), mf.init(1.0, seed=2)
    assert check_gradient(mf.value, mf.grad, x).rel_error < 1e-8
    np.testing.assert_allclose(mf.hvp(x, v), fd_hessian(mf.grad, x) @ v, rtol=1e-6, atol=1e-8)


def test_matrix_factorization_saddle_spectrum_is_plus_minus_singular_values(backend):
    rng = np.random.default_rng(0)
    mf = nets.MatrixFactorization(asarray(rng.standard_normal((6, 4)), backend=backend), rank=2)
    theta, _ = lanczos(lambda v: mf.hvp(mf.zeros(), v), RNG(0, backend).normal((mf.dim,)), k=mf.dim)
    sig = mf.singular_values  # H(0) = [[0, M], [M^T, 0]] (x) I_r: eigenvalues +-sigma_i (r times each) and 0
    np.testing.assert_allclose(theta, np.sort(np.r_[-sig, 0.0, sig]), atol=1e-10)  # Krylov sees distinct ones


def test_gd_from_small_init_reaches_eckart_young_optimum():
    rng = np.random.default_rng(1)
    M = rng.standard_normal((8, 6))
    mf = nets.MatrixFactorization(M, rank=2)
    tr = gradient_descent(mf, mf.init(0.1, seed=0), step_size=0.1 / mf.singular_values[0], max_iter=4000)
    assert tr.f_final == pytest.approx(mf.f_star, rel=1e-8)
    U, V = mf.factors(tr.x_final)
    u, s, vt = np.linalg.svd(M)
    np.testing.assert_allclose(U @ V.T, (u[:, :2] * s[:2]) @ vt[:2], atol=1e-5)  # best rank-2 approximation


# -- MLP ------------------------------------------------------------------------------------------------
def test_mlp_value_and_grad_match_torch(digits):
    X, _, y, _ = digits
    net = nets.MLP(X, y, hidden=(16, 8), lam=1e-3, backend="torch")
    theta = net.init(seed=0)
    model = _sequential(net, theta)
    loss = torch.nn.functional.cross_entropy(model(net.X), net.y.long())
    assert float(net.value(theta)) == pytest.approx(loss.item() + 0.5e-3 * float(theta @ theta), rel=1e-13)
    t = theta.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(net.value(t), t)
    np.testing.assert_allclose(to_numpy(net.grad(theta)), to_numpy(g), rtol=1e-12, atol=1e-14)
    idx = torch.arange(10, 40)
    t = theta.clone().requires_grad_(True)
    (gb,) = torch.autograd.grad(net.value_batch(t, idx), t)
    np.testing.assert_allclose(to_numpy(net.grad_batch(theta, idx)), to_numpy(gb), rtol=1e-12, atol=1e-14)


def test_mlp_numpy_torch_agree_and_hvp(digits):
    X, _, y, _ = digits
    net = nets.MLP(X, y, hidden=(12,))
    theta, v = net.init(seed=0), RNG(1).normal((net.dim,))
    nt = net.to("torch")
    np.testing.assert_allclose(to_numpy(nt.grad(asarray(theta, "torch"))), net.grad(theta), rtol=1e-12, atol=1e-15)
    exact = to_numpy(nt.hvp(asarray(theta, "torch"), asarray(v, "torch")))
    np.testing.assert_allclose(net.hvp(theta, v), exact, rtol=1e-5, atol=1e-7)  # finite differences on NumPy
    u = RNG(2).normal((net.dim,))
    hu = to_numpy(nt.hvp(asarray(theta, "torch"), asarray(u, "torch")))
    assert v @ hu == pytest.approx(u @ exact, rel=1e-10)  # the Hessian is symmetric


def test_train_sgd_equals_torch_optim_sgd(digits):
    X, _, y, _ = digits
    net = nets.MLP(X, y, hidden=(10,), backend="torch")
    theta0 = net.init(seed=3)
    tr = nets.train(net, theta0, "sgd", step_size=0.2, batch_size=50, epochs=3, seed=7)
    model = _sequential(net, theta0)
    opt = torch.optim.SGD(model.parameters(), lr=0.2)
    rng = RNG(7, "torch")
    for _ in range(3):
        perm = rng.permutation(net.n)
        for start in range(0, net.n, 50):
            idx = perm[start:start + 50]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(net.X[idx]), net.y[idx].long()).backward()
            opt.step()
    ref = torch.cat([torch.cat([lin.weight.T.reshape(-1), lin.bias]) for lin in model if hasattr(lin, "weight")])
    np.testing.assert_allclose(to_numpy(tr.x_final), to_numpy(ref), rtol=1e-10, atol=1e-12)
    assert tr.oracle_calls[-1] == 3 * 6


def test_train_sam_rho_zero_is_sgd_deterministic_and_numpy_torch_agree(digits):
    X, X_te, y, y_te = digits
    net = nets.MLP(X, y, hidden=(10,))
    theta0 = net.init(seed=0)
    sgd = nets.train(net, theta0, "sgd", epochs=2, seed=1)
    for method in ("sam", "asam"):
        np.testing.assert_array_equal(nets.train(net, theta0, method, rho=0.0, epochs=2, seed=1).x_final, sgd.x_final)
    a = nets.train(net, theta0, "sam", rho=0.1, epochs=2, seed=1, test=(X_te, y_te))
    b = nets.train(net, theta0, "sam", rho=0.1, epochs=2, seed=1, test=(X_te, y_te))
    np.testing.assert_array_equal(a.f, b.f)
    assert a.oracle_calls[-1] == 2 * sgd.oracle_calls[-1]
    nt = net.to("torch")
    c = nets.train(nt, asarray(theta0, "torch"), "sam", rho=0.1, epochs=2, seed=1,
                   test=(asarray(X_te, "torch"), asarray(y_te, "torch")))
    np.testing.assert_allclose(c.f, a.f, rtol=1e-12)
    np.testing.assert_array_equal(c.info["test_acc"], a.info["test_acc"])
    assert not np.allclose(nets.train(net, theta0, "sam", rho=0.1, epochs=2, seed=2).f, a.f)


def test_accuracy_matches_sklearn_and_training_learns(digits):
    from sklearn.metrics import accuracy_score

    X, X_te, y, y_te = digits
    net = nets.MLP(X, y, hidden=(16,))
    tr = nets.train(net, net.init(0), "sgd", step_size=0.2, epochs=15, seed=0, test=(X_te, y_te))
    theta = tr.x_final
    pred = np.argmax(to_numpy(net.logits(theta, X_te)), axis=1)
    assert tr.info["test_acc"][-1] == pytest.approx(accuracy_score(y_te, pred))
    assert tr.info["train_acc"][-1] > 0.95 and tr.info["test_acc"][-1] > 0.85
    assert tr.f[-1] < 0.2 * tr.f[0]


def test_train_detects_divergence(digits):
    X, _, y, _ = digits
    net = nets.MLP(X, y, hidden=(8,), lam=1.0)  # weight decay makes step_size > 2/lam blow up
    with pytest.raises(DivergenceError, match="diverged"):
        nets.train(net, net.init(0), "sgd", step_size=10.0, epochs=20)


def test_noisy_labels():
    y = np.arange(1000) % 10.0
    noisy, flipped = nets.noisy_labels(y, 0.3, 10, seed=0)
    assert np.all((noisy != y) == flipped) and abs(flipped.mean() - 0.3) < 0.05
    assert set(np.unique(noisy)) <= set(range(10))


def test_bad_labels_and_layers_raise():
    with pytest.raises(CourseError, match="integer class labels"):
        nets.MLP(np.zeros((3, 2)), np.array([0.5, 1.0, 0.0]))
    with pytest.raises(CourseError, match="layer"):
        nets.MLP(np.zeros((3, 2)), np.array([0.0, 1.0, 0.0])).weight_mask(5)
    with pytest.raises(CourseError, match="method"):
        nets.train(nets.MLP(np.zeros((3, 2)), np.array([0.0, 1.0, 0.0])), np.zeros(9), "adam")


# -- landscapes --------------------------------------------------------------------------------------
def test_landscape_slices_of_a_quadratic_are_closed_forms():
    from course_lib.problems import Quadratic

    q = Quadratic(np.diag([1.0, 3.0]))
    x, d1, d2 = np.array([1.0, 1.0]), np.array([1.0, 0.0]), np.array([0.0, 1.0])
    a = np.linspace(-1, 1, 5)
    np.testing.assert_allclose(nets.landscape_1d(q.value, x, d1, a), 0.5 * (1 + a) ** 2 + 1.5, rtol=1e-14)
    Z = nets.landscape_2d(q.value, x, d1, d2, a, a[:3])
    assert Z.shape == (3, 5)
    np.testing.assert_allclose(Z, 0.5 * (1 + a[None, :]) ** 2 + 1.5 * (1 + a[:3, None]) ** 2, rtol=1e-14)


def test_random_direction_is_filter_normalised(digits):
    X, _, y, _ = digits
    net = nets.MLP(X, y, hidden=(12,))
    theta = net.init(0) + 0.1
    d = net_d = nets.random_direction(net, theta, seed=3)
    for (Wd, bd), (W, _) in zip(net.params(net_d), net.params(theta)):
        np.testing.assert_allclose(np.linalg.norm(Wd, axis=0), np.linalg.norm(W, axis=0), rtol=1e-12)
        np.testing.assert_array_equal(bd, 0.0)
    assert nets.landscape_1d(net.value, theta, d, [0.0])[0] == float(net.value(theta))

"""course_lib.sam (SAM / ASAM / GSAM wrapper for nn.Module) against course_lib's flat-vector SAM
(nets.train, 1e-12 in float64) and pytorch_optimizer's SAM and GSAM (1e-7: pytorch_optimizer computes
the global gradient norm in float32, as its get_global_gradient_norm documents); course_lib.flatness
against exact Hessians, hand-computed ECE and SciPy."""
import numpy as np
import pytest
import torch
import pytorch_optimizer as PO

from course_lib import flatness as F
from course_lib import nets
from course_lib.backend import RNG, to_numpy
from course_lib.sam import SAM, gsam_direction
from course_lib.validation import CourseError

TOL = dict(rtol=1e-12, atol=1e-12)
PO_TOL = dict(rtol=1e-7, atol=1e-9)  # pytorch_optimizer's grad norm is float32 (documented there)
HIDDEN = 16


@pytest.fixture(scope="module")
def digits():
    X_tr, _, y_tr, _ = nets.load_digits(test_fraction=0.25, label_noise=0.4, seed=0)
    return to_numpy(X_tr)[:300], to_numpy(y_tr)[:300]


def _module_from_theta(problem, theta):
    """The nn.Module with the flat MLP's architecture and weights (nets.MLP stores W as (in, out))."""
    layers = []
    for i, (W, b) in enumerate(problem.params(theta)):
        lin = torch.nn.Linear(W.shape[0], W.shape[1]).double()
        with torch.no_grad():
            lin.weight.copy_(torch.as_tensor(to_numpy(W)).T)
            lin.bias.copy_(torch.as_tensor(to_numpy(b)))
        layers += [lin, torch.nn.Tanh()]
    return torch.nn.Sequential(*layers[:-1])


def _theta_from_module(model):
    lins = [m for m in model if isinstance(m, torch.nn.Linear)]
    return np.concatenate([np.concatenate([l.weight.detach().numpy().T.reshape(-1), l.bias.detach().numpy()])
                           for l in lins])


def _train_module(model, opt, X, y, epochs, batch_size, seed, n):
    """The same batches as nets.train: one RNG(seed).permutation per epoch."""
    rng = RNG(seed, "numpy")
    X, y = torch.as_tensor(X), torch.as_tensor(y).long()
    calls = 0
    for _ in range(epochs):
        perm = to_numpy(rng.permutation(n))
        for start in range(0, n, batch_size):
            idx = torch.as_tensor(perm[start:start + batch_size])

            def closure():
                nonlocal calls
                calls += 1
                opt.zero_grad()
                loss = torch.nn.functional.cross_entropy(model(X[idx]), y[idx])
                loss.backward()
                return loss
            opt.step(closure)
    return calls


@pytest.mark.parametrize("variant,method", [("sam", "sam"), ("asam", "asam")])
def test_wrapper_equals_flat_vector_sam(variant, method, digits):
    X, y = digits
    problem = nets.MLP(X, y, hidden=(HIDDEN,), n_classes=10)
    theta0 = problem.init(seed=1)
    ref = nets.train(problem, theta0, method=method, step_size=0.2, rho=0.1, batch_size=50, epochs=2, seed=3)
    model = _module_from_theta(problem, theta0)
    opt = SAM(model.parameters(), torch.optim.SGD, rho=0.1, variant=variant, lr=0.2)
    calls = _train_module(model, opt, X, y, epochs=2, batch_size=50, seed=3, n=len(y))
    assert calls == 2 * 6 * 2  # two gradients per step: the one at w and the one at w + eps
    got, want = _theta_from_module(model), to_numpy(ref.x_final)
    assert np.abs(want - to_numpy(theta0)).max() > 1e-2
    np.testing.assert_allclose(got, want, **TOL)


def _tiny_data(seed=0):
    rng = np.random.default_rng(seed)
    X = torch.as_tensor(rng.standard_normal((40, 5)))
    y = torch.as_tensor(rng.integers(0, 3, 40))
    return X, y


def _tiny_net(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 3)).double()


def test_wrapper_equals_pytorch_optimizer_sam():
    X, y = _tiny_data()
    ref_model, our_model = _tiny_net(), _tiny_net()
    ref = PO.SAM(ref_model.parameters(), torch.optim.SGD, rho=0.05, perturb_eps=0.0, lr=0.3, momentum=0.9)
    ours = SAM(our_model.parameters(), torch.optim.SGD, rho=0.05, lr=0.3, momentum=0.9)
    for _ in range(15):
        for model, opt in ((ref_model, ref), (our_model, ours)):
            def closure():
                opt.zero_grad()
                loss = torch.nn.functional.cross_entropy(model(X), y)
                loss.backward()
                return loss
            closure()
            opt.step(closure)
    for a, b in zip(ref_model.parameters(), our_model.parameters()):
        np.testing.assert_allclose(b.detach().numpy(), a.detach().numpy(), **PO_TOL)


class _ConstantRho:
    def __init__(self, rho):
        self.rho = rho

    def step(self):
        return self.rho


def test_gsam_equals_pytorch_optimizer_gsam():
    X, y = _tiny_data(1)
    ref_model, our_model = _tiny_net(2), _tiny_net(2)
    base = torch.optim.SGD(ref_model.parameters(), lr=0.3)
    ref = PO.GSAM(ref_model.parameters(), base, ref_model, _ConstantRho(0.1), alpha=0.4, perturb_eps=0.0)
    ref.set_closure(torch.nn.functional.cross_entropy, X, y)
    ours = SAM(our_model.parameters(), torch.optim.SGD, rho=0.1, variant="gsam", alpha=0.4, lr=0.3)

    def closure():
        ours.zero_grad()
        loss = torch.nn.functional.cross_entropy(our_model(X), y)
        loss.backward()
        return loss
    for _ in range(15):
        ref.step()
        closure()
        ours.step(closure)
    moved = max(float((a - b).detach().abs().max()) for a, b in zip(our_model.parameters(), _tiny_net(2).parameters()))
    assert moved > 1e-2
    for a, b in zip(ref_model.parameters(), our_model.parameters()):
        np.testing.assert_allclose(b.detach().numpy(), a.detach().numpy(), **PO_TOL)


def test_gsam_direction_closed_form():
    g, gp = np.array([1.0, 1.0]), np.array([2.0, 0.0])
    # g_perp = g - (<g, gp>/||gp||^2) gp = (0, 1): d = gp - alpha (0, 1)
    np.testing.assert_allclose(gsam_direction(g, gp, 0.5), [2.0, -0.5], rtol=1e-15)
    np.testing.assert_allclose(gsam_direction(g, gp, 0.0), gp)  # alpha = 0 is SAM


def test_step_computes_the_first_gradient_when_missing():
    X, y = _tiny_data()
    model = _tiny_net()
    opt = SAM(model.parameters(), torch.optim.SGD, rho=0.05, lr=0.1)
    calls = []

    def closure():
        calls.append(1)
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(X), y)
        loss.backward()
        return loss
    opt.step(closure)
    assert len(calls) == 2
    opt.zero_grad()
    closure()
    opt.step(closure)
    assert len(calls) == 4


@pytest.mark.parametrize("call,match", [
    (lambda: SAM([torch.ones(2, requires_grad=True)], variant="bsam"), "variant must be"),
    (lambda: SAM([torch.ones(2, requires_grad=True)], rho=-1.0), "rho must be >= 0"),
    (lambda: SAM([torch.ones(2, requires_grad=True)], alpha=2.0), r"alpha must lie in \[0.0, 1.0\]"),
    (lambda: SAM([]), "non-empty iterable of torch tensors"),
    (lambda: SAM([torch.ones(2, requires_grad=True)], lr=0.1).step(), "needs a closure"),
])
def test_bad_inputs(call, match):
    with pytest.raises(CourseError, match=match):
        call()


# -- flatness metrics ------------------------------------------------------------------------------
def test_module_sharpness_equals_exact_hessian_eigenvalue():
    X, y = _tiny_data(3)
    model = _tiny_net(4)
    params = list(model.parameters())
    shapes = [p.shape for p in params]
    flat0 = torch.cat([p.detach().reshape(-1) for p in params])

    def loss_of(flat):
        out, i = X, 0
        ws = []
        for s in shapes:
            n = int(np.prod(s))
            ws.append(flat[i:i + n].reshape(s))
            i += n
        h = torch.tanh(out @ ws[0].T + ws[1])
        return torch.nn.functional.cross_entropy(h @ ws[2].T + ws[3], y)
    H = torch.autograd.functional.hessian(loss_of, flat0).numpy()
    exact = np.linalg.eigvalsh(H)[-1]
    got = F.module_sharpness(model, torch.nn.functional.cross_entropy, X, y, k=flat0.numel())
    assert abs(got - exact) <= 1e-10 * max(1.0, abs(exact))
    assert F.module_sharpness(model, torch.nn.functional.cross_entropy, X, y, k=5) <= exact + 1e-10


def test_expected_calibration_error_by_hand():
    # 4 examples, 2 bins: confidences 0.9, 0.8 (bin (0.5, 1]) with 1 of 2 right; 0.3... top class >= 1/C
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.4, 0.6], [0.55, 0.45]])
    labels = np.array([0, 1, 1, 1])
    # all confidences in (0.5, 1]: conf mean = (0.9 + 0.8 + 0.6 + 0.55)/4 = 0.7125, accuracy 2/4
    assert F.expected_calibration_error(probs, labels, n_bins=2) == pytest.approx(abs(0.5 - 0.7125), abs=1e-15)
    # 10 bins: (0.8, 0.9] holds 0.9 (right), (0.7, 0.8] 0.8 (wrong), (0.5, 0.6] both 0.6 (right) and 0.55 (wrong)
    want = 0.25 * (abs(1 - 0.9) + abs(0 - 0.8)) + 0.5 * abs(0.5 - (0.6 + 0.55) / 2)
    assert F.expected_calibration_error(probs, labels, n_bins=10) == pytest.approx(want, abs=1e-15)
    with pytest.raises(CourseError, match="probs must be"):
        F.expected_calibration_error(probs[:, 0], labels)


def test_noise_accuracies_restore_and_degrade():
    X, y = _tiny_data(5)
    model = _tiny_net(6)
    before = [p.detach().clone() for p in model.parameters()]
    clean = F.accuracy(model, X, y)
    m0, s0 = F.weight_noise_accuracy(model, X, y, sigma=0.0, n_samples=3)
    assert (m0, s0) == (clean, 0.0)
    F.weight_noise_accuracy(model, X, y, sigma=5.0, n_samples=3)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    mi, si = F.input_noise_accuracy(model, X, y, sigma=0.0, n_samples=2)
    assert (mi, si) == (clean, 0.0)


def test_sharpness_gap_correlation_matches_scipy():
    from scipy import stats

    s = [1.0, 3.0, 2.0, 5.0, 4.0]
    g = [0.1, 0.2, 0.4, 0.3, 0.5]
    out = F.sharpness_gap_correlation(s, g)
    assert out["kendall_tau"] == pytest.approx(stats.kendalltau(s, g)[0], abs=1e-15)
    assert out["spearman_rho"] == pytest.approx(0.5, abs=1e-12)  # rank differences 0,1,-2,2,-1: 1 - 6 * 10 / (5 * 24)
    with pytest.raises(CourseError, match="same length >= 3"):
        F.sharpness_gap_correlation([1, 2], [1, 2])

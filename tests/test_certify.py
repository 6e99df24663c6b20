"""The Dziugaite & Roy style certificate: network pieces against torch.nn, and the certificate's facts on digits."""
import math

import numpy as np
import pytest
import torch

from course_lib import certify as cf
from course_lib import pac_bayes as pb
from course_lib.validation import CourseError, DivergenceError

SIZES = (64, 20, 1)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: this small network runs fastest that way on a shared machine (restored after)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def data():
    return cf.digits_data(seed=0)


@pytest.fixture(scope="module")
def experiments():
    """The lecture's two runs: true labels and random labels (seconds each)."""
    return cf.run_experiment(seed=0), cf.run_experiment(seed=0, random_labels=True)


def test_forward_matches_torch_nn(torch_backend):
    dev = torch.device(torch_backend.partition(":")[2] or "cpu")
    sizes = (64, 7, 5, 1)
    w = cf.init_weights(sizes, seed=3, backend=torch_backend, dtype="float64") + 0.1
    net = torch.nn.Sequential(torch.nn.Linear(64, 7), torch.nn.ReLU(), torch.nn.Linear(7, 5), torch.nn.ReLU(),
                              torch.nn.Linear(5, 1)).double().to(dev)
    off = 0
    for layer in net[::2]:  # nn.Linear stores W^T (out, in); our flat layout is (in, out) row-major then bias
        a, b = layer.in_features, layer.out_features
        layer.weight.data = w[off:off + a * b].reshape(a, b).T.clone()
        layer.bias.data = w[off + a * b:off + a * b + b].clone()
        off += a * b + b
    assert off == cf.n_params(sizes) == w.shape[0]
    X = torch.as_tensor(np.random.default_rng(0).random((30, 64)), device=dev)
    torch.testing.assert_close(cf.forward(w, X, sizes), net(X)[:, 0], rtol=1e-12, atol=1e-12)
    batch = torch.stack([w, 2 * w, -w])  # m networks at once agree with one at a time
    out = cf.forward(batch, X, sizes)
    for i in range(3):
        torch.testing.assert_close(out[i], cf.forward(batch[i], X, sizes), rtol=1e-12, atol=1e-12)
    with pytest.raises(CourseError, match="entries but an MLP"):
        cf.forward(w[:-1], X, sizes)


def test_init_weights_scale_and_determinism():
    w = cf.init_weights((400, 300, 1), seed=0, dtype="float64")
    W1 = w[:400 * 300]
    assert float(W1.var()) == pytest.approx(1 / 400, rel=0.02)  # LeCun init N(0, 1/fan_in)
    assert torch.equal(w, cf.init_weights((400, 300, 1), seed=0, dtype="float64"))
    assert torch.all(w[400 * 300:400 * 300 + 300] == 0)


def test_digits_data_is_the_binary_task(data):
    Xtr, Xte, ytr, yte = data
    assert Xtr.shape == (1438, 64) and Xte.shape == (359, 64)
    assert float(Xtr.min()) == 0.0 and float(Xtr.max()) == 1.0  # pixels / 16, no data-dependent scaling
    assert set(np.unique(ytr.numpy())) == {-1.0, 1.0}
    assert 0.45 < float((ytr > 0).double().mean()) < 0.55  # 0-4 vs 5-9 is nearly balanced
    with pytest.raises(CourseError, match="torch"):
        cf.digits_data(backend="numpy")


def test_train_mlp_fits_and_is_deterministic(data):
    Xtr, Xte, ytr, yte = data
    w0, w, tr = cf.train_mlp(Xtr, ytr, SIZES, seed=1, epochs=8)
    assert tr.status == "max_iter" and tr.n_iter == 8
    assert tr.f[-1] < 0.2 * tr.f[0] and tr.info["error"][-1] < 0.05
    assert cf.error_rate(w, Xte, yte, SIZES) < 0.1
    assert torch.equal(w0, cf.init_weights(SIZES, seed=1))  # the prior mean depends on the seed only
    assert torch.equal(w, cf.train_mlp(Xtr, ytr, SIZES, seed=1, epochs=8)[1])
    # the recorded loss is the logistic loss of the network
    ref = torch.nn.functional.binary_cross_entropy_with_logits(cf.forward(w, Xtr, SIZES), (ytr + 1) / 2)
    assert tr.f[-1] == pytest.approx(float(ref), rel=1e-5)


def test_train_mlp_divergence_is_detected(data):
    Xtr, _, ytr, _ = data
    with pytest.raises(DivergenceError, match="diverged"):
        cf.train_mlp(Xtr, ytr, SIZES, step_size=1e4, epochs=10)
    _, _, tr = cf.train_mlp(Xtr, ytr, SIZES, step_size=1e4, epochs=10, on_divergence="stop")
    assert tr.status == "diverged" and tr.f[-1] > 100 * (1 + tr.f[0]) and tr.n_iter < 10


def test_optimize_posterior_decreases_surrogate_and_tracks_kl(data):
    Xtr, _, ytr, _ = data
    w0, w, _ = cf.train_mlp(Xtr, ytr, SIZES, seed=0, epochs=5)
    mu, var, tr = cf.optimize_posterior(w, w0, Xtr, ytr, SIZES, steps=60)
    assert tr.f[-1] < tr.f[0] and torch.all(var > 0)
    lam = (var.sum() + ((mu - w0) ** 2).sum()) / mu.shape[0]  # the KL-optimal prior variance
    assert tr.info["lam"][-1] == pytest.approx(float(lam), rel=1e-3) or tr.n_iter == 60
    P = torch.distributions.Normal(w0.double(), math.sqrt(float(lam)))
    Q = torch.distributions.Normal(mu.double(), var.double().sqrt())
    kl = torch.distributions.kl_divergence(Q, P).sum().item()
    assert float(pb.kl_gaussian(mu.double(), w0.double(), var_q=var.double(), var_p=float(lam))) == pytest.approx(kl, rel=1e-10)


def test_certify_posterior_uses_best_grid_prior_and_kl_bound(data):
    Xtr, _, ytr, _ = data
    w0, w, _ = cf.train_mlp(Xtr, ytr, SIZES, seed=0, epochs=5)
    var = torch.full_like(w, 1e-3)
    cert, lam = cf.certify_posterior(w, var, w0, Xtr, ytr, SIZES, m=200)
    kls = [float(pb.kl_gaussian(w.double(), w0.double(), var_q=var.double(), var_p=v)) for v in cf.PRIOR_GRID]
    assert lam == cf.PRIOR_GRID[int(np.argmin(kls))] and cert.kl == pytest.approx(min(kls))
    ref = pb.kl_certificate(cert.risk_mc, 200, min(kls), Xtr.shape[0], n_priors=len(cf.PRIOR_GRID))
    assert cert == ref
    assert cert.risk_mc == cf.stochastic_error(w, var, Xtr, ytr, SIZES, m=200, seed=0)


def test_digits_certificate_is_non_vacuous_and_valid(experiments):
    e, _ = experiments
    c = e.certificate
    assert c.bound < 0.45  # non-vacuous: well below the 0.5 of a coin flip
    assert c.bound > e.stochastic_test_error  # consistent with the measured error of the same Q
    assert c.bound > c.risk_bound >= c.risk_mc == e.stochastic_train_error
    assert e.stochastic_test_error < 0.15 and e.test_error < 0.1
    assert c.failure_probability == pytest.approx(0.035)
    assert e.train_trace.status == "max_iter" and e.posterior_trace.f[-1] < e.posterior_trace.f[0]


def test_random_labels_certificate_is_vacuous(experiments):
    _, r = experiments
    assert r.certificate.vacuous and r.bound >= 0.5
    assert 0.4 < r.stochastic_test_error < 0.6  # nothing to learn from coin flips


def test_experiment_is_deterministic(experiments):
    again = cf.run_experiment(seed=0, steps=50, epochs=3, m=100)
    same = cf.run_experiment(seed=0, steps=50, epochs=3, m=100)
    assert again.certificate == same.certificate and again.stochastic_test_error == same.stochastic_test_error
    assert torch.get_num_threads() == 1  # run_experiment restored the caller's setting

"""course_lib.optimizers: trajectory equality with torch.optim (float64, 1e-12) for every option,
closed forms, purity, memory accounting, the nn.Module adapter and input errors."""
import numpy as np
import pytest
import torch

from course_lib import optimizers as O
from course_lib import problems
from course_lib import stochastic as S
from course_lib.backend import available_backends, to_numpy
from course_lib.datasets import make_classification
from course_lib.validation import CourseError

BACKENDS = available_backends()
STEPS = 30

# (torch class, our factory, options): every option torch.optim has for these methods.
CASES = [
    (torch.optim.SGD, O.sgd, dict(lr=0.1)),
    (torch.optim.SGD, O.sgd, dict(lr=0.1, momentum=0.9)),
    (torch.optim.SGD, O.sgd, dict(lr=0.1, momentum=0.9, dampening=0.5)),
    (torch.optim.SGD, O.sgd, dict(lr=0.1, momentum=0.9, nesterov=True)),
    (torch.optim.SGD, O.sgd, dict(lr=0.1, momentum=0.8, nesterov=True, weight_decay=0.05)),
    (torch.optim.SGD, O.sgd, dict(lr=0.1, weight_decay=0.1, maximize=True)),
    (torch.optim.Adagrad, O.adagrad, dict(lr=0.1)),
    (torch.optim.Adagrad, O.adagrad, dict(lr=0.1, lr_decay=0.05)),
    (torch.optim.Adagrad, O.adagrad, dict(lr=0.1, weight_decay=0.1, initial_accumulator_value=0.3)),
    (torch.optim.Adagrad, O.adagrad, dict(lr=0.1, eps=1e-3, maximize=True)),
    (torch.optim.RMSprop, O.rmsprop, dict(lr=0.01)),
    (torch.optim.RMSprop, O.rmsprop, dict(lr=0.01, alpha=0.9, eps=1e-4)),
    (torch.optim.RMSprop, O.rmsprop, dict(lr=0.01, centered=True)),
    (torch.optim.RMSprop, O.rmsprop, dict(lr=0.01, momentum=0.5)),
    (torch.optim.RMSprop, O.rmsprop, dict(lr=0.01, centered=True, momentum=0.5, weight_decay=0.1)),
    (torch.optim.RMSprop, O.rmsprop, dict(lr=0.01, maximize=True)),
    (torch.optim.Adam, O.adam, dict(lr=0.02)),
    (torch.optim.Adam, O.adam, dict(lr=0.02, betas=(0.5, 0.9), eps=1e-4)),
    (torch.optim.Adam, O.adam, dict(lr=0.02, amsgrad=True)),
    (torch.optim.Adam, O.adam, dict(lr=0.02, weight_decay=0.1, amsgrad=True)),
    (torch.optim.Adam, O.adam, dict(lr=0.02, weight_decay=0.1, decoupled_weight_decay=True)),
    (torch.optim.Adam, O.adam, dict(lr=0.02, maximize=True)),
    (torch.optim.AdamW, O.adamw, dict(lr=0.02)),
    (torch.optim.AdamW, O.adamw, dict(lr=0.02, weight_decay=0.1, amsgrad=True)),
    (torch.optim.NAdam, O.nadam, dict(lr=0.02)),
    (torch.optim.NAdam, O.nadam, dict(lr=0.02, momentum_decay=0.01, betas=(0.8, 0.99))),
    (torch.optim.NAdam, O.nadam, dict(lr=0.02, weight_decay=0.1)),
    (torch.optim.NAdam, O.nadam, dict(lr=0.02, weight_decay=0.1, decoupled_weight_decay=True)),
    (torch.optim.NAdam, O.nadam, dict(lr=0.02, maximize=True)),
]
IDS = [f"{c.__name__}-{'-'.join(f'{k}={v}' for k, v in kw.items())}" for c, _, kw in CASES]


@pytest.fixture(autouse=True)
def _float64_default():
    # torch keeps NAdam's mu_product and the step counters in the default dtype: float64 for exactness
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


@pytest.fixture(scope="module")
def logistic():
    X, y, _ = make_classification(n=60, dim=4, seed=3, flip=0.1)
    return problems.LogisticRegression(X, y, lam=0.01)


def torch_trajectory(cls, kw, grad_fn, x0, steps=STEPS, scheduler=None):
    x = torch.tensor(x0, dtype=torch.float64, requires_grad=True)
    opt = cls([x], **kw)
    sched = scheduler(opt) if scheduler else None
    out = []
    for _ in range(steps):
        opt.zero_grad()
        x.grad = grad_fn(x.detach().clone())
        opt.step()
        if sched:
            sched.step()
        out.append(x.detach().numpy().copy())
    return np.array(out)


def our_trajectory(opt, grad_fn, x0, steps=STEPS):
    x, state, out = x0, opt.init(x0), []
    for _ in range(steps):
        x, state = opt.update(grad_fn(x), state, x)
        out.append(to_numpy(x).copy())
    return np.array(out)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cls,factory,kw", CASES, ids=IDS)
def test_trajectory_equals_torch_optim(cls, factory, kw, backend, logistic):
    p_t, p_b = logistic.to("torch"), logistic.to(backend)
    x0 = np.linspace(-1.0, 1.0, logistic.dim)
    ref = torch_trajectory(cls, kw, p_t.grad, x0)
    ours = our_trajectory(factory(**kw), p_b.grad, p_b.asarray(x0))
    assert np.abs(ref - x0).max() > 1e-2  # the run moved
    np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name,make_sched,ours", [
    ("cosine", lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=40, eta_min=0.001),
     S.cosine(0.02, total=40, min_step=0.001)),
    ("step", lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=7, gamma=0.5), S.step_decay(0.02, 0.5, every=7)),
    ("warmup", lambda o: torch.optim.lr_scheduler.LinearLR(o, start_factor=1 / 10, total_iters=9),
     S.warmup(0.02, steps=10)),
    ("inverse_sqrt", lambda o: torch.optim.lr_scheduler.LambdaLR(o, lambda e: 1 / np.sqrt(e + 1)),
     S.inverse_sqrt(0.02)),
    ("inverse_time", lambda o: torch.optim.lr_scheduler.LambdaLR(o, lambda e: 3 / (e + 1 + 2)),
     S.inverse_time(0.06, offset=2)),
])
def test_schedule_equals_torch_scheduler(name, make_sched, ours, logistic):
    # torch's scheduler epoch e = t - 1 sets the lr of the t-th update
    p_t = logistic.to("torch")
    x0 = np.linspace(-1.0, 1.0, logistic.dim)
    ref = torch_trajectory(torch.optim.Adam, dict(lr=0.02), p_t.grad, x0, scheduler=make_sched)
    got = our_trajectory(O.adam(lr=ours), logistic.grad, x0)
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)


def test_adam_first_step_closed_form():
    # m_1/(1-b1) = g and sqrt(v_1/(1-b2)) = |g|: the first step is lr * g / (|g| + eps)
    g = np.array([3.0, -0.5, 1e-3, 0.0])
    x0 = np.ones(4)
    opt = O.adam(lr=0.1, betas=(0.7, 0.95), eps=1e-8)
    x1, state = opt.update(g, opt.init(x0), x0)
    np.testing.assert_allclose(x1, x0 - 0.1 * g / (np.abs(g) + 1e-8), rtol=1e-15, atol=1e-15)
    assert state.step == 1
    np.testing.assert_allclose(state.m, 0.3 * g, rtol=1e-15)
    np.testing.assert_allclose(state.v, 0.05 * g * g, rtol=1e-15)


def test_sgd_heavy_ball_closed_form():
    # f(x) = x^2/2, momentum buffer b_1 = g_1 then b_t = beta b_{t-1} + g_t: a 2-term linear recurrence
    beta, lr, x = 0.5, 0.1, np.array([1.0])
    opt, state = O.sgd(lr=lr, momentum=beta), None
    state = opt.init(x)
    xs = [x]
    for _ in range(5):
        x, state = opt.update(x, state, x)
        xs.append(x)
    xs = np.array(xs)[:, 0]
    # x_{t+1} = x_t - lr x_t + beta (x_t - x_{t-1}) for t >= 1
    np.testing.assert_allclose(xs[2:], xs[1:-1] - lr * xs[1:-1] + beta * (xs[1:-1] - xs[:-2]), rtol=1e-14)


@pytest.mark.parametrize("factory", [O.sgd, O.adagrad, O.rmsprop, O.adam, O.adamw, O.amsgrad, O.nadam])
def test_update_is_pure(factory):
    x0, g = np.array([1.0, -2.0]), np.array([0.5, 0.25])
    opt = factory(lr=0.1)
    state = opt.init(x0)
    x1, s1 = opt.update(g, state, x0)
    x1b, s1b = opt.update(g, state, x0)  # same inputs, same outputs: nothing was mutated
    np.testing.assert_array_equal(x0, [1.0, -2.0])
    np.testing.assert_array_equal(g, [0.5, 0.25])
    np.testing.assert_array_equal(x1, x1b)
    assert s1.step == s1b.step == 1 and state.step == 0


def test_list_params_and_state_numel():
    params = [np.zeros((3, 4)), np.zeros(5)]
    grads = [np.ones((3, 4)), np.ones(5)]
    P = 17
    for opt, floats in [(O.sgd(lr=0.1), 0), (O.sgd(lr=0.1, momentum=0.9), P), (O.adam(), 2 * P),
                        (O.amsgrad(), 3 * P), (O.rmsprop(centered=True, momentum=0.9), 3 * P), (O.adagrad(), P)]:
        new, state = opt.update(grads, opt.init(params), params)
        assert [a.shape for a in new] == [(3, 4), (5,)]
        assert O.state_numel(state) == floats, opt.name
    with pytest.raises(CourseError, match="one per parameter"):
        O.adam().update(grads[0], O.adam().init(params), params)


def _mlp(seed):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)).double()


@pytest.mark.parametrize("cls,factory,kw", [CASES[4], CASES[9], CASES[14], CASES[19], CASES[23], CASES[27]],
                         ids=[IDS[i] for i in (4, 9, 14, 19, 23, 27)])
def test_torch_module_side_by_side(cls, factory, kw):
    X = torch.tensor(np.random.default_rng(0).standard_normal((32, 3)))
    y = torch.sin(X.sum(dim=1, keepdim=True))
    ref_model, our_model = _mlp(0), _mlp(0)
    ref, ours = cls(ref_model.parameters(), **kw), O.TorchOptimizer(factory(**kw), our_model.parameters())
    for _ in range(20):
        for model, opt in ((ref_model, ref), (our_model, ours)):
            opt.zero_grad()
            torch.nn.functional.mse_loss(model(X), y).backward()
            opt.step()
    for a, b in zip(ref_model.parameters(), our_model.parameters()):
        np.testing.assert_allclose(b.detach().numpy(), a.detach().numpy(), rtol=1e-12, atol=1e-12)
    assert ours.state_numel() == O.state_numel(ours.state) > 0


def test_torch_optimizer_skips_params_without_grad():
    a = torch.ones(2, requires_grad=True)
    b = torch.ones(2, requires_grad=True)
    opt = O.TorchOptimizer(O.sgd(lr=0.5), [a, b])
    (a * a).sum().backward()
    opt.step()
    np.testing.assert_array_equal(a.detach().numpy(), [0.0, 0.0])
    np.testing.assert_array_equal(b.detach().numpy(), [1.0, 1.0])
    with pytest.raises(CourseError, match="torch tensors"):
        O.TorchOptimizer(O.sgd(), [np.ones(2)])


@pytest.mark.parametrize("call,match", [
    (lambda: O.sgd(lr=-0.1), "lr must be >= 0, got -0.1"),
    (lambda: O.sgd(lr=0.1, momentum=1.0), r"momentum must lie in \[0.0, 1.0\), got 1.0"),
    (lambda: O.sgd(lr=0.1, nesterov=True), "nesterov=True needs momentum > 0"),
    (lambda: O.adam(betas=(0.9, 1.0)), r"betas\[1\] must lie in \[0.0, 1.0\), got 1.0"),
    (lambda: O.adam(betas=(-0.1, 0.9)), r"betas\[0\] must lie in"),
    (lambda: O.adam(betas=0.9), "betas must be a pair"),
    (lambda: O.adagrad(lr_decay=-1), "lr_decay must be >= 0"),
    (lambda: O.rmsprop(alpha=1.5), "alpha must lie in"),
    (lambda: O.nadam(weight_decay=-0.1), "weight_decay must be >= 0, got -0.1"),
])
def test_bad_inputs_raise_clear_errors(call, match):
    with pytest.raises(CourseError, match=match):
        call()

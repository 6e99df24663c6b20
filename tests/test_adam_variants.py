"""course_lib.adam_variants: trajectory equality with torch.optim (RAdam, Adafactor) and pytorch_optimizer
(AdaBelief, Lamb, Lion, AdamMini), on vectors, matrices and an nn.Module; closed forms; memory; errors."""
import numpy as np
import pytest
import torch
import pytorch_optimizer as PO

from course_lib import adam_variants as A
from course_lib import optimizers as O
from course_lib.backend import available_backends
from course_lib.validation import CourseError
from test_optimizers import our_trajectory  # the pure optimizers' trajectory, written once

BACKENDS = available_backends()
STEPS = 25
TOL = dict(rtol=1e-12, atol=1e-12)

# (reference class, our factory, reference kwargs, our kwargs)
CASES = [
    (torch.optim.RAdam, A.radam, dict(lr=0.02), {}),
    (torch.optim.RAdam, A.radam, dict(lr=0.02, betas=(0.8, 0.9), eps=1e-4), {}),  # rectified after a few steps
    (torch.optim.RAdam, A.radam, dict(lr=0.02, weight_decay=0.1), {}),
    (torch.optim.RAdam, A.radam, dict(lr=0.02, weight_decay=0.1, decoupled_weight_decay=True), {}),
    (torch.optim.RAdam, A.radam, dict(lr=0.02, betas=(0.8, 0.9), maximize=True), {}),
    (torch.optim.Adafactor, A.adafactor, dict(lr=0.05), {}),
    (torch.optim.Adafactor, A.adafactor, dict(lr=0.05, beta2_decay=-0.5, eps=(1e-20, 1e-2), d=2.0), {}),
    (torch.optim.Adafactor, A.adafactor, dict(lr=0.05, weight_decay=0.1, maximize=True), {}),
    (PO.AdaBelief, A.adabelief, dict(lr=0.02), {}),
    (PO.AdaBelief, A.adabelief, dict(lr=0.02, betas=(0.5, 0.9), eps=1e-8, weight_decay=0.1), {}),
    (PO.AdaBelief, A.adabelief, dict(lr=0.02, weight_decay=0.1, weight_decouple=False, maximize=True), {}),
    (PO.Lamb, A.lamb, dict(lr=0.02), {}),
    (PO.Lamb, A.lamb, dict(lr=0.02, betas=(0.5, 0.9), weight_decay=0.1), {}),
    (PO.Lamb, A.lamb, dict(lr=0.02, weight_decay=0.1, weight_decouple=False, eps=1e-3), {}),
    (PO.Lamb, A.lamb, dict(lr=0.02, maximize=True), {}),
    (PO.Lion, A.lion, dict(lr=0.01), {}),
    (PO.Lion, A.lion, dict(lr=0.01, betas=(0.5, 0.9), weight_decay=0.5), {}),
    (PO.Lion, A.lion, dict(lr=0.01, weight_decay=0.5, weight_decouple=False, maximize=True), {}),
]
IDS = [f"{c.__name__}-{'-'.join(f'{k}={v}' for k, v in kw.items())}" for c, _, kw, _ in CASES]


@pytest.fixture(autouse=True)
def _float64_default():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def _grad_fn(shape, seed=0):
    """Gradient of a fixed nonconvex-ish smooth loss sum(c * tanh(x)^2 + b * x) on any backend."""
    rng = np.random.default_rng(seed)
    c, b = rng.uniform(0.5, 3.0, shape), rng.normal(0, 1, shape)

    def grad(x):
        xp = x.__array_namespace__() if hasattr(x, "__array_namespace__") else None
        if isinstance(x, torch.Tensor):
            th = torch.tanh(x)
            return torch.as_tensor(c) * 2 * th * (1 - th * th) + torch.as_tensor(b)
        th = np.tanh(x)
        return c * 2 * th * (1 - th * th) + b
    return grad


def reference_trajectory(cls, kw, grad_fn, x0, steps=STEPS, dtype=torch.float64):
    x = torch.tensor(x0, dtype=dtype, requires_grad=True)
    opt = cls([x], **kw)
    out = []
    for _ in range(steps):
        opt.zero_grad()
        x.grad = grad_fn(x.detach().clone()).to(dtype)
        opt.step()
        out.append(x.detach().double().numpy().copy())
    return np.array(out)


def _x0(shape):
    return np.linspace(-1.5, 1.2, int(np.prod(shape))).reshape(shape)


@pytest.mark.parametrize("shape", [(7,), (5, 4)], ids=["vector", "matrix"])
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cls,factory,kw,extra", CASES, ids=IDS)
def test_trajectory_equals_reference(cls, factory, kw, extra, backend, shape):
    grad = _grad_fn(shape)
    x0 = _x0(shape)
    ref = reference_trajectory(cls, kw, grad, x0)
    start = torch.tensor(x0) if backend == "torch" else x0
    ours = our_trajectory(factory(**kw, **extra), grad, start, steps=STEPS)
    assert np.abs(ref - x0).max() > 1e-2  # the run moved
    np.testing.assert_allclose(ours, ref, **TOL)


def test_radam_switches_to_the_rectified_step():
    # rho_t > 5 first at t = 6 for beta2 = 0.9 (rho_inf = 19): before, the step is lr * m_hat exactly
    opt, x, g = A.radam(lr=0.1, betas=(0.0, 0.9)), np.zeros(3), np.array([1.0, -2.0, 4.0])
    state = opt.init(x)
    rho_inf = 19.0
    for t in range(1, 9):
        x_new, state = opt.update(g, state, x)
        rho_t = rho_inf - 2 * t * 0.9**t / (1 - 0.9**t)
        if rho_t <= 5:
            np.testing.assert_allclose(x_new - x, -0.1 * g, rtol=1e-14)  # beta1 = 0: m_hat = g
        else:
            assert t >= 6
            v_hat_sqrt = np.abs(g)  # v_t / (1 - beta2^t) = g^2 with a constant gradient
            r = np.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
            np.testing.assert_allclose(x_new - x, -0.1 * r * g / (v_hat_sqrt + 1e-8 / np.sqrt(1 - 0.9**t)),
                                       rtol=1e-12)
        x = x_new


def test_lion_step_is_a_sign_step():
    opt = A.lion(lr=0.3, betas=(0.9, 0.99))
    x = np.array([1.0, 2.0, -3.0])
    g = np.array([1e-9, -5.0, 0.2])
    x1, s = opt.update(g, opt.init(x), x)
    np.testing.assert_array_equal(x1, x - 0.3 * np.sign(g))
    np.testing.assert_allclose(s.m, 0.01 * g, rtol=1e-15)


def test_adafactor_factored_state_is_rank_one_for_rank_one_squares():
    # if g^2 = a b^T (rank one), the factored estimate R C / mean(R) is exact at t = 1
    a, b = np.array([1.0, 2.0, 3.0]), np.array([0.5, 1.0, 4.0, 2.0])
    g = np.sqrt(np.outer(a, b))
    opt = A.adafactor(lr=0.1)
    x = np.ones((3, 4))
    state = opt.init(x)
    _, state = opt.update(g, state, x)
    V = state.row @ state.col / state.row.mean()
    np.testing.assert_allclose(V, g * g, rtol=1e-13)
    assert state.v is None and state.row.shape == (3, 1) and state.col.shape == (1, 4)


def test_adam_mini_full_block_is_adam():
    # block="full" is Adam with decoupled weight decay (AdamW): equal to torch.optim.AdamW at 1e-12
    grad = _grad_fn((6,))
    x0 = _x0((6,))
    ref = reference_trajectory(torch.optim.AdamW, dict(lr=0.02, weight_decay=0.1), grad, x0)
    ours = our_trajectory(A.adam_mini(lr=0.02, weight_decay=0.1, block="full"), grad, x0, steps=STEPS)
    np.testing.assert_allclose(ours, ref, **TOL)


def test_adam_mini_one_block_closed_form():
    # a constant gradient: v_t/(1 - beta2^t) = mean(g^2), m_t/(1 - beta1^t) = g, so every step is
    # lr g / (sqrt(mean g^2) + eps) -- one learning rate for the whole tensor
    g = np.array([[1.0, -2.0], [3.0, 0.5]])
    opt, x = A.adam_mini(lr=0.1, block=None), np.zeros((2, 2))
    state = opt.init(x)
    for t in range(1, 6):
        x_new, state = opt.update(g, state, x)
        np.testing.assert_allclose(x_new - x, -0.1 * g / (np.sqrt(np.mean(g * g)) + 1e-8),
                                   rtol=1e-12)
        x = x_new
    assert state.v.shape == (1,)


class _TinyTransformerBlock(torch.nn.Module):
    """Names that exercise every Adam-mini rule of the reference: embedding, q/k heads, norms, others."""

    def __init__(self, vocab=11, d=8):
        super().__init__()
        self.embed = torch.nn.Embedding(vocab, d)
        # no q/k biases: the loss does not depend on k's bias, whose gradient is pure rounding noise that
        # a one-number second moment would amplify differently in any two float32 implementations
        self.q_proj, self.k_proj = torch.nn.Linear(d, d, bias=False), torch.nn.Linear(d, d, bias=False)
        self.v_proj = torch.nn.Linear(d, d)
        self.norm = torch.nn.LayerNorm(d)
        self.lm_head = torch.nn.Linear(d, vocab, bias=False)

    def forward(self, idx):
        h = self.embed(idx)
        q, k, v = self.q_proj(h), self.k_proj(h), self.v_proj(h)
        att = torch.softmax(q @ k.transpose(-1, -2) / 8**0.5, dim=-1)
        return self.lm_head(self.norm(h + att @ v))


def _train(model, opt, steps=15, dtype=torch.float32):
    idx = torch.tensor(np.random.default_rng(0).integers(0, 11, (4, 6)))
    target = torch.tensor(np.random.default_rng(1).integers(0, 11, (4, 6)))
    for _ in range(steps):
        opt.zero_grad()
        logits = model(idx)
        torch.nn.functional.cross_entropy(logits.reshape(-1, 11), target.reshape(-1)).backward()
        opt.step()
    return [p.detach().double().numpy() for p in model.parameters()]


def test_adam_mini_torch_equals_pytorch_optimizer_in_float32():
    # the reference keeps its state in float32 (documented in adam_mini), so compare in float32
    torch.set_default_dtype(torch.float32)
    torch.manual_seed(0)
    ref_model = _TinyTransformerBlock()
    our_model = _TinyTransformerBlock()
    our_model.load_state_dict(ref_model.state_dict())
    ref = PO.AdamMini(ref_model, lr=0.01, weight_decay=0.1, num_embeds=8, num_heads=2)
    ours = A.adam_mini_torch(our_model, lr=0.01, weight_decay=0.1, num_embeds=8, num_heads=2)
    blocks = A.adam_mini_blocks(our_model, 8, 2)
    assert blocks["embed.weight"] == ("full", True) and blocks["q_proj.weight"] == (32, True)
    assert blocks["norm.weight"] == (None, False) and blocks["v_proj.weight"] == (None, True)
    before = [p.detach().double().numpy().copy() for p in ref_model.parameters()]
    a, b = _train(ref_model, ref), _train(our_model, ours)
    assert max(np.abs(x - y).max() for x, y in zip(a, before)) > 1e-2
    for x, y in zip(a, b):
        np.testing.assert_allclose(y, x, rtol=1e-5, atol=1e-6)
    n = sum(p.numel() for p in our_model.parameters())
    n_embed = our_model.embed.weight.numel() + our_model.lm_head.weight.numel()
    # m for everything, full v for the embeddings, 2 heads for q and k, one scalar for each other tensor
    assert ours.state_numel() == n + n_embed + 2 * 2 + (len(list(our_model.parameters())) - 4)


@pytest.mark.parametrize("cls,factory,kw", [
    (torch.optim.RAdam, A.radam, dict(lr=0.01, weight_decay=0.05)),
    (torch.optim.Adafactor, A.adafactor, dict(lr=0.01)),
    (PO.AdaBelief, A.adabelief, dict(lr=0.01, weight_decay=0.05)),
    (PO.Lamb, A.lamb, dict(lr=0.01, weight_decay=0.05)),
    (PO.Lion, A.lion, dict(lr=0.001, weight_decay=0.05)),
], ids=["RAdam", "Adafactor", "AdaBelief", "Lamb", "Lion"])
def test_torch_module_side_by_side(cls, factory, kw):
    torch.manual_seed(0)
    ref_model = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)).double()
    our_model = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)).double()
    our_model.load_state_dict(ref_model.state_dict())
    X = torch.tensor(np.random.default_rng(0).standard_normal((32, 3)))
    y = torch.sin(X.sum(dim=1, keepdim=True))
    ref, ours = cls(ref_model.parameters(), **kw), O.TorchOptimizer(factory(**kw), our_model.parameters())
    for _ in range(20):
        for model, opt in ((ref_model, ref), (our_model, ours)):
            opt.zero_grad()
            torch.nn.functional.mse_loss(model(X), y).backward()
            opt.step()
    for a, b in zip(ref_model.parameters(), our_model.parameters()):
        np.testing.assert_allclose(b.detach().numpy(), a.detach().numpy(), **TOL)


def test_state_numel_per_method():
    params = [np.zeros((30, 20)), np.zeros(20)]
    P = 620
    grads = [np.ones((30, 20)), np.ones(20)]
    for opt, floats in [(A.radam(), 2 * P), (A.adabelief(), 2 * P), (A.lamb(), 2 * P), (A.lion(), P),
                        (A.adafactor(), 30 + 20 + 20), (A.adam_mini(), P + 2)]:
        _, state = opt.update(grads, opt.init(params), params)
        assert O.state_numel(state) == floats, opt.name


@pytest.mark.parametrize("factory", [A.radam, A.adabelief, A.adafactor, A.lamb, A.lion, A.adam_mini])
def test_update_is_pure(factory):
    x0, g = np.array([1.0, -2.0]), np.array([0.5, 0.25])
    opt = factory(lr=0.1)
    state = opt.init(x0)
    x1, s1 = opt.update(g, state, x0)
    x1b, _ = opt.update(g, state, x0)
    np.testing.assert_array_equal(x0, [1.0, -2.0])
    np.testing.assert_array_equal(x1, x1b)
    assert s1.step == 1 and state.step == 0


@pytest.mark.parametrize("call,match", [
    (lambda: A.radam(betas=(0.9, 1.0)), r"betas\[1\] must lie in"),
    (lambda: A.adafactor(beta2_decay=0.5), "beta2_decay must be <= 0"),
    (lambda: A.adafactor(d=0.5), "d .the clipping threshold. must be >= 1"),
    (lambda: A.adafactor(eps=1e-3), "eps must be a pair"),
    (lambda: A.lamb(clamp=0), "clamp must be > 0"),
    (lambda: A.lion(lr=-1), "lr must be >= 0"),
    (lambda: A.adam_mini(block=0), "block must be >= 1"),
    (lambda: A.adam_mini(block=3).update(np.ones(4), A.adam_mini(block=3).init(np.ones(4)), np.ones(4)),
     "does not divide"),
    (lambda: A.adam_mini_blocks(_TinyTransformerBlock()), "pass num_embeds and num_heads"),
])
def test_bad_inputs_raise_clear_errors(call, match):
    with pytest.raises(CourseError, match=match):
        call()

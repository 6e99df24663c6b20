"""Chapter 5, a non-vacuous PAC-Bayes certificate for a real neural network (Dziugaite & Roy 2017 style).

Pipeline, in torch (CPU or CUDA):

1. train a small MLP by SGD on scikit-learn's digits, 0-4 vs 5-9 (:func:`train_mlp`), from a random
   initialisation w0 that depends only on the seed;
2. the prior is P = N(w0, lam I): its mean is that *data-independent* initialisation and its variance
   lam is chosen from a fixed grid of K values (union bound: each gets delta / K);
3. optimise a diagonal-Gaussian posterior Q = N(mu, diag sigma^2) -- mean *and* variances, by the
   reparametrisation trick -- on a differentiable surrogate of the bound (:func:`optimize_posterior`):
   logistic loss / log 2 (an upper bound on the 0-1 loss) plus McAllester's square-root term;
4. certify with the kl bound (:func:`course_lib.pac_bayes.kl_certificate`): a Monte Carlo estimate of
   the stochastic network's training error, its own kl bound (failure delta_mc), then the Seeger/Maurer
   bound (failure delta), total failure probability delta + delta_mc.

Inputs are the raw pixels divided by 16 (a fixed map: standardising with statistics of the training
set would make the hypothesis class depend on the sample). The flat parameter vector w holds every
weight and bias, so Q and P are Gaussians on R^d and :func:`course_lib.pac_bayes.kl_gaussian` applies.

Source: Dziugaite & Roy, *Computing nonvacuous generalization bounds for deep (stochastic) neural
networks with many more parameters than training data*, UAI 2017.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .backend import RNG, get_backend, to_float, to_numpy
from .datasets import digits_binary, train_test_split
from .pac_bayes import Certificate, kl_certificate, kl_gaussian, mcallester_bound
from .trace import Recorder, Trace
from .backend import is_torch
from .validation import (CourseError, check_array, check_in_range, check_int, check_labels_pm1, check_positive,
                         check_probability, check_seed)

__all__ = ["n_params", "init_weights", "forward", "error_rate", "train_mlp", "optimize_posterior",
           "stochastic_error", "certify_posterior", "digits_data", "run_experiment", "Experiment",
           "PRIOR_GRID"]

#: Prior variances lam the certificate may choose from (fixed before seeing data; union bound over K = 25).
PRIOR_GRID = tuple(float(v) for v in np.logspace(-5, 1, 25))


def _torch():
    import torch

    return torch


def _sizes(sizes) -> tuple:
    """Layer widths: a sequence of at least two ints >= 1."""
    if not isinstance(sizes, (list, tuple)):
        raise CourseError(f"sizes must be a tuple of layer widths such as (64, 20, 1), got {sizes!r}.")
    sizes = tuple(check_int(s, f"sizes[{i}]", 1) for i, s in enumerate(sizes))
    if len(sizes) < 2:
        raise CourseError(f"sizes must list at least an input and an output width, got {sizes!r}.")
    return sizes


def _check_data(X, y, sizes, name_X="X", name_y="y"):
    """X: a floating 2-D torch tensor with sizes[0] columns; y: its labels in {-1, +1}."""
    if not is_torch(X):
        raise CourseError(f"{name_X} must be a torch tensor (the network runs on torch), got {type(X).__name__}. "
                          f"Use course_lib.backend.asarray({name_X}, 'torch') or digits_data().")
    check_array(X, name_X, shape=(None, sizes[0]))
    if not is_torch(y) or y.device != X.device:
        raise CourseError(f"{name_y} must be a torch tensor on {name_X}'s device ({X.device}), got "
                          f"{type(y).__name__}. Use course_lib.backend.like({name_y}, {name_X}).")
    check_labels_pm1(y, name_y, int(X.shape[0]))


def n_params(sizes) -> int:
    """Number of weights and biases of an MLP with layer widths ``sizes`` (e.g. (64, 40, 1))."""
    sizes = _sizes(sizes)
    return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))


def init_weights(sizes, seed: int = 0, backend="torch", dtype: str = "float32"):
    """A flat initial parameter vector w0: weights ~ N(0, 1/fan_in) (LeCun), biases 0. Depends only on seed."""
    sizes = _sizes(sizes)
    rng = np.random.default_rng(check_seed(seed))
    parts = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        parts += [rng.standard_normal(a * b) / math.sqrt(a), np.zeros(b)]
    return get_backend(backend).asarray(np.concatenate(parts), dtype=dtype)


def forward(w, X, sizes):
    """Logits of the MLP(s) with flat parameters ``w``: ReLU hidden layers, one linear output.

    Args:
        w: parameters, shape (d,) for one network or (m, d) for m networks at once.
        X: inputs (n, sizes[0]). sizes: layer widths ending in 1.
    Returns:
        Logits, shape (n,) or (m, n).
    """
    if not (is_torch(w) and is_torch(X)):
        raise CourseError(f"w and X must be torch tensors (the network runs on torch), got {type(w).__name__} and "
                          f"{type(X).__name__}. Use course_lib.backend.asarray(..., 'torch').")
    check_array(X, "X", shape=(None, _sizes(sizes)[0]))
    if w.shape[-1] != n_params(sizes):
        raise CourseError(f"w has {w.shape[-1]} entries but an MLP with sizes {tuple(sizes)} has "
                          f"{n_params(sizes)}; build w with init_weights(sizes).")
    batch = tuple(w.shape[:-1])
    h, off = X, 0
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        W = w[..., off:off + a * b].reshape(*batch, a, b)
        bias = w[..., off + a * b:off + a * b + b].reshape(*batch, 1, b)
        off += a * b + b
        h = h @ W + bias
        if i < len(sizes) - 2:
            h = _torch().relu(h)
    return h[..., 0]


def _logistic(logits, y):
    """Mean logistic loss log(1 + exp(-y f)) over the last axis (labels y in {-1, +1})."""
    return _torch().nn.functional.softplus(-y * logits).mean(-1)


def _surrogate(logits, y):
    """Logistic loss / log 2 clipped at 1: an upper bound in [0, 1] on the 0-1 loss (Dziugaite & Roy 2017)."""
    return _torch().clamp(_torch().nn.functional.softplus(-y * logits) / math.log(2), max=1.0).mean(-1)


def error_rate(w, X, y, sizes):
    """0-1 error of the network(s) w on (X, y): a float for w of shape (d,), an (m,) array for (m, d)."""
    _check_data(X, y, _sizes(sizes))
    with _torch().no_grad():
        err = ((forward(w, X, sizes) * y) <= 0).to(X.dtype).mean(-1)
    return to_float(err) if err.ndim == 0 else to_numpy(err)


def train_mlp(X, y, sizes, seed: int = 0, step_size: float = 0.05, momentum: float = 0.9, epochs: int = 20,
              batch_size: int = 64, on_divergence: str = "raise", divergence_factor: float = 100.0):
    """Train the MLP by minibatch SGD with momentum on the logistic loss, from ``init_weights(sizes, seed)``.

    Update (heavy ball, as torch.optim.SGD): v <- momentum v + g_batch(w); w <- w - step_size v.

    Args:
        X, y: training data (torch, labels in {-1, +1}). sizes: layer widths.
        seed: seeds the initialisation and the minibatch order.
        step_size, momentum, epochs, batch_size: SGD hyperparameters.
        on_divergence, divergence_factor: see :class:`~course_lib.trace.Recorder` (the full-batch loss is
            recorded per epoch; the logistic loss grows only linearly in the logits, so a loss above
            100 (1 + loss at w0) already means the steps are far too long).
    Returns:
        (w0, w, trace): the initialisation (the prior mean), the trained weights and the Trace
        (f = training logistic loss, info["error"] = training 0-1 error).
    """
    torch = _torch()
    sizes = _sizes(sizes)
    _check_data(X, y, sizes)
    step_size = check_positive(step_size, "step_size")
    momentum = check_in_range(momentum, "momentum", 0.0, 1.0, high_open=True)
    epochs, batch_size = check_int(epochs, "epochs", 1), check_int(batch_size, "batch_size", 1)
    w0 = init_weights(sizes, seed, backend=f"torch:{X.device}" if X.device.type != "cpu" else "torch",
                      dtype=str(X.dtype).replace("torch.", ""))
    w = w0.clone().requires_grad_(True)
    opt = torch.optim.SGD([w], lr=step_size, momentum=momentum)
    rng = RNG(seed + 1, "numpy")
    n = X.shape[0]
    rec = Recorder("train_mlp", w, epochs, params=dict(step_size=step_size, momentum=momentum,
                   batch_size=batch_size), keep_x=False, on_divergence=on_divergence,
                   divergence_factor=divergence_factor)

    def loss_all():
        with torch.no_grad():
            return _logistic(forward(w, X, sizes), y)

    going = rec.record(0, w.detach(), f=loss_all(), error=error_rate(w, X, y, sizes))
    for epoch in range(1, epochs + 1 if going else 1):
        perm = torch.as_tensor(to_numpy(rng.permutation(n)), device=X.device)
        for start in range(0, n, batch_size):
            idx = perm[start:start + batch_size]
            opt.zero_grad()
            loss = _logistic(forward(w, X[idx], sizes), y[idx])
            loss.backward()
            opt.step()
        if not rec.record(epoch, w.detach(), f=loss_all(), calls=math.ceil(n / batch_size),
                          error=error_rate(w, X, y, sizes)):
            break
    return w0, w.detach(), rec.finish(w.detach())


def optimize_posterior(w, w0, X, y, sizes, delta: float = 0.025, steps: int = 500, step_size: float = 0.05,
                       samples: int = 2, init_var: float = 1e-3, seed: int = 0, n_priors: int = len(PRIOR_GRID),
                       on_divergence: str = "raise"):
    """Optimise Q = N(mu, diag exp(log_var)) on the differentiable surrogate of the bound

    B(mu, log_var) = E_{w ~ Q}[logistic(w) / log 2] + sqrt((KL(Q || N(w0, lam I)) + log(2 sqrt(n) K / delta)) / (2n)),

    McAllester's bound in Maurer's form with the 0-1 loss replaced by an upper bound in [0, 1] (the
    logistic loss / log 2, clipped at 1). The prior variance is set to its KL-minimising value
    lam = (sum_i var_i + ||mu - w0||^2) / d at every step (the certificate then takes the best prior
    of the fixed grid, paying log K). The expectation is estimated with
    ``samples`` reparametrised draws w = mu + exp(log_var / 2) * eps per step; Adam minimises B
    (Dziugaite & Roy 2017, Sec. 4, where lam is a learned parameter instead).

    Args:
        w: trained weights (initial mu). w0: the initialisation (prior mean, data independent).
        X, y: training data. sizes: layer widths. delta: the bound's failure probability.
        steps, step_size, samples: Adam iterations, learning rate, draws per step.
        init_var: initial posterior variances. seed: seeds the noise.
        n_priors: grid size K paid for in the surrogate.
        on_divergence: see :class:`~course_lib.trace.Recorder` (records the surrogate each step).
    Returns:
        (mu, var, trace): posterior mean and variances (detached) and the Trace of the surrogate
        (info: "kl", "lam", "risk" = surrogate empirical risk).
    """
    torch = _torch()
    steps, samples = check_int(steps, "steps", 1), check_int(samples, "samples", 1)
    init_var = check_positive(init_var, "init_var")
    delta, n_priors = check_probability(delta, "delta"), check_int(n_priors, "n_priors", 1)
    _check_data(X, y, _sizes(sizes))
    n, d = X.shape[0], w.shape[0]
    mu = w.detach().clone().requires_grad_(True)
    log_var = torch.full_like(mu, math.log(init_var)).requires_grad_(True)
    opt = torch.optim.Adam([mu, log_var], lr=check_positive(step_size, "step_size"))
    rng = RNG(seed, "numpy")
    rec = Recorder("optimize_posterior", mu, steps, params=dict(step_size=step_size, samples=samples,
                   delta=delta), keep_x=False, on_divergence=on_divergence, record_every=max(1, steps // 200))
    for k in range(steps + 1):
        eps = torch.as_tensor(to_numpy(rng.normal((samples, d))), dtype=w.dtype, device=w.device)
        var = torch.exp(log_var)
        risk = _surrogate(forward(mu + torch.sqrt(var) * eps, X, sizes), y).mean()
        lam = (var.sum() + ((mu - w0) ** 2).sum()) / d
        kl = kl_gaussian(mu, w0, var_q=var, var_p=lam)
        obj = mcallester_bound(risk, kl, n, delta / n_priors)
        if not rec.record(k, mu.detach(), f=obj.detach(), calls=samples, kl=kl.detach(),
                          lam=lam.detach(), risk=risk.detach()) or k == steps:
            break
        opt.zero_grad()
        obj.backward()
        opt.step()
    return mu.detach(), torch.exp(log_var).detach(), rec.finish(mu.detach())


def stochastic_error(mu, var, X, y, sizes, m: int = 1000, seed: int = 0, chunk: int = 250) -> float:
    """Monte Carlo error of the stochastic network: the mean 0-1 error of m draws w ~ N(mu, diag var)."""
    torch = _torch()
    m, chunk = check_int(m, "m", 1), check_int(chunk, "chunk", 1)
    check_array(var, "var")
    if not bool((var > 0).all()):
        raise CourseError("var must hold positive variances (the posterior's diag covariance); got an entry <= 0. "
                          "Pass torch.exp(log_var).")
    rng = RNG(seed, "numpy")
    total = 0.0
    for start in range(0, m, chunk):
        k = min(chunk, m - start)
        eps = torch.as_tensor(to_numpy(rng.normal((k, mu.shape[0]))), dtype=mu.dtype, device=mu.device)
        total += float(np.sum(error_rate(mu + torch.sqrt(var) * eps, X, y, sizes)))
    return total / m


def certify_posterior(mu, var, w0, X, y, sizes, delta: float = 0.025, delta_mc: float = 0.01, m: int = 1000,
                      seed: int = 0, prior_grid=PRIOR_GRID) -> tuple[Certificate, float]:
    """The kl certificate of Q = N(mu, diag var) with the best prior N(w0, lam I), lam in ``prior_grid``.

    Every lam of the grid (fixed in advance) gets delta / K; the bound increases with KL, so the best
    grid point is the one with the smallest KL(Q || P_lam) (:func:`course_lib.pac_bayes.grid_bound`
    does the same with one bound evaluation per point).

    Returns:
        (certificate, lam): the :class:`~course_lib.pac_bayes.Certificate` and the chosen prior variance.
    """
    grid = [check_positive(v, f"prior_grid[{i}]") for i, v in enumerate(prior_grid)]
    if not grid:
        raise CourseError("prior_grid is empty: pass the prior variances fixed in advance, e.g. PRIOR_GRID.")
    kls = [to_float(kl_gaussian(mu.double(), w0.double(), var_q=var.double(), var_p=lam)) for lam in grid]
    j = int(np.argmin(kls))
    risk_mc = stochastic_error(mu, var, X, y, sizes, m=m, seed=seed)
    cert = kl_certificate(risk_mc, m, kls[j], X.shape[0], delta=delta, delta_mc=delta_mc, n_priors=len(grid))
    return cert, grid[j]


def digits_data(seed: int = 0, test_fraction: float = 0.2, random_labels: bool = False, backend="torch",
                dtype: str = "float32"):
    """Digits 0-4 (+1) vs 5-9 (-1), pixels / 16, seeded train/test split; optionally random labels.

    With ``random_labels`` every label (train and test) is replaced by a fair coin flip, so no
    classifier can beat 0.5 test error and an honest bound must be vacuous.

    Returns:
        (X_train, X_test, y_train, y_test) as torch tensors on ``backend``.
    """
    X, y = digits_binary(standardize=False)
    X, y = X / 16.0, np.asarray(y)
    if random_labels:
        y = np.where(np.random.default_rng(seed + 12345).random(y.shape[0]) < 0.5, 1.0, -1.0)
    be = get_backend(backend)
    if be.name != "torch":
        raise CourseError(f"The certificate experiment trains a network with torch; got backend {backend!r}. "
                          "Use 'torch' or 'torch:cuda'.")
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_fraction=test_fraction, seed=seed)
    return tuple(be.asarray(a, dtype=dtype) for a in (Xtr, Xte, ytr, yte))


@dataclass
class Experiment:
    """Numbers of one run of the certificate pipeline (errors are 0-1 error rates)."""

    certificate: Certificate
    prior_var: float
    train_error: float
    test_error: float
    stochastic_train_error: float
    stochastic_test_error: float
    n_params: int
    n_train: int
    n_test: int
    train_trace: Trace = field(repr=False)
    posterior_trace: Trace = field(repr=False)

    @property
    def bound(self) -> float:
        """The certified bound on the stochastic network's true error."""
        return self.certificate.bound

    def summary(self) -> str:
        c = self.certificate
        return (f"MLP with {self.n_params} parameters, n = {self.n_train} training examples\n"
                f"  deterministic net:  train error {self.train_error:.3f}, test error {self.test_error:.3f}\n"
                f"  stochastic net Q:   train error {self.stochastic_train_error:.3f} (MC, m = {c.m}), "
                f"test error {self.stochastic_test_error:.3f} (n_test = {self.n_test})\n"
                f"  KL(Q || P) = {c.kl:.1f} (prior variance {self.prior_var:.2g})\n"
                f"  certificate: R(Q) <= {c.bound:.3f} with probability >= {1 - c.failure_probability:.3f}"
                f"{'  (vacuous)' if c.vacuous else ''}")


def run_experiment(seed: int = 0, random_labels: bool = False, hidden: int = 20, epochs: int = 20,
                   steps: int = 500, m: int = 1000, delta: float = 0.025, delta_mc: float = 0.01,
                   backend="torch", threads: int | None = 1) -> Experiment:
    """The whole pipeline on digits 0-4 vs 5-9: train, optimise the posterior, certify, test.

    Args:
        seed: seeds the split, initialisation, SGD order and all noise (same seed, same numbers).
        random_labels: the control experiment (labels replaced by coin flips).
        hidden: width of the single hidden layer. epochs: SGD epochs. steps: posterior Adam steps.
        m: Monte Carlo draws for the certificate (and for the stochastic test error).
        delta, delta_mc: failure probabilities of the bound and of the Monte Carlo estimate.
        backend: "torch" or "torch:cuda".
        threads: torch CPU threads during the run (restored after); 1 is fastest for this small
            network on a shared machine, None keeps torch's setting.
    Returns:
        An :class:`Experiment`.
    """
    torch = _torch()
    check_probability(delta, "delta")
    check_probability(delta_mc, "delta_mc")
    check_int(hidden, "hidden", 1)
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(check_int(threads, "threads", 1))
    try:
        return _run(seed, random_labels, hidden, epochs, steps, m, delta, delta_mc, backend)
    finally:
        torch.set_num_threads(before)


def _run(seed, random_labels, hidden, epochs, steps, m, delta, delta_mc, backend):
    Xtr, Xte, ytr, yte = digits_data(seed, random_labels=random_labels, backend=backend)
    sizes = (Xtr.shape[1], check_int(hidden, "hidden", 1), 1)
    w0, w, tr_trace = train_mlp(Xtr, ytr, sizes, seed=seed, epochs=epochs)
    mu, var, q_trace = optimize_posterior(w, w0, Xtr, ytr, sizes, delta=delta, steps=steps, seed=seed + 2)
    cert, lam = certify_posterior(mu, var, w0, Xtr, ytr, sizes, delta=delta, delta_mc=delta_mc, m=m, seed=seed + 3)
    return Experiment(certificate=cert, prior_var=lam, train_error=error_rate(w, Xtr, ytr, sizes),
                      test_error=error_rate(w, Xte, yte, sizes), stochastic_train_error=cert.risk_mc,
                      stochastic_test_error=stochastic_error(mu, var, Xte, yte, sizes, m=m, seed=seed + 4),
                      n_params=n_params(sizes), n_train=Xtr.shape[0], n_test=Xte.shape[0],
                      train_trace=tr_trace, posterior_trace=q_trace)

"""Chapter 2, Stochastic gradient descent: minibatch oracles, step-size schedules, SGD with
averaging and momentum, variance reduction (SVRG, SAGA) and Reddi et al.'s counterexample to Adam.

Every method takes a finite-sum problem (:class:`~course_lib.problems.FiniteSum`: ``grad_batch(x, idx)``),
a starting point and hyperparameters, and returns a :class:`~course_lib.trace.Trace` whose
``oracle_calls`` count per-example gradients (a minibatch of b costs b, a full gradient n).
The update rules live in :mod:`course_lib.optimizers` (one implementation each); :func:`run`
drives any of them with minibatch gradients. Indices are drawn with NumPy's PCG64 from ``seed``
and moved to the problem's backend, so NumPy and torch runs with the same seed agree to ~1e-12.

Example:
    >>> from course_lib import datasets, problems, stochastic
    >>> A, b, _ = datasets.make_regression(n=100, dim=5, seed=0)
    >>> p = problems.Ridge(A, b, lam=0.1)
    >>> tr = stochastic.sgd(p, p.zeros(), step_size=stochastic.inverse_time(2 / p.mu, offset=1),
    ...                     max_iter=2000, averaging="weighted", seed=0)
    >>> tr.f_final - p.f_star < 1e-2
    True
"""
from __future__ import annotations

import math

import numpy as np

from . import optimizers
from .backend import RNG, namespace, to_float
from .trace import Recorder, Trace
from .validation import (CourseError, check_finite_sum, check_has, check_in_range, check_int, check_positive,
                         check_schedule, check_step_size)

__all__ = ["Schedule", "constant", "inverse_time", "inverse_sqrt", "step_decay", "cosine", "warmup",
           "MinibatchSampler", "gradient_variance", "run", "sgd", "svrg", "svrg_rate", "saga",
           "reddi_counterexample", "SAMPLINGS"]

SAMPLINGS = ("with_replacement", "without_replacement", "shuffle")


# -- step-size schedules: t -> step size, t = 1, 2, ... (the t-th update) -------------------------
class Schedule:
    """A step-size schedule t -> eta_t (t = 1, 2, ... numbers the updates), with a readable repr."""

    def __init__(self, fn, text: str):
        self.fn, self.text = fn, text

    def __call__(self, t: int) -> float:
        return self.fn(t)

    def __repr__(self) -> str:
        return self.text


def constant(step_size: float) -> Schedule:
    """eta_t = step_size. SGD then converges linearly to a noise floor of order step_size * sigma^2 / mu."""
    eta = check_positive(step_size, "step_size")
    return Schedule(lambda t: eta, f"constant({eta:g})")


def inverse_time(step_size: float, offset: float = 0.0) -> Schedule:
    """eta_t = step_size / (t + offset): with step_size = 2/mu, offset = 1 the rate-optimal O(1/t) schedule
    for mu-strongly convex f (Lacoste-Julien, Schmidt, Bach 2012)."""
    eta = check_positive(step_size, "step_size")
    offset = check_positive(offset, "offset", allow_zero=True)
    return Schedule(lambda t: eta / (t + offset), f"inverse_time({eta:g}, offset={offset:g})")


def inverse_sqrt(step_size: float) -> Schedule:
    """eta_t = step_size / sqrt(t): the O(1/sqrt(T)) schedule for convex Lipschitz f (Zinkevich 2003)."""
    eta = check_positive(step_size, "step_size")
    return Schedule(lambda t: eta / math.sqrt(t), f"inverse_sqrt({eta:g})")


def step_decay(step_size: float, factor: float = 0.1, every: int = 100) -> Schedule:
    """eta_t = step_size * factor^floor((t-1)/every), as ``torch.optim.lr_scheduler.StepLR``."""
    eta = check_positive(step_size, "step_size")
    factor = check_in_range(factor, "factor", 0.0, 1.0, low_open=True)
    every = check_int(every, "every", 1)
    return Schedule(lambda t: eta * factor ** ((t - 1) // every), f"step_decay({eta:g}, {factor:g}, every={every})")


def cosine(step_size: float, total: int, min_step: float = 0.0) -> Schedule:
    """eta_t = min_step + (step_size - min_step)(1 + cos(pi (t-1)/total))/2 for t <= total + 1, then min_step
    (``torch.optim.lr_scheduler.CosineAnnealingLR`` without restarts; Loshchilov & Hutter 2017)."""
    eta = check_positive(step_size, "step_size")
    total = check_int(total, "total", 1)
    lo = check_positive(min_step, "min_step", allow_zero=True)
    if lo > eta:
        raise CourseError(f"min_step={lo:g} must be <= step_size={eta:g}.")
    return Schedule(lambda t: lo + (eta - lo) * (1 + math.cos(math.pi * min(t - 1, total) / total)) / 2,
                    f"cosine({eta:g}, total={total}, min_step={lo:g})")


def warmup(schedule, steps: int) -> Schedule:
    """Linear warmup: eta_t = schedule(t) * min(1, t / steps) (Goyal et al. 2017)."""
    base = schedule if callable(schedule) else constant(check_positive(schedule, "schedule"))
    steps = check_int(steps, "steps", 1)
    return Schedule(lambda t: base(t) * min(1.0, t / steps), f"warmup({base!r}, steps={steps})")


# -- minibatch oracles ----------------------------------------------------------------------------
class MinibatchSampler:
    """Seeded minibatch indices for a finite sum of n terms.

    sampling:
        "with_replacement": b indices drawn i.i.d. uniformly from {0..n-1};
        "without_replacement": b distinct indices, a fresh uniform subset at every call;
        "shuffle": random reshuffling, the data is permuted every epoch and cut into consecutive
            batches (the last batch of an epoch is smaller when b does not divide n), like
            ``torch.utils.data.DataLoader(shuffle=True)``.
    The first two give unbiased gradients: E[grad_batch(x, B)] = grad f(x).

    Args:
        n: number of terms. batch_size: b, 1 <= b <= n. sampling: see above.
        seed: int seed. backend: where the index arrays live.
    """

    def __init__(self, n: int, batch_size: int = 1, sampling: str = "with_replacement", seed: int = 0,
                 backend=None):
        self.n = check_int(n, "n", 1)
        self.batch_size = check_int(batch_size, "batch_size", 1)
        if self.batch_size > self.n:
            raise CourseError(f"batch_size={batch_size} is larger than the number of terms n={n}. "
                              f"Use batch_size <= {n} (batch_size={n} with sampling='shuffle' is full-batch GD).")
        if sampling not in SAMPLINGS:
            raise CourseError(f"sampling must be one of {SAMPLINGS}, got {sampling!r}.")
        self.sampling = sampling
        self.rng = RNG(seed, backend)
        self._perm, self._pos = None, 0

    def __call__(self):
        """The next minibatch: an int64 index array on the backend."""
        n, b = self.n, self.batch_size
        if self.sampling == "with_replacement":
            return self.rng.integers(0, n, (b,))
        if self.sampling == "without_replacement":
            return self.rng.choice(n, b, replace=False)
        if self._perm is None or self._pos >= n:
            self._perm, self._pos = self.rng.permutation(n), 0
        idx = self._perm[self._pos:self._pos + b]
        self._pos += b
        return idx


def _per_example_grads(problem, x):
    xp = namespace(x)
    return xp.stack([problem.grad_batch(x, [i]) for i in range(problem.n)])


def gradient_variance(problem, x, batch_size: int = 1, sampling: str = "with_replacement") -> float:
    """The exact variance E||g_B(x) - grad f(x)||^2 of a minibatch gradient at x.

    With s^2 = (1/n) sum_i ||grad f_i(x) - grad f(x)||^2 it is s^2 / b with replacement and
    s^2 (n - b) / (b (n - 1)) without (the finite-population correction; Cochran, *Sampling
    Techniques*, 1977, Thm 2.2). Costs n per-example gradients.
    """
    n = check_finite_sum(problem, "gradient_variance").n
    problem.check_x(x, "x")
    b = check_int(batch_size, "batch_size", 1)
    if b > n:
        raise CourseError(f"batch_size={b} is larger than n={n}.")
    G = _per_example_grads(problem, x)
    xp = namespace(G)
    s2 = to_float(xp.mean(xp.sum((G - xp.mean(G, axis=0)) ** 2, axis=1)))
    if sampling == "with_replacement":
        return s2 / b
    if sampling == "without_replacement":
        return 0.0 if n == 1 else s2 * (n - b) / (b * (n - 1))
    raise CourseError(f"gradient_variance knows sampling 'with_replacement' or 'without_replacement', got {sampling!r}.")


# -- the generic runner ---------------------------------------------------------------------------
def _check_optimizer(optimizer, name="optimizer"):
    return check_has(optimizer, name, ("init", "update", "name", "hyper"), "an Optimizer",
                     "Build one with course_lib.optimizers, e.g. optimizers.adam(lr=1e-2).")


def _start(problem, x0, max_iter, method="stochastic methods", name="max_iter"):
    check_finite_sum(problem, method)
    return problem.check_x(x0, "x0"), check_int(max_iter, name, 0)


def run(problem, x0, optimizer: "optimizers.Optimizer", max_iter: int = 1000, batch_size: "int | None" = 1,
        sampling: str = "with_replacement", seed: int = 0, averaging: "str | None" = None,
        record_every: int = 1, keep_x="auto", on_divergence: str = "raise", method: "str | None" = None) -> Trace:
    """Run an optimizer of :mod:`course_lib.optimizers` with minibatch gradients of a finite sum.

    Update: x_t, state_t = optimizer.update(grad_batch(x_{t-1}, B_t), state_{t-1}, x_{t-1}),
    B_t drawn by :class:`MinibatchSampler` (``batch_size=None``: the full gradient, B_t = all).

    Averaging (Polyak & Juditsky 1992; Lacoste-Julien, Schmidt, Bach 2012) changes what the run
    returns: the trace then records xbar_k and ``f`` holds f(xbar_k) (``info["f_last"]`` keeps
    f(x_k)); ``x_final`` is xbar at the end.
        "uniform":  xbar_k = (x_0 + ... + x_k) / (k + 1)
        "weighted": xbar_k = sum_j (j + 1) x_j / ((k + 1)(k + 2)/2)

    Args:
        problem: a FiniteSum (``grad_batch``, ``value``, ``grad``).
        x0: starting point on the problem's backend.
        optimizer: e.g. ``optimizers.adam(lr=1e-2)``.
        max_iter: number of updates. batch_size: b, or None for full gradients.
        sampling: "with_replacement", "without_replacement" or "shuffle". seed: int.
        averaging: None, "uniform" or "weighted".
        record_every, keep_x, on_divergence: see :class:`~course_lib.trace.Recorder`.
        method: the name stored in the trace (default: the optimizer's).
    Returns:
        The Trace of the run.
    """
    x, max_iter = _start(problem, x0, max_iter, "run")
    _check_optimizer(optimizer)
    if averaging not in (None, "uniform", "weighted"):
        raise CourseError(f"averaging must be None, 'uniform' or 'weighted', got {averaging!r}.")
    full = batch_size is None
    sampler = None if full else MinibatchSampler(problem.n, batch_size, sampling, seed, problem.backend)
    cost = problem.n if full else sampler.batch_size
    params = dict(optimizer.hyper, batch_size=batch_size, sampling=sampling, seed=seed, averaging=averaging)
    rec = Recorder(method or optimizer.name, x, max_iter, params=params, record_every=record_every,
                   keep_x=keep_x, on_divergence=on_divergence)
    state = optimizer.init(x)
    x_bar = x

    def log(k, calls):
        if not (k % rec.record_every == 0 or k == max_iter):
            return rec.record(k, x_bar, calls=calls)
        extra = {} if averaging is None else {"f_last": problem.value(x)}
        return rec.record(k, x_bar, f=problem.value(x_bar), grad=problem.grad(x_bar), calls=calls, **extra)

    if log(0, 0):
        for k in range(1, max_iter + 1):
            g = problem.grad(x) if full else problem.grad_batch(x, sampler())
            x, state = optimizer.update(g, state, x)
            if averaging == "uniform":
                x_bar = x_bar + (x - x_bar) / (k + 1)
            elif averaging == "weighted":
                x_bar = x_bar + (2.0 / (k + 2)) * (x - x_bar)
            else:
                x_bar = x
            if not log(k, cost):
                break
    return rec.finish(x_bar)


def sgd(problem, x0, step_size=None, max_iter: int = 1000, batch_size: int = 1, sampling: str = "with_replacement",
        momentum: float = 0.0, nesterov: bool = False, dampening: float = 0.0, averaging: "str | None" = None,
        seed: int = 0, check_step: bool = True, record_every: int = 1, keep_x="auto",
        on_divergence: str = "raise") -> Trace:
    """Minibatch SGD with a step-size schedule, optional (Nesterov) momentum and averaging.

    Update: x_t = x_{t-1} - eta_t g_t with g_t = grad_batch(x_{t-1}, B_t), E[g_t] = grad f(x_{t-1})
    (momentum as in :func:`course_lib.optimizers.sgd`, averaging as in :func:`run`).

    Guarantees (f = (1/n) sum f_i, each f_i L_max-smooth, f mu-strongly convex, b = 1):
      * constant eta <= 1/(2 L_max): E||x_t - x*||^2 <= (1 - eta mu)^t ||x_0 - x*||^2 + 2 eta sigma*^2 / mu,
        sigma*^2 = E||grad f_i(x*)||^2 (Gower et al., *SGD: general analysis and improved rates*, ICML 2019,
        Thm 3.1): linear convergence to a noise floor proportional to eta;
      * eta_t = 2/(mu (t+1)) (``inverse_time(2/mu, offset=1)``) with averaging="weighted" and
        E||g||^2 <= G^2: E f(xbar_t) - f* <= 2 G^2 / (mu (t + 1)) (Lacoste-Julien, Schmidt, Bach 2012);
      * convex f, constant eta, averaging="uniform": E f(xbar_t) - f* <= ||x_0 - x*||^2/(2 eta (t+1))
        + eta G^2 / 2 (Nemirovski et al. 2009; Bubeck 2015, Thm 6.1).

    Args:
        problem: a FiniteSum. x0: starting point.
        step_size: a number (constant), a schedule t -> eta_t (see :func:`inverse_time` etc.);
            default 1/(2 L_max).
        max_iter: number of updates. batch_size, sampling, seed: see :class:`MinibatchSampler`.
        momentum, nesterov, dampening: see :func:`course_lib.optimizers.sgd`.
        averaging: None, "uniform" or "weighted".
        check_step: refuse a constant step >= 2/L_max, and a schedule whose first max_iter steps (up to
            10^4 checked) reach 2/L_max (set False to watch a divergence).
        record_every, keep_x, on_divergence: see :class:`~course_lib.trace.Recorder`.
    Returns:
        The Trace of the run (of the averaged iterates when averaging is set).
    """
    check_finite_sum(problem, "sgd")
    max_iter = check_int(max_iter, "max_iter", 0)
    if step_size is None:
        step_size = 1.0 / (2 * problem.L_max)
    if callable(step_size):
        check_schedule(step_size, problem.L_max if check_step else None, "step_size", max_iter, L_name="L_max")
    else:
        step_size = check_step_size(step_size, problem.L_max if check_step else None)
    opt = optimizers.sgd(lr=step_size, momentum=momentum, dampening=dampening, nesterov=nesterov)
    name = "sgd" + ("_nesterov" if nesterov else "_momentum" if momentum else "")
    return run(problem, x0, opt, max_iter, batch_size, sampling, seed, averaging, record_every, keep_x,
               on_divergence, method=name)


# -- variance reduction ---------------------------------------------------------------------------
def svrg_rate(L: float, mu: float, step_size: float, inner_steps: int) -> float:
    """SVRG's contraction per epoch, alpha = 1/(mu eta (1 - 2 L eta) m) + 2 L eta / (1 - 2 L eta)
    (Johnson & Zhang 2013, Thm 1); linear convergence needs alpha < 1, e.g. eta < 1/(4L) and m large."""
    L, mu = check_positive(L, "L"), check_positive(mu, "mu")
    eta, m = check_positive(step_size, "step_size"), check_int(inner_steps, "inner_steps", 1)
    if not 0 < eta < 1 / (2 * L):
        return math.inf
    return 1 / (mu * eta * (1 - 2 * L * eta) * m) + 2 * L * eta / (1 - 2 * L * eta)


def svrg(problem, x0, step_size=None, epochs: int = 10, inner_steps: "int | None" = None, batch_size: int = 1,
         snapshot: str = "last", seed: int = 0, record_every: int = 1, keep_x="auto",
         on_divergence: str = "raise") -> Trace:
    """Stochastic variance-reduced gradient (Johnson & Zhang, NeurIPS 2013).

    Update: each epoch s takes a snapshot xt = x, mu = grad f(xt) (n calls), then m inner steps
        x <- x - eta (grad_batch(x, B) - grad_batch(xt, B) + mu)
    and the next snapshot is the last inner iterate (snapshot="last", option I) or a uniformly random
    one among x_0..x_{m-1} (snapshot="random", option II, the one the theorem covers).

    Guarantee (Johnson & Zhang 2013, Thm 1; option II, each f_i convex and L-smooth, f mu-strongly
    convex, L = L_max): E f(xt_s) - f* <= alpha^s (f(x_0) - f*) with alpha = :func:`svrg_rate` < 1.

    Args:
        problem: a FiniteSum. x0: starting point. step_size: eta, default 1/(5 L_max).
        epochs: number of snapshots. inner_steps: m, default 2n. batch_size: b.
        snapshot: "last" or "random". seed: int.
        record_every, keep_x, on_divergence: see :class:`~course_lib.trace.Recorder`; iteration k counts
        inner steps, and at k = s m the recorded point is the snapshot xt_s.
    Returns:
        The Trace (oracle_calls include the n calls of each full gradient).
    """
    x, epochs = _start(problem, x0, epochs, "svrg", "epochs")
    m = check_int(2 * problem.n if inner_steps is None else inner_steps, "inner_steps", 1)
    eta = check_step_size(1.0 / (5 * problem.L_max) if step_size is None else step_size, problem.L_max,
                          limit=1.0)
    if snapshot not in ("last", "random"):
        raise CourseError(f"snapshot must be 'last' or 'random', got {snapshot!r}.")
    sampler = MinibatchSampler(problem.n, batch_size, "with_replacement", seed, problem.backend)
    pick_rng = np.random.default_rng(seed + 1)
    rec = Recorder("svrg", x, epochs * m, params=dict(step_size=eta, inner_steps=m, batch_size=batch_size,
                                                      snapshot=snapshot, seed=seed),
                   record_every=record_every, keep_x=keep_x, on_divergence=on_divergence)
    k, calls = 0, 0
    go = rec.record(0, x, f=problem.value(x), grad=problem.grad(x))
    for _ in range(epochs if go else 0):
        x_snap, mu = x, problem.grad(x)
        calls += problem.n
        pick = int(pick_rng.integers(0, m))
        for j in range(m):
            if j == pick:
                chosen = x
            idx = sampler()
            x = x - eta * (problem.grad_batch(x, idx) - problem.grad_batch(x_snap, idx) + mu)
            calls += 2 * sampler.batch_size
            k += 1
            if j == m - 1 and snapshot == "random":
                x = chosen
            f = problem.value(x) if (k % rec.record_every == 0 or j == m - 1) else None
            go = rec.record(k, x, f=f, grad=None if f is None else problem.grad(x), calls=calls, force=j == m - 1)
            calls = 0
            if not go:
                break
        if not go:
            break
    return rec.finish(x)


def saga(problem, x0, step_size=None, max_iter: int = 1000, batch_size: int = 1, seed: int = 0,
         record_every: int = 1, keep_x="auto", on_divergence: str = "raise") -> Trace:
    """SAGA (Defazio, Bach, Lacoste-Julien, NeurIPS 2014).

    Update: keep a table a_i of the last gradient seen for every term (a_i = grad f_i(x_0) initially,
    n calls); draw a batch B of distinct indices and step
        x <- x - eta ( (1/b) sum_{i in B} (grad f_i(x) - a_i) + (1/n) sum_i a_i ),  then a_i <- grad f_i(x), i in B.

    Guarantee (Defazio et al. 2014, Thm 1; each f_i mu-strongly convex and L-smooth, eta = 1/(2(mu n + L))):
    E||x_k - x*||^2 <= (1 - mu eta)^k (||x_0 - x*||^2 + 2 eta n (f(x_0) - f*)). With eta = 1/(3L) the
    rate is 1 - min(1/(4n), mu/(3L)) (ibid., remark after Thm 1). Memory: an n x dim table.

    Args:
        problem: a FiniteSum. x0: starting point. step_size: eta, default 1/(3 L_max).
        max_iter: number of updates. batch_size: b (distinct indices per batch). seed: int.
        record_every, keep_x, on_divergence: see :class:`~course_lib.trace.Recorder`.
    Returns:
        The Trace (oracle_calls include the n calls that fill the table).
    """
    x, max_iter = _start(problem, x0, max_iter, "saga")
    eta = check_step_size(1.0 / (3 * problem.L_max) if step_size is None else step_size, problem.L_max, limit=1.0)
    sampler = MinibatchSampler(problem.n, batch_size, "without_replacement", seed, problem.backend)
    rec = Recorder("saga", x, max_iter, params=dict(step_size=eta, batch_size=batch_size, seed=seed),
                   record_every=record_every, keep_x=keep_x, on_divergence=on_divergence)
    table = _per_example_grads(problem, x)
    xp = namespace(table)
    avg = xp.mean(table, axis=0)
    if rec.record(0, x, f=problem.value(x), grad=problem.grad(x), calls=problem.n):
        for k in range(1, max_iter + 1):
            idx = sampler()
            new = xp.stack([problem.grad_batch(x, idx[i:i + 1]) for i in range(idx.shape[0])])
            old = xp.take(table, idx, axis=0)
            x = x - eta * (xp.mean(new - old, axis=0) + avg)
            avg = avg + xp.sum(new - old, axis=0) / problem.n
            table[idx] = new
            f = problem.value(x) if (k % rec.record_every == 0 or k == max_iter) else None
            if not rec.record(k, x, f=f, grad=None if f is None else problem.grad(x), calls=idx.shape[0]):
                break
    return rec.finish(x)


# -- Reddi, Kale, Kumar (2018): Adam can converge to the worst point ------------------------------
def reddi_counterexample(optimizer: "optimizers.Optimizer", max_iter: int = 3000, C: float = 3.0,
                         x0: float = 1.0, backend=None) -> Trace:
    """The online problem of Reddi, Kale & Kumar (ICLR 2018, Thm 1) on the interval [-1, 1].

    f_t(x) = C x when t = 1 (mod 3), f_t(x) = -x otherwise (C > 2). The average loss
    F(x) = (C - 2) x / 3 is minimised at x* = -1 and maximised at +1. Each round the optimizer
    takes the gradient of f_t and the result is projected onto [-1, 1]. With betas = (0,
    1/(1 + C^2)) Adam drifts to +1, the worst point, while AMSGrad goes to -1.

    Args:
        optimizer: e.g. ``optimizers.adam(lr=inverse_sqrt(0.5), betas=(0.0, 1 / (1 + C**2)))``.
        max_iter: number of rounds. C: > 2. x0: start in [-1, 1]. backend: where x lives.
    Returns:
        A Trace with f = F(x_t) and the iterates x_t (a 1-d problem).
    """
    from .backend import get_backend

    max_iter = check_int(max_iter, "max_iter", 0)
    _check_optimizer(optimizer)
    C = check_positive(C, "C")
    if C <= 2:
        raise CourseError(f"C must be > 2 for the counterexample (F(x) = (C - 2) x / 3), got {C!r}.")
    check_in_range(x0, "x0", -1.0, 1.0)
    x = get_backend(backend).asarray([x0])
    xp = namespace(x)
    one = xp.ones_like(x)
    F = (C - 2) / 3
    rec = Recorder(f"reddi_{optimizer.name}", x, max_iter, params=dict(optimizer.hyper, C=C), keep_x=True)
    state = optimizer.init(x)
    if rec.record(0, x, f=F * x[0], grad_norm=F):
        for t in range(1, max_iter + 1):
            g = C * one if t % 3 == 1 else -one
            x, state = optimizer.update(g, state, x)
            x = xp.clip(x, -1.0, 1.0)
            if not rec.record(t, x, f=F * x[0], grad_norm=F, calls=1):
                break
    return rec.finish(x)

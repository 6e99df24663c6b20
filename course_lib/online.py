"""Chapter 3, Regret analysis: online convex optimization (OCO).

The protocol, as a loop between a learner and an environment (:func:`play`)::

    for t = 1, ..., T:
        the learner plays x_t in K
        the environment reveals a convex loss f_t   (an adaptive one may look at x_t first)
        the learner suffers f_t(x_t), sees grad f_t(x_t), and computes x_{t+1}

    Regret_T = sum_{t<=T} f_t(x_t) - min_{u in K} sum_{t<=T} f_t(u)

The comparator is the best fixed point in hindsight, computed *exactly* at every round
(:class:`Hindsight`) for linear losses <g, x> and quadratic losses (alpha/2)||x - z||^2.
Sources: E. Hazan, *Introduction to Online Convex Optimization*, 2nd ed., 2022 ("Hazan");
F. Orabona, *A Modern Introduction to Online Learning*, 2019, arXiv:1912.13213 ("Orabona");
N. Cesa-Bianchi and G. Lugosi, *Prediction, Learning, and Games*, 2006 ("CBL").

Every learner takes an environment, a horizon T and hyperparameters and returns an
:class:`OnlineTrace` (a Trace whose ``f`` is the per-round loss f_t(x_t), with the cumulative
regret in ``regret``). Feasible sets come from :mod:`course_lib.projections`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .backend import RNG, backend_of, get_backend, is_torch, namespace, to_float, to_numpy
from .projections import Ball, Box, Simplex
from .trace import Recorder, Trace
from .validation import (CourseError, check_array, check_callable, check_domain, check_finite_sum, check_has,
                         check_in_range, check_int, check_positive)

_SET = ("project", "lmo", "contains", "diameter")


def _check_env(env):
    return check_has(env, "env", ("K", "dim", "G", "loss", "start"), "an Environment",
                     "Build one with course_lib.online, e.g. stochastic_linear(Ball(1.0), T, dim) or stochastic_experts(means, T).")


__all__ = [
    "LinearLoss", "QuadraticLoss", "SampleLoss", "Hindsight", "best_fixed",
    "Environment", "Sequence", "Adaptive", "SampledLosses",
    "stochastic_linear", "stochastic_quadratic", "stochastic_experts", "alternating", "adaptive_experts",
    "adaptive_linear", "OnlineTrace", "play", "ogd", "ftl", "ftrl", "exponentiated_gradient", "hedge",
    "adagrad", "online_to_batch", "ogd_bound", "strongly_convex_bound", "hedge_bound",
]


def _norm(x):
    xp = namespace(x)
    return xp.sqrt(xp.sum(x * x))


# --- losses ---------------------------------------------------------------------------------------
# Each loss is a small object with value(x), grad(x) and, for the exact comparator, its terms (a, b, c)
# in f(u) = (a/2)||u||^2 - <b, u> + c.

class LinearLoss:
    """f(x) = <g, x> (the losses of prediction with experts when g = the experts' losses)."""

    def __init__(self, g):
        if not (is_torch(g) or isinstance(g, np.ndarray)):
            raise CourseError(f"g must be an array (the loss vector of <g, x>), got {type(g).__name__} {g!r:.40}.")
        self.g = g

    def value(self, x):
        return namespace(x).sum(self.g * x)

    def grad(self, x):
        return self.g

    def terms(self):
        return 0.0, -self.g, 0.0


class QuadraticLoss:
    """f(x) = (alpha/2)||x - z||^2, alpha-strongly convex, gradient alpha (x - z)."""

    def __init__(self, z, alpha: float = 1.0):
        if not (is_torch(z) or isinstance(z, np.ndarray)):
            raise CourseError(f"z must be an array (the centre of the loss), got {type(z).__name__} {z!r:.40}.")
        self.z, self.alpha = z, check_positive(alpha, "alpha")

    def value(self, x):
        d = x - self.z
        return 0.5 * self.alpha * namespace(x).sum(d * d)

    def grad(self, x):
        return self.alpha * (x - self.z)

    def terms(self):
        return self.alpha, self.alpha * self.z, 0.5 * self.alpha * namespace(self.z).sum(self.z * self.z)


class SampleLoss:
    """f(x) = f_i(x), one term of a finite-sum Problem (for online-to-batch); no exact comparator."""

    def __init__(self, problem, idx):
        self.problem, self.idx = problem, idx

    def value(self, x):
        return self.problem.value_batch(x, self.idx)

    def grad(self, x):
        return self.problem.grad_batch(x, self.idx)


class Hindsight:
    """The cumulative loss F_t(u) = sum_{s<=t} f_s(u) and its exact minimiser over K.

    For linear and quadratic losses F_t(u) = (A/2)||u||^2 - <B, u> + C, so
    argmin_K F_t = P_K(B / A) when A > 0 and the linear minimisation oracle lmo_K(-B) when A = 0.
    This is the comparator of the regret, and the point follow-the-leader plays.
    """

    def __init__(self, K):
        self.K, self.A, self.B, self.C = K, 0.0, None, 0.0

    def add(self, loss) -> None:
        if not hasattr(loss, "terms"):
            raise CourseError(f"The exact comparator needs linear or quadratic losses, got {type(loss).__name__}. "
                              "Pass a fixed comparator u instead (play(..., comparator=u)).")
        a, b, c = loss.terms()
        self.A, self.B, self.C = self.A + a, b if self.B is None else self.B + b, self.C + c

    def argmin(self):
        """u_t* = argmin_{u in K} F_t(u)."""
        return self.K.project(self.B / self.A) if self.A > 0 else self.K.lmo(-self.B)

    def value(self, u):
        """F_t(u)."""
        xp = namespace(u)
        return 0.5 * self.A * xp.sum(u * u) - xp.sum(self.B * u) + self.C


def best_fixed(K, losses):
    """The best fixed point in hindsight u* = argmin_{u in K} sum_t f_t(u) and its cumulative loss.

    Args:
        K: a feasible set of :mod:`course_lib.projections` (Ball, Simplex, Box).
        losses: a list of LinearLoss / QuadraticLoss.
    Returns:
        (u*, sum_t f_t(u*)) with the value as a float.
    """
    check_domain(K, _SET, "K")
    losses = list(losses)
    if not losses:
        raise CourseError("losses is empty: the best fixed point needs at least one loss.")
    H = Hindsight(K)
    for f in losses:
        H.add(f)
    u = H.argmin()
    return u, to_float(H.value(u))


# --- environments ---------------------------------------------------------------------------------

class Environment:
    """Reveals the loss f_t of round t once the learner has committed to x_t.

    Attributes:
        K: the feasible set. dim: dimension. backend: where the losses live.
        G: a bound on ||grad f_t(x)||_2 over K. alpha: every f_t is alpha-strongly convex (0: convex).
        experts: True for linear losses with entries in [0, 1] on the simplex (prediction with experts).
    """

    K: Any
    dim: int
    G: float
    alpha: float = 0.0
    experts: bool = False
    backend: Any = get_backend("numpy")

    def loss(self, t: int, x):
        """f_t, given the learner's point x_t (oblivious environments ignore it)."""
        raise NotImplementedError

    def start(self):
        """The default first point x_1: the centre of K (0, the uniform vector or the box's midpoint)."""
        if isinstance(self.K, Simplex):
            return self.backend.asarray(np.full(self.dim, self.K.radius / self.dim))
        if isinstance(self.K, Box):
            return self.backend.asarray(np.full(self.dim, (self.K.lo + self.K.hi) / 2))
        return self.backend.asarray(np.zeros(self.dim))


class Sequence(Environment):
    """An oblivious environment: the whole sequence is fixed before the game (stochastic or adversarial).

    Args:
        K: feasible set. data: (T, dim) array, the g_t of linear losses or the centres z_t (in K) of quadratic ones.
        kind: "linear" or "quadratic". alpha: curvature of quadratic losses.
    """

    def __init__(self, K, data, kind: str = "linear", alpha: float = 1.0):
        check_array(data, "data", ndim=2)
        check_domain(K, _SET, "K")
        if kind not in ("linear", "quadratic"):
            raise CourseError(f"kind must be 'linear' or 'quadratic', got {kind!r}.")
        self.K, self.data, self.kind, self.backend = K, data, kind, backend_of(data)
        self.T, self.dim = (int(s) for s in data.shape)
        d = to_numpy(data)
        if kind == "linear":
            self.G = float(np.linalg.norm(d, axis=1).max())
            self.experts = isinstance(K, Simplex) and K.radius == 1 and bool(d.min() >= 0 and d.max() <= 1)
        else:
            self.alpha = check_positive(alpha, "alpha")
            bad = [t for t in range(self.T) if not K.contains(data[t])]
            if bad:
                raise CourseError(f"quadratic losses need centres z_t in K = {K}; z_{bad[0] + 1} is not. "
                                  "Project them first (K.project(z)).")
            self.G = self.alpha * K.diameter  # ||alpha (x - z)|| <= alpha D for x, z in K

    def loss(self, t, x):
        if t > self.T:
            raise CourseError(f"This sequence has T={self.T} rounds; round {t} was asked for. Use T <= {self.T}.")
        row = self.data[t - 1]
        return LinearLoss(row) if self.kind == "linear" else QuadraticLoss(row, self.alpha)


class Adaptive(Environment):
    """An adaptive adversary: g_t = rule(t, x_t) is chosen after seeing the learner's point x_t.

    Args:
        K: feasible set. dim: dimension. rule: (t, x) -> g_t, the linear loss <g_t, .>.
        G: the bound on ||g_t|| that ``rule`` guarantees. experts: rule returns vectors in [0, 1]^dim.
    """

    def __init__(self, K, dim: int, rule: Callable, G: float, experts: bool = False, backend=None):
        check_domain(K, _SET, "K")
        check_callable(rule, "rule", "It maps (t, x_t) to the loss vector g_t.")
        self.K, self.dim, self.rule, self.G = K, check_int(dim, "dim", 1), rule, check_positive(G, "G")
        self.experts, self.backend = experts, get_backend(backend)

    def loss(self, t, x):
        return LinearLoss(self.rule(t, x))


class SampledLosses(Environment):
    """f_t = f_{i_t}, a uniformly sampled term of a finite-sum Problem (i.i.d.: the setting of online-to-batch).

    Args:
        problem: a FiniteSum problem. K: feasible set. T: rounds. seed: seed of the indices.
        G: gradient bound over K (computed for LeastSquares/Ridge and LogisticRegression).
    """

    def __init__(self, problem, K, T: int, seed: int = 0, G: float | None = None):
        check_finite_sum(problem, "SampledLosses")
        check_domain(K, _SET, "K")
        self.problem, self.K, self.dim, self.backend = problem, K, problem.dim, problem.backend
        self.idx = RNG(seed, problem.backend).integers(0, problem.n, (check_int(T, "T", 1),))
        self.G = check_positive(G, "G") if G is not None else _gradient_bound(problem, K)

    def loss(self, t, x):
        return SampleLoss(self.problem, self.idx[t - 1:t])


def _gradient_bound(problem, K) -> float:
    R = K.diameter / 2
    kind = type(problem).__name__
    if kind in ("LeastSquares", "Ridge"):
        A, b = to_numpy(problem.A), to_numpy(problem.b)
        a = np.linalg.norm(A, axis=1)
        return float(np.max(a * (a * R + np.abs(b)))) + problem.lam * R
    if kind == "LogisticRegression":
        return float(np.linalg.norm(to_numpy(problem.X), axis=1).max()) + problem.lam * R
    raise CourseError(f"No gradient bound is known for {kind} on {K}; pass G explicitly.")


def stochastic_linear(K, T: int, dim: int, mean=None, noise: float = 1.0, seed: int = 0, backend=None):
    """Oblivious stochastic linear losses g_t = mean + noise * N(0, I), i.i.d. (a Sequence)."""
    rng = RNG(seed, backend)
    m = _mean(mean, dim, rng)
    return Sequence(K, m + rng.normal((check_int(T, "T", 1), check_int(dim, "dim", 1)),
                                      scale=check_positive(noise, "noise", allow_zero=True)))


def _mean(mean, dim, rng):
    """The environment's mean vector, checked: finite, of length dim (or 0.0 when None)."""
    if mean is None:
        return 0.0
    m = rng.backend.asarray(mean)
    if m.ndim == 0:
        check_array(m, "mean")
        return m
    return check_array(m, "mean", shape=(check_int(dim, "dim", 1),))


def stochastic_quadratic(K, T: int, dim: int, mean=None, noise: float = 1.0, alpha: float = 1.0, seed: int = 0,
                         backend=None):
    """Oblivious stochastic quadratic losses (alpha/2)||x - z_t||^2, z_t = P_K(mean + noise * N(0, I))."""
    rng = RNG(seed, backend)
    m = _mean(mean, dim, rng)
    Z = m + rng.normal((check_int(T, "T", 1), check_int(dim, "dim", 1)),
                       scale=check_positive(noise, "noise", allow_zero=True))
    xp = namespace(Z)
    return Sequence(K, xp.stack([K.project(Z[t]) for t in range(T)]), "quadratic", alpha)


def stochastic_experts(means, T: int, seed: int = 0, backend=None):
    """Prediction with N experts: expert i's loss at round t is Bernoulli(means[i]), i.i.d. (a Sequence).

    Equal means give the hard instance (regret of order sqrt(T ln N)); a gap lets Hedge lock on.
    """
    means = check_array(np.asarray(means, dtype=float), "means", ndim=1)
    if means.ndim != 1 or means.min() < 0 or means.max() > 1:
        raise CourseError(f"means must be a 1-D list of probabilities in [0, 1], got {means!r}.")
    rng = RNG(seed, backend)
    U = rng.uniform((check_int(T, "T", 1), means.shape[0]))
    return Sequence(Simplex(), namespace(U).astype(U < rng.backend.asarray(means), U.dtype))


def alternating(T: int, backend=None):
    """The follow-the-leader trap on K = [-1, 1]: f_t(x) = z_t x with z_1 = -1/2, then z_t = +1, -1, +1, ...

    FTL jumps to the wrong end every round: Regret_t = t - 1/2 for every t (Shalev-Shwartz,
    *Online Learning and Online Convex Optimization*, 2012, Example 2.2).
    """
    z = np.where(np.arange(1, check_int(T, "T", 1) + 1) % 2 == 0, 1.0, -1.0)
    z[0] = -0.5
    return Sequence(Ball(1.0), get_backend(backend).asarray(z[:, None]))


def adaptive_experts(N: int, backend=None):
    """An adaptive adversary for N experts: loss 1 on the expert with the largest weight in x_t, 0 elsewhere.

    Any deterministic learner that puts all its weight on one expert (FTL) suffers loss 1 every
    round while the best expert suffers at most T/N: linear regret. Hedge spreads its weight and stays sublinear.
    """
    def rule(t, x):
        xp = namespace(x)
        return xp.astype(xp.arange(x.shape[0], device=getattr(x, "device", None)) == xp.argmax(x), x.dtype)

    N = check_int(N, "N", 1)
    return Adaptive(Simplex(), N, rule, G=1.0, experts=True, backend=backend)


def adaptive_linear(dim: int, radius: float = 1.0, G: float = 1.0, backend=None):
    """An adaptive adversary on the ball: g_t = G x_t / ||x_t|| (G e_1 at 0), pushing against the learner."""
    G, radius = check_positive(G, "G"), check_positive(radius, "radius")

    def rule(t, x):
        xp = namespace(x)
        n = to_float(_norm(x))
        if n > 0:
            return G * x / n
        return G * xp.astype(xp.arange(x.shape[0], device=getattr(x, "device", None)) == 0, x.dtype)

    return Adaptive(Ball(radius), dim, rule, G=G, backend=backend)


# --- the protocol ---------------------------------------------------------------------------------

@dataclass(repr=False)
class OnlineTrace(Trace):
    """A Trace of an online run: ``f`` holds the per-round losses f_t(x_t) (``iteration`` = t = 1..T).

    Attributes (besides Trace's):
        comparator: the best fixed point in hindsight at the end (or the fixed comparator given).
    """

    comparator: Any = None

    @property
    def t(self) -> np.ndarray:
        return self.iteration

    @property
    def loss(self) -> np.ndarray:
        """Per-round losses f_t(x_t)."""
        return self.f

    @property
    def regret(self) -> np.ndarray:
        """Regret_t = sum_{s<=t} f_s(x_s) - min_{u in K} sum_{s<=t} f_s(u), at every recorded t."""
        return self.info["regret"]

    @property
    def cumulative_loss(self) -> np.ndarray:
        return self.info["cumulative_loss"]

    def __repr__(self) -> str:
        return f"OnlineTrace(method={self.method!r}, T={self.n_iter}, status={self.status!r}, regret={self.regret[-1]:.6g})"


def play(env, T: int, x1, step: Callable, state=None, method: str = "online", params: dict | None = None,
         comparator=None, record_every: int = 1, keep_x="auto", on_divergence: str = "raise") -> OnlineTrace:
    """The online protocol between a learner (``step``) and an environment, recording the exact regret.

    for t = 1..T: f_t = env.loss(t, x_t); suffer f_t(x_t); (x_{t+1}, state) = step(t, x_t, f_t, grad f_t(x_t), state).

    Args:
        env: an Environment. T: number of rounds. x1: the first point (in K).
        step: the learner's update ``(t, x, f, g, state) -> (x_next, state)``. state: its initial state.
        method, params: stored in the trace.
        comparator: None for the best fixed point in hindsight (exact, recomputed every round), or a fixed u.
        record_every, keep_x, on_divergence: see :class:`~course_lib.trace.Recorder` (a non-finite loss is divergence).
    Returns:
        The OnlineTrace (losses, cumulative loss and regret at every recorded round).
    """
    _check_env(env)
    check_callable(step, "step", "It is the learner's update (t, x, f, g, state) -> (x_next, state).")
    T = check_int(T, "T", 1)
    check_array(x1, "x1", shape=(env.dim,))
    if not env.K.contains(x1):
        raise CourseError(f"x1 must lie in K = {env.K}, got {to_numpy(x1)!r:.100}. Try K.project(x1).")
    hindsight = Hindsight(env.K) if comparator is None else None
    rec = Recorder(method, x1, T, params=params, record_every=record_every, keep_x=keep_x, on_divergence=on_divergence)
    x, total, total_u, u = x1, 0.0, 0.0, comparator
    for t in range(1, T + 1):
        f = env.loss(t, x)                 # the environment reveals f_t (an adaptive one has seen x_t)
        loss, g = f.value(x), f.grad(x)    # the learner suffers f_t(x_t) and sees its gradient
        total = total + loss
        if hindsight is not None:          # exact best fixed point in hindsight
            hindsight.add(f)
            u = hindsight.argmin()
            total_u = hindsight.value(u)
        else:
            total_u = total_u + f.value(u)
        if not rec.record(t, x, f=loss, grad=g, calls=1, regret=total - total_u, cumulative_loss=total):
            break
        x, state = step(t, x, f, g, state)
    return OnlineTrace(**vars(rec.finish(x)), comparator=u)


def _start(env, x0):
    return _check_env(env).start() if x0 is None else x0


# --- learners -------------------------------------------------------------------------------------

def ogd(env, T: int, step_size="convex", x0=None, G: float | None = None, D: float | None = None,
        alpha: float | None = None, **kwargs) -> OnlineTrace:
    """Online (projected) gradient descent: x_{t+1} = P_K(x_t - eta_t grad f_t(x_t)) (Zinkevich, ICML 2003).

    Step sizes and guarantees (G bounds the gradients, D is the diameter of K):
      * "convex": eta_t = D / (G sqrt t)  ->  Regret_T <= (3/2) G D sqrt(T)  (Hazan, Thm 3.1).
      * "strongly_convex": eta_t = 1 / (alpha t) on alpha-strongly convex losses
        ->  Regret_T <= G^2 / (2 alpha) (1 + ln T)  (Hazan, Thm 3.3).
      * "adaptive": eta_t = D / sqrt(2 sum_{s<=t} ||g_s||^2)  ->  Regret_T <= sqrt(2) D sqrt(sum_t ||g_t||^2)
        (AdaGrad-norm; Orabona, Thm 4.14).
      * a number eta: Regret_T <= D^2 / (2 eta) + eta G^2 T / 2  (Zinkevich 2003, Thm 1).
    All but the constant step are anytime: the bound holds at every t <= T.

    Args:
        env: the Environment (gives K, G, alpha). T: rounds. step_size: see above.
        x0: x_1 (default: the centre of K). G, D, alpha: override env.G, K.diameter, env.alpha.
        **kwargs: passed to :func:`play` (record_every, keep_x, on_divergence, comparator).
    Returns:
        The OnlineTrace.
    """
    K = _check_env(env).K
    G = env.G if G is None else check_positive(G, "G")
    D = K.diameter if D is None else check_positive(D, "D")
    alpha = env.alpha if alpha is None else alpha
    if step_size == "convex":
        eta = lambda t, S: D / (G * math.sqrt(t))
    elif step_size == "strongly_convex":
        if not alpha or alpha <= 0:
            raise CourseError(f"step_size='strongly_convex' needs alpha > 0, got alpha={alpha!r} (env.alpha). "
                              "Use step_size='convex' for convex losses, or pass alpha.")
        eta = lambda t, S: 1.0 / (alpha * t)
    elif step_size == "adaptive":
        eta = lambda t, S: D / math.sqrt(2 * S) if S > 0 else 0.0
    elif isinstance(step_size, str):
        raise CourseError(f"step_size must be 'convex', 'strongly_convex', 'adaptive' or a number, got {step_size!r}.")
    else:
        c = check_positive(step_size, "step_size")
        eta = lambda t, S: c

    def step(t, x, f, g, S):
        S = S + to_float(namespace(g).sum(g * g))  # sum_{s<=t} ||g_s||^2 (used by the adaptive step)
        return K.project(x - eta(t, S) * g), S

    params = {"step_size": step_size, "G": G, "D": D, "alpha": alpha}
    return play(env, T, _start(env, x0), step, 0.0, "ogd", params, **kwargs)


def ftl(env, T: int, x0=None, **kwargs) -> OnlineTrace:
    """Follow the leader: x_{t+1} = argmin_{u in K} sum_{s<=t} f_s(u), the best point in hindsight so far.

    Guarantee: on alpha-strongly convex losses Regret_T <= sum_t ||grad f_t(x_t)||^2 / (2 alpha t)
    <= G^2/(2 alpha) (1 + ln T) (Orabona, Cor. 7.24 with psi = 0). On linear losses it can fail:
    Regret_t = t - 1/2 on :func:`alternating` (Shalev-Shwartz 2012, Example 2.2).

    Args:
        env: the Environment (linear or quadratic losses). T: rounds. x0: x_1 (default: centre of K).
    Returns:
        The OnlineTrace.
    """
    def step(t, x, f, g, H):
        H.add(f)
        return H.argmin(), H

    return play(env, T, _start(env, x0), step, Hindsight(env.K), "ftl", {}, **kwargs)


def _softmax(v):
    xp = namespace(v)
    e = xp.exp(v - xp.max(v))
    return e / xp.sum(e)


def ftrl(env, T: int, eta: float, regularizer: str = "quadratic", **kwargs) -> OnlineTrace:
    """Follow the regularised leader on the linearised losses g_s = grad f_s(x_s):

        x_{t+1} = argmin_{x in K} <sum_{s<=t} g_s, x> + psi(x) / eta
      * "quadratic": psi = ||x||^2 / 2, so x_{t+1} = P_K(-eta sum_{s<=t} g_s) (lazy projection / dual averaging).
      * "entropic": psi = sum_i x_i ln x_i on the simplex, so x_{t+1} = softmax(-eta sum_{s<=t} g_s).

    Guarantee: psi 1-strongly convex w.r.t. ||.|| gives, for every u in K,
    Regret_T(u) <= (psi(u) - min_K psi) / eta + (eta / 2) sum_t ||g_t||_*^2  (Orabona, Cor. 7.9),
    with ||.||_* = ||.||_2 (quadratic) or ||.||_inf (entropic; psi(u) - min psi <= ln N).

    Args:
        env: the Environment. T: rounds. eta: learning rate (> 0). regularizer: "quadratic" or "entropic".
    Returns:
        The OnlineTrace.
    """
    eta = check_positive(eta, "eta")
    K = _check_env(env).K
    if regularizer == "quadratic":
        argmin = lambda S: K.project(-eta * S)
    elif regularizer == "entropic":
        if not isinstance(K, Simplex) or K.radius != 1:
            raise CourseError(f"The entropic regularizer lives on the probability simplex; env.K is {K}. "
                              "Use regularizer='quadratic' on other sets.")
        argmin = lambda S: _softmax(-eta * S)
    else:
        raise CourseError(f"regularizer must be 'quadratic' or 'entropic', got {regularizer!r}.")
    x1 = argmin(namespace(env.start()).zeros_like(env.start()))

    def step(t, x, f, g, S):
        S = S + g
        return argmin(S), S

    return play(env, T, x1, step, 0.0 * x1, f"ftrl_{regularizer}", {"eta": eta}, **kwargs)


def _check_simplex(x, name: str):
    check_array(x, name, ndim=1)
    xn = to_numpy(x)
    if xn.min() <= 0 or abs(xn.sum() - 1) > 1e-9:
        raise CourseError(f"{name} must be a strictly positive probability vector (entries > 0 summing to 1), "
                          f"got min={xn.min():.3g}, sum={xn.sum():.12g}. Try the uniform vector np.full(N, 1/N).")
    return x


def exponentiated_gradient(env, T: int, eta: float, x0=None, **kwargs) -> OnlineTrace:
    """Exponentiated gradient (Kivinen & Warmuth 1997): x_{t+1,i} = x_{t,i} exp(-eta g_{t,i}) / Z_t on the simplex.

    Online mirror descent with the negative entropy (computed in log space, so large eta * t does not
    underflow). From the uniform x_1 it coincides with entropic FTRL, and Hedge is EG on linear losses.
    Guarantee: Regret_T(u) <= KL(u || x_1) / eta + (eta / 2) sum_t ||g_t||_inf^2, with KL <= ln N from
    the uniform x_1 (Orabona, Sec. 6.6, Cor. 6.8 with the 1-strongly convex entropy w.r.t. ||.||_1).

    Args:
        env: an Environment on the probability simplex. T: rounds. eta: learning rate (> 0).
        x0: strictly positive starting distribution (default uniform).
    Returns:
        The OnlineTrace.
    """
    eta = check_positive(eta, "eta")
    if not isinstance(_check_env(env).K, Simplex) or env.K.radius != 1:
        raise CourseError(f"Exponentiated gradient plays on the probability simplex; env.K is {env.K}. "
                          "Use ogd on other sets.")
    x1 = _check_simplex(_start(env, x0), "x0")

    def step(t, x, f, g, logw):
        logw = logw - eta * g
        return _softmax(logw), logw

    method = kwargs.pop("method", "exponentiated_gradient")
    return play(env, T, x1, step, namespace(x1).log(x1), method, {"eta": eta}, **kwargs)


class _UnitLosses(Environment):
    """``env`` with every revealed loss vector checked to lie in [0, 1]^N (what Hedge's guarantee assumes)."""

    def __init__(self, env):
        self.env, self.K, self.dim, self.G, self.experts, self.backend = env, env.K, env.dim, env.G, True, env.backend

    def loss(self, t, x):
        f = self.env.loss(t, x)
        xp = namespace(f.g)
        lo, hi = to_float(xp.min(f.g)), to_float(xp.max(f.g))
        if lo < 0 or hi > 1:
            raise CourseError(f"Hedge assumes losses in [0, 1]; round {t} revealed losses in [{lo:.4g}, {hi:.4g}]. "
                              "Rescale them, l -> (l - a) / (b - a) for losses in [a, b].")
        return f


def hedge(env, T: int, eta: float | None = None, **kwargs) -> OnlineTrace:
    """Hedge / multiplicative weights for N experts with losses l_t in [0, 1]^N:

        p_{t+1,i} = p_{t,i} exp(-eta l_{t,i}) / Z_t,  p_1 uniform;  the learner's loss is <p_t, l_t>.

    Guarantee: Regret_t <= ln N / eta + eta t / 8 at every t; with eta = sqrt(8 ln N / T) (the default),
    Regret_T <= sqrt((T / 2) ln N) (CBL, Thm 2.2; Freund & Schapire 1997). Holds against adaptive adversaries.

    Args:
        env: an experts Environment (linear losses in [0, 1] on the simplex). T: rounds.
        eta: learning rate; default sqrt(8 ln N / T).
    Returns:
        The OnlineTrace (exponentiated gradient on the linear losses, with every l_t checked to lie in [0, 1]).
    """
    N = _check_env(env).dim
    if not isinstance(env.K, Simplex) or env.K.radius != 1:
        raise CourseError(f"Hedge plays distributions over N experts (the simplex); env.K is {env.K}.")
    eta = math.sqrt(8 * math.log(max(N, 2)) / check_int(T, "T", 1)) if eta is None else eta
    return exponentiated_gradient(_UnitLosses(env), T, eta, method="hedge", **kwargs)


def adagrad(env, T: int, eta: float | None = None, x0=None, delta: float = 0.0, **kwargs) -> OnlineTrace:
    """Diagonal AdaGrad (Duchi, Hazan & Singer, JMLR 2011) on a box K = [lo, hi]^d:

        s_t = sum_{s<=t} g_s^2,  H_t = delta + sqrt(s_t),  x_{t+1} = clip(x_t - eta g_t / H_t, lo, hi)

    (clipping is the exact projection in the H_t-norm, since H_t is diagonal; 0/0 is read as 0).
    Guarantee: Regret_T <= (D_inf^2 / (2 eta)) sum_i (delta + ||g_{1:T,i}||_2) + eta sum_i ||g_{1:T,i}||_2,
    D_inf = hi - lo; eta = D_inf / sqrt(2) and delta = 0 give sqrt(2) D_inf sum_i ||g_{1:T,i}||_2
    (Duchi, Hazan & Singer 2011, Thm 5). With delta = eps and an inactive box this is torch.optim.Adagrad.

    Args:
        env: an Environment whose K is a projections.Box. T: rounds. eta: default D_inf / sqrt(2).
        x0: x_1 (default: the box's midpoint). delta: >= 0.
    Returns:
        The OnlineTrace.
    """
    K = _check_env(env).K
    if not isinstance(K, Box):
        raise CourseError(f"Diagonal AdaGrad needs a box K (its H-norm projection is clipping); env.K is {K}. "
                          "On a ball use ogd(env, T, step_size='adaptive') (AdaGrad-norm).")
    eta = (K.hi - K.lo) / math.sqrt(2) if eta is None else check_positive(eta, "eta")
    delta = check_positive(delta, "delta", allow_zero=True)

    def step(t, x, f, g, s):
        xp = namespace(x)
        s = s + g * g
        H = delta + xp.sqrt(s)
        return K.project(x - eta * xp.where(H > 0, g / xp.where(H > 0, H, 1.0), 0.0)), s

    x1 = _start(env, x0)
    return play(env, T, x1, step, 0.0 * x1, "adagrad", {"eta": eta, "delta": delta}, **kwargs)


def online_to_batch(problem, T: int, radius: float, learner: Callable = ogd, seed: int = 0, record_every: int = 1,
                    **learner_kwargs) -> Trace:
    """Online-to-batch conversion: run an online learner on i.i.d. losses f_t = f_{i_t} and average its points.

        x_bar_T = (1/T) sum_{t<=T} x_t   satisfies   E[F(x_bar_T)] - F(u) <= E[Regret_T(u)] / T
    for every u in K, where F is the expected (here: the finite-sum) loss (Cesa-Bianchi, Conconi & Gentile,
    IEEE Trans. IT 2004; Orabona, Thm 3.1). With OGD and eta_t = D/(G sqrt t) this is projected SGD with
    iterate averaging, and E[F(x_bar_T)] - F* <= (3/2) G D / sqrt(T).

    Args:
        problem: a FiniteSum Problem with known x_star. T: rounds (samples). radius: K = Ball(radius),
            which must contain x_star. learner: an online method (default :func:`ogd`). seed: sampling seed.
        record_every: evaluate F every k rounds. **learner_kwargs: passed to the learner.
    Returns:
        A Trace with f = F(x_bar_t); info["f_last"] = F(x_t) and info["regret"] = Regret_t(x*) of the online run.
    """
    radius = check_positive(radius, "radius")
    check_finite_sum(problem, "online_to_batch")
    T = check_int(T, "T", 1)
    x_star = problem.x_star
    if x_star is None or to_float(_norm(x_star)) > radius:
        need = "a known x_star" if x_star is None else f"radius >= ||x*|| = {to_float(_norm(x_star)):.4g}"
        raise CourseError(f"online_to_batch compares with x* inside K = Ball({radius}); it needs {need}.")
    env = SampledLosses(problem, Ball(radius), T, seed=seed, G=learner_kwargs.pop("G", None))
    run = learner(env, T, comparator=x_star, keep_x=True, on_divergence="raise", **learner_kwargs)
    xs = np.cumsum(run.x, axis=0) / np.arange(1, run.x.shape[0] + 1)[:, None]   # x_bar_t, t = 1..T
    rec = Recorder(f"online_to_batch({run.method})", problem.zeros(), T, params={**run.params, "radius": radius},
                   record_every=record_every, keep_x=False)
    last = 0
    for t in range(1, T + 1):
        if t % rec.record_every == 0 or t in (1, T):
            x_bar = problem.asarray(xs[t - 1])
            rec.record(t, x_bar, f=problem.value(x_bar), grad=problem.grad(x_bar), calls=t - last,
                       f_last=problem.value(problem.asarray(run.x[t - 1])), regret=run.regret[t - 1], force=True)
            last = t
    return rec.finish(problem.asarray(xs[-1]))


# --- bounds (for plots, tests and tuning) -------------------------------------------------------------

def ogd_bound(G: float, D: float, t):
    """(3/2) G D sqrt(t): the regret bound of OGD with eta_t = D/(G sqrt t) (Hazan, Thm 3.1)."""
    return 1.5 * check_positive(G, "G") * check_positive(D, "D") * np.sqrt(_rounds(t))


def _rounds(t) -> np.ndarray:
    """Round counts t >= 1 as a float array (bounds are stated for t = 1, 2, ...)."""
    try:
        t = np.asarray(t, dtype=float)
    except (TypeError, ValueError):
        raise CourseError(f"t must be a round count or an array of them (>= 1), got {t!r:.60}.") from None
    if t.size == 0 or not np.all(t >= 1) or not np.all(np.isfinite(t)):
        raise CourseError(f"t must hold round counts >= 1, got min {np.nanmin(t) if t.size else 'nothing'!r}.")
    return t


def strongly_convex_bound(G: float, alpha: float, t):
    """G^2 / (2 alpha) (1 + ln t): the regret bound of OGD with eta_t = 1/(alpha t) (Hazan, Thm 3.3)."""
    G, alpha = check_positive(G, "G", allow_zero=True), check_positive(alpha, "alpha")
    return G**2 / (2 * alpha) * (1 + np.log(_rounds(t)))


def hedge_bound(N: int, t, eta: float | None = None):
    """ln N / eta + eta t / 8 (CBL, Thm 2.2); with eta = None the tuned value sqrt((t / 2) ln N)."""
    t, N = _rounds(t), check_int(N, "N", 1)
    if eta is None:
        return np.sqrt(t / 2 * math.log(N))
    eta = check_positive(eta, "eta")
    return math.log(N) / eta + eta * t / 8

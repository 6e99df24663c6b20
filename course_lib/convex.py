"""Chapter 1, Convex optimization: first-order methods with their guarantees.

Every method takes a problem (value/grad/...), a starting point and hyperparameters, and
returns a :class:`~course_lib.trace.Trace`. Proximal gradient is written once: ISTA, FISTA,
Nesterov's accelerated gradient and projected gradient are its special cases.

References: Nesterov, *Lectures on Convex Optimization* (2018) [N]; Beck, *First-Order Methods in
Optimization* (2017) [B]; Bubeck, *Convex Optimization: Algorithms and Complexity* (2015) [Bu];
Jaggi, ICML 2013 [J]; Beck and Teboulle, SIAM J. Imaging Sci. 2009 [BT].
"""
from __future__ import annotations

import math

from .backend import namespace, to_float
from .problems import LeastSquares, Problem, Quadratic
from .projections import prox_l1
from .trace import Recorder, Trace
from .validation import (CourseError, check_callable, check_domain, check_in_range, check_int, check_positive,
                         check_real, check_start, check_step_size, need_L)

__all__ = ["gradient_descent", "backtracking", "heavy_ball", "nesterov", "proximal_gradient", "projected_gradient",
           "subgradient_method", "frank_wolfe", "mirror_descent", "Lasso", "STEP_RULES"]

STEP_RULES = ("constant", "1/L", "armijo", "exact", "polyak")


def _dot(a, b):
    return namespace(a).sum(a * b)


def _rec(method, x, max_iter, params, tol, record_every, keep_x, on_divergence):
    return Recorder(method, x, max_iter, params=params, tol=tol, record_every=record_every, keep_x=keep_x,
                    on_divergence=on_divergence)


def backtracking(f, x, fx, g, d=None, t0: float = 1.0, c: float = 1e-4, beta: float = 0.5, max_steps: int = 60):
    """Armijo backtracking: the first t in t0, beta t0, beta^2 t0, ... with f(x + t d) <= f(x) + c t <g, d>.

    d defaults to -g (gradient descent). On an L-smooth f with d = -g the loop stops at some
    t >= min(t0, 2 beta (1 - c) / L) ([B] Lemma 10.4 / Boyd and Vandenberghe, *Convex Optimization*, 9.2).

    Args:
        f: the objective (callable). x: current point. fx: f(x). g: grad f(x). d: a descent direction.
        t0: first trial step. c: sufficient-decrease constant in (0, 1). beta: shrink factor in (0, 1).
        max_steps: give up (CourseError) after this many halvings: d is then not a descent direction.
    Returns:
        (t, x + t d, f(x + t d), number of f evaluations).
    """
    check_in_range(c, "c", 0.0, 1.0, low_open=True, high_open=True)
    check_in_range(beta, "beta", 0.0, 1.0, low_open=True, high_open=True)
    t0, max_steps = check_positive(t0, "t0"), check_int(max_steps, "max_steps", 1)
    d = -g if d is None else d
    slope = to_float(_dot(g, d))
    if slope >= 0 and slope != 0:
        raise CourseError(f"d is not a descent direction: <grad, d> = {slope:.3g} >= 0. Use d = -grad.")
    t = float(t0)
    for n in range(1, max_steps + 1):
        x_new = x + t * d
        f_new = f(x_new)
        fn = to_float(f_new)
        if fn <= to_float(fx) + c * t * slope:
            return t, x_new, f_new, n
        t *= beta
    raise CourseError(f"backtracking found no step after {max_steps} trials (t = {t:.3g}). Is the gradient right? "
                      "Check it with course_lib.preliminaries.check_gradient.")


def gradient_descent(problem, x0, step_size=None, max_iter: int = 1000, tol: float = 0.0,
                     record_every: int = 1, keep_x="auto", on_divergence: str = "raise",
                     check_step: bool = True, f_star: float | None = None, c: float = 1e-4,
                     beta: float = 0.5, t0: float = 1.0) -> Trace:
    """Gradient descent x_{k+1} = x_k - t_k grad f(x_k) with a step rule for t_k.

    Step rules (``step_size``):
      * a number: constant t_k = step_size (must be < 2/L unless check_step=False);
      * None or "1/L": t_k = 1/L;
      * "armijo": backtracking from t0 until f(x - t g) <= f(x) - c t ||g||^2 (see :func:`backtracking`);
      * "exact": exact line search on a quadratic, t_k = g^T g / g^T A g;
      * "polyak": t_k = (f(x_k) - f*) / ||g_k||^2 (needs f*).

    Guarantees: on a convex L-smooth f with t = 1/L, f(x_k) - f* <= L ||x_0 - x*||^2 / (2k); on a
    mu-strongly convex f, ||x_k - x*||^2 <= (1 - mu/L)^k ||x_0 - x*||^2, and with t = 2/(mu + L),
    ||x_k - x*|| <= ((L - mu)/(L + mu))^k ||x_0 - x*|| ([N] Cor. 2.1.2, Thm 2.1.15). Armijo with
    c = 1/2: f(x_k) - f* <= ||x_0 - x*||^2 / (2 k t_min), t_min = min(t0, beta/L) ([B] Thm 10.21).
    Exact line search on a quadratic: f(x_{k+1}) - f* <= ((kappa-1)/(kappa+1))^2 (f(x_k) - f*)
    (Nocedal and Wright, *Numerical Optimization*, Thm 3.3). Polyak: ||x_{k+1} - x*||^2 <=
    ||x_k - x*||^2 - (f(x_k) - f*)^2 / ||g_k||^2 ([B] Lemma 8.11 / Polyak 1987).

    Args:
        problem: a Problem (``value``, ``grad``; ``L`` for "1/L" and the check, ``hvp`` for "exact").
        x0: starting point, shape (dim,), on the problem's backend.
        step_size: a number or a rule name (above); default 1/L.
        max_iter: number of iterations. tol: stop once ||grad f(x_k)|| <= tol.
        record_every, keep_x, on_divergence: see :class:`~course_lib.trace.Recorder`.
        check_step: refuse constant step sizes >= 2/L (set False to watch a divergence).
        f_star: optimal value for "polyak" (default problem.f_star).
        c, beta, t0: Armijo constants.
    Returns:
        The Trace of the run (``info["step_size"]`` holds t_k).
    """
    x = check_start(problem, x0)
    max_iter = check_int(max_iter, "max_iter", 0)
    rule = "1/L" if step_size is None else step_size
    if isinstance(rule, str):
        if rule not in STEP_RULES[1:]:
            raise CourseError(f"step_size={rule!r} is not a step rule; use a number or one of {STEP_RULES[1:]}.")
        if rule == "1/L":
            rule = 1.0 / need_L(problem)
        if rule == "exact" and not isinstance(problem, (Quadratic, LeastSquares)):
            raise CourseError(f"step_size='exact' is the closed form for quadratics; {problem.name} is not one. "
                              "Use step_size='armijo'.")
        if rule == "polyak":
            f_star = problem.f_star if f_star is None else check_real(f_star, "f_star")
            if f_star is None:
                raise CourseError(f"step_size='polyak' needs f*; {problem.name} does not know it. Pass f_star=.")
    if not isinstance(rule, str):
        rule = check_step_size(rule, problem.L if check_step else None)
    rec = _rec("gradient_descent", x, max_iter, {"step_size": rule}, tol, record_every, keep_x, on_divergence)
    fx, g = problem.value(x), problem.grad(x)
    go = rec.record(0, x, f=fx, grad=g, calls=2)
    for k in range(1, max_iter + 1):
        if not go:
            break
        calls = 1
        if rule == "armijo":
            t, x, fx, n = backtracking(problem.value, x, fx, g, t0=t0, c=c, beta=beta)
            calls += n
        else:
            gg = to_float(_dot(g, g)) if isinstance(rule, str) else 0.0
            if rule == "exact":
                t = gg / to_float(_dot(g, problem.hvp(x, g))) if gg > 0 else 0.0
            elif rule == "polyak":
                t = max(to_float(fx) - f_star, 0.0) / gg if gg > 0 else 0.0
            else:
                t = rule
            x = x - t * g
            fx = problem.value(x)
            calls += 1
        g = problem.grad(x)
        go = rec.record(k, x, f=fx, grad=g, calls=calls, step_size=t)
    return rec.finish(x)


def heavy_ball(problem, x0, step_size=None, momentum=None, max_iter: int = 1000, tol: float = 0.0,
               record_every: int = 1, keep_x="auto", on_divergence: str = "raise", check_step: bool = True) -> Trace:
    """Polyak's heavy ball: x_{k+1} = x_k - step_size grad f(x_k) + momentum (x_k - x_{k-1}).

    Defaults are Polyak's tuning for a mu-strongly convex quadratic: step_size = 4/(sqrt(L) + sqrt(mu))^2,
    momentum = ((sqrt(kappa) - 1)/(sqrt(kappa) + 1))^2, giving the asymptotic rate
    ||x_k - x*|| = O((1 - 2/(sqrt(kappa) + 1))^k) on quadratics (Polyak 1964; [Bu] Sec. 3.7 shows it
    can fail to converge on non-quadratic smooth strongly convex functions). The same iterates as
    ``torch.optim.SGD(lr=step_size, momentum=momentum)`` with full gradients.

    Args:
        problem: a Problem (L and mu used for the defaults). x0: starting point.
        step_size, momentum: see above. max_iter, tol, record_every, keep_x, on_divergence: as in
        :func:`gradient_descent`.
        check_step: refuse step_size >= 2 (1 + momentum) / L, where heavy ball is unstable on quadratics
            with curvature L (Polyak 1964; the stability region is 0 < step L < 2 (1 + momentum)).
    Returns:
        The Trace of the run.
    """
    x = check_start(problem, x0)
    if step_size is None or momentum is None:
        L, mu = need_L(problem), problem.mu
        if not mu:
            raise CourseError(f"heavy_ball's default tuning needs mu > 0; {problem.name} has mu={mu}. "
                              "Pass step_size and momentum.")
        step_size = 4 / (math.sqrt(L) + math.sqrt(mu)) ** 2 if step_size is None else step_size
        q = (math.sqrt(L / mu) - 1) / (math.sqrt(L / mu) + 1)
        momentum = q * q if momentum is None else momentum
    momentum = check_in_range(momentum, "momentum", 0.0, 1.0, high_open=True)
    step_size = check_step_size(step_size, problem.L if check_step else None, limit=2 * (1 + momentum))
    rec = _rec("heavy_ball", x, max_iter, {"step_size": step_size, "momentum": momentum}, tol, record_every,
               keep_x, on_divergence)
    x_prev, g = x, problem.grad(x)
    go = rec.record(0, x, f=problem.value(x), grad=g, calls=1)
    for k in range(1, check_int(max_iter, "max_iter") + 1):
        if not go:
            break
        x, x_prev = x - step_size * g + momentum * (x - x_prev), x
        g = problem.grad(x)
        go = rec.record(k, x, f=problem.value(x), grad=g, calls=1)
    return rec.finish(x)


class Lasso(Problem):
    """The lasso F(x) = f(x) + g(x) with f(x) = 1/(2n) ||A x - b||^2 and g(x) = alpha ||x||_1.

    The composite problem of proximal methods: ``smooth`` is f (a LeastSquares problem, with L),
    ``reg`` is g and ``prox(v, t)`` = prox_{t g}(v) = soft thresholding at t alpha. ``value`` is F;
    ``grad`` is a subgradient of F (f's gradient + alpha sign(x)), for the subgradient method.
    scikit-learn's ``Lasso(alpha=alpha, fit_intercept=False)`` minimises the same F.

    Args:
        A: (n, dim) design. b: (n,) targets. alpha: l1 weight >= 0.
    """

    name = "lasso"

    def __init__(self, A, b, alpha: float = 0.1, backend=None):
        self.smooth = LeastSquares(A, b, backend=backend)
        self.alpha = check_positive(alpha, "alpha", allow_zero=True)
        self.dim, self.n, self.backend = self.smooth.dim, self.smooth.n, self.smooth.backend
        self.A, self.b = self.smooth.A, self.smooth.b
        self.L, self.mu = self.smooth.L, self.smooth.mu

    def reg(self, x):
        return self.alpha * namespace(x).sum(namespace(x).abs(x))

    def prox(self, v, t):
        return prox_l1(v, t * self.alpha)

    def value(self, x):
        return self.smooth.value(x) + self.reg(x)

    def grad(self, x):
        return self.smooth.grad(x) + self.alpha * namespace(x).sign(x)

    def to(self, backend) -> "Lasso":
        return Lasso(self.smooth.A, self.smooth.b, self.alpha, backend=backend)


def proximal_gradient(problem, x0, prox=None, reg=None, step_size=None, accelerated: bool = False, mu: float = 0.0,
                      max_iter: int = 1000, tol: float = 0.0, record_every: int = 1, keep_x="auto",
                      on_divergence: str = "raise", method: str | None = None) -> Trace:
    """Proximal gradient for F = f + g: x_{k+1} = prox_{t g}(y_k - t grad f(y_k)).

    ISTA (accelerated=False): y_k = x_k. FISTA (accelerated=True, mu=0): y_k = x_k + ((s_{k-1} - 1)/s_k)
    (x_k - x_{k-1}) with s_0 = 1, s_{k+1} = (1 + sqrt(1 + 4 s_k^2))/2. Strongly convex variant (mu > 0):
    constant momentum (sqrt(kappa) - 1)/(sqrt(kappa) + 1), kappa = L/mu.

    Guarantees with t = 1/L on an L-smooth convex f and convex g: ISTA F(x_k) - F* <= L ||x_0 - x*||^2/(2k)
    ([BT] Thm 3.1); FISTA F(x_k) - F* <= 2L ||x_0 - x*||^2/(k+1)^2 ([BT] Thm 4.4); with mu > 0,
    F(x_k) - F* <= (1 - 1/sqrt(kappa))^k (F(x_0) - F* + mu/2 ||x_0 - x*||^2) ([B] Thm 10.42).
    With g = 0 this is gradient descent / Nesterov's method; with g the indicator of a set it is
    projected gradient.

    Args:
        problem: the smooth part f (``value``, ``grad``, ``L``), or a composite problem such as
            :class:`Lasso` (with ``smooth``, ``reg`` and ``prox``).
        x0: starting point. prox: prox(v, t) of g (default: identity, or problem.prox).
        reg: g(x), added to the recorded objective (default 0, or problem.reg).
        step_size: t (default 1/L). accelerated, mu: see above.
        max_iter, tol, record_every, keep_x, on_divergence: as in :func:`gradient_descent`; the
            recorded "gradient" norm is that of the gradient mapping (y_k - x_{k+1})/t.
        method: name stored in the trace.
    Returns:
        The Trace of the run (f = F(x_k)).
    """
    x = check_start(problem, x0)
    smooth = problem
    if hasattr(problem, "smooth") and prox is None:
        smooth, prox, reg = problem.smooth, problem.prox, problem.reg
    if prox is not None:
        check_callable(prox, "prox", "It is prox(v, t) = argmin_u g(u) + ||u - v||^2 / (2t), e.g. "
                       "lambda v, t: projections.prox_l1(v, alpha * t).")
    if reg is not None:
        check_callable(reg, "reg", "It is g(x), e.g. lambda x: alpha * abs(x).sum().")
    limit = 1.0 + 1e-9 if accelerated else 2.0  # FISTA's guarantee needs t <= 1/L, ISTA descends for t < 2/L
    step_size = check_step_size(1.0 / need_L(smooth) if step_size is None else step_size, smooth.L, limit=limit)
    mu = check_positive(mu, "mu", allow_zero=True)
    if mu and smooth.L and mu > smooth.L:
        raise CourseError(f"mu={mu:g} exceeds L={smooth.L:g}; mu is a lower bound on the curvature (mu <= L).")
    q = (math.sqrt(1 / (step_size * mu)) - 1) / (math.sqrt(1 / (step_size * mu)) + 1) if mu else None
    name = method or ("fista" if accelerated else "ista")

    def F(z):
        return smooth.value(z) if reg is None else smooth.value(z) + reg(z)

    rec = _rec(name, x, max_iter, {"step_size": step_size, "accelerated": accelerated, "mu": mu}, tol,
               record_every, keep_x, on_divergence)
    go = rec.record(0, x, f=F(x), calls=1)
    y, s = x, 1.0
    for k in range(1, check_int(max_iter, "max_iter") + 1):
        if not go:
            break
        v = y - step_size * smooth.grad(y)
        x_new = v if prox is None else prox(v, step_size)
        gm = (y - x_new) / step_size
        if accelerated:
            s_new = (1 + math.sqrt(1 + 4 * s * s)) / 2
            y = x_new + (q if mu else (s - 1) / s_new) * (x_new - x)
            s = s_new
        else:
            y = x_new
        x = x_new
        go = rec.record(k, x, f=F(x), grad=gm, calls=2)
    return rec.finish(x)


def nesterov(problem, x0, step_size=None, mu: float = 0.0, **kwargs) -> Trace:
    """Nesterov's accelerated gradient: FISTA with g = 0 (see :func:`proximal_gradient`).

    y_k = x_k + beta_k (x_k - x_{k-1}), x_{k+1} = y_k - t grad f(y_k); beta_k = (s_{k-1} - 1)/s_k
    (convex) or (sqrt(kappa) - 1)/(sqrt(kappa) + 1) when mu > 0.
    Guarantee: f(x_k) - f* <= 2L ||x_0 - x*||^2/(k+1)^2, or (1 - 1/sqrt(kappa))^k (f(x_0) - f* +
    mu/2 ||x_0 - x*||^2) ([N] Thm 2.2.2 / [BT] Thm 4.4).

    Args:
        problem, x0, step_size, mu: as in :func:`proximal_gradient`; kwargs are passed on.
    Returns:
        The Trace of the run.
    """
    return proximal_gradient(problem, x0, step_size=step_size, accelerated=True, mu=mu, method="nesterov", **kwargs)


def projected_gradient(problem, x0, domain, step_size=None, accelerated: bool = False, **kwargs) -> Trace:
    """Projected gradient x_{k+1} = P_C(x_k - t grad f(x_k)): :func:`proximal_gradient` with the
    indicator of C, so the guarantees are ISTA's (and FISTA's with accelerated=True).

    Args:
        problem: a smooth Problem. x0: starting point (projected first if outside C).
        domain: a set of :mod:`course_lib.projections` (Box, Ball, Simplex, L1Ball) or any object
            with ``project``. step_size: t (default 1/L). kwargs: as in proximal_gradient.
    Returns:
        The Trace of the run.
    """
    check_domain(domain, ("project",))
    x0 = domain.project(check_start(problem, x0))
    return proximal_gradient(problem, x0, prox=lambda v, t: domain.project(v), step_size=step_size,
                             accelerated=accelerated, method="projected_gradient", **kwargs)


def _averaged(name, problem, x0, step, update, subgrad, max_iter, record_every, keep_x, on_divergence, params):
    """The loop shared by subgradient and mirror descent: x_{k+1} = update(x_k, t_k, g_k) and the
    step-weighted average x_bar_k = sum_{j<k} t_j x_j / sum_{j<k} t_j, recorded as the trace's f."""
    x = check_start(problem, x0)
    rec = _rec(name, x, max_iter, params, 0.0, record_every, keep_x, on_divergence)
    go = rec.record(0, x, f=problem.value(x), calls=1, f_last=problem.value(x))
    x_bar, weight = x, 0.0
    for k in range(1, check_int(max_iter, "max_iter") + 1):
        if not go:
            break
        g = subgrad(x)
        t = step(k - 1)
        x_bar = x_bar + (t / (weight + t)) * (x - x_bar)
        weight += t
        x = update(x, t, g)
        go = rec.record(k, x_bar, f=problem.value(x_bar), grad=g, calls=3, f_last=problem.value(x), step_size=t)
    return rec.finish(x_bar)


def _step_schedule(step_size, decay):
    step_size = check_positive(step_size, "step_size")
    return (lambda k: step_size / math.sqrt(k + 1)) if decay else (lambda k: step_size)


def subgradient_method(problem, x0, step_size: float, decay: bool = True, domain=None, subgrad=None,
                       max_iter: int = 1000, record_every: int = 1, keep_x="auto",
                       on_divergence: str = "raise") -> Trace:
    """Projected subgradient method with averaging: x_{k+1} = P_C(x_k - t_k g_k), g_k in df(x_k),
    t_k = step_size / sqrt(k + 1) (decay) or step_size; reports x_bar_k = sum t_j x_j / sum t_j.

    Guarantee: for convex f with ||g|| <= G and R = ||x_0 - x*||,
    f(x_bar_k) - f* <= (R^2 + G^2 sum_{j<k} t_j^2) / (2 sum_{j<k} t_j) ([B] Thm 8.13; [Bu] Thm 3.2),
    so O(RG log k / sqrt(k)) with decaying steps and RG/sqrt(k) with constant t = R/(G sqrt(k)).

    Args:
        problem: a convex Problem (``value``; ``grad`` is used as the subgradient unless ``subgrad``).
        x0: starting point. step_size, decay: see above. domain: optional set with ``project``.
        subgrad: callable returning a subgradient. max_iter, record_every, keep_x, on_divergence: as
        in :func:`gradient_descent`.
    Returns:
        The Trace: f is f(x_bar_k), x_final = x_bar, ``info["f_last"]`` is f(x_k).
    """
    proj = (lambda z: z) if domain is None else check_domain(domain, ("project",)).project
    if subgrad is not None:
        check_callable(subgrad, "subgrad", "It maps x to a subgradient of f at x.")
    x0 = proj(check_start(problem, x0))
    return _averaged("subgradient_method", problem, x0, _step_schedule(step_size, decay),
                     lambda x, t, g: proj(x - t * g), subgrad or problem.grad, max_iter, record_every, keep_x,
                     on_divergence, {"step_size": step_size, "decay": decay})


def mirror_descent(problem, x0, step_size: float, decay: bool = False, max_iter: int = 1000, record_every: int = 1,
                   keep_x="auto", on_divergence: str = "raise") -> Trace:
    """Mirror descent with the entropic mirror map on the simplex (exponentiated gradient):
    x_{k+1} = x_k * exp(-t_k g_k) / sum(x_k * exp(-t_k g_k)), reporting the t-weighted average.

    Guarantee: for convex f on the simplex with ||g||_inf <= G and x_0 uniform,
    f(x_bar_k) - f* <= (log d + G^2/2 sum_{j<k} t_j^2) / sum_{j<k} t_j ([Bu] Thm 4.2; [B] Thm 9.18),
    i.e. G sqrt(2 log d / k) with the constant t = sqrt(2 log d)/(G sqrt(k)).

    Args:
        problem: a convex Problem on the simplex. x0: a point of the simplex with positive entries.
        step_size, decay: t_k = step_size (/ sqrt(k+1) if decay). Others as in :func:`gradient_descent`.
    Returns:
        The Trace: f is f(x_bar_k), ``info["f_last"]`` is f(x_k).
    """
    x = check_start(problem, x0)
    xp = namespace(x)
    if to_float(xp.min(x)) <= 0 or abs(to_float(xp.sum(x)) - 1) > 1e-9:
        raise CourseError("x0 must lie in the interior of the simplex (entries > 0, summing to 1); got min "
                          f"{to_float(xp.min(x)):.3g}, sum {to_float(xp.sum(x)):.6g}. Try the uniform x0 = 1/d.")

    def update(x, t, g):
        w = -t * g
        w = x * xp.exp(w - xp.max(w))
        return w / xp.sum(w)

    return _averaged("mirror_descent", problem, x, _step_schedule(step_size, decay), update, problem.grad,
                     max_iter, record_every, keep_x, on_divergence, {"step_size": step_size, "decay": decay})


def frank_wolfe(problem, x0, domain, step: str = "2/(k+2)", max_iter: int = 1000, tol: float = 0.0,
                record_every: int = 1, keep_x="auto", on_divergence: str = "raise") -> Trace:
    """Frank-Wolfe (conditional gradient): s_k = lmo_C(grad f(x_k)), x_{k+1} = x_k + gamma_k (s_k - x_k).

    gamma_k = 2/(k+2) (k = 0, 1, ...), or the short step min(1, gap_k / (L ||s_k - x_k||^2)) with
    the Frank-Wolfe gap gap_k = <grad f(x_k), x_k - s_k> >= f(x_k) - f*. Iterates stay in C
    (convex combinations of vertices), so they are sparse on the simplex and the l1 ball.
    Guarantee: f(x_k) - f* <= 2 L diam(C)^2 / (k + 2) for k >= 1 ([J] Thm 1).

    Args:
        problem: a smooth convex Problem. x0: a point of C (checked). domain: a set with ``lmo``,
            ``contains`` and ``diameter`` (Simplex, L1Ball, Box, Ball). step: "2/(k+2)" or "short".
        tol: stop once the Frank-Wolfe gap <= tol (0: never stop early, as everywhere in course_lib).
        Others as in :func:`gradient_descent`.
    Returns:
        The Trace (``info["gap"]`` holds the Frank-Wolfe gaps).
    """
    x = check_start(problem, x0)
    check_domain(domain, ("lmo", "contains"))
    tol = check_positive(tol, "tol", allow_zero=True)
    if not domain.contains(x):
        raise CourseError(f"x0 is not in the feasible set {domain!r}: Frank-Wolfe needs a feasible start. "
                          "Use a vertex, e.g. domain.lmo(problem.grad(x0)), or domain.project(x0).")
    if step not in ("2/(k+2)", "short"):
        raise CourseError(f"step={step!r}; use '2/(k+2)' or 'short'.")
    L = need_L(problem, "L") if step == "short" else None
    rec = _rec("frank_wolfe", x, max_iter, {"step": step}, 0.0, record_every, keep_x, on_divergence)
    g = problem.grad(x)
    s = domain.lmo(g)
    gap = to_float(_dot(g, x - s))
    go = rec.record(0, x, f=problem.value(x), grad=g, calls=2, gap=gap)
    for k in range(1, check_int(max_iter, "max_iter") + 1):
        if not go or (tol > 0 and gap <= tol):
            if go:
                rec.status, rec.message = "converged", f"Frank-Wolfe gap {gap:.3g} <= tol = {tol:g}"
            break
        d = s - x
        if step == "short":
            dd = to_float(_dot(d, d))
            gamma = min(1.0, gap / (L * dd)) if dd > 0 else 0.0
        else:
            gamma = 2.0 / (k + 1)
        x = x + gamma * d
        g = problem.grad(x)
        s = domain.lmo(g)
        gap = to_float(_dot(g, x - s))
        go = rec.record(k, x, f=problem.value(x), grad=g, calls=2, gap=gap, step_size=gamma)
    return rec.finish(x)

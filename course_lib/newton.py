"""Damped Newton's method with backtracking and the Newton-decrement stopping rule (chapter 1).

Reference: Boyd and Vandenberghe, *Convex Optimization* (2004) [BV], Sections 9.5-9.6.
"""
from __future__ import annotations

import math

import numpy as np

from .backend import get_backend, namespace, to_float, to_numpy
from .convex import backtracking
from .problems import Problem
from .trace import Recorder, Trace
from .validation import CourseError, check_array, check_in_range, check_int, check_positive, check_seed, check_start

__all__ = ["newton_decrement", "newton", "AnalyticCenter"]


def newton_decrement(g, H):
    """The Newton step and decrement: dx = -H^{-1} g, lambda(x) = sqrt(g^T H^{-1} g).

    lambda^2 / 2 is the decrease the quadratic model predicts, f(x) - inf_v f_model(x + v), so it
    estimates f(x) - f* near x* ([BV] 9.5.1) and is affine invariant.

    Args:
        g: gradient at x. H: Hessian at x (symmetric positive definite).
    Returns:
        (dx, lam) with lam a float.
    Raises:
        CourseError: when H is not positive definite (Newton's direction may then go uphill).
    """
    check_array(g, "g", ndim=1)
    check_array(H, "H", shape=(int(g.shape[0]), int(g.shape[0])))
    xp = namespace(g)
    eig_min = to_float(xp.min(xp.linalg.eigvalsh(H)))
    if not eig_min > 0:
        raise CourseError(f"The Hessian is not positive definite (smallest eigenvalue {eig_min:.3g}), so the "
                          "Newton step is not a descent direction. Newton's method needs a strictly convex f; "
                          "add an l2 term (lam > 0) or use gradient descent.")
    dx = -xp.linalg.solve(H, g)
    return dx, math.sqrt(max(-to_float(xp.sum(g * dx)), 0.0))


def newton(problem, x0, alpha: float = 0.25, beta: float = 0.5, tol: float = 1e-10, max_iter: int = 50,
           record_every: int = 1, keep_x="auto", on_divergence: str = "raise") -> Trace:
    """Damped Newton: dx = -H(x)^{-1} grad f(x), x_{k+1} = x_k + t_k dx with t_k from backtracking
    (f(x + t dx) <= f(x) + alpha t grad^T dx, t = 1, beta, beta^2, ...); stop once lambda^2/2 <= tol.

    Guarantee ([BV] 9.5.3 and 9.6.4): for self-concordant f, with eta = (1 - 2 alpha)/4:
    while lambda(x_k) > eta each step decreases f by at least alpha beta eta^2 / (1 + eta) (damped
    phase); once lambda(x_k) <= eta the full step t = 1 is taken and 2 lambda(x_{k+1}) <= (2 lambda(x_k))^2
    (quadratic convergence); f(x) - f* <= lambda(x)^2 when lambda(x) <= 0.68. Once lambda^2 is below
    round-off (<= 1e-12 (1 + |f|)) the full step is taken without the (then meaningless) Armijo test.

    Args:
        problem: a Problem with ``value``, ``grad`` and ``hess`` (value may be +inf outside the domain).
        x0: starting point (in f's domain). alpha in (0, 1/2), beta in (0, 1): backtracking constants.
        tol: stop once lambda^2/2 <= tol. max_iter, record_every, keep_x, on_divergence: see Recorder.
    Returns:
        The Trace; ``info["decrement"]`` holds lambda(x_k), ``info["step_size"]`` t_k.
    """
    x = check_start(problem, x0, ("value", "grad", "hess"))
    if type(problem).hess is Problem.hess:
        raise CourseError(f"newton needs the Hessian, and {problem.name} has none (only hvp). Use gradient descent, "
                          "or a problem with hess(x) such as problems.LogisticRegression.")
    check_in_range(alpha, "alpha", 0.0, 0.5, low_open=True, high_open=True)
    check_in_range(beta, "beta", 0.0, 1.0, low_open=True, high_open=True)
    tol = check_positive(tol, "tol", allow_zero=True)
    fx = problem.value(x)
    if not math.isfinite(to_float(fx)):
        raise CourseError(f"f(x0) = {to_float(fx)}: x0 is outside the domain of {problem.name}. Start inside it.")
    rec = Recorder("newton", x, max_iter, params={"alpha": alpha, "beta": beta}, record_every=record_every,
                   keep_x=keep_x, on_divergence=on_divergence)
    g = problem.grad(x)
    dx, lam = newton_decrement(g, problem.hess(x))
    go = rec.record(0, x, f=fx, grad=g, calls=3, decrement=lam)
    for k in range(1, check_int(max_iter, "max_iter") + 1):
        if lam * lam / 2 <= tol:
            rec.status, rec.message = "converged", f"lambda^2/2 = {lam * lam / 2:.3g} <= tol = {tol:g} at iteration {k - 1}"
            break
        if not go:
            break
        if lam * lam <= 1e-12 * (1 + abs(to_float(fx))):  # Armijo's test is below round-off: full step
            t, x, n = 1.0, x + dx, 1
            fx = problem.value(x)
        else:
            t, x, fx, n = backtracking(problem.value, x, fx, g, dx, t0=1.0, c=alpha, beta=beta)
        g = problem.grad(x)
        dx, lam = newton_decrement(g, problem.hess(x))
        go = rec.record(k, x, f=fx, grad=g, calls=n + 2, decrement=lam, step_size=t)
    return rec.finish(x)


class AnalyticCenter(Problem):
    """f(x) = c^T x - sum_i log(b_i - a_i^T x), a self-concordant log barrier (+inf outside A x < b).

    grad f = c + A^T (1/s), Hessian A^T diag(1/s^2) A with slacks s = b - A x > 0. Bounded below
    when the polyhedron {A x <= b} is bounded. The test problem of [BV] 9.6-9.7 for Newton's method.

    Args:
        A: (m, dim). b: (m,). c: (dim,) (default 0: the analytic center of the polyhedron).
    """

    name = "analytic_center"
    _data_fields = ("A", "b", "c")

    def __init__(self, A, b, c=None, backend=None):
        be = get_backend(backend) if backend is not None else get_backend("numpy")
        self.backend = be
        self.A, self.b = be.asarray(A), be.asarray(b)
        check_array(self.A, "A", ndim=2)
        self.dim = int(self.A.shape[1])
        check_array(self.b, "b", shape=(int(self.A.shape[0]),))
        self.c = be.asarray(np.zeros(self.dim) if c is None else c)
        check_array(self.c, "c", shape=(self.dim,))
        self.L, self.mu = None, 0.0

    @classmethod
    def random(cls, m: int = 40, dim: int = 10, seed: int = 0, backend=None) -> "AnalyticCenter":
        """A random bounded polyhedron containing 0 (b > 0) and a random linear term."""
        m, dim = check_int(m, "m", 1), check_int(dim, "dim", 1)
        rng = np.random.default_rng(check_seed(seed))
        return cls(rng.standard_normal((m, dim)), rng.uniform(1.0, 2.0, m), 0.1 * rng.standard_normal(dim),
                   backend=backend)

    def _slack(self, x):
        return self.b - self.A @ x

    def value(self, x):
        xp = namespace(x)
        s = self._slack(x)
        if to_float(xp.min(s)) <= 0:
            return xp.asarray(math.inf, dtype=x.dtype, device=getattr(x, "device", None))
        return xp.sum(self.c * x) - xp.sum(xp.log(s))

    def grad(self, x):
        return self.c + self.A.T @ (1.0 / self._slack(x))

    def hess(self, x):
        s = self._slack(x)
        return (self.A.T / (s * s)) @ self.A

    @property
    def x_star(self):
        xs = self.__dict__.get("_x_star_np")
        if xs is None:
            prob = self.to("numpy")
            tr = newton(prob, np.zeros(self.dim), tol=1e-26, max_iter=60, keep_x=False)
            xs = self.__dict__["_x_star_np"] = to_numpy(tr.x_final)
        return self.backend.asarray(xs)

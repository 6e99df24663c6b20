"""Chapter 1, Convex optimization: first-order methods with their guarantees.

Every method takes a problem (value/grad/...), a starting point and hyperparameters, and
returns a :class:`~course_lib.trace.Trace`.
"""
from __future__ import annotations

from .trace import Recorder, Trace
from .validation import check_int, check_step_size

__all__ = ["gradient_descent"]


def gradient_descent(problem, x0, step_size=None, max_iter: int = 1000, tol: float = 0.0,
                     record_every: int = 1, keep_x="auto", on_divergence: str = "raise",
                     check_step: bool = True) -> Trace:
    """Gradient descent with a constant step: x_{k+1} = x_k - step_size * grad f(x_k).

    Guarantee: on a convex L-smooth f with step_size = 1/L,
    f(x_k) - f* <= L ||x_0 - x*||^2 / (2k); on a mu-strongly convex f,
    ||x_k - x*||^2 <= (1 - mu/L)^k ||x_0 - x*||^2
    (Nesterov, *Lectures on Convex Optimization*, 2018, Cor. 2.1.2 and Thm 2.1.15).

    Args:
        problem: a Problem (``value``, ``grad``; ``L`` used for the default step and the check).
        x0: starting point, shape (dim,), on the problem's backend.
        step_size: constant step; default 1/L.
        max_iter: number of iterations. tol: stop once ||grad f(x_k)|| <= tol.
        record_every, keep_x, on_divergence: see :class:`~course_lib.trace.Recorder`.
        check_step: refuse step sizes >= 2/L (set False to watch a divergence).
    Returns:
        The Trace of the run.
    """
    x = problem.check_x(x0, "x0")
    max_iter = check_int(max_iter, "max_iter", 0)
    if step_size is None:
        if problem.L is None:
            raise ValueError(f"{problem.name} has no known L; pass step_size explicitly.")
        step_size = 1.0 / problem.L
    step_size = check_step_size(step_size, problem.L if check_step else None)
    rec = Recorder("gradient_descent", x, max_iter, params={"step_size": step_size}, tol=tol,
                   record_every=record_every, keep_x=keep_x, on_divergence=on_divergence)
    g = problem.grad(x)
    if rec.record(0, x, f=problem.value(x), grad=g, calls=1):
        for k in range(1, max_iter + 1):
            x = x - step_size * g
            g = problem.grad(x)
            if not rec.record(k, x, f=problem.value(x), grad=g, calls=1):
                break
    return rec.finish(x)

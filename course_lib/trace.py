"""What a run records: objective values, gradient norms, oracle calls, time and (thinned) iterates.

Every algorithm of course_lib returns a :class:`Trace`; plots and checks read Traces (design
principle 2: problem -> algorithm -> Trace -> plot/check). A :class:`Recorder` fills a Trace
while the algorithm runs. It stores scalars in preallocated NumPy arrays, so recording costs
a couple of microseconds per iteration and a 10^5-iteration run stays cheap; ``record_every``
thins the record further (each record of a torch CUDA run synchronises the device).

The recorder is also where divergence is detected (a non-finite objective, or one that grew
by more than ``divergence_factor`` over its start) and where the gradient-norm stopping rule
lives.
"""
from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .backend import backend_of, namespace, to_float, to_numpy
from .validation import CourseError, DivergenceError, check_int, check_positive

__all__ = ["Trace", "Recorder"]


@dataclass
class Trace:
    """The record of one run of an iterative method.

    Attributes:
        method: the algorithm's name, e.g. ``"gradient_descent"``.
        params: its hyperparameters (step size, momentum, ...).
        iteration: iteration indices k at which the entries below were recorded (k = 0 is x0).
        f: objective values f(x_k) (NaN where not computed).
        grad_norm: Euclidean norms ||grad f(x_k)|| (NaN where not computed).
        oracle_calls: cumulative number of oracle calls (gradients, function values, ...) up to x_k.
        time: seconds since the start of the run.
        x: stored iterates, shape (len(x_iteration), dim), as NumPy, or None.
        x_iteration: iteration indices of the stored iterates.
        x_final: the last iterate, on the run's backend.
        status: ``"converged"``, ``"max_iter"`` or ``"diverged"``.
        message: a sentence saying why the run stopped.
        info: extra per-record series (e.g. step sizes), as NumPy arrays.
    """

    method: str
    params: dict
    iteration: np.ndarray
    f: np.ndarray
    grad_norm: np.ndarray
    oracle_calls: np.ndarray
    time: np.ndarray
    x: np.ndarray | None
    x_iteration: np.ndarray
    x_final: Any
    status: str
    message: str
    info: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.iteration)

    @property
    def f_final(self) -> float:
        """The last recorded objective value."""
        return float(self.f[-1])

    @property
    def n_iter(self) -> int:
        """The number of iterations run (index of the last iterate)."""
        return int(self.iteration[-1])

    def gap(self, f_star: float) -> np.ndarray:
        """Suboptimality f(x_k) - f* for every record."""
        return self.f - float(f_star)

    def min_grad_norm(self) -> np.ndarray:
        """Running minimum of ||grad f(x_k)|| (the quantity nonconvex guarantees bound)."""
        return np.fmin.accumulate(self.grad_norm)

    def __repr__(self) -> str:
        return (f"Trace(method={self.method!r}, iterations={self.n_iter}, status={self.status!r}, "
                f"f_final={self.f_final:.6g})")


class Recorder:
    """Fills a :class:`Trace` while an algorithm runs.

    Usage inside an algorithm::

        rec = Recorder("gradient_descent", x0, max_iter, params=dict(step_size=eta), tol=tol)
        rec.record(0, x, f=problem.value(x), grad=g)
        for k in range(1, max_iter + 1):
            x = x - eta * g
            g = problem.grad(x)
            if not rec.record(k, x, f=problem.value(x), grad=g, calls=1):
                break
        return rec.finish(x)

    Args:
        method: name stored in the trace.
        x0: the starting point (sets dim and the backend).
        max_iter: the iteration budget (sizes the arrays).
        params: hyperparameters stored in the trace.
        tol: stop with status "converged" once ||grad|| <= tol (0 disables).
        record_every: record every k-th iteration only (the first and last are always kept).
        keep_x: store iterates: True (every record), False, an int k (every k-th record), or
            "auto" (every record when dim <= 10, for trajectory plots).
        on_divergence: "raise" (DivergenceError), "warn" (RuntimeWarning and stop) or "stop"
            (stop; the trace's status and message say it diverged).
        divergence_factor: f(x_k) - f(x_0) > divergence_factor * (1 + |f(x_0)|) counts as divergence.
    """

    def __init__(self, method: str, x0, max_iter: int, params: dict | None = None, tol: float = 0.0,
                 record_every: int = 1, keep_x: "bool | int | str" = "auto", on_divergence: str = "raise",
                 divergence_factor: float = 1e10):
        if on_divergence not in ("raise", "warn", "stop"):
            raise CourseError(f"on_divergence must be 'raise', 'warn' or 'stop', got {on_divergence!r}.")
        self.method, self.params = method, dict(params or {})
        self.max_iter, self.tol = check_int(max_iter, "max_iter", 0), check_positive(tol, "tol", allow_zero=True)
        self.record_every = check_int(record_every, "record_every", 1)
        self.on_divergence = on_divergence
        self.divergence_factor = check_positive(divergence_factor, "divergence_factor", allow_inf=True)
        dim = int(np.prod(tuple(x0.shape))) if hasattr(x0, "shape") else 1
        if not (isinstance(keep_x, bool) or keep_x == "auto" or isinstance(keep_x, (int, np.integer))):
            raise CourseError(f"keep_x must be True, False, 'auto' or an int k >= 1 (every k-th record), "
                              f"got {keep_x!r}.")
        if keep_x == "auto":
            keep_x = dim <= 10
        elif not isinstance(keep_x, bool):
            keep_x = check_int(keep_x, "keep_x", 1)
        self.keep_every = 0 if keep_x is False else (1 if keep_x is True else int(keep_x))
        size = self.max_iter // self.record_every + 2
        self._it = np.zeros(size, dtype=np.int64)
        self._f = np.full(size, np.nan)
        self._g = np.full(size, np.nan)
        self._calls = np.zeros(size, dtype=np.int64)
        self._t = np.zeros(size)
        self._info: dict[str, np.ndarray] = {}
        self._xs: list[np.ndarray] = []
        self._x_it: list[int] = []
        self._n = 0
        self._total_calls = 0
        self._f0: float | None = None
        self._start = time.perf_counter()
        self.status, self.message = "max_iter", f"reached max_iter={self.max_iter}"
        self._last_k = -1

    def record(self, k: int, x, f=None, grad=None, calls: int = 0, grad_norm=None, force: bool = False, **extra) -> bool:
        """Record iteration k; return False when the run should stop (converged or diverged).

        Args:
            k: iteration index (0 for the starting point).
            x: the iterate x_k.
            f: f(x_k), if computed (a scalar of any backend).
            grad: the gradient at x_k, if computed (its norm is stored, and used for ``tol``).
            calls: oracle calls spent since the previous call of ``record``.
            grad_norm: the gradient norm, if known without the gradient.
            force: record even if k is not a multiple of record_every.
            **extra: other scalars to keep per record (e.g. ``step_size=0.1``).
        """
        self._total_calls += int(calls)
        self._last_k = k
        if grad is not None and grad_norm is None:
            if getattr(grad, "ndim", None) == 1:  # the common case: one inner product, any backend
                gn = math.sqrt(to_float(grad @ grad))
            else:
                xp = namespace(grad)
                gn = to_float(xp.sqrt(xp.sum(grad * grad)))
            grad_norm = gn
        else:
            gn = to_float(grad_norm) if grad_norm is not None else math.nan
        fv = to_float(f) if f is not None else math.nan
        stop = False
        if self.tol > 0 and gn <= self.tol:
            self.status, self.message = "converged", f"||grad|| = {gn:.3g} <= tol = {self.tol:g} at iteration {k}"
            stop = True
        if self._f0 is None and not math.isnan(fv):
            self._f0 = fv
        diverged = (f is not None and not math.isfinite(fv)) or (grad_norm is not None and not math.isfinite(gn)) or (
            self._f0 is not None and fv - self._f0 > self.divergence_factor * (1.0 + abs(self._f0)))
        if diverged:
            stop = True
            self.status = "diverged"
            step = self.params.get("step_size")
            hint = f" Try a smaller step size than {step:.4g}." if isinstance(step, (int, float)) else \
                " Try a smaller step size."
            f0 = "not finite" if self._f0 is None else f"{self._f0:.3g}"  # f(x0) itself may be NaN
            self.message = (f"{self.method} diverged at iteration {k}: f = {fv:.3g} (f(x0) = {f0}), "
                            f"||grad|| = {gn:.3g}.{hint}")
            if k == 0:
                self.message = (f"{self.method} cannot start: f(x0) = {fv:.3g}, ||grad f(x0)|| = {gn:.3g}. The "
                                "objective is not finite at the starting point: check x0 and the problem's data "
                                "(NaN or inf entries, a point outside the domain).")
        if not (force or stop or k % self.record_every == 0 or k >= self.max_iter):
            return True
        i = self._n
        if i >= len(self._it):  # only when an algorithm records beyond max_iter
            self._grow()
        self._it[i], self._f[i], self._g[i] = k, fv, gn
        self._calls[i], self._t[i] = self._total_calls, time.perf_counter() - self._start
        for name, value in extra.items():
            arr = self._info.get(name)
            if arr is None:
                arr = self._info[name] = np.full(len(self._it), np.nan)
            arr[i] = to_float(value) if value is not None else math.nan
        if self.keep_every and (i % self.keep_every == 0 or stop):
            xk = x.astype(np.float64) if isinstance(x, np.ndarray) else np.array(to_numpy(x), dtype=float)
            self._xs.append(xk.ravel())  # a copy: an algorithm may update x in place
            self._x_it.append(k)
        self._n += 1
        if diverged:
            self._diverge(x)
        return not stop

    def _grow(self):
        for name in ("_it", "_f", "_g", "_calls", "_t"):
            arr = getattr(self, name)
            setattr(self, name, np.concatenate([arr, np.zeros_like(arr)]))
        for name, arr in self._info.items():
            self._info[name] = np.concatenate([arr, np.full_like(arr, np.nan)])

    def _diverge(self, x):
        if self.on_divergence == "raise":
            raise DivergenceError(self.message + " (pass on_divergence='stop' to get the trace back instead)",
                                  iteration=self._last_k, value=float(self._f[self._n - 1]), trace=self.finish(x))
        if self.on_divergence == "warn":
            warnings.warn(self.message, RuntimeWarning, stacklevel=3)

    def finish(self, x) -> Trace:
        """Close the record and return the Trace (``x`` is the final iterate)."""
        n = self._n
        if self.keep_every and (not self._x_it or self._x_it[-1] != self._last_k) and self._last_k >= 0:
            self._xs.append(np.array(to_numpy(x), dtype=float).reshape(-1))
            self._x_it.append(self._last_k)
        xs = np.stack(self._xs) if self._xs else None
        return Trace(
            method=self.method, params=self.params, iteration=self._it[:n].copy(), f=self._f[:n].copy(),
            grad_norm=self._g[:n].copy(), oracle_calls=self._calls[:n].copy(), time=self._t[:n].copy(),
            x=xs, x_iteration=np.asarray(self._x_it, dtype=np.int64), x_final=x, status=self.status,
            message=self.message, info={k: v[:n].copy() for k, v in self._info.items()},
        )

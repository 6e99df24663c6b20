"""The counting oracle: the budget lives here, not in the method.

A method is handed a :class:`CountingOracle` instead of the problem. Every call is counted in
every unit (gradients, function values, examples, Hessian-vector products); the study's budget
unit decides which count is capped. The call that would go past the budget raises
:class:`BudgetExhausted` *before* it is computed, so every run spends exactly ``min(budget,
what it asked for)``; the harness catches the exception and ends the run there.

The metric curve is logged by the oracle as well: before each budgeted call, the metric at the
point the method queries is recorded at the budget spent so far (``log_every`` thins this). For
gradient descent the queried points are the iterates x_k, for Nesterov's method the extrapolated
points y_k; a method may instead report its iterates with :meth:`CountingOracle.observe` (then
only observed points are logged). Time-to-target is the budget spent when the logged metric first
reaches the target. With ``log_every = k`` the metric is evaluated only when the budget advanced
by k since the last logged point (cheaper long runs; time-to-target then has resolution k).
"""
from __future__ import annotations

import math
import time

import numpy as np

__all__ = ["BudgetExhausted", "Diverged", "TooManyFreeCalls", "Budget", "Curve", "CountingOracle", "UNITS"]

UNITS = ("gradients", "function_values", "examples", "epochs", "seconds")


class BudgetExhausted(Exception):
    """The method asked for more than the budget; the run ends here (not an error)."""


class TooManyFreeCalls(RuntimeError):
    """A method made more uncounted calls than FREE_CALLS_PER_UNIT allows (it would never hit the budget)."""


FREE_CALLS_PER_UNIT = 10  # uncounted calls allowed per unit of budget (plus 1000), e.g. f(x_k) under a gradient budget


class Diverged(ArithmeticError):
    """The metric became NaN/inf or blew up (``divergence_factor`` times its start)."""


class Budget:
    """Counts oracle calls in every unit and enforces the cap of one unit.

    Args:
        unit: one of :data:`UNITS`. ``epochs`` is counted as examples / ``n_examples``.
        amount: the cap in that unit (> 0).
        n_examples: training-set size (for ``epochs``; 1 otherwise).
    Attributes:
        counts: dict unit -> amount spent so far (``seconds`` since the budget was created).
    """

    def __init__(self, unit: str, amount: float, n_examples: int = 1):
        self.unit, self.amount, self.n_examples = unit, float(amount), max(int(n_examples), 1)
        self.counts = {"gradients": 0, "function_values": 0, "examples": 0, "hvps": 0}
        self._start = time.perf_counter()
        # the cap in counted calls: of the unit itself, or of examples for examples/epochs
        self._cap = self.amount * (self.n_examples if unit == "epochs" else 1) * (1 + 1e-12)
        self._free_cap = FREE_CALLS_PER_UNIT * self.amount + 1000

    def spent(self, unit: str | None = None) -> float:
        """The budget spent so far in ``unit`` (default: the capped unit)."""
        unit = unit or self.unit
        if unit == "seconds":
            return time.perf_counter() - self._start
        if unit == "epochs":
            return self.counts["examples"] / self.n_examples
        return float(self.counts[unit])

    def charge(self, kind: str, examples: int = 0) -> None:
        """Count one call of ``kind`` touching ``examples`` training examples, or raise BudgetExhausted.

        Raises TooManyFreeCalls when calls the unit does not count exceed FREE_CALLS_PER_UNIT per unit + 1000.
        """
        counts, unit = self.counts, self.unit
        if kind == unit:  # gradients or function_values
            if counts[kind] + 1 > self._cap:
                raise BudgetExhausted(f"budget of {self.amount:g} {unit} used up")
        elif unit == "seconds":
            if time.perf_counter() - self._start >= self.amount:
                raise BudgetExhausted(f"budget of {self.amount:g} seconds used up")
        elif examples and unit in ("examples", "epochs"):
            if counts["examples"] + examples > self._cap:
                raise BudgetExhausted(f"budget of {self.amount:g} {unit} used up")
        elif counts[kind] >= self._free_cap:
            raise TooManyFreeCalls(
                f"{self.counts[kind]} {kind} calls, which a {self.unit} budget does not count (at most "
                f"{FREE_CALLS_PER_UNIT} per unit of budget + 1000); count them with study.budget.unit = \"{kind}\"")
        counts[kind] += 1
        counts["examples"] += examples

    def summary(self) -> dict:
        """All counts plus the capped unit's spend (JSON-ready)."""
        out = {k: int(v) for k, v in self.counts.items()}
        out["spent"] = self.spent()
        out["unit"] = self.unit
        return out


class Curve:
    """The metric logged on the budget axis, with divergence detection and time-to-target.

    Args:
        goal: "min" or "max". target: the threshold (None: no target).
        divergence_factor: a "min" metric above ``factor * (1 + |m0|)`` counts as divergence.
        log_every: keep a point only when the budget advanced by at least this much (0: all).
    """

    def __init__(self, goal: str = "min", target: float | None = None, divergence_factor: float = 1e8,
                 log_every: float = 0.0):
        self.goal, self.target, self.factor, self.log_every = goal, target, divergence_factor, log_every
        self.budget: list[float] = []
        self.metric: list[float] = []
        self.time_to_target: float | None = None
        self._m0: float | None = None
        self._last_logged = -math.inf

    def due(self, spent: float) -> bool:
        """Whether a point at budget ``spent`` would be logged (so whether the metric must be evaluated)."""
        return not self.budget or self.log_every <= 0 or spent - self._last_logged >= self.log_every

    def reached(self, m: float) -> bool:
        return self.target is not None and (m <= self.target if self.goal == "min" else m >= self.target)

    def add(self, spent: float, m: float, force: bool = False, replace: bool = False) -> None:
        """Log metric value ``m`` at budget ``spent``; raise Diverged on NaN/inf or a blow-up.

        A second point at the same budget is dropped (the first one stays) unless ``replace``.
        """
        m = float(m)
        if self._m0 is None:
            self._m0 = m
        if self.time_to_target is None and self.reached(m):
            self.time_to_target = float(spent)
            force = True
        if self.budget and self.budget[-1] == spent:  # same budget: keep the first point, or replace it
            if replace or not math.isfinite(m):
                self.metric[-1] = m
        elif force or not self.budget or spent - self._last_logged >= self.log_every or not math.isfinite(m):
            self.budget.append(float(spent))
            self.metric.append(m)
            self._last_logged = spent
        if not math.isfinite(m):
            raise Diverged(f"metric became {m} at budget {spent:g}")
        if self.goal == "min" and m - self._m0 > self.factor * (1.0 + abs(self._m0)):
            raise Diverged(f"metric grew from {self._m0:.3g} to {m:.3g} at budget {spent:g}")

    @property
    def final(self) -> float:
        return self.metric[-1] if self.metric else math.nan


class CountingOracle:
    """A Problem look-alike that counts every call and caps the budget.

    It exposes what a course_lib algorithm needs (``value``, ``grad``, ``value_and_grad``, ``hvp``,
    ``grad_batch``, ``value_batch``, ``dim``, ``L``, ``mu``, ``n``, ``backend``, ``check_x``,
    ``zeros``, ``asarray``) and nothing that would reveal the answer (no ``x_star``/``f_star``).

    Counting: ``value`` = 1 function value (n examples), ``grad`` and ``value_and_grad`` =
    1 gradient (n examples), ``grad_batch(x, idx)`` = 1 gradient (|idx| examples),
    ``value_batch`` = 1 function value (|idx| examples), ``hvp`` = 1 Hessian-vector product.

    Args:
        problem: the workload's course_lib Problem.
        budget: a :class:`Budget`.
        metric: callable x -> float (the tracked metric, e.g. f(x) - f*).
        curve: a :class:`Curve` to log into.
        value_offset: when the metric is f(x) - value_offset, the f(x) the method itself just asked
            for at the same point (NumPy arrays, compared by value) is reused instead of recomputed.
    """

    def __init__(self, problem, budget: Budget, metric, curve: Curve, value_offset: float | None = None):
        self._problem, self.budget, self._metric, self.curve = problem, budget, metric, curve
        self._offset, self._last_value = value_offset, None
        self._observed = False
        self.last_point = None
        u = budget.unit
        self._logged_kind = u if u in ("gradients", "function_values") else "gradients"  # calls that log the curve
        for name in ("dim", "L", "mu", "n", "lam", "L_max", "backend", "name"):
            if hasattr(problem, name):
                setattr(self, name, getattr(problem, name))

    # -- logging -------------------------------------------------------------------------------
    def _log(self, x, force: bool = False, replace: bool = False) -> None:
        self.last_point = x
        cached = self._last_value
        if cached is not None and isinstance(x, np.ndarray) and np.array_equal(cached[0], x):
            m = cached[1] - self._offset  # f(x) the method asked for at this very point
        else:
            m = self._metric(x)
        self.curve.add(self.budget.spent(), m, force=force, replace=replace)

    def start(self, x0) -> None:
        """Log the starting point at budget 0 (the harness calls this before the method runs)."""
        self._log(x0, force=True)

    def observe(self, x) -> None:
        """Report the method's current iterate (from the first call on, only observed points enter the curve).

        Methods that query the oracle away from their iterates (zeroth-order estimators) call it with x0
        first, then after every step."""
        self._observed = True
        self.last_point = x
        if self.curve.due(self.budget.spent()):
            self._log(x)

    def _charge(self, x, kind: str, examples: int) -> None:
        if kind == self._logged_kind and not self._observed and self.curve.due(self.budget.spent()):
            self._log(x)
        self.budget.charge(kind, examples)

    # -- the oracle ------------------------------------------------------------------------------
    @property
    def convex(self) -> bool:
        return self.mu is not None

    def value(self, x):
        self._charge(x, "function_values", getattr(self._problem, "n", 1))
        v = self._problem.value(x)
        if self._offset is not None and isinstance(x, np.ndarray):
            self._last_value = (x.copy(), float(v))
        return v

    def grad(self, x):
        self._charge(x, "gradients", getattr(self._problem, "n", 1))
        return self._problem.grad(x)

    def value_and_grad(self, x):
        self._charge(x, "gradients", getattr(self._problem, "n", 1))
        return self._problem.value(x), self._problem.grad(x)

    def grad_batch(self, x, idx):
        self._charge(x, "gradients", len(idx))
        return self._problem.grad_batch(x, idx)

    def value_batch(self, x, idx):
        self._charge(x, "function_values", len(idx))
        return self._problem.value_batch(x, idx)

    def hvp(self, x, v):
        self.budget.charge("hvps", 0)
        return self._problem.hvp(x, v)

    def check_x(self, x, name: str = "x"):
        return self._problem.check_x(x, name)

    def zeros(self):
        return self._problem.zeros()

    def asarray(self, data):
        return self._problem.asarray(data)

    def finish(self, x=None) -> None:
        """Log the final point (the method's return value, else the last queried point)."""
        x = self.last_point if x is None else x
        if x is not None:
            self._log(x, force=True, replace=True)

    def __repr__(self) -> str:
        return f"CountingOracle({self._problem!r}, {self.budget.unit}={self.budget.spent():g}/{self.budget.amount:g})"


def as_array(x) -> np.ndarray:
    """x as a flat float64 NumPy array (for metrics)."""
    from ..backend import to_numpy

    return np.asarray(to_numpy(x), dtype=float).reshape(-1)

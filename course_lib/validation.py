"""Input checks whose errors teach: each names the bad value and says what to try.

Used by every algorithm and problem of course_lib (principle 5 of the design: errors teach).
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from .backend import is_torch, namespace, to_numpy

__all__ = [
    "CourseError", "DivergenceError", "check_array", "check_positive", "check_in_range",
    "check_int", "check_step_size", "check_same_backend", "need_L",
    "check_real", "check_probability", "check_seed", "check_callable", "check_has", "check_finite_sum",
    "check_labels_pm1", "check_index", "check_schedule", "check_problem", "check_domain",
    "check_start",
]


class CourseError(ValueError):
    """Bad input to a course_lib function (a ValueError, so generic handlers still catch it)."""


class DivergenceError(ArithmeticError):
    """An iterative method diverged: the objective became non-finite or grew without bound.

    Attributes:
        iteration: the iteration at which divergence was detected.
        value: the objective value seen there.
        trace: the Trace recorded up to that point (for plots of the divergence).
    """

    def __init__(self, message: str, iteration: int | None = None, value: float | None = None, trace=None):
        super().__init__(message)
        self.iteration = iteration
        self.value = value
        self.trace = trace


def _describe(x) -> str:
    if is_torch(x):
        return f"torch tensor of shape {tuple(x.shape)}, dtype {x.dtype}, device {x.device}"
    if isinstance(x, np.ndarray):
        return f"NumPy array of shape {x.shape}, dtype {x.dtype}"
    return f"{type(x).__name__} {x!r}"


def check_array(x, name: str = "x", ndim: int | None = None, shape: tuple | None = None,
                finite: bool = True, floating: bool = True):
    """Check an array argument and return it unchanged.

    Args:
        x: the array (NumPy or torch).
        name: the argument name, used in the message.
        ndim: required number of dimensions, if any.
        shape: required shape, if any (``None`` entries match any length).
        finite: reject NaN and inf entries.
        floating: require a real floating dtype (float32/float64).
    Returns:
        ``x``.
    Raises:
        CourseError: naming ``name``, what was expected and what was given.
    """
    if not (is_torch(x) or isinstance(x, np.ndarray)):
        raise CourseError(
            f"{name} must be an array (NumPy array or torch tensor), got {_describe(x)}. "
            f"Convert it with course_lib.backend.asarray({name})."
        )
    if ndim is not None and x.ndim != ndim:
        raise CourseError(f"{name} must have {ndim} dimension(s), got {_describe(x)}.")
    if shape is not None:
        ok = len(shape) == x.ndim and all(s is None or s == t for s, t in zip(shape, tuple(x.shape)))
        if not ok:
            want = tuple("any" if s is None else s for s in shape)
            raise CourseError(f"{name} must have shape {want}, got {_describe(x)}.")
    if floating:  # dtype.kind / is_floating_point: str(dtype) costs ~1 us, and this runs inside loops
        if not (x.dtype.kind == "f" if isinstance(x, np.ndarray) else x.is_floating_point()):
            raise CourseError(
                f"{name} must have a floating dtype (float64 recommended), got {_describe(x)}. "
                f"Try {name}.astype(float) (NumPy) or {name}.double() (torch)."
            )
    if finite:
        xp = namespace(x)
        if not bool(xp.all(xp.isfinite(x))):
            bad = int(np.size(to_numpy(x)) - np.isfinite(to_numpy(x)).sum())
            raise CourseError(f"{name} contains {bad} NaN or inf entries ({_describe(x)}). "
                              "Check how it was computed, or lower the step size if it came from a diverging run.")
    return x


def check_real(value, name: str, finite: bool = True, allow_inf: bool = False) -> float:
    """Check a real scalar (not None, a string, a bool or a complex number); return it as float.

    Python and NumPy reals and 0-d arrays/tensors are accepted; NaN (and inf unless ``allow_inf``)
    are refused when ``finite``.
    """
    if isinstance(value, (bool, np.bool_)) or value is None or isinstance(value, (str, bytes)):
        raise CourseError(f"{name} must be a real number, got {value!r}.")
    if isinstance(value, (complex, np.complexfloating)) or "complex" in str(getattr(value, "dtype", "")):
        raise CourseError(f"{name} must be a real number, got the complex value {value!r}; "
                          f"pass its real part ({name}.real) if that is what you mean.")
    if getattr(value, "ndim", 0) != 0:
        raise CourseError(f"{name} must be a real number (a scalar), got {_describe(value)}.")
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise CourseError(f"{name} must be a real number, got {value!r}.") from None
    if finite and (math.isnan(value) or (math.isinf(value) and not allow_inf)):
        raise CourseError(f"{name} must be finite, got {value!r}.")
    return value


def check_positive(value, name: str, allow_zero: bool = False, allow_inf: bool = False) -> float:
    """Check a real scalar is > 0 (or >= 0) and finite; return it as float."""
    value = check_real(value, name, allow_inf=allow_inf)
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise CourseError(f"{name} must be {bound}, got {value!r}.")
    return value


def check_in_range(value, name: str, low: float, high: float, low_open: bool = False,
                   high_open: bool = False) -> float:
    """Check ``low <= value <= high`` (open ends optional); return value as float."""
    v = check_real(value, name, finite=False)
    lo_ok = v > low if low_open else v >= low
    hi_ok = v < high if high_open else v <= high
    if math.isnan(v) or not (lo_ok and hi_ok):
        interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        raise CourseError(f"{name} must lie in {interval}, got {value!r}.")
    return v


def check_int(value, name: str, minimum: int = 0) -> int:
    """Check an integer >= minimum; return it as int."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral,)):
        raise CourseError(f"{name} must be an integer, got {value!r}.")
    if int(value) < minimum:
        raise CourseError(f"{name} must be >= {minimum}, got {value!r}.")
    return int(value)


def need_L(problem, what: str = "step_size") -> float:
    """The problem's smoothness constant L (for default step sizes such as 1/L), or a CourseError."""
    if problem.L is None:
        raise CourseError(f"{problem.name} has no known smoothness constant L; pass {what} explicitly.")
    return problem.L


def check_step_size(step_size, L: float | None, name: str = "step_size", limit: float = 2.0) -> float:
    """Check a constant step size against the smoothness constant: 0 < step_size < limit / L.

    Gradient descent on an L-smooth function is only guaranteed to decrease f for step sizes
    below 2/L (Nesterov, *Lectures on Convex Optimization*, 2018, Thm 2.1.14 and its proof).

    Raises:
        CourseError: if the step is not positive, or exceeds ``limit / L`` when L is known.
    """
    step_size = check_positive(step_size, name)
    if L is not None and L > 0 and step_size >= limit / L:
        raise CourseError(
            f"{name}={step_size:g} is >= {limit:g}/L = {limit / L:g} (L={L:g}): gradient descent may "
            f"diverge. Try {name}=1/L={1 / L:g}, or pass check_step=False to run it anyway "
            "(e.g. to watch the divergence)."
        )
    return step_size


def check_same_backend(*arrays, names: tuple[str, ...] = ()):
    """Check arrays come from one backend and device; return the shared namespace."""
    kinds = {(is_torch(a), str(getattr(a, "device", "cpu"))) for a in arrays if a is not None}
    if len(kinds) > 1:
        desc = ", ".join(f"{n}: {_describe(a)}" for n, a in zip(names or [f"arg{i}" for i in range(len(arrays))], arrays))
        raise CourseError(f"Arrays come from different backends or devices ({desc}). "
                          "Convert them with course_lib.backend.like(a, ref).")
    return namespace(*arrays)


def check_probability(value, name: str, hint: str = "it is a failure probability, e.g. 0.05") -> float:
    """Check a probability or confidence level lies strictly inside (0, 1); return it as float."""
    v = check_real(value, name, finite=False)
    if not 0.0 < v < 1.0:
        raise CourseError(f"{name} must lie in (0, 1), got {value!r}: {hint}.")
    return v


def check_seed(seed, name: str = "seed") -> int:
    """Check a random seed: an int >= 0 (NumPy's SeedSequence refuses negative ones); return it.

    Raises:
        TypeError: for a non-integer seed. CourseError: for a negative one.
    """
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {seed!r}. Pass e.g. {name}=0.")
    if int(seed) < 0:
        raise CourseError(f"{name} must be an int >= 0, got {seed!r}. Pass e.g. {name}=0.")
    return int(seed)


def check_callable(fn, name: str, example: str = "") -> object:
    """Check an argument is callable (a function, a schedule, a prox ...); return it."""
    if not callable(fn):
        raise CourseError(f"{name} must be callable, got {type(fn).__name__} {fn!r:.60}.{' ' + example if example else ''}")
    return fn


def check_has(obj, name: str, attrs: tuple, kind: str, example: str = ""):
    """Check an object offers the attributes/methods an algorithm uses (duck typing); return it.

    Args:
        obj: the argument. name: its name. attrs: the attributes it needs.
        kind: what it should be, e.g. "a Problem". example: what to pass instead.
    """
    missing = [a for a in attrs if not hasattr(obj, a)]
    if missing:
        raise CourseError(f"{name} must be {kind} (with {', '.join(attrs)}); got {type(obj).__name__} "
                          f"{obj!r:.60}, which has no {missing[0]}.{' ' + example if example else ''}")
    return obj


def check_finite_sum(problem, method: str, name: str = "problem"):
    """Check a problem is a finite sum (grad_batch, n, L_max), as stochastic methods need; return it."""
    return check_has(problem, name, ("value", "grad", "grad_batch", "n", "L_max"), f"a finite sum for {method}",
                     "Use problems.LeastSquares, Ridge or LogisticRegression (their minibatch gradients and "
                     "L_max make the stochastic methods and their default steps work).")


def check_labels_pm1(y, name: str = "y", n: int | None = None, map_01: bool = False) -> np.ndarray:
    """Check binary labels in {-1, +1} (optionally map {0, 1} to them); return them as a float NumPy array.

    Args:
        y: labels (list, NumPy array or tensor). name: argument name. n: required length (rows of X).
        map_01: accept {0, 1} labels and map them to {-1, +1} (else they are refused with a hint).
    """
    try:
        y_np = np.asarray(to_numpy(y), dtype=float)
    except (TypeError, ValueError):
        raise CourseError(f"{name} must be an array of labels in {{-1, +1}}, got {_describe(y)}.") from None
    if y_np.ndim != 1 or (n is not None and y_np.shape[0] != n):
        want = f"({n},)" if n is not None else "(n,)"
        raise CourseError(f"{name} must have shape {want} (one label per row of X), got shape {y_np.shape}.")
    labels = set(np.unique(y_np).tolist())
    if map_01 and labels <= {0.0, 1.0} and 0.0 in labels:
        return 2 * y_np - 1
    if not labels <= {-1.0, 1.0}:
        extra = " or {0, 1}" if map_01 else ""
        raise CourseError(f"{name} must hold labels in {{-1, +1}}{extra}, got values {sorted(labels)[:5]}. "
                          "Map {0, 1} labels with 2 * y - 1.")
    return y_np


def check_index(idx, n: int, name: str = "idx"):
    """Check a minibatch index array: 1-D, integer, non-empty, every entry in 0..n-1; return it."""
    if isinstance(idx, np.ndarray):
        integer = idx.dtype.kind in "iu"
    else:
        integer = is_torch(idx) and not (idx.is_floating_point() or idx.is_complex() or str(idx.dtype) == "torch.bool")
    if not integer:
        raise CourseError(f"{name} must be an integer index array, got {_describe(idx)}. "
                          "Draw indices with stochastic.MinibatchSampler or np.arange.")
    if idx.ndim != 1 or idx.shape[0] == 0:
        raise CourseError(f"{name} must be a non-empty 1-D index array, got {_describe(idx)}: a minibatch needs "
                          "at least one index.")
    if not (is_torch(idx) and idx.device.type != "cpu"):  # a range check on a GPU would synchronise it
        if idx.shape[0] <= 64:  # small minibatches: Python's min/max beat two array reductions
            vals = idx.tolist()
            lo, hi = min(vals), max(vals)
        else:
            lo, hi = int(idx.min()), int(idx.max())
        if lo < 0 or hi >= n:
            raise CourseError(f"{name} holds index {lo if lo < 0 else hi}, outside 0..{n - 1} (n = {n} terms).")
    return idx


def check_schedule(schedule, L: float | None, name: str = "step_size", steps: int = 1000, limit: float = 2.0,
                   L_name: str = "L") -> object:
    """Check a step-size schedule t -> eta_t on its first ``steps`` updates; return it.

    Every eta_t must be a finite real >= 0, and (when L is known) below ``limit / L``: a schedule
    that starts above 2/L makes the first steps of gradient methods expand the error on an
    L-smooth function (the same reason as for a constant step, see :func:`check_step_size`).

    Raises:
        CourseError: naming ``name``, the first offending t and what to try.
    """
    check_callable(schedule, name)
    worst_t, worst = None, -math.inf
    for t in range(1, max(1, min(int(steps), 10_000)) + 1):
        try:
            eta = schedule(t)
        except Exception as err:  # a schedule that cannot be evaluated is bad input, said once and clearly
            raise CourseError(f"{name}({t}) raised {type(err).__name__}: {err}. A schedule maps the update "
                              "count t = 1, 2, ... to a step size.") from err
        eta = check_real(eta, f"{name}({t})")
        if eta < 0:
            raise CourseError(f"{name}({t}) = {eta:g} is negative: a step-size schedule must be >= 0.")
        if eta > worst:
            worst_t, worst = t, eta
    if L is not None and L > 0 and worst >= limit / L:
        raise CourseError(
            f"{name} is a schedule whose step {name}({worst_t}) = {worst:g} is >= {limit:g}/{L_name} = "
            f"{limit / L:g} ({L_name}={L:g}): the first updates may diverge. Start it lower or later, e.g. "
            f"inverse_time(2 / mu, offset=t0) with t0 >= {L_name} / mu (eta_1 = 2/(mu (1 + t0)) < 2/{L_name}), "
            "or pass check_step=False to run it anyway.")
    return schedule


def check_problem(problem, needs: tuple = ("value", "grad"), name: str = "problem"):
    """Check an objective offers what an algorithm calls (``value``, ``grad``, ``hess`` ...); return it."""
    return check_has(problem, name, tuple(needs), "a Problem", "Build one from course_lib.problems, e.g. "
                     "problems.Quadratic(A, b), or subclass problems.Problem.")


def check_domain(domain, needs: tuple = ("project",), name: str = "domain"):
    """Check a feasible set offers what an algorithm calls (``project``, ``lmo``, ``contains`` ...); return it."""
    return check_has(domain, name, tuple(needs), "a convex set", "Use one of course_lib.projections: "
                     "Ball(radius), Box(lo, hi, dim), Simplex() or L1Ball(radius).")


def check_start(problem, x0, needs: tuple = ("value", "grad"), name: str = "x0"):
    """Check the problem (see :func:`check_problem`) and the starting point (``problem.check_x``); return x0."""
    check_problem(problem, tuple(needs) + ("check_x",))
    return problem.check_x(x0, name)

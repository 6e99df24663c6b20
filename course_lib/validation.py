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
    if floating:
        kind = str(x.dtype)
        if "float" not in kind or "complex" in kind:
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


def check_positive(value, name: str, allow_zero: bool = False, allow_inf: bool = False) -> float:
    """Check a real scalar is > 0 (or >= 0) and finite; return it as float."""
    if isinstance(value, bool):  # True would silently become 1.0
        raise CourseError(f"{name} must be a real number, got {value!r}.")
    if not isinstance(value, numbers.Real):
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise CourseError(f"{name} must be a real number, got {value!r}.") from None
    value = float(value)
    if math.isnan(value) or (math.isinf(value) and not allow_inf):
        raise CourseError(f"{name} must be finite, got {value!r}.")
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise CourseError(f"{name} must be {bound}, got {value!r}.")
    return value


def check_in_range(value, name: str, low: float, high: float, low_open: bool = False,
                   high_open: bool = False) -> float:
    """Check ``low <= value <= high`` (open ends optional); return value as float."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise CourseError(f"{name} must be a real number, got {value!r}.") from None
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

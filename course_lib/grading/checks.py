"""Check helpers for test cells: failures that teach (expected vs got, shape/dtype/NaN hints).

Used in the visible tests (the student's kernel) and in hidden tests (the trusted grader), where
the values compared are plain data that came back from the student's sandbox.
"""
from __future__ import annotations

import numpy as np

__all__ = ["check_close", "check_shape", "check_finite", "check_true", "as_plain_array"]


def as_plain_array(value, name: str = "value") -> np.ndarray:
    """``value`` as a float64 NumPy array, with a clear message if that is impossible."""
    __tracebackhide__ = True  # pytest shows the caller's line and this message, not these frames
    try:
        from ..backend import to_numpy

        arr = np.array(to_numpy(value), dtype=float)
    except Exception as err:  # noqa: BLE001 - anything a student returns
        raise AssertionError(
            f"{name} should be a number or an array of numbers, got {type(value).__name__}: {value!r:.200} "
            f"({type(err).__name__}: {err})"
        ) from None
    return arr


def _hint(got: np.ndarray, expected: np.ndarray) -> str:
    if np.isnan(got).any():
        return " Hint: your result contains NaN; look for 0/0, log of a negative number or a diverging loop."
    if np.isinf(got).any():
        return " Hint: your result contains inf; look for an overflow (e.g. exp of a large number)."
    if expected.size and np.allclose(got, -expected, rtol=1e-6, atol=1e-12) and np.abs(expected).max() > 0:
        return " Hint: your result is the negative of the expected one; check a sign."
    nz = np.abs(got).max() if got.size else 0.0
    if expected.size and nz > 0:
        ratio = np.abs(expected).max() / nz
        for k in (2.0, 0.5, 4.0, 0.25):
            if np.isclose(ratio, k, rtol=1e-6) and np.allclose(got * k, expected, rtol=1e-6, atol=1e-12):
                return f" Hint: your result is off by a factor {k:g}; check constants such as 1/2 or 1/n."
    return ""


def check_shape(got, shape: tuple, name: str = "result") -> np.ndarray:
    """Assert ``got`` has ``shape``; returns it as a NumPy array."""
    __tracebackhide__ = True  # pytest shows the caller's line and this message, not these frames
    arr = as_plain_array(got, name)
    if arr.shape != tuple(shape):
        raise AssertionError(f"{name} has shape {arr.shape}, expected {tuple(shape)}.")
    return arr


def check_finite(got, name: str = "result") -> np.ndarray:
    """Assert every entry of ``got`` is finite."""
    __tracebackhide__ = True  # pytest shows the caller's line and this message, not these frames
    arr = as_plain_array(got, name)
    if not np.isfinite(arr).all():
        raise AssertionError(f"{name} contains NaN or inf: {arr!r:.300}." + _hint(arr, arr))
    return arr


def check_close(got, expected, name: str = "result", rtol: float = 1e-7, atol: float = 1e-10,
                inputs: str | None = None) -> None:
    """Assert ``got`` equals ``expected`` within tolerances, explaining any difference.

    Args:
        got: the student's value (number or array, any backend).
        expected: the reference value.
        name: what is compared (shown in the message).
        rtol, atol: as in ``numpy.allclose``.
        inputs: a short description of the input that was used (shown on failure).
    Raises:
        AssertionError: with expected vs got, the largest error and a hint.
    """
    __tracebackhide__ = True  # pytest shows the caller's line and this message, not these frames
    exp = as_plain_array(expected, "expected")
    arr = as_plain_array(got, name)
    where = f" for {inputs}" if inputs else ""
    if arr.shape != exp.shape:
        raise AssertionError(f"{name}{where} has shape {arr.shape}, expected shape {exp.shape}.")
    if np.allclose(arr, exp, rtol=rtol, atol=atol, equal_nan=False):
        return
    err = np.abs(arr - exp)
    err = np.where(np.isnan(err), np.inf, err)
    i = np.unravel_index(int(np.argmax(err)), err.shape) if err.ndim else ()
    detail = (f"largest difference {float(err[i]):.3g} at index {tuple(int(j) for j in i)}: got {float(arr[i]):.10g}, "
              f"expected {float(exp[i]):.10g}") if err.ndim else f"got {float(arr):.10g}, expected {float(exp):.10g}"
    raise AssertionError(f"{name}{where} is wrong: {detail} (rtol={rtol:g}, atol={atol:g})." + _hint(arr, exp))


def check_true(condition: bool, message: str) -> None:
    """Assert a plain boolean condition, with a message that says what should hold."""
    __tracebackhide__ = True  # pytest shows the caller's line and this message, not these frames
    if not bool(condition):
        raise AssertionError(message)

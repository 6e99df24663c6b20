"""Importable test functions that hidden tests can pass to student code.

Arguments that cross into the sandbox must be data, course_lib objects or importable functions
(no lambdas), so functions that tests want to hand to a student's routine live here.
"""
from __future__ import annotations

import numpy as np

__all__ = ["cubic_sum", "sum_of_squares", "log_sum_exp"]


def cubic_sum(x) -> float:
    """f(x) = sum_i x_i^3 / 3 (gradient x^2; central differences have error exactly h^2/3 per coordinate)."""
    return float(np.sum(np.asarray(x) ** 3) / 3.0)


def sum_of_squares(x) -> float:
    """f(x) = ||x||^2 / 2 (gradient x, Hessian I)."""
    return float(0.5 * np.sum(np.asarray(x) ** 2))


def log_sum_exp(x) -> float:
    """f(x) = log sum_i exp(x_i) (gradient softmax(x)), computed stably."""
    x = np.asarray(x, dtype=float)
    m = x.max()
    return float(m + np.log(np.sum(np.exp(x - m))))

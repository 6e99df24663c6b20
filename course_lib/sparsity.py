"""Chapter 4, Sparsity-constrained optimisation: min f(x) subject to ||x||_0 <= s.

Iterative hard thresholding (IHT) projects gradient steps onto s-sparse vectors; its accelerated,
monotone variant adds momentum but keeps every step no worse than plain IHT's. Restricted to the
weights of one layer, the same projection is magnitude pruning and IHT is pruning with retraining
(the l0 view of compressing a network).
"""
from __future__ import annotations

import numpy as np

from .backend import namespace, to_float
from .trace import Recorder, Trace
from .validation import (CourseError, check_array, check_has, check_in_range, check_int, check_start,
                         check_step_size, need_L)

__all__ = ["hard_threshold", "iht", "accelerated_iht", "prune_layer", "sparsity_of"]


def hard_threshold(x, s: int, mask=None):
    """H_s(x): keep the s entries of largest magnitude (ties: the lower index), zero the rest.

    H_s(x) is a Euclidean projection of x onto {||z||_0 <= s}. With a boolean ``mask`` only the
    masked coordinates are thresholded (s of them kept) and the others are returned unchanged:
    magnitude pruning of one layer when the mask selects that layer's weights.

    Args:
        x: vector (dim,). s: number of entries kept (0 <= s <= number of masked entries).
        mask: optional boolean (dim,) array, on x's backend.
    Returns:
        The thresholded vector, on x's backend.
    """
    check_array(x, "x", ndim=1)
    _check_mask(mask, x)
    xp = namespace(x)
    n = x.shape[0] if mask is None else int(to_float(xp.sum(xp.astype(mask, x.dtype))))
    s = check_int(s, "s", 0)
    if s > n:
        raise CourseError(f"s={s} exceeds the number of {'masked ' if mask is not None else ''}entries {n}; "
                          f"use s <= {n}.")
    score = xp.abs(x) if mask is None else xp.where(mask, xp.abs(x), -1.0 + 0 * x)
    order = xp.argsort(score, descending=True, stable=True)
    if isinstance(x, np.ndarray):       # one sort instead of two: mark the first s of the order
        keep = np.zeros(x.shape, dtype=bool)
        keep[order[:s]] = True
    else:
        keep = xp.argsort(order, stable=True) < s
    if mask is not None:
        keep = keep | ~mask
    return xp.where(keep, x, 0 * x)


def _check_mask(mask, x):
    """mask: None or a boolean array shaped like x, on x's backend."""
    if mask is None:
        return
    if "bool" not in str(getattr(mask, "dtype", "")):
        raise CourseError(f"mask must be a boolean array (True where entries are thresholded), got "
                          f"{type(mask).__name__} of dtype {getattr(mask, 'dtype', None)}. Try mask.astype(bool).")
    check_array(mask, "mask", shape=tuple(x.shape), finite=False, floating=False)


def _run(problem, x0, s, step_size, max_iter, mask, accelerated, tol, record_every, on_divergence):
    x = check_start(problem, x0)
    _check_mask(mask, x)
    hard_threshold(x, s, mask)  # checks s against the (masked) dimension before any work
    max_iter = check_int(max_iter, "max_iter", 0)
    step_size = check_step_size(1.0 / need_L(problem, "step_size (<= 1/L for monotone steps)")
                                if step_size is None else step_size, problem.L, limit=1.0 + 1e-12)
    name = "accelerated_iht" if accelerated else "iht"
    rec = Recorder(name, x, max_iter, params={"s": s, "step_size": step_size}, tol=tol,
                   record_every=record_every, keep_x="auto", on_divergence=on_divergence)
    x = hard_threshold(x, s, mask)
    x_prev, fx = x, problem.value(x)
    g = problem.grad(x)
    if not rec.record(0, x, f=fx, grad=g, calls=1):
        return rec.finish(x)
    for k in range(1, max_iter + 1):
        w = hard_threshold(x - step_size * g, s, mask)
        fw, calls = problem.value(w), 2
        if accelerated:
            y = x + (k - 1) / (k + 2) * (x - x_prev)
            z = hard_threshold(y - step_size * problem.grad(y), s, mask)
            fz = problem.value(z)
            calls += 2
            if to_float(fz) <= to_float(fw):
                w, fw = z, fz
        x_prev, x, fx = x, w, fw
        g = problem.grad(x)
        if not rec.record(k, x, f=fx, grad=g, calls=calls):
            break
    return rec.finish(x)


def iht(problem, x0, s: int, step_size=None, max_iter: int = 500, mask=None, tol: float = 0.0,
        record_every: int = 1, on_divergence: str = "raise") -> Trace:
    """Iterative hard thresholding: x_{k+1} = H_s(x_k - step_size grad f(x_k)).

    Guarantees: with step_size <= 1/L, f(x_{k+1}) <= f(x_k) (H_s minimises the quadratic upper model
    over s-sparse points; Blumensath & Davies, J. Fourier Anal. Appl. 2008, Thm 1). For
    least squares with A satisfying the RIP delta_3s < 1/sqrt(32), x_k -> x_true geometrically
    (Blumensath & Davies, "Iterative hard thresholding for compressed sensing", ACHA 2009, Thm 1).

    Args:
        problem: a Problem. x0: start (thresholded first). s: sparsity level.
        step_size: default 1/L; at most 1/L. max_iter: iterations. mask: threshold only these
        coordinates (the others follow plain gradient steps). tol, record_every, on_divergence: as in
        gradient_descent (the recorded grad norm is that of the full gradient, not zero at the solution).
    Returns:
        The Trace; x_final is s-sparse on the masked coordinates.
    """
    return _run(problem, x0, s, step_size, max_iter, mask, False, tol, record_every, on_divergence)


def accelerated_iht(problem, x0, s: int, step_size=None, max_iter: int = 500, mask=None, tol: float = 0.0,
                    record_every: int = 1, on_divergence: str = "raise") -> Trace:
    """Accelerated, monotone IHT: the better of a momentum step and a plain IHT step.

    y_k = x_k + (k-1)/(k+2) (x_k - x_{k-1}), z = H_s(y_k - step grad f(y_k)), w = H_s(x_k - step grad f(x_k)),
    x_{k+1} = z if f(z) <= f(w) else w. The comparison keeps f(x_{k+1}) <= f(w) <= f(x_k) (monotone, as
    IHT), while the momentum candidate speeds up ill-conditioned problems (Blumensath, "Accelerated
    iterative hard thresholding", Signal Processing 2012; monotone safeguard as in Beck & Teboulle's
    MFISTA, IEEE TIP 2009). Arguments as in :func:`iht`; 2 gradients and 2 values per step.
    """
    return _run(problem, x0, s, step_size, max_iter, mask, True, tol, record_every, on_divergence)


def sparsity_of(x, mask=None) -> float:
    """Fraction of exact zeros in x (among the masked entries)."""
    check_array(x, "x", finite=False)
    _check_mask(mask, x)
    xp = namespace(x)
    z = xp.astype(x == 0, x.dtype)
    if mask is None:
        return to_float(xp.mean(z))
    m = xp.astype(mask, x.dtype)
    return to_float(xp.sum(z * m) / xp.sum(m))


def prune_layer(problem, x, layer: int, sparsity: float, method: str = "accelerated_iht", step_size=None,
                max_iter: int = 100):
    """Prune the weight matrix of one layer to a given sparsity, with or without retraining.

    method "magnitude": one-shot H_s on the layer's weights; "iht" / "accelerated_iht": minimise the
    training loss over all parameters with at most s nonzero weights in that layer, starting from x.
    s = round((1 - sparsity) * n_weights).

    Args:
        problem: a network problem with ``weight_mask(layer)`` (course_lib.nets.MLP). x: its parameters.
        layer: index of the layer. sparsity: target fraction of zeros in [0, 1].
        step_size, max_iter: for the IHT methods (no L is known for a network).
    Returns:
        (pruned parameters, Trace or None for "magnitude").
    """
    check_has(problem, "problem", ("weight_mask", "value", "grad"), "a network problem",
              "prune_layer prunes one layer of course_lib.nets.MLP; on other problems call iht(problem, x0, s).")
    sparsity = check_in_range(sparsity, "sparsity", 0.0, 1.0)
    mask = problem.weight_mask(layer)
    n_w = int(to_float(namespace(x).sum(namespace(x).astype(mask, x.dtype))))
    s = int(round((1 - check_in_range(sparsity, "sparsity", 0.0, 1.0)) * n_w))
    if method == "magnitude":
        return hard_threshold(x, s, mask), None
    if method not in ("iht", "accelerated_iht"):
        raise CourseError(f"method must be 'magnitude', 'iht' or 'accelerated_iht', got {method!r}.")
    run = iht if method == "iht" else accelerated_iht
    tr = run(problem, x, s, step_size=step_size, max_iter=max_iter, mask=mask)
    return tr.x_final, tr

"""Plots that read Traces: convergence curves with theory-rate reference lines, trajectories on contours.

All functions take an optional matplotlib ``ax`` and return it, so lecture cells can compose them.
"""
from __future__ import annotations

from typing import Callable, Iterable, Mapping

import numpy as np

from .backend import to_float, to_numpy
from .validation import CourseError, check_int, check_real

__all__ = ["plot_convergence", "plot_rate", "plot_contour", "plot_curves", "RATES"]


def _ax(ax):
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(6, 4))
    return ax


#: Common theoretical rates as functions of k (a constant C is fitted or given separately).
RATES: dict[str, Callable[..., np.ndarray]] = {
    "1/k": lambda k, **_: 1.0 / np.maximum(k, 1),
    "1/k^2": lambda k, **_: 1.0 / np.maximum(k, 1) ** 2,
    "1/sqrt(k)": lambda k, **_: 1.0 / np.sqrt(np.maximum(k, 1)),
    "linear": lambda k, q=0.5, **_: q ** np.asarray(k, dtype=float),
}


def plot_convergence(traces, f_star: float | None = None, quantity: str = "gap", ax=None,
                     labels: Iterable[str] | None = None, x_axis: str = "iteration", logx: bool = False, **kwargs):
    """Log-scale convergence curves of one or more Traces.

    Args:
        traces: a Trace or a list of them (or a dict label -> Trace).
        f_star: optimal value; with quantity="gap" the curve is f(x_k) - f*.
        quantity: "gap" (needs f_star), "f", "grad_norm" or "min_grad_norm".
        x_axis: "iteration", "oracle_calls" or "time".
        labels: legend labels (default: the methods' names).
        logx: log-log axes (for sublinear rates).
    Returns:
        The matplotlib Axes.
    """
    if isinstance(traces, Mapping):
        labels, traces = list(traces.keys()), list(traces.values())
    elif not isinstance(traces, (list, tuple)):
        traces = [traces]
    traces = _traces(traces)
    labels = _labels(labels, traces)
    if quantity not in ("gap", "f", "grad_norm", "min_grad_norm"):
        raise CourseError(f"quantity must be 'gap', 'f', 'grad_norm' or 'min_grad_norm', got {quantity!r}.")
    if x_axis not in ("iteration", "oracle_calls", "time"):
        raise CourseError(f"x_axis must be 'iteration', 'oracle_calls' or 'time', got {x_axis!r}.")
    if quantity == "gap":
        if f_star is None:
            raise CourseError("quantity='gap' needs f_star (e.g. problem.f_star), or use quantity='f'.")
        f_star = check_real(f_star, "f_star")
    ax = _ax(ax)
    for tr, label in zip(traces, labels):
        xs = {"iteration": tr.iteration, "oracle_calls": tr.oracle_calls, "time": tr.time}[x_axis]
        if quantity == "gap":
            ys = tr.f - f_star
        elif quantity == "min_grad_norm":
            ys = tr.min_grad_norm()
        else:
            ys = getattr(tr, quantity)
        ys = np.where(ys > 0, ys, np.nan)
        ax.plot(xs, ys, label=label, **kwargs)
    ax.set_yscale("log")
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(x_axis.replace("_", " "))
    ax.set_ylabel({"gap": r"$f(x_k) - f^\star$", "f": r"$f(x_k)$", "grad_norm": r"$\|\nabla f(x_k)\|$",
                   "min_grad_norm": r"$\min_{j\leq k}\|\nabla f(x_j)\|$"}.get(quantity, quantity))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    return ax


def _traces(traces):
    """Traces (anything with method, iteration and f), checked."""
    for i, tr in enumerate(traces):
        if not all(hasattr(tr, a) for a in ("method", "iteration", "f")):
            raise CourseError(f"traces[{i}] must be a Trace (what course_lib's methods return), got "
                              f"{type(tr).__name__} {tr!r:.40}.")
    return list(traces)


def _labels(labels, items):
    """Legend labels: one per curve (default: the traces' methods)."""
    if labels is None:
        return [t.method for t in items]
    labels = list(labels)
    if len(labels) != len(items):
        raise CourseError(f"labels has {len(labels)} entries for {len(items)} curves; give one label per curve.")
    return labels


def plot_rate(ax, k, bound, label: str, **kwargs):
    """Draw a theoretical bound (an array over iterations k) as a dashed reference line."""
    k = np.asarray(k, dtype=float)
    bound = np.asarray(bound, dtype=float)
    if bound.shape != k.shape and bound.ndim != 0:
        raise CourseError(f"bound must have one value per k: k has shape {k.shape}, bound {bound.shape}.")
    bound = np.broadcast_to(bound, k.shape)
    style = {"linestyle": "--", "color": "black", "alpha": 0.7, **kwargs}
    ax.plot(k, np.where(bound > 0, bound, np.nan), label=label, **style)
    ax.legend()
    return ax


def plot_curves(curves: Mapping[str, tuple], ax=None, logx: bool = False, logy: bool = False,
                xlabel: str = "", ylabel: str = "", bounds: Mapping[str, tuple] | None = None):
    """Plot labelled (x, y) curves, plus dashed theoretical ``bounds`` (label -> (x, y)).

    Used for regret curves (chapter 3) and bound comparisons (chapter 5).
    """
    if not isinstance(curves, Mapping):
        raise CourseError(f"curves must be a dict label -> (x, y), got {type(curves).__name__}.")
    ax = _ax(ax)
    for label, (x, y) in curves.items():
        ax.plot(to_numpy(x), to_numpy(y), label=label)
    for label, (x, y) in (bounds or {}).items():
        plot_rate(ax, to_numpy(x), to_numpy(y), label)
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    return ax


def plot_contour(problem, traces=(), xlim=(-2.0, 2.0), ylim=(-2.0, 2.0), levels: int = 30, ax=None,
                 log_levels: bool = True, labels: Iterable[str] | None = None, n_grid: int = 200):
    """Level sets of a 2-D objective with the trajectories of Traces drawn on top.

    Args:
        problem: a Problem with dim == 2 (its ``value`` is evaluated on a grid, with NumPy).
        traces: Traces whose stored iterates (``trace.x``) to draw.
        xlim, ylim: plot window. levels: number of contour levels.
        log_levels: space the levels logarithmically above f's minimum on the grid (good for
            badly conditioned or Rosenbrock-like valleys).
    Returns:
        The matplotlib Axes.
    """
    if getattr(problem, "dim", None) != 2 or not hasattr(problem, "value"):
        raise CourseError(f"problem: plot_contour needs a 2-D problem, got dim={getattr(problem, 'dim', None)} "
                          f"({type(problem).__name__}).")
    for lim, name in ((xlim, "xlim"), (ylim, "ylim")):
        if len(lim) != 2 or not check_real(lim[0], f"{name}[0]") < check_real(lim[1], f"{name}[1]"):
            raise CourseError(f"{name} must be a pair (low, high) with low < high, got {lim!r}.")
    levels, n_grid = check_int(levels, "levels", 1), check_int(n_grid, "n_grid", 2)
    ax = _ax(ax)
    prob = problem.to("numpy")
    xs = np.linspace(*xlim, n_grid)
    ys = np.linspace(*ylim, n_grid)
    Z = np.array([[to_float(prob.value(np.array([a, b]))) for a in xs] for b in ys])
    if log_levels:
        zmin = Z.min()
        lv = zmin + np.logspace(-3, np.log10(Z.max() - zmin + 1e-12), levels) * 1.0
        ax.contour(xs, ys, Z, levels=np.unique(lv), cmap="viridis", linewidths=0.8)
    else:
        ax.contour(xs, ys, Z, levels=levels, cmap="viridis", linewidths=0.8)
    if not isinstance(traces, (list, tuple)):
        traces = [traces]
    traces = _traces(traces)
    labels = _labels(labels, traces)
    for tr, label in zip(traces, labels):
        if tr.x is None:
            raise CourseError(f"traces: the Trace of {tr.method} stored no iterates; run it with keep_x=True.")
        ax.plot(tr.x[:, 0], tr.x[:, 1], ".-", ms=3, lw=1, label=label)
    if problem.x_star is not None:
        xs_ = to_numpy(problem.x_star)
        ax.plot(xs_[0], xs_[1], "k*", ms=12, label=r"$x^\star$")
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_aspect("equal")
    if traces:
        ax.legend()
    return ax

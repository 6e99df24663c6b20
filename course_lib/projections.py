"""Projections, prox operators and linear minimisation oracles (chapter 1).

Three kinds of map, one per first-order method for a constrained or composite problem:

* projection     P_C(x)       = argmin_{u in C} ||u - x||                       (projected gradient)
* prox operator  prox_{t g}(v) = argmin_u g(u) + ||u - v||^2 / (2t)              (ISTA / FISTA)
* LMO            lmo_C(g)     = argmin_{s in C} <g, s>                          (Frank-Wolfe)

Every function is written with the array API, so it runs on NumPy arrays and torch tensors.
The sets :class:`Box`, :class:`Ball`, :class:`Simplex` and :class:`L1Ball` bundle a set's
projection, LMO, membership test and diameter for the algorithms of :mod:`course_lib.convex`.
"""
from __future__ import annotations

import math

from .backend import namespace, to_float
from .validation import CourseError, check_array, check_int, check_positive, check_real

__all__ = ["project_box", "project_ball", "project_simplex", "project_l1_ball",
           "prox_l1", "prox_sq_l2", "prox_box", "lmo_simplex", "lmo_l1_ball",
           "Box", "Ball", "Simplex", "L1Ball"]


def _point(x, name: str = "x"):
    """x, checked to be an array (type and dtype only: projections run inside every iteration)."""
    return check_array(x, name, finite=False)


def _bound(v, name: str):
    """A box bound: a real (inf allowed) or an array."""
    return v if hasattr(v, "shape") and getattr(v, "ndim", 0) > 0 else check_real(v, name, finite=False)


def _norm(x):
    xp = namespace(x)
    return xp.sqrt(xp.sum(x * x))


def project_box(x, lo, hi):
    """Projection onto the box {u : lo <= u <= hi}: clip(x, lo, hi), coordinate by coordinate.

    Args:
        x: point (any backend). lo, hi: floats or arrays like x, with lo <= hi.
    Returns:
        The projection, same shape and backend as x.
    """
    _point(x)
    lo, hi = _bound(lo, "lo"), _bound(hi, "hi")
    xp = namespace(x)
    if not bool(xp.all(xp.asarray(lo <= hi))):
        raise CourseError(f"The box is empty: lo > hi (lo={lo!r:.60}, hi={hi!r:.60}). Swap them.")
    return xp.clip(x, lo, hi)


def project_ball(x, radius: float = 1.0, center=None):
    """Projection onto the Euclidean ball {u : ||u - c|| <= r}: c + (x - c) * min(1, r / ||x - c||).

    Args:
        x: point. radius: r > 0. center: c (default 0).
    Returns:
        The projection.
    """
    radius = check_positive(radius, "radius")
    _point(x)
    if center is not None:
        check_array(center, "center", shape=tuple(x.shape))
    d = x if center is None else x - center
    n = to_float(_norm(d))
    if n <= radius:
        return x
    p = d * (radius / n)
    return p if center is None else center + p


def project_simplex(x, radius: float = 1.0):
    """Projection onto the simplex {u >= 0, sum(u) = r}: max(x - theta, 0) with the threshold theta
    found by sorting (Held, Wolfe and Crowder 1974; Duchi et al., ICML 2008, Fig. 1). O(d log d).

    theta = (sum_{j <= rho} u_j - r) / rho where u is x sorted in decreasing order and
    rho = max{j : u_j > (sum_{i <= j} u_i - r) / j}.

    Args:
        x: point, 1-D. radius: r > 0.
    Returns:
        The projection (nonnegative, summing to r).
    """
    radius = check_positive(radius, "radius")
    check_array(x, "x", ndim=1)
    xp = namespace(x)
    u = xp.sort(x, descending=True)
    css = xp.cumulative_sum(u) - radius
    j = xp.arange(1, x.shape[0] + 1, dtype=x.dtype, device=getattr(x, "device", None))
    rho = int(to_float(xp.sum(xp.astype(u - css / j > 0, x.dtype))))
    theta = css[rho - 1] / rho
    return xp.clip(x - theta, 0.0, None)


def project_l1_ball(x, radius: float = 1.0):
    """Projection onto the l1 ball {u : ||u||_1 <= r}: x itself if inside, else
    sign(x) * P_simplex(|x|, r) (Duchi et al., ICML 2008, Sec. 4).

    Args:
        x: point, 1-D. radius: r > 0.
    Returns:
        The projection.
    """
    radius = check_positive(radius, "radius")
    xp = namespace(x)
    if to_float(xp.sum(xp.abs(x))) <= radius:
        return x
    return xp.sign(x) * project_simplex(xp.abs(x), radius)


def prox_l1(v, t: float):
    """Soft thresholding, the prox of t ||.||_1: prox(v)_i = sign(v_i) max(|v_i| - t, 0).

    Args:
        v: point. t: threshold (step size times the l1 weight), >= 0.
    Returns:
        argmin_u t ||u||_1 + ||u - v||^2 / 2.
    """
    t = check_positive(t, "t", allow_zero=True)
    xp = namespace(_point(v, "v"))
    return xp.sign(v) * xp.clip(xp.abs(v) - t, 0.0, None)


def prox_sq_l2(v, t: float, lam: float = 1.0):
    """Prox of g(u) = (lam/2) ||u||^2 with step t: v / (1 + t lam) (shrinkage).

    Args:
        v: point. t: step size >= 0. lam: weight >= 0.
    Returns:
        argmin_u (lam/2)||u||^2 + ||u - v||^2 / (2t).
    """
    t = check_positive(t, "t", allow_zero=True)
    _point(v, "v")
    return v / (1.0 + t * check_positive(lam, "lam", allow_zero=True))


def prox_box(v, t: float, lo, hi):
    """Prox of the indicator of the box [lo, hi]: the projection, whatever the step t."""
    return project_box(v, lo, hi)


def lmo_simplex(g, radius: float = 1.0):
    """Linear minimisation oracle of the simplex: argmin_{s in r*Delta} <g, s> = r e_i, i = argmin_i g_i.

    Args:
        g: gradient, 1-D. radius: r > 0.
    Returns:
        A vertex of the simplex (one nonzero entry).
    """
    radius = check_positive(radius, "radius")
    xp = namespace(check_array(g, "g", ndim=1, finite=False))
    s = xp.zeros_like(g)
    s[int(to_float(xp.argmin(g)))] = radius
    return s


def lmo_l1_ball(g, radius: float = 1.0):
    """LMO of the l1 ball: argmin_{||s||_1 <= r} <g, s> = -r sign(g_i) e_i with i = argmax_i |g_i|.

    Args:
        g: gradient, 1-D. radius: r > 0.
    Returns:
        A vertex of the l1 ball.
    """
    radius = check_positive(radius, "radius")
    xp = namespace(check_array(g, "g", ndim=1, finite=False))
    i = int(to_float(xp.argmax(xp.abs(g))))
    s = xp.zeros_like(g)
    s[i] = -radius if to_float(g[i]) > 0 else radius
    return s


class _Set:
    """A closed convex set: ``project``, ``lmo``, ``contains`` and ``diameter``."""

    diameter: float

    def contains(self, x, tol: float = 1e-9) -> bool:
        """True if x lies in the set, up to ``tol`` (relative to the set's size)."""
        tol = check_positive(tol, "tol", allow_zero=True)
        return to_float(_norm(self.project(x) - x)) <= tol * max(1.0, self.diameter)


class Box(_Set):
    """The box [lo, hi]^d (lo, hi floats), diameter (hi - lo) sqrt(d)."""

    def __init__(self, lo: float, hi: float, dim: int):
        lo, hi, dim = check_real(lo, "lo"), check_real(hi, "hi"), check_int(dim, "dim", 1)
        if not lo < hi:
            raise CourseError(f"Box needs lo < hi, got lo={lo!r}, hi={hi!r}.")
        self.lo, self.hi, self.dim = lo, hi, dim
        self.diameter = (self.hi - self.lo) * math.sqrt(self.dim)

    def project(self, x):
        return project_box(x, self.lo, self.hi)

    def lmo(self, g):
        xp = namespace(g)
        return xp.where(g > 0, xp.full_like(g, self.lo), xp.full_like(g, self.hi))

    def __repr__(self):
        return f"Box({self.lo}, {self.hi}, dim={self.dim})"


class Ball(_Set):
    """The Euclidean ball of radius r around 0, diameter 2r."""

    def __init__(self, radius: float = 1.0):
        self.radius = check_positive(radius, "radius")
        self.diameter = 2 * self.radius

    def project(self, x):
        return project_ball(x, self.radius)

    def lmo(self, g):
        n = to_float(_norm(g))
        return g * 0.0 if n == 0 else -self.radius * g / n

    def __repr__(self):
        return f"Ball(radius={self.radius})"


class Simplex(_Set):
    """The simplex {x >= 0, sum x = r}, diameter r sqrt(2)."""

    def __init__(self, radius: float = 1.0):
        self.radius = check_positive(radius, "radius")
        self.diameter = self.radius * math.sqrt(2)

    def project(self, x):
        return project_simplex(x, self.radius)

    def lmo(self, g):
        return lmo_simplex(g, self.radius)

    def __repr__(self):
        return f"Simplex(radius={self.radius})"


class L1Ball(_Set):
    """The l1 ball {||x||_1 <= r}, diameter 2r (in the Euclidean norm)."""

    def __init__(self, radius: float = 1.0):
        self.radius = check_positive(radius, "radius")
        self.diameter = 2 * self.radius

    def project(self, x):
        return project_l1_ball(x, self.radius)

    def lmo(self, g):
        return lmo_l1_ball(g, self.radius)

    def __repr__(self):
        return f"L1Ball(radius={self.radius})"

"""Chapter 0, Preliminaries: derivative checks, Taylor remainders, smoothness and convexity constants.

The tools every later chapter leans on: is my gradient right (finite differences), how good is
a Taylor model (remainder orders), and what are L and mu (power iteration on Hessian-vector
products; eigenvalues of a quadratic).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .backend import RNG, backend_of, namespace, to_float, to_numpy
from .validation import CourseError, check_array, check_callable, check_int, check_positive, check_problem

__all__ = ["fd_gradient", "fd_hessian", "check_gradient", "check_hessian", "taylor_remainders",
           "power_iteration", "smoothness_constant", "QuadraticConstants", "quadratic_constants",
           "GradientCheck"]


def _basis(x, i):
    xp = namespace(x)
    e = xp.zeros_like(x)
    return xp.where(xp.arange(x.shape[0], device=getattr(x, "device", None)) == i, 1.0 + e, e)


def fd_gradient(f, x, h: float = 1e-6):
    """Central finite-difference gradient: g_i = (f(x + h e_i) - f(x - h e_i)) / (2h).

    Error O(h^2) for C^3 functions plus O(eps/h) rounding, so h ~ eps^(1/3) ~ 1e-5..1e-6 is best
    in float64 (Nocedal & Wright, *Numerical Optimization*, 2nd ed., Sec. 8.1).

    Args:
        f: callable R^d -> R. x: point, shape (d,). h: step (> 0).
    Returns:
        The (d,) gradient estimate on x's backend.
    """
    check_callable(f, "f", "It is the objective x -> f(x).")
    check_array(x, "x", ndim=1)
    h = check_positive(h, "h")
    xp = namespace(x)
    parts = []
    for i in range(x.shape[0]):
        e = _basis(x, i)
        parts.append(to_float(f(x + h * e)) - to_float(f(x - h * e)))
    return xp.asarray(parts, dtype=x.dtype, device=getattr(x, "device", None)) / (2 * h)


def fd_hessian(grad, x, h: float = 1e-5):
    """Finite-difference Hessian from gradients: column i = (g(x + h e_i) - g(x - h e_i)) / (2h), symmetrised.

    Args:
        grad: callable returning the gradient (d,). x: point (d,). h: step.
    Returns:
        The (d, d) Hessian estimate on x's backend.
    """
    check_callable(grad, "grad", "It is the gradient x -> grad f(x).")
    check_array(x, "x", ndim=1)
    h = check_positive(h, "h")
    xp = namespace(x)
    cols = [(grad(x + h * _basis(x, i)) - grad(x - h * _basis(x, i))) / (2 * h) for i in range(x.shape[0])]
    H = xp.stack(cols, axis=1)
    return (H + H.T) / 2


@dataclass
class GradientCheck:
    """Result of :func:`check_gradient`: ``ok`` plus the errors that decided it."""

    ok: bool
    max_abs_error: float
    rel_error: float
    worst_index: int
    analytic: np.ndarray
    numeric: np.ndarray

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        verdict = "gradient OK" if self.ok else "gradient MISMATCH"
        return (f"{verdict}: relative error {self.rel_error:.2e}, max |error| {self.max_abs_error:.2e} "
                f"at coordinate {self.worst_index} (analytic {self.analytic[self.worst_index]:.6g}, "
                f"finite difference {self.numeric[self.worst_index]:.6g})")


def check_gradient(f, grad, x, h: float = 1e-6, rtol: float = 1e-6) -> GradientCheck:
    """Compare an analytic gradient with central finite differences at x.

    The relative error ||g - g_fd|| / max(||g|| + ||g_fd||, 1e-12) is ~1e-10 for a correct gradient in
    float64 and O(1) for a wrong one; ``ok`` is ``rel_error <= rtol``.

    Args:
        f: objective. grad: its claimed gradient. x: point (d,). h: FD step. rtol: tolerance.
    Returns:
        A :class:`GradientCheck` (truthy when the gradient agrees).
    """
    check_callable(grad, "grad", "It is the claimed gradient x -> grad f(x).")
    rtol = check_positive(rtol, "rtol")
    g_fd = to_numpy(fd_gradient(f, x, h)).astype(float)
    g = to_numpy(grad(x)).astype(float).reshape(-1)
    if g.shape != g_fd.shape:
        raise CourseError(f"grad(x) has shape {g.shape} but x has shape {tuple(x.shape)}: a gradient has x's shape.")
    err = np.abs(g - g_fd)
    rel = float(np.linalg.norm(g - g_fd) / max(np.linalg.norm(g) + np.linalg.norm(g_fd), 1e-12))
    return GradientCheck(rel <= rtol, float(err.max()), rel, int(err.argmax()), g, g_fd)


def check_hessian(grad, hess, x, h: float = 1e-5, rtol: float = 1e-5) -> GradientCheck:
    """Compare an analytic Hessian with finite differences of the gradient (flattened comparison)."""
    check_callable(hess, "hess", "It is the claimed Hessian x -> nabla^2 f(x).")
    rtol = check_positive(rtol, "rtol")
    H = to_numpy(hess(x)).astype(float)
    H_fd = to_numpy(fd_hessian(grad, x, h)).astype(float)
    if H.shape != H_fd.shape:
        raise CourseError(f"hess(x) has shape {H.shape}, expected {H_fd.shape}.")
    err = np.abs(H - H_fd).reshape(-1)
    rel = float(np.linalg.norm(H - H_fd) / max(np.linalg.norm(H) + np.linalg.norm(H_fd), 1e-12))
    return GradientCheck(rel <= rtol, float(err.max()), rel, int(err.argmax()), H.reshape(-1), H_fd.reshape(-1))


def taylor_remainders(f, grad, x, direction, hess=None, hs=None):
    """Remainders of the zeroth-, first- and second-order Taylor models along a direction.

    r0(h) = |f(x+hd) - f(x)|                    = O(h)
    r1(h) = |f(x+hd) - f(x) - h g^T d|           = O(h^2)   (iff g is the gradient)
    r2(h) = |r1 - h^2/2 d^T H d|                 = O(h^3)   (iff H is the Hessian)
    On log-log axes their slopes are 1, 2 and 3: the standard test that a derivative is right.

    Args:
        f, grad: the function and its gradient. x: point. direction: d (same shape as x).
        hess: optional Hessian (callable), for r2. hs: step sizes (default logspace(-1, -5, 9)).
    Returns:
        dict with "h", "r0", "r1" and (if hess is given) "r2" as NumPy arrays, and "slopes": the
        least-squares slopes of log r against log h.
    """
    check_array(x, "x", ndim=1)
    check_array(direction, "direction", shape=(x.shape[0],))
    check_callable(f, "f")
    check_callable(grad, "grad")
    hs = np.logspace(-1, -5, 9) if hs is None else np.asarray(hs, dtype=float).reshape(-1)
    if hs.size < 2 or not np.all(np.isfinite(hs)) or np.any(hs <= 0):
        raise CourseError(f"hs must hold at least two finite step sizes > 0 (the slopes are fitted on log h), got {hs!r}.")
    f0 = to_float(f(x))
    gd = to_float(namespace(x).sum(grad(x) * direction))
    dHd = to_float(namespace(x).sum(direction * (hess(x) @ direction))) if hess is not None else None
    r0, r1, r2 = [], [], []
    for h in hs:
        fh = to_float(f(x + float(h) * direction))
        r0.append(abs(fh - f0))
        r1.append(abs(fh - f0 - h * gd))
        if dHd is not None:
            r2.append(abs(fh - f0 - h * gd - 0.5 * h * h * dHd))
    out = {"h": hs, "r0": np.array(r0), "r1": np.array(r1)}
    if dHd is not None:
        out["r2"] = np.array(r2)
    slopes = {}
    for key in ("r0", "r1", "r2"):
        if key in out:
            r = out[key]
            mask = r > 1e-13  # below this, float64 rounding dominates the remainder
            slopes[key] = float(np.polyfit(np.log(hs[mask]), np.log(r[mask]), 1)[0]) if mask.sum() >= 2 else math.nan
    out["slopes"] = slopes
    return out


def power_iteration(matvec, v0, max_iter: int = 1000, tol: float = 1e-10):
    """Power iteration for the largest-magnitude eigenvalue of a symmetric linear map.

    v_{k+1} = A v_k / ||A v_k||,  lambda_k = v_k^T A v_k  (Rayleigh quotient).
    For symmetric A with |lambda_1| > |lambda_2| the error shrinks like (lambda_2/lambda_1)^(2k)
    in the eigenvalue (Golub & Van Loan, *Matrix Computations*, 4th ed., Sec. 8.2.1).

    Args:
        matvec: v -> A v (e.g. a Hessian-vector product). v0: nonzero start vector.
        max_iter: iteration cap. tol: stop when |lambda_k - lambda_{k-1}| <= tol * |lambda_k|.
    Returns:
        (eigenvalue estimate as float, unit eigenvector on v0's backend, iterations used).
    """
    check_callable(matvec, "matvec", "It is v -> A v, e.g. lambda v: problem.hvp(x, v).")
    check_array(v0, "v0", ndim=1)
    max_iter = check_int(max_iter, "max_iter", 1)
    tol = check_positive(tol, "tol", allow_zero=True)
    xp = namespace(v0)
    nrm = to_float(xp.sqrt(xp.sum(v0 * v0)))
    if nrm == 0:
        raise CourseError("v0 is the zero vector; power iteration needs a nonzero start (e.g. a random vector).")
    v = v0 / nrm
    lam = to_float(xp.sum(v * matvec(v)))
    for k in range(1, max_iter + 1):
        w = matvec(v)
        nw = to_float(xp.sqrt(xp.sum(w * w)))
        if nw == 0:
            return 0.0, v, k
        v = w / nw
        lam_new = to_float(xp.sum(v * matvec(v)))
        if abs(lam_new - lam) <= tol * max(abs(lam_new), 1e-300):
            return lam_new, v, k
        lam = lam_new
    return lam, v, max_iter


def smoothness_constant(problem, x=None, seed: int = 0, max_iter: int = 1000, tol: float = 1e-10) -> float:
    """Local smoothness lambda_max(nabla^2 f(x)) by power iteration on Hessian-vector products.

    For quadratics and least squares the Hessian is constant, so this is the global L.

    Args:
        problem: a Problem with ``hvp``. x: where (default: the zero vector). seed: start vector seed.
    Returns:
        The largest-magnitude Hessian eigenvalue at x, as float.
    """
    check_problem(problem, ("hvp", "zeros", "check_x", "dim"))
    x = problem.zeros() if x is None else problem.check_x(x, "x")
    v0 = RNG(seed, backend_of(x)).normal((problem.dim,))
    lam, _, _ = power_iteration(lambda v: problem.hvp(x, v), v0, max_iter=max_iter, tol=tol)
    return lam


@dataclass(frozen=True)
class QuadraticConstants:
    """Curvature facts of f(x) = 1/2 x^T A x - b^T x: L, mu, kappa, convex, strongly_convex."""

    L: float
    mu: float
    kappa: float
    convex: bool
    strongly_convex: bool


def quadratic_constants(A, tol: float = 1e-12) -> QuadraticConstants:
    """L = lambda_max(A), mu = lambda_min(A), kappa = L/mu; convex iff A is PSD, strongly iff PD.

    Args:
        A: symmetric matrix (any backend). tol: eigenvalues above -tol * max|lambda| count as >= 0.
    Returns:
        :class:`QuadraticConstants` (mu is reported as is, possibly negative for nonconvex A).
    """
    check_array(A, "A", ndim=2)
    A_np = to_numpy(A).astype(float)
    if A_np.shape[0] != A_np.shape[1] or not np.allclose(A_np, A_np.T, rtol=1e-10, atol=1e-12):
        raise CourseError(f"A must be a symmetric square matrix, got shape {A_np.shape}. Use (A + A.T) / 2.")
    eig = np.linalg.eigvalsh(A_np)
    scale = max(abs(eig).max(), 1e-300)
    L, mu = float(eig[-1]), float(eig[0])
    convex = mu >= -tol * scale
    strongly = mu > tol * scale
    kappa = L / mu if strongly else math.inf
    return QuadraticConstants(L=L, mu=mu, kappa=kappa, convex=convex, strongly_convex=strongly)

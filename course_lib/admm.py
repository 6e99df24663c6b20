"""ADMM for the lasso and for 1-D (chain-graph) trend filtering (chapter 1).

Scaled-form ADMM for min f(x) + g(z) s.t. M x - z = 0 (Boyd, Parikh, Chu, Peleato and Eckstein,
*Distributed Optimization and Statistical Learning via ADMM*, 2011 [BPCPE]):

    x_{k+1} = argmin_x f(x) + (rho/2) ||M x - z_k + u_k||^2
    z_{k+1} = prox_{g/rho}(M x_{k+1} + u_k)
    u_{k+1} = u_k + M x_{k+1} - z_{k+1}

Guarantee ([BPCPE] Sec. 3.2, Appendix A): for closed convex f, g and any rho > 0 the residual
r_k = M x_k - z_k -> 0 and the objective converges to the optimum; the stopping rule uses the
primal residual ||r_k|| and the dual residual s_k = rho ||M^T (z_k - z_{k-1})||.
Residual balancing ([BPCPE] Sec. 3.4.1, used by :func:`admm_lasso`): rho <- 2 rho when ||r|| > 10 ||s||,
rho <- rho / 2 when ||s|| > 10 ||r|| (and u <- u rho_old / rho_new, the scaled dual); adapting only during
the first iterations keeps rho eventually fixed, so the convergence guarantee still applies.
Trend filtering is the splitting of graph trend filtering on a chain graph (Wang, Sharpnack,
Smola and Tibshirani, JMLR 2016; Ramdas and Tibshirani, JCGS 2016), with D the discrete
difference operator of order k+1.
"""
from __future__ import annotations

import numpy as np

from .backend import asarray, get_backend, namespace, to_float
from .projections import prox_l1
from .trace import Recorder, Trace
from .validation import CourseError, check_array, check_int, check_positive, check_same_backend

__all__ = ["admm_lasso", "difference_matrix", "trend_filtering_objective", "admm_trend_filtering"]


def _norm(v):
    xp = namespace(v)
    return to_float(xp.sqrt(xp.sum(v * v)))


def _admm(name, x_update, M, MT, g_prox, objective, dim_z, like, rho, max_iter, tol, record_every, keep_x,
          on_divergence, params, adapt_until: int = 0):
    """The scaled ADMM loop shared by the lasso and trend filtering (see the module docstring).

    ``x_update(z, u, rho)``; with ``adapt_until`` > 0, rho is rebalanced at iterations k <= adapt_until.
    """
    xp = namespace(like)
    tol = check_positive(tol, "tol", allow_zero=True)
    z = xp.zeros((dim_z,), dtype=like.dtype, device=getattr(like, "device", None))
    u = xp.zeros_like(z)
    x = x_update(z, u, rho)
    rec = Recorder(name, x, max_iter, params=params, record_every=record_every, keep_x=keep_x,
                   on_divergence=on_divergence)
    go = rec.record(0, x, f=objective(x), calls=1, rho=rho)
    for k in range(1, check_int(max_iter, "max_iter") + 1):
        if not go:
            break
        x = x_update(z, u, rho)
        Mx = M(x)
        z_old, z = z, g_prox(Mx + u, 1.0 / rho)
        u = u + Mx - z
        r, s = _norm(Mx - z), rho * _norm(MT(z - z_old))
        go = rec.record(k, x, f=objective(x), calls=1, primal_residual=r, dual_residual=s, rho=rho)
        if k <= adapt_until and (r > 10 * s or s > 10 * r):  # residual balancing, [BPCPE] Sec. 3.4.1
            factor = 2.0 if r > 10 * s else 0.5
            rho, u = rho * factor, u / factor
            continue  # the stopping test below needs residuals computed with one rho
        scale = max(_norm(Mx), _norm(z), 1.0)
        if tol > 0 and r <= tol * scale and s <= tol * max(rho * _norm(MT(u)), 1.0):
            rec.status, rec.message = "converged", f"residuals r = {r:.3g}, s = {s:.3g} below tol = {tol:g} at iteration {k}"
            break
    return rec.finish(x)


def admm_lasso(A, b, alpha: float, rho: float = 1.0, max_iter: int = 500, tol: float = 1e-10,
               record_every: int = 1, keep_x="auto", on_divergence: str = "raise",
               adaptive_rho: bool = True, adapt_until: int = 1000) -> Trace:
    """ADMM for the lasso min_x 1/(2n) ||A x - b||^2 + alpha ||x||_1 (scikit-learn's scaling),
    split as f(x) = 1/(2n)||Ax - b||^2, g(z) = alpha ||z||_1, x - z = 0 ([BPCPE] Sec. 6.4):

        x_{k+1} = (A^T A / n + rho I)^{-1} (A^T b / n + rho (z_k - u_k))
        z_{k+1} = S_{alpha/rho}(x_{k+1} + u_k),   u_{k+1} = u_k + x_{k+1} - z_{k+1}

    Guarantee: convergence for every rho > 0 ([BPCPE] Appendix A); linear for strongly convex f. How fast
    depends on rho against the scale of the data, so by default rho is adapted by residual balancing
    (module docstring) during the first ``adapt_until`` iterations. The x-update uses one eigendecomposition
    A^T A / n = V diag(e) V^T, so a new rho costs nothing: x = V diag(1/(e + rho)) V^T (...).

    Args:
        A: (n, dim) design, b: (n,) targets (NumPy or torch). alpha: l1 weight >= 0. rho: (initial) penalty > 0.
        adaptive_rho: residual balancing on (default) or a fixed rho. adapt_until: last iteration that may
            change rho (>= 0).
        max_iter: iterations. tol: relative tolerance on the primal and dual residuals (0: run all).
        record_every, keep_x, on_divergence: see :class:`~course_lib.trace.Recorder`.
    Returns:
        The Trace: f is the lasso objective at x_k; x_final is the sparse z_k's partner x_k
        (``info`` has the primal and dual residuals).
    """
    check_array(A, "A", ndim=2)
    n, d = (int(s) for s in A.shape)
    check_array(b, "b", shape=(n,))
    check_same_backend(A, b, names=("A", "b"))
    alpha, rho = check_positive(alpha, "alpha", allow_zero=True), check_positive(rho, "rho")
    adapt_until = check_int(adapt_until, "adapt_until", 0) if adaptive_rho else 0
    xp = namespace(A)
    e, V = xp.linalg.eigh(A.T @ A / n)  # factor once; any rho reuses it
    Atb = A.T @ b / n

    def objective(x):
        r = A @ x - b
        return xp.sum(r * r) / (2 * n) + alpha * xp.sum(xp.abs(x))

    def x_update(z, u, rho):
        return V @ ((V.T @ (Atb + rho * (z - u))) / (e + rho))

    tr = _admm("admm_lasso", x_update, lambda x: x, lambda v: v,
               lambda v, t: prox_l1(v, alpha * t), objective, d, A, rho, max_iter, tol, record_every, keep_x,
               on_divergence, {"alpha": alpha, "rho": rho, "adaptive_rho": adaptive_rho}, adapt_until)
    return tr


def difference_matrix(n: int, order: int = 1, backend=None):
    """The discrete difference operator D^{(order)} of shape (n - order, n) on a chain of n points.

    D^{(1)} x = (x_2 - x_1, ..., x_n - x_{n-1}); D^{(k+1)} = D^{(1)} D^{(k)} (D^{(0)} = I). Penalising
    ||D^{(k+1)} beta||_1 favours piecewise polynomials of degree k (k = 0: piecewise constant).

    Args:
        n: number of points. order: number of differences (>= 1, < n). backend: where to put D.
    Returns:
        D as a dense float64 array.
    """
    n, order = check_int(n, "n", 2), check_int(order, "order", 1)
    if order >= n:
        raise CourseError(f"order={order} needs at least order + 1 points, got n={n}.")
    D = np.eye(n)
    for _ in range(order):
        D = D[1:] - D[:-1]
    return get_backend(backend).asarray(D)


def trend_filtering_objective(beta, y, lam: float, order: int = 2):
    """1/2 ||y - beta||^2 + lam ||D^{(order)} beta||_1 (trend filtering of degree order - 1)."""
    check_array(beta, "beta", ndim=1)
    check_array(y, "y", shape=tuple(beta.shape))
    lam = check_positive(lam, "lam", allow_zero=True)
    xp = namespace(beta)
    D = asarray(difference_matrix(beta.shape[0], order), like=beta)
    r = y - beta
    return xp.sum(r * r) / 2 + lam * xp.sum(xp.abs(D @ beta))


def admm_trend_filtering(y, lam: float, order: int = 2, rho: float | None = None, max_iter: int = 1000,
                         tol: float = 1e-8, record_every: int = 1, keep_x=False,
                         on_divergence: str = "raise") -> Trace:
    """ADMM for 1-D trend filtering min_beta 1/2 ||y - beta||^2 + lam ||D beta||_1, D = D^{(order)},
    split as f(beta) = 1/2||y - beta||^2, g(z) = lam ||z||_1, D beta - z = 0:

        beta_{k+1} = (I + rho D^T D)^{-1} (y + rho D^T (z_k - u_k))
        z_{k+1} = S_{lam/rho}(D beta_{k+1} + u_k),   u_{k+1} = u_k + D beta_{k+1} - z_{k+1}

    order = 1 is the fused lasso / total variation denoising (piecewise constant fits), order = 2
    gives piecewise linear fits (Kim, Koh, Boyd and Gorinevsky, SIAM Review 2009). Guarantee: as
    :func:`admm_lasso` (f is 1-strongly convex, so beta_k converges to the unique solution).

    Args:
        y: (n,) noisy signal (NumPy or torch). lam: penalty >= 0. order: differences in D (>= 1).
        rho: ADMM penalty (default 10 lam, an empirical choice that balances the residuals on
        the course's signals; plain ADMM slows down for order >= 3, the motivation of Ramdas and
        Tibshirani's specialised ADMM). max_iter, tol,
        record_every, keep_x, on_divergence: as in :func:`admm_lasso`.
    Returns:
        The Trace: x_final is the fitted beta; f is the trend filtering objective.
    """
    check_array(y, "y", ndim=1)
    lam = check_positive(lam, "lam", allow_zero=True)
    rho = check_positive(rho if rho is not None else max(10 * lam, 1e-3), "rho")
    xp = namespace(y)
    n = int(y.shape[0])
    D = asarray(difference_matrix(n, order), like=y)
    K_inv = xp.linalg.inv(xp.eye(n, dtype=y.dtype, device=getattr(y, "device", None)) + rho * D.T @ D)

    def objective(beta):
        r = y - beta
        return xp.sum(r * r) / 2 + lam * xp.sum(xp.abs(D @ beta))

    return _admm("admm_trend_filtering", lambda z, u, r: K_inv @ (y + rho * (D.T @ (z - u))), lambda v: D @ v,
                 lambda v: D.T @ v, lambda v, t: prox_l1(v, lam * t), objective, n - order, y, rho, max_iter,
                 tol, record_every, keep_x, on_divergence, {"lam": lam, "rho": rho, "order": order})

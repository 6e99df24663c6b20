"""Chapter 4, Nonconvex optimization: stationarity, PL, saddles, curvature, sharpness and SAM.

Test functions with known answers (:class:`PLFunction`, :class:`StrictSaddle`), the guarantees
that survive without convexity (stationarity bounds, PL linear rates), saddle escape by
perturbed gradient descent with Jin et al.'s parameters, Hessian-vector products and the top of
the Hessian spectrum (power iteration, Lanczos), sharpness and the edge of stability, and
sharpness-aware minimisation (SAM, adaptive SAM). Every method returns a Trace.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .backend import RNG, backend_of, get_backend, hvp_autograd, is_torch, namespace, to_float, to_numpy
from .convex import gradient_descent
from .preliminaries import power_iteration
from .problems import Problem
from .trace import Recorder, Trace
from .validation import (CourseError, check_array, check_has, check_int, check_positive, check_probability,
                         check_problem, check_real, check_start, check_step_size, need_L)

__all__ = ["PLFunction", "StrictSaddle", "gd_stationarity_bound", "pl_rate_bound", "noisy_gradient_descent",
           "PGDParams", "pgd_parameters", "uniform_ball", "perturbed_gradient_descent", "predicted_escape_time",
           "escape_time", "hvp", "fd_hvp", "lanczos", "top_hessian_eigenvalue", "sharpness", "step_size_sweep",
           "gd_with_sharpness", "sam_perturbation", "sam_step", "sam", "sam_stationarity_bound"]


def _norm(v):
    xp = namespace(v)
    return xp.sqrt(xp.sum(v * v))


# -- test functions ----------------------------------------------------------------------------
class PLFunction(Problem):
    """f(x) = sum_i x_i^2 + 3 sin^2(x_i): nonconvex, yet Polyak-Lojasiewicz.

    grad f = 2x + 3 sin(2x), Hessian diag(2 + 6 cos(2x)) (negative near x_i = +-pi/2), L = 8.
    PL inequality ||grad f(x)||^2 >= 2 mu (f(x) - f*) with mu = 1/32, x* = 0, f* = 0
    (Karimi, Nutini & Schmidt, ECML-PKDD 2016, Sec. 2; the tight constant is ~0.1755).
    """

    name = "pl_function"
    pl_constant = 1.0 / 32.0

    def __init__(self, dim: int = 1, backend=None):
        self.dim, self.backend = check_int(dim, "dim", 1), get_backend(backend)
        self.L, self.mu = 8.0, None

    def value(self, x):
        xp = namespace(x)
        return xp.sum(x * x + 3 * xp.sin(x) ** 2)

    def grad(self, x):
        return 2 * x + 3 * namespace(x).sin(2 * x)

    def hvp(self, x, v):
        return (2 + 6 * namespace(x).cos(2 * x)) * v

    @property
    def x_star(self):
        return self.zeros()


class StrictSaddle(Problem):
    """f(u, y) = ||u||^2 / 2 + y^4 / 4 - y^2 / 2 on R^(dim-1) x R: a strict saddle at 0.

    grad f = (u, y^3 - y); Hessian diag(1, ..., 1, 3y^2 - 1). The origin is a saddle with
    lambda_min = -1; the minima are (0, +-1) with f* = -1/4. The stable manifold of the saddle is
    {y = 0}: gradient descent started there converges to the saddle. f is not globally smooth;
    on the box |y| <= radius it is L-smooth with L = max(1, 3 radius^2 - 1) and its Hessian is
    rho-Lipschitz with rho = 6 radius (the constants Jin et al.'s PGD needs).

    Args:
        dim: number of variables (>= 2). radius: the box on which L and rho hold.
    """

    name = "strict_saddle"

    def __init__(self, dim: int = 2, radius: float = 2.0, backend=None):
        self.dim, self.backend = check_int(dim, "dim", 2), get_backend(backend)
        self.radius = check_positive(radius, "radius")
        self.L, self.mu = max(1.0, 3 * self.radius**2 - 1), None
        self.rho = 6 * self.radius
        self.saddle_eigenvalue = -1.0

    def _y(self, x):
        return x[-1:]

    def value(self, x):
        xp = namespace(x)
        y = self._y(x)
        return 0.5 * xp.sum(x[:-1] ** 2) + xp.sum(y**4 / 4 - y**2 / 2)

    def grad(self, x):
        xp = namespace(x)
        y = self._y(x)
        return xp.concat([x[:-1], y**3 - y])

    def hvp(self, x, v):
        xp = namespace(x)
        y = self._y(x)
        return xp.concat([v[:-1], (3 * y**2 - 1) * v[-1:]])

    @property
    def saddle(self):
        """The saddle point 0."""
        return self.zeros()

    @property
    def x_star(self):
        return self.asarray(np.r_[np.zeros(self.dim - 1), 1.0])


# -- guarantees without convexity ----------------------------------------------------------------
def gd_stationarity_bound(L: float, f0: float, f_star: float, T) -> np.ndarray:
    """Bound on min_{k<T} ||grad f(x_k)||^2 for gradient descent with step 1/L: 2 L (f0 - f*) / T.

    From the descent lemma f(x_{k+1}) <= f(x_k) - ||grad f(x_k)||^2 / (2L), summed over k < T
    (Nesterov, *Lectures on Convex Optimization*, 2018, Sec. 1.2.3, eq. (1.2.22)). Holds for any
    L-smooth f bounded below by f_star (a lower bound of f* also works).

    Args:
        L: smoothness constant. f0: f(x_0). f_star: f* or a lower bound. T: iteration count(s) >= 1.
    Returns:
        The bound for each T, as a NumPy array.
    """
    T = _counts(T, "T", 1)
    f0, f_star = check_real(f0, "f0"), check_real(f_star, "f_star")
    if f0 < f_star:
        raise CourseError(f"f0={f0:g} is below f_star={f_star:g}: f_star must be f* or a lower bound of f, so "
                          "f0 - f_star >= 0. Check the order of the arguments (L, f0, f_star, T).")
    return 2 * check_positive(L, "L") * (f0 - f_star) / T


def _counts(k, name: str, minimum: int) -> np.ndarray:
    """Iteration counts >= minimum (a number or an array) as a float array."""
    try:
        k = np.asarray(k, dtype=float)
    except (TypeError, ValueError):
        raise CourseError(f"{name} must be an iteration count or an array of them, got {k!r:.60}.") from None
    if k.size == 0 or not np.all(np.isfinite(k)) or np.any(k < minimum):
        raise CourseError(f"{name} must hold finite iteration counts >= {minimum}, got {k!r:.60}.")
    return k


def pl_rate_bound(L: float, mu: float, gap0: float, k) -> np.ndarray:
    """Linear rate under the PL condition: f(x_k) - f* <= (1 - mu/L)^k (f(x_0) - f*), step 1/L.

    Karimi, Nutini & Schmidt, "Linear convergence of gradient and proximal-gradient methods under
    the Polyak-Lojasiewicz condition", ECML-PKDD 2016, Thm 1 (no convexity needed).

    Args:
        L: smoothness. mu: PL constant (0 < mu <= L). gap0: f(x_0) - f*. k: iteration(s).
    Returns:
        The bound at each k, as a NumPy array.
    """
    L, mu = check_positive(L, "L"), check_positive(mu, "mu")
    if mu > L:
        raise CourseError(f"The PL constant mu={mu:g} cannot exceed L={L:g}; check the constants.")
    return (1 - mu / L) ** _counts(k, "k", 0) * check_positive(gap0, "gap0", allow_zero=True)


def noisy_gradient_descent(problem, x0, step_size, sigma: float, max_iter: int = 1000, seed: int = 0,
                           record_every: int = 1, keep_x="auto", on_divergence: str = "raise") -> Trace:
    """Gradient descent with an unbiased noisy gradient (a model of SGD): x_{k+1} = x_k - step_size (g_k + xi_k).

    xi_k ~ N(0, sigma^2 I) independently, so E||xi_k||^2 = dim sigma^2. Guarantee for L-smooth f
    and step_size <= 1/L (Ghadimi & Lan, SIAM J. Optim. 2013, Thm 2.1 with constant steps):
    (1/T) sum_{k<T} E||grad f(x_k)||^2 <= 2 (f(x_0) - f*) / (step_size T) + L step_size dim sigma^2.
    The trace records the true gradient norms.

    Args:
        problem: a Problem. x0: start. step_size: constant step (< 2/L). sigma: noise level (>= 0).
        max_iter, record_every, keep_x, on_divergence: as in :func:`course_lib.convex.gradient_descent`.
        seed: seed of the noise.
    Returns:
        The Trace.
    """
    x = check_start(problem, x0)
    max_iter = check_int(max_iter, "max_iter", 0)
    step_size = check_step_size(step_size, problem.L)
    sigma = check_positive(sigma, "sigma", allow_zero=True)
    rng = RNG(seed, backend_of(x))
    rec = Recorder("noisy_gradient_descent", x, max_iter, params={"step_size": step_size, "sigma": sigma,
                   "seed": seed}, record_every=record_every, keep_x=keep_x, on_divergence=on_divergence)
    g = problem.grad(x)
    if rec.record(0, x, f=problem.value(x), grad=g, calls=1):
        for k in range(1, max_iter + 1):
            x = x - step_size * (g + rng.normal((problem.dim,), scale=sigma))
            g = problem.grad(x)
            if not rec.record(k, x, f=problem.value(x), grad=g, calls=1):
                break
    return rec.finish(x)


# -- escaping saddles -----------------------------------------------------------------------------
@dataclass(frozen=True)
class PGDParams:
    """Parameters of perturbed gradient descent (Jin et al. 2017, Algorithm 2).

    step_size = c/l, radius r of the perturbation ball, g_thres (perturb when ||grad|| <= g_thres),
    f_thres (decrease expected after an escape), t_thres (steps between perturbations), chi.
    """

    step_size: float
    radius: float
    g_thres: float
    f_thres: float
    t_thres: int
    chi: float


def pgd_parameters(dim: int, L: float, rho: float, eps: float, delta_f: float, c: float = 1.0,
                   delta: float = 0.1) -> PGDParams:
    """Jin et al.'s parameter formulas for perturbed gradient descent.

    chi = 3 max(log(d L delta_f / (c eps^2 delta)), 4), step = c/L, r = sqrt(c)/chi^2 eps/L,
    g_thres = sqrt(c)/chi^2 eps, f_thres = c/chi^3 sqrt(eps^3/rho), t_thres = chi/c^2 L/sqrt(rho eps).
    (Jin, Ge, Netrapalli, Kakade & Jordan, "How to escape saddle points efficiently", ICML 2017,
    Algorithm 2; Thm 3 needs c <= an absolute constant c_max, eps <= L^2/rho, delta_f >= f(x0) - f*.)

    Args:
        dim: d. L: gradient Lipschitz constant. rho: Hessian Lipschitz constant. eps: target
        accuracy. delta_f: bound on f(x0) - f*. c: the constant c. delta: failure probability.
    Returns:
        A :class:`PGDParams` (t_thres rounded up to an integer).
    """
    dim = check_int(dim, "dim", 1)
    L, rho, eps = check_positive(L, "L"), check_positive(rho, "rho"), check_positive(eps, "eps")
    delta_f, c = check_positive(delta_f, "delta_f"), check_positive(c, "c")
    delta = check_probability(delta, "delta")
    if eps > L**2 / rho:
        raise CourseError(f"eps={eps:g} exceeds L^2/rho={L**2 / rho:g}, outside Jin et al.'s Thm 3; use a smaller eps.")
    chi = 3 * max(math.log(dim * L * delta_f / (c * eps**2 * delta)), 4.0)
    return PGDParams(step_size=c / L, radius=math.sqrt(c) / chi**2 * eps / L, g_thres=math.sqrt(c) / chi**2 * eps,
                     f_thres=c / chi**3 * math.sqrt(eps**3 / rho), t_thres=int(math.ceil(chi / c**2 * L / math.sqrt(rho * eps))),
                     chi=chi)


def uniform_ball(rng: RNG, dim: int, radius: float):
    """A point uniform in the ball of ``radius`` in R^dim: radius U^(1/dim) z/||z||, z ~ N(0, I), U ~ U[0, 1]."""
    check_has(rng, "rng", ("normal", "uniform"), "a course_lib.backend.RNG", "Pass RNG(seed, backend).")
    dim, radius = check_int(dim, "dim", 1), check_positive(radius, "radius")
    z = rng.normal((dim,))
    u = to_float(rng.uniform((1,))[0])
    return radius * u ** (1.0 / dim) * z / _norm(z)


def perturbed_gradient_descent(problem, x0, params: PGDParams, max_iter: int = 10000, seed: int = 0,
                               terminate: bool = True, noise=None, record_every: int = 1, keep_x="auto",
                               on_divergence: str = "raise") -> Trace:
    """Perturbed gradient descent (Jin et al. 2017, Algorithm 2).

    At step t: if ||grad f(x_t)|| <= g_thres and t - t_noise > t_thres, remember x~ = x_t, set
    t_noise = t and x_t = x~ + xi with xi uniform in the ball of radius r; if t - t_noise = t_thres
    and f(x_t) - f(x~) > -f_thres, stop and return x~; then x_{t+1} = x_t - step_size grad f(x_t).
    Guarantee (Thm 3): with probability 1 - delta the returned point is eps-second-order stationary,
    ||grad f|| <= eps and lambda_min(hess f) >= -sqrt(rho eps), after
    O(L (f(x_0) - f*) / eps^2 log^4(d L delta_f / (eps^2 delta))) iterations.

    Args:
        problem: a Problem. x0: start. params: from :func:`pgd_parameters` (or hand-set).
        max_iter: iteration cap. seed: seed of the perturbations. terminate: apply the stopping
        rule (False: keep iterating, e.g. to plot). noise: optional (K, dim) array whose rows are
        used, in order, as the perturbations instead of uniform-ball draws (to replay a run).
        Others as in gradient_descent.
    Returns:
        The Trace; ``info["perturbed"]`` is 1 at the perturbation steps; on termination
        ``x_final`` is x~ and ``status`` is "converged".
    """
    x = check_start(problem, x0)
    max_iter = check_int(max_iter, "max_iter", 0)
    if not isinstance(params, PGDParams):
        raise CourseError(f"params must be a PGDParams (use pgd_parameters(...)), got {type(params).__name__}.")
    eta, t_thres = params.step_size, params.t_thres
    rng = RNG(seed, backend_of(x))
    rec = Recorder("perturbed_gradient_descent", x, max_iter, params={**params.__dict__, "seed": seed},
                   record_every=record_every, keep_x=keep_x, on_divergence=on_divergence)
    t_noise, x_tilde, f_tilde, n_pert = -t_thres - 1, None, None, 0
    if noise is not None:
        check_array(noise, "noise", shape=(None, problem.dim))
    g, fx = problem.grad(x), problem.value(x)
    for t in range(max_iter + 1):
        perturbed = 0
        if to_float(_norm(g)) <= params.g_thres and t - t_noise > t_thres:
            x_tilde, f_tilde, t_noise, perturbed = x, to_float(fx), t, 1
            if noise is not None and n_pert >= noise.shape[0]:
                raise CourseError(f"noise has {noise.shape[0]} rows but perturbation {n_pert + 1} is due at t={t}; "
                                  "pass more rows or fewer iterations.")
            x = x + (uniform_ball(rng, problem.dim, params.radius) if noise is None else noise[n_pert])
            n_pert += 1
            g, fx = problem.grad(x), problem.value(x)
        if not rec.record(t, x, f=fx, grad=g, calls=1 + perturbed, perturbed=perturbed, force=bool(perturbed)):
            break
        if terminate and t - t_noise == t_thres and to_float(fx) - f_tilde > -params.f_thres:
            rec.status = "converged"
            rec.message = (f"no decrease of f_thres={params.f_thres:.3g} within t_thres={t_thres} steps of the "
                           f"perturbation at t={t_noise}: x~ is an approximate second-order stationary point")
            return rec.finish(x_tilde)
        if t == max_iter:
            break
        x = x - eta * g
        g, fx = problem.grad(x), problem.value(x)
    return rec.finish(x)


def predicted_escape_time(step_size: float, gamma: float, radius: float, dim: int, distance: float = 1.0) -> float:
    """Iterations GD needs to carry a perturbation of size ``radius`` a ``distance`` away from a strict saddle.

    Near a saddle with lambda_min = -gamma, GD multiplies the escape component by (1 + step_size gamma)
    each step. A point uniform in the ball of radius r in R^d has E xi_1^2 = r^2 / (d + 2), so
    t ~= log(distance sqrt(d + 2) / r) / log(1 + step_size gamma) (linearised dynamics; cf. Jin
    et al. 2017, Sec. 5, where t_thres ~ log(1/r) / (step gamma) up to the log factor chi).
    """
    step_size, gamma = check_positive(step_size, "step_size"), check_positive(gamma, "gamma")
    radius, distance = check_positive(radius, "radius"), check_positive(distance, "distance")
    return math.log(distance * math.sqrt(check_int(dim, "dim", 1) + 2) / radius) / math.log1p(step_size * gamma)


def escape_time(trace: Trace, saddle, distance: float = 1.0) -> float:
    """Iterations from the first perturbation of ``trace`` until ||x_k - saddle|| >= distance (inf if never).

    Needs the stored iterates (run with keep_x=True) and a PGD trace with ``info["perturbed"]``.
    """
    check_has(trace, "trace", ("x", "info", "iteration", "x_iteration"), "a Trace")
    if trace.x is None or "perturbed" not in trace.info:
        raise CourseError("escape_time needs a perturbed_gradient_descent trace run with keep_x=True.")
    hits = trace.iteration[trace.info["perturbed"] == 1]
    if len(hits) == 0:
        return math.inf
    t0 = int(hits[0])
    dist = np.linalg.norm(trace.x - to_numpy(saddle)[None, :], axis=1)
    after = (trace.x_iteration >= t0) & (dist >= distance)
    return float(trace.x_iteration[after][0] - t0) if after.any() else math.inf


# -- curvature: Hessian-vector products, power iteration, Lanczos ----------------------------------
def fd_hvp(grad, x, v, h: float = 1e-5):
    """Hessian-vector product by central differences of gradients: (g(x + t v) - g(x - t v)) / (2t), t = h/||v||.

    Error O(t^2) for C^3 functions plus rounding O(eps/t) (Nocedal & Wright, 2nd ed., Sec. 8.1).
    """
    h = check_positive(h, "h")
    check_array(v, "v", shape=tuple(x.shape))
    nv = to_float(_norm(v))
    if nv == 0:
        return v * 0
    t = h / nv
    return (grad(x + t * v) - grad(x - t * v)) / (2 * t)


def hvp(problem, x, v, method: str = "auto", h: float = 1e-5):
    """Hessian-vector product nabla^2 f(x) v.

    method: "problem" (the problem's own hvp/hess), "autograd" (double backprop on torch,
    :func:`course_lib.backend.hvp_autograd`), "fd" (finite differences of gradients), or "auto":
    the problem's hvp when it has one, else autograd on torch and finite differences on NumPy.
    """
    check_problem(problem, ("value", "grad", "hvp", "check_x"))
    problem.check_x(x, "x")
    check_array(v, "v", shape=tuple(x.shape))
    own = type(problem).hvp is not Problem.hvp or type(problem).hess is not Problem.hess
    if method == "auto":
        method = "problem" if own else ("autograd" if is_torch(x) else "fd")
    if method == "problem":
        return problem.hvp(x, v)
    if method == "autograd":
        return hvp_autograd(problem.value, x, v)
    if method == "fd":
        return fd_hvp(problem.grad, x, v, h)
    raise CourseError(f"method must be 'auto', 'problem', 'autograd' or 'fd', got {method!r}.")


def lanczos(matvec, v0, k: int = 20, tol: float = 1e-12):
    """k steps of Lanczos with full reorthogonalisation: the Ritz values of a symmetric linear map.

    Builds an orthonormal basis Q_k of the Krylov space span{v0, A v0, ..., A^(k-1) v0} with
    A Q_k = Q_k T_k + beta_k q_{k+1} e_k^T, T_k tridiagonal; the eigenvalues of T_k (Ritz values)
    approach the extreme eigenvalues of A much faster than power iteration (Kaniel-Paige theory;
    Golub & Van Loan, *Matrix Computations*, 4th ed., Sec. 10.1). With k = dim they are exact.

    Args:
        matvec: v -> A v. v0: nonzero start (dim,). k: number of steps (<= dim). tol: stop when the
        Krylov space becomes invariant (beta <= tol ||A||).
    Returns:
        (ritz_values ascending as a NumPy array, Ritz vectors as the columns of a (dim, m) array on v0's backend).
    """
    check_array(v0, "v0", ndim=1)
    k = min(check_int(k, "k", 1), v0.shape[0])
    xp = namespace(v0)
    n0 = to_float(_norm(v0))
    if n0 == 0:
        raise CourseError("v0 is the zero vector; Lanczos needs a nonzero start (e.g. a random vector).")
    Q = [v0 / n0]
    alphas, betas = [], []
    for j in range(k):
        w = matvec(Q[j])
        alphas.append(to_float(xp.sum(w * Q[j])))
        Qm = xp.stack(Q, axis=1)
        for _ in range(2):  # full reorthogonalisation, twice is enough (Parlett's "twice is enough")
            w = w - Qm @ (Qm.T @ w)
        beta = to_float(_norm(w))
        if j == k - 1 or beta <= tol * max(1.0, max(abs(a) for a in alphas)):
            break
        betas.append(beta)
        Q.append(w / beta)
    m = len(alphas)
    T = np.diag(alphas) + np.diag(betas[: m - 1], 1) + np.diag(betas[: m - 1], -1)
    theta, S = np.linalg.eigh(T)
    Qm = xp.stack(Q[:m], axis=1)
    return theta, Qm @ backend_of(v0).asarray(S, dtype=str(v0.dtype).replace("torch.", ""))


def top_hessian_eigenvalue(problem, x, method: str = "lanczos", k: int = 30, seed: int = 0,
                           max_iter: int = 1000, tol: float = 1e-10, hvp_method: str = "auto") -> float:
    """The top Hessian eigenvalue at x from Hessian-vector products only.

    method="lanczos": the largest Ritz value after k Lanczos steps (largest *algebraic* eigenvalue).
    method="power": :func:`course_lib.preliminaries.power_iteration`, which finds the eigenvalue of
    largest *magnitude* (the same near a minimum, where the Hessian is PSD).

    Args:
        problem: a Problem. x: the point. k: Lanczos steps. seed: start-vector seed.
        max_iter, tol: power-iteration controls. hvp_method: see :func:`hvp`.
    Returns:
        The eigenvalue, as a float.
    """
    check_problem(problem, ("value", "grad", "hvp", "check_x"))
    problem.check_x(x, "x")
    v0 = RNG(seed, backend_of(x)).normal((problem.dim,))

    def matvec(v):
        return hvp(problem, x, v, hvp_method)

    if method == "lanczos":
        return float(lanczos(matvec, v0, k)[0][-1])
    if method == "power":
        return power_iteration(matvec, v0, max_iter=max_iter, tol=tol)[0]
    raise CourseError(f"method must be 'lanczos' or 'power', got {method!r}.")


def sharpness(problem, x, **kwargs) -> float:
    """Sharpness lambda_max(nabla^2 f(x)) of the (training) loss at x (Cohen et al., ICLR 2021).

    GD with step eta is linearly stable at a minimum only if sharpness <= 2/eta. Keyword
    arguments go to :func:`top_hessian_eigenvalue`.
    """
    return top_hessian_eigenvalue(problem, x, **kwargs)


def step_size_sweep(problem, x0, step_sizes, max_iter: int = 1000) -> dict:
    """Run gradient descent for each step size with divergence detection on: {step_size: Trace}.

    On a quadratic with top eigenvalue lambda_max, GD diverges exactly when step > 2/lambda_max: the
    error along the top eigenvector is multiplied by |1 - step lambda_max| each step. The Traces of
    diverging runs have status "diverged" and a message saying where.
    """
    steps = [check_positive(s, f"step_sizes[{i}]") for i, s in enumerate(step_sizes)]
    return {s: gradient_descent(problem, x0, step_size=s, max_iter=max_iter, check_step=False,
                                on_divergence="stop") for s in steps}


def gd_with_sharpness(problem, x0, step_size: float, max_iter: int = 500, every: int = 10, k: int = 20,
                      seed: int = 0, on_divergence: str = "stop") -> Trace:
    """Gradient descent that also records the sharpness every ``every`` steps (the edge-of-stability demo).

    On neural-network losses full-batch GD shows *progressive sharpening* until sharpness reaches
    2/step_size, then hovers there while the loss keeps decreasing non-monotonically (Cohen, Kaur,
    Li, Kolter & Talwalkar, "Gradient descent on neural networks typically occurs at the edge of
    stability", ICLR 2021). ``info["sharpness"]`` holds the Lanczos estimates (NaN in between).
    """
    x = check_start(problem, x0)
    step_size, every = check_positive(step_size, "step_size"), check_int(every, "every", 1)
    max_iter = check_int(max_iter, "max_iter", 0)
    rec = Recorder("gd_with_sharpness", x, max_iter, params={"step_size": step_size}, keep_x=False,
                   on_divergence=on_divergence)
    for t in range(max_iter + 1):
        g = problem.grad(x)
        lam = sharpness(problem, x, k=k, seed=seed) if t % every == 0 else None
        if not rec.record(t, x, f=problem.value(x), grad=g, calls=1, sharpness=lam) or t == max_iter:
            break
        x = x - step_size * g
    return rec.finish(x)


# -- sharpness-aware minimisation -------------------------------------------------------------------
def sam_perturbation(g, x, rho: float, adaptive: bool = False, eta: float = 0.01):
    """The ascent step of SAM: eps = rho g / ||g||; adaptive (ASAM): eps = rho T^2 g / ||T g||, T = |x| + eta.

    SAM: Foret, Kleiner, Mobahi & Neyshabur, ICLR 2021, eq. (2). ASAM: Kwon, Kim, Park & Choi,
    ICML 2021, eq. (9), whose elementwise T makes the neighbourhood scale-invariant. eps = 0 when g = 0.

    Args:
        g: the (minibatch) gradient at x. x: the weights. rho: radius (>= 0). adaptive: ASAM.
        eta: ASAM's offset keeping T > 0.
    Returns:
        eps, shaped like x.
    """
    rho = check_positive(rho, "rho", allow_zero=True)
    check_array(g, "g", shape=tuple(x.shape), finite=False)
    if adaptive:
        T = namespace(x).abs(x) + check_positive(eta, "eta")
        d, nrm = T * T * g, to_float(_norm(T * g))
    else:
        d, nrm = g, to_float(_norm(g))
    return d * 0 if nrm == 0 else (rho / nrm) * d


def sam_step(grad, x, step_size: float, rho: float, adaptive: bool = False, eta: float = 0.01):
    """One SAM step: x+ = x - step_size grad f(x + eps(x)), eps from :func:`sam_perturbation`.

    Args:
        grad: callable x -> gradient (full or one fixed minibatch). x: current point.
        step_size, rho, adaptive, eta: as in :func:`sam`.
    Returns:
        The new point.
    """
    return x - step_size * grad(x + sam_perturbation(grad(x), x, rho, adaptive, eta))


def sam_stationarity_bound(L: float, f0: float, f_star: float, rho: float, T) -> np.ndarray:
    """Bound on min_{k<T} ||grad f(x_k)||^2 for full-batch SAM with step 1/L: 2L(f0 - f*)/T + (L rho)^2.

    From the descent lemma, since ||grad f(x + eps) - grad f(x)|| <= L rho: each step decreases f by
    at least (||grad f(x_k)||^2 - (L rho)^2) / (2L) (cf. Andriushchenko & Flammarion, "Towards
    understanding sharpness-aware minimization", ICML 2022, Sec. 4). SAM reaches a rho-sized
    neighbourhood of stationarity, not a stationary point.
    """
    return gd_stationarity_bound(L, f0, f_star, T) + (L * check_positive(rho, "rho", allow_zero=True)) ** 2


def sam(problem, x0, step_size=None, rho: float = 0.05, max_iter: int = 1000, adaptive: bool = False,
        eta: float = 0.01, tol: float = 0.0, record_every: int = 1, keep_x="auto",
        on_divergence: str = "raise") -> Trace:
    """Full-batch sharpness-aware minimisation: x_{k+1} = x_k - step_size grad f(x_k + eps_k).

    eps_k = rho g_k/||g_k|| (SAM, Foret et al. 2021) or rho T^2 g_k/||T g_k|| (ASAM, Kwon et al. 2021).
    Guarantee with step 1/L: :func:`sam_stationarity_bound`. Minibatch SAM on networks: course_lib.nets.train.

    Args:
        problem: a Problem. x0: start. step_size: default 1/L. rho: radius. adaptive: ASAM.
        eta: ASAM offset. tol, record_every, keep_x, on_divergence: as in gradient_descent.
    Returns:
        The Trace (2 gradients per step).
    """
    x = check_start(problem, x0)
    max_iter = check_int(max_iter, "max_iter", 0)
    step_size = check_step_size(1.0 / need_L(problem) if step_size is None else step_size, problem.L)
    rho = check_positive(rho, "rho", allow_zero=True)
    eta = check_positive(eta, "eta") if adaptive else eta
    name = "asam" if adaptive else "sam"
    rec = Recorder(name, x, max_iter, params={"step_size": step_size, "rho": rho, "eta": eta}, tol=tol,
                   record_every=record_every, keep_x=keep_x, on_divergence=on_divergence)
    g = problem.grad(x)
    if rec.record(0, x, f=problem.value(x), grad=g, calls=1):
        for k in range(1, max_iter + 1):
            x = x - step_size * problem.grad(x + sam_perturbation(g, x, rho, adaptive, eta))
            g = problem.grad(x)
            if not rec.record(k, x, f=problem.value(x), grad=g, calls=2):
                break
    return rec.finish(x)

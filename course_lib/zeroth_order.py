"""Zeroth-order (derivative-free) optimization: methods that see only function values f(x).

Every method takes ``f`` (a callable x -> scalar, or a :class:`~course_lib.problems.Problem`, whose ``value`` is
used), spends a counted number of function evaluations, calls ``callback(k, x_k)`` (if given) with each new
iterate, and returns a :class:`~course_lib.trace.Trace` whose
``oracle_calls`` are function evaluations. Estimators (for a direction u and a smoothing radius mu):

* forward Gaussian smoothing (Nesterov and Spokoiny, FoCM 2017):  g = (f(x + mu u) - f(x)) / mu * u,  u ~ N(0, I);
* central Gaussian smoothing:                                    g = (f(x + mu u) - f(x - mu u)) / (2 mu) * u;
* SPSA (Spall, IEEE TAC 1992):                                    g = (f(x + c D) - f(x - c D)) / (2 c) * D^{-1},
  D Rademacher (so D^{-1} = D).

Both Gaussian estimators are unbiased for grad f_mu, the gradient of the smoothed f_mu(x) = E f(x + mu u); on a
quadratic f(x) = 1/2 x^T A x - b^T x, f_mu = f + mu^2 tr(A) / 2, so they are unbiased for grad f itself, with

    E ||g_central - grad f||^2 = (d + 1) ||grad f||^2,
    E ||g_forward||^2          = (d + 2) ||grad f||^2 + mu^2 (d + 4) (tr(A)^2 + 2 tr(A^2)) / 4,
    E ||g_SPSA - grad f||^2    = (d - 1) ||grad f||^2,

the closed forms ``tests/test_zeroth_order.py`` checks. The d in those variances is the price of zeroth-order
information: one step of gradient-free descent with the best step 1 / ((d + 2) L) on f = L/2 ||x||^2 contracts
E ||x - x*||^2 by exactly 1 - 1 / (d + 2), so reaching a fixed accuracy costs O(d) evaluations per unit of progress
(Nesterov and Spokoiny, Thm 8: h = 1 / (4 (n + 4) L) in general).

MeZO (Malladi et al., NeurIPS 2023) is SPSA with a Gaussian direction done *in place* on a network's parameters:
the direction z is never stored; it is regenerated from a seed each time it is needed, so fine-tuning needs the
memory of inference (no activations kept for backward, no gradients, no optimizer state).
"""
from __future__ import annotations

import math

import numpy as np

from .backend import RNG, backend_of, namespace, to_float
from .trace import Recorder, Trace
from .validation import CourseError, check_int, check_positive

__all__ = ["smoothing_gradient", "spsa_gradient", "spsa_gains", "random_search", "zo_gradient_descent", "spsa",
           "nes", "cma_es", "mezo", "mezo_step", "ESTIMATORS"]

ESTIMATORS = ("forward", "central")


def _value(f):
    if callable(f) and not hasattr(f, "value"):
        return f
    if hasattr(f, "value"):
        return f.value
    raise CourseError(f"f must be a callable x -> float or a Problem with .value; got {type(f).__name__}.")


def _x0(x0):
    if not hasattr(x0, "shape") or len(x0.shape) != 1:
        raise CourseError(f"x0 must be a 1-D array, got {type(x0).__name__} of shape {getattr(x0, 'shape', None)}.")
    return x0


def smoothing_gradient(f, x, mu: float = 1e-3, n_directions: int = 1, kind: str = "forward", rng: RNG | None = None,
                       fx=None):
    """Gaussian-smoothing gradient estimate, averaged over ``n_directions`` directions u ~ N(0, I).

    forward: (f(x + mu u) - f(x)) / mu u (one evaluation per direction, plus f(x) once unless ``fx`` is given);
    central: (f(x + mu u) - f(x - mu u)) / (2 mu) u (two per direction). Unbiased for grad f_mu (module docstring).

    Args:
        f: callable or Problem. x: the point. mu: smoothing radius (> 0). n_directions: directions averaged.
        kind: "forward" or "central". rng: a seeded :class:`~course_lib.backend.RNG` (required).
        fx: f(x) if already known (forward only; saves one evaluation).
    Returns:
        (g, evaluations): the estimate and the number of function evaluations spent.
    """
    if rng is None:
        raise CourseError("smoothing_gradient needs rng=RNG(seed, backend) (every random thing takes a seed).")
    if kind not in ESTIMATORS:
        raise CourseError(f"Unknown estimator kind={kind!r}; choose one of: {', '.join(ESTIMATORS)}.")
    value = _value(f)
    mu = check_positive(mu, "mu")
    m = check_int(n_directions, "n_directions", 1)
    xp = namespace(x)
    g = xp.zeros_like(x)
    calls = 0
    if kind == "forward" and fx is None:
        fx, calls = value(x), 1
    for _ in range(m):
        u = rng.normal(tuple(x.shape))
        if kind == "forward":
            d = (value(x + mu * u) - fx) / mu
            calls += 1
        else:
            d = (value(x + mu * u) - value(x - mu * u)) / (2 * mu)
            calls += 2
        g = g + d * u
    return g / m, calls


def spsa_gradient(f, x, c: float, rng: RNG):
    """SPSA estimate (f(x + c D) - f(x - c D)) / (2 c) D with D Rademacher (2 evaluations).

    Returns:
        (g, 2).
    """
    value = _value(f)
    delta = 2.0 * (rng.uniform(tuple(x.shape)) < 0.5) - 1.0
    delta = delta * 1.0
    return (value(x + c * delta) - value(x - c * delta)) / (2 * c) * delta, 2


def spsa_gains(k, a: float, c: float, A: float = 0.0, alpha: float = 0.602, gamma: float = 0.101):
    """Spall's gain sequences a_k = a / (k + 1 + A)^alpha and c_k = c / (k + 1)^gamma (k = 0, 1, ...).

    alpha = 0.602 and gamma = 0.101 are Spall's practical values (IEEE TAES 1998, "Implementation of the
    simultaneous perturbation algorithm"); the asymptotically optimal ones are 1 and 1/6. Convergence a.s. needs
    sum a_k = inf, sum (a_k / c_k)^2 < inf (Spall 1992, Prop. 1).

    Returns:
        (a_k, c_k).
    """
    return a / (k + 1 + A) ** alpha, c / (k + 1) ** gamma


def _recorder(name, x, max_iter, params, record_every):
    return Recorder(name, x, max_iter, params=params, record_every=record_every, keep_x="auto", on_divergence="stop")


def random_search(f, x0, sigma: float = 0.1, max_evals: int = 1000, seed: int = 0, record_every: int = 1,
                  callback=None) -> Trace:
    """(1+1) random search: propose y = x + sigma u, u ~ N(0, I); keep y if f(y) < f(x) (one evaluation a step).

    The simplest zeroth-order baseline (Rastrigin 1963; Matyas 1965); with a fixed sigma it stalls at a
    sigma-dependent distance from x*.

    Args:
        f: callable or Problem. x0: start (1-D). sigma: proposal scale. max_evals: budget of evaluations.
        seed: seed of the proposals. record_every: thinning of the trace.
    Returns:
        The Trace (f of the incumbent, evaluations counted).
    """
    value, x = _value(f), _x0(x0)
    sigma = check_positive(sigma, "sigma")
    n = check_int(max_evals, "max_evals", 1)
    rng = RNG(seed, backend_of(x))
    fx = value(x)
    rec = _recorder("random_search", x, n, dict(sigma=sigma, seed=seed), record_every)
    rec.record(0, x, f=fx, calls=1)
    for k in range(1, n):
        y = x + sigma * rng.normal(tuple(x.shape))
        fy = value(y)
        if to_float(fy) < to_float(fx):
            x, fx = y, fy
        if callback is not None:
            callback(k, x)
        if not rec.record(k, x, f=fx, calls=1):
            break
    return rec.finish(x)


def zo_gradient_descent(f, x0, step_size: float, mu: float = 1e-4, n_directions: int = 1, kind: str = "forward",
                        max_iter: int = 1000, seed: int = 0, record_every: int = 1, callback=None) -> Trace:
    """Random gradient-free descent x_{k+1} = x_k - h g_mu(x_k) (Nesterov and Spokoiny, FoCM 2017, method RG_mu).

    Guarantee (their Thm 8): on an L-smooth, tau-strongly convex f with h = 1 / (4 (d + 4) L) and the forward
    estimator, E f(x_N) - f* decays like (1 - tau / (8 (d + 4) L))^N up to an O(mu^2 d^2) floor: d times more
    iterations than gradient descent.

    Args:
        f: callable or Problem. x0: start. step_size: h. mu: smoothing radius. n_directions: directions per step.
        kind: "forward" (reuses f(x_k), so 1 + n_directions evaluations per step) or "central" (2 n_directions).
        max_iter: steps. seed: seed of the directions. record_every: trace thinning.
    Returns:
        The Trace; ``f`` is recorded where the method evaluates f(x_k) (forward) and NaN otherwise.
    """
    value, x = _value(f), _x0(x0)
    h = check_positive(step_size, "step_size")
    n = check_int(max_iter, "max_iter", 0)
    rng = RNG(seed, backend_of(x))
    rec = _recorder("zo_gradient_descent", x, n, dict(step_size=h, mu=mu, n_directions=n_directions, kind=kind,
                                                      seed=seed), record_every)
    rec.record(0, x)
    for k in range(1, n + 1):
        fx = value(x) if kind == "forward" else None
        g, calls = smoothing_gradient(value, x, mu=mu, n_directions=n_directions, kind=kind, rng=rng, fx=fx)
        if fx is not None:
            calls += 1
        x = x - h * g
        if callback is not None:
            callback(k, x)
        if not rec.record(k, x, f=fx, calls=calls):
            break
    return rec.finish(x)


def spsa(f, x0, a: float = 0.1, c: float = 0.1, A: float | None = None, alpha: float = 0.602, gamma: float = 0.101,
         max_iter: int = 1000, seed: int = 0, record_every: int = 1, callback=None) -> Trace:
    """SPSA: x_{k+1} = x_k - a_k g_k, g_k = (f(x_k + c_k D_k) - f(x_k - c_k D_k)) / (2 c_k) D_k (2 evaluations).

    Gains from :func:`spsa_gains` (Spall's alpha = 0.602, gamma = 0.101; A defaults to 10% of max_iter, his rule of
    thumb). Guarantee: x_k -> x* almost surely under Spall's 1992 conditions (Prop. 1) on the gains.

    Args:
        f: callable or Problem. x0: start. a, c, A, alpha, gamma: gain constants. max_iter: steps.
        seed: seed of the perturbations. record_every: trace thinning.
    Returns:
        The Trace; ``f`` records (f(x + c D) + f(x - c D)) / 2, which costs nothing extra.
    """
    value, x = _value(f), _x0(x0)
    n = check_int(max_iter, "max_iter", 0)
    A = 0.1 * n if A is None else float(A)
    rng = RNG(seed, backend_of(x))
    rec = _recorder("spsa", x, n, dict(a=a, c=c, A=A, alpha=alpha, gamma=gamma, seed=seed), record_every)
    rec.record(0, x)
    for k in range(1, n + 1):
        ak, ck = spsa_gains(k - 1, a, c, A, alpha, gamma)
        delta = 2.0 * (rng.uniform(tuple(x.shape)) < 0.5) - 1.0
        fp, fm = value(x + ck * delta), value(x - ck * delta)
        x = x - ak * (fp - fm) / (2 * ck) * delta
        if callback is not None:
            callback(k, x)
        if not rec.record(k, x, f=(fp + fm) / 2, calls=2, step_size=ak):
            break
    return rec.finish(x)


def _centered_ranks(values: np.ndarray) -> np.ndarray:
    ranks = np.empty(len(values))
    ranks[np.argsort(values)] = np.arange(len(values))
    return ranks / (len(values) - 1) - 0.5


def nes(f, x0, sigma: float = 0.1, step_size: float = 0.05, population: int = 20, max_iter: int = 100,
        seed: int = 0, record_every: int = 1, callback=None) -> Trace:
    """Natural evolution strategies with a fixed isotropic Gaussian search distribution N(x, sigma^2 I).

    x_{k+1} = x_k - step_size / (n sigma) sum_i u_i eps_i, over n = ``population`` antithetic pairs (eps, -eps),
    with centered-rank utilities u_i in [-1/2, 1/2] (fitness shaping; Wierstra et al., JMLR 2014; Salimans et al.
    2017): the search-gradient estimate is invariant to monotone transformations of f.

    Args:
        f: callable or Problem. x0: start. sigma: search scale. step_size: learning rate. population: number of
            antithetic pairs (2 population evaluations a step). max_iter: steps. seed. record_every.
    Returns:
        The Trace; ``f`` records the mean of the population's values.
    """
    value, x = _value(f), _x0(x0)
    sigma, lr = check_positive(sigma, "sigma"), check_positive(step_size, "step_size")
    pop, n = check_int(population, "population", 1), check_int(max_iter, "max_iter", 0)
    rng = RNG(seed, backend_of(x))
    xp = namespace(x)
    rec = _recorder("nes", x, n, dict(sigma=sigma, step_size=lr, population=pop, seed=seed), record_every)
    rec.record(0, x)
    for k in range(1, n + 1):
        eps = [rng.normal(tuple(x.shape)) for _ in range(pop)]
        vals = np.array([to_float(value(x + sigma * e)) for e in eps] + [to_float(value(x - sigma * e)) for e in eps])
        u = _centered_ranks(vals)
        step = xp.zeros_like(x)
        for i, e in enumerate(eps):
            step = step + float(u[i] - u[pop + i]) * e
        x = x - lr / (2 * pop * sigma) * step
        if callback is not None:
            callback(k, x)
        if not rec.record(k, x, f=float(vals.mean()), calls=2 * pop):
            break
    return rec.finish(x)


def cma_es(f, x0, sigma0: float = 0.5, max_evals: int = 1000, popsize: int | None = None, seed: int = 0,
           record_every: int = 1) -> Trace:
    """CMA-ES (Hansen and Ostermeier 2001) by the ``cma`` package, cut exactly at ``max_evals`` evaluations.

    Adapts the full covariance of the search distribution; invariant to rotations and monotone transformations
    of f. The ``cma`` seed is ``seed + 1`` (``cma`` reads seed 0 as "from the clock").

    Args:
        f: callable or Problem (evaluated on NumPy float64 vectors). x0: start. sigma0: initial step size.
        max_evals: budget. popsize: population (default 4 + 3 ln d). seed. record_every.
    Returns:
        The Trace; ``f`` records the best value so far, x_final the best point.
    """
    import cma

    value, x = _value(f), _x0(x0)
    n = check_int(max_evals, "max_evals", 1)
    opts = {"seed": int(seed) + 1, "verbose": -9, "maxfevals": n, "tolfun": 0, "tolx": 0, "tolflatfitness": 10 ** 9,
            "tolstagnation": 10 ** 9}
    if popsize is not None:
        opts["popsize"] = check_int(popsize, "popsize", 2)
    x_np = np.asarray(x, dtype=float)
    es = cma.CMAEvolutionStrategy(x_np, check_positive(sigma0, "sigma0"), opts)
    best_x, best_f = x_np, to_float(value(x))
    rec = _recorder("cma_es", x_np, n, dict(sigma0=sigma0, popsize=es.popsize, seed=seed), record_every)
    rec.record(0, x_np, f=best_f, calls=1)
    used = 1
    while used < n:
        sols = es.ask()[: n - used]
        vals = [to_float(value(np.asarray(s))) for s in sols]
        for s, v in zip(sols, vals):
            used += 1
            if v < best_f:
                best_x, best_f = np.asarray(s), v
            if not rec.record(used - 1, best_x, f=best_f, calls=1):
                return rec.finish(best_x)
        if len(sols) == es.popsize:
            es.tell(sols, vals)
    return rec.finish(best_x)


def _perturb(params, scale: float, seed: int):
    """params += scale * z in place, z ~ N(0, I) regenerated from ``seed`` (one parameter-sized buffer at a time)."""
    import torch

    gen = torch.Generator(device=params[0].device).manual_seed(int(seed))
    for p in params:
        z = torch.randn(p.shape, generator=gen, device=p.device, dtype=p.dtype)
        p.data.add_(z, alpha=scale)


def mezo_step(params, loss, eps: float, step_size: float, seed: int) -> tuple[float, float]:
    """One MeZO step (Malladi et al., NeurIPS 2023, Algorithm 1), in place and seed-replayed.

    theta += eps z; l+ = L(theta); theta -= 2 eps z; l- = L(theta); theta += eps z (back to theta);
    g = (l+ - l-) / (2 eps); theta -= step_size g z. The direction z ~ N(0, I) is regenerated from ``seed`` each
    time instead of stored, so the step needs no memory beyond inference (run ``loss`` under ``torch.no_grad``).

    Args:
        params: list of torch tensors (updated in place). loss: callable () -> float, the minibatch loss at the
            current parameters. eps: perturbation scale. step_size: learning rate. seed: seed of z.
    Returns:
        (projected gradient g, (l+ + l-) / 2).
    """
    _perturb(params, eps, seed)
    lp = float(loss())
    _perturb(params, -2 * eps, seed)
    lm = float(loss())
    _perturb(params, eps, seed)
    g = (lp - lm) / (2 * eps)
    _perturb(params, -step_size * g, seed)
    return g, (lp + lm) / 2


def mezo(params, loss, steps: int, step_size: float = 1e-3, eps: float = 1e-3, seed: int = 0,
         record_every: int = 1, progress: bool = False) -> Trace:
    """MeZO fine-tuning: ``steps`` calls of :func:`mezo_step` with seeds derived from ``seed`` (2 evaluations each).

    Args:
        params: list of torch tensors to tune (in place). loss: callable (step) -> float, the loss of the step's
            minibatch (the same minibatch for both evaluations of a step). steps, step_size, eps: as in
            :func:`mezo_step`. seed: base seed (step k uses seed * 1_000_003 + k). record_every: trace thinning.
        progress: show a tqdm bar.
    Returns:
        A Trace over steps: ``f`` is the average of the two minibatch losses, ``info["projected_grad"]`` is g.
    """
    import torch

    if not params:
        raise CourseError("mezo got no parameters to tune; pass a non-empty list of tensors.")
    n = check_int(steps, "steps", 1)
    check_positive(eps, "eps")
    check_positive(step_size, "step_size")
    flat = torch.zeros(1)
    rec = Recorder("mezo", flat, n, params=dict(step_size=step_size, eps=eps, seed=seed), record_every=record_every,
                   keep_x=False, on_divergence="stop")
    it = range(1, n + 1)
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc="MeZO", unit="step")
    rec.record(0, flat)
    with torch.no_grad():
        for k in it:
            g, l = mezo_step(params, lambda: loss(k), eps, step_size, seed * 1_000_003 + k)
            if not math.isfinite(l):
                rec.record(k, flat, f=l, calls=2, force=True)
                break
            if not rec.record(k, flat, f=l, calls=2, projected_grad=g):
                break
    return rec.finish(flat)
